package train

import (
	"fmt"
	"math"
	"strings"

	"github.com/instructgo/instructgo/train/tasks"
)

// WinRate is the simulated labeler's expected preference for a's response
// over b's, prompt by prompt (a tie counts half), averaged: the paper's
// headline measure. a and b must be evaluations of the same prompts.
func WinRate(a, b TaskEval, l tasks.Labeler) (float64, error) {
	c, err := Compare(a, b, l)
	if err != nil {
		return 0, err
	}
	return c.WinRate(), nil
}

// Comparison holds two evaluations of the same prompts and the labeler's
// preference probability for each of a's responses over b's; every win
// rate and its spread derive from it.
type Comparison struct {
	A, B  TaskEval
	Prefs []float64
}

// Compare computes the labeler's preferences of a's responses over b's.
func Compare(a, b TaskEval, l tasks.Labeler) (Comparison, error) {
	if len(a.Samples) != len(b.Samples) || len(a.Samples) == 0 {
		return Comparison{}, fmt.Errorf("win rate: %d and %d samples", len(a.Samples), len(b.Samples))
	}
	c := Comparison{A: a, B: b, Prefs: make([]float64, len(a.Samples))}
	for i, sa := range a.Samples {
		sb := b.Samples[i]
		if sa.Prompt != sb.Prompt {
			return Comparison{}, fmt.Errorf("win rate: sample %d answers different prompts", i)
		}
		p, err := l.PreferProbability(sa.Task, sa.Answer, sa.Response, sb.Response)
		if err != nil {
			return Comparison{}, err
		}
		c.Prefs[i] = p
	}
	return c, nil
}

// WinRate is the mean preference.
func (c Comparison) WinRate() float64 {
	total := 0.0
	for _, p := range c.Prefs {
		total += p
	}
	return total / float64(len(c.Prefs))
}

// ByTask is the win rate on each task's prompts.
func (c Comparison) ByTask() map[string]float64 {
	sum, n := map[string]float64{}, map[string]int{}
	for i, p := range c.Prefs {
		sum[c.A.Samples[i].Task] += p
		n[c.A.Samples[i].Task]++
	}
	for task := range sum {
		sum[task] /= float64(n[task])
	}
	return sum
}

// StdErrs returns the standard errors over the prompts of the win rate and
// of a's mean task-score gain over b (paired by prompt).
func (c Comparison) StdErrs() (winRate, scoreGain float64) {
	gains := make([]float64, len(c.Prefs))
	for i := range gains {
		gains[i] = c.A.Samples[i].Score - c.B.Samples[i].Score
	}
	return stdErr(c.Prefs), stdErr(gains)
}

// ByHabit is the win rate on the prompts where b's response opens with
// tasks.HabitPrefix and on the others; nil for a set without prompts.
func (c Comparison) ByHabit() (habit, elsewhere *float64) {
	var sum [2]float64
	var n [2]int
	for i, p := range c.Prefs {
		k := 0
		if strings.HasPrefix(c.B.Samples[i].Response, tasks.HabitPrefix) {
			k = 1
		}
		sum[k] += p
		n[k]++
	}
	mean := func(k int) *float64 {
		if n[k] == 0 {
			return nil
		}
		m := sum[k] / float64(n[k])
		return &m
	}
	return mean(1), mean(0)
}

// stdErr is the standard error of the mean of xs: the sample standard
// deviation (n − 1 in the denominator) over √n; 0 for fewer than two.
func stdErr(xs []float64) float64 {
	n := float64(len(xs))
	if len(xs) < 2 {
		return 0
	}
	mean := 0.0
	for _, x := range xs {
		mean += x / n
	}
	ss := 0.0
	for _, x := range xs {
		ss += (x - mean) * (x - mean)
	}
	return math.Sqrt(ss / (n - 1) / n)
}
