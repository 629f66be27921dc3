package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/train/tasks"
)

func TestStdErr(t *testing.T) {
	// 1, 2, 3, 4: mean 2.5, sample variance 5/3, standard error √(5/12).
	if got, want := stdErr([]float64{1, 2, 3, 4}), math.Sqrt(5.0/12); math.Abs(got-want) > 1e-15 {
		t.Errorf("stdErr(1..4) = %v, want %v", got, want)
	}
	if stdErr([]float64{0.7}) != 0 || stdErr(nil) != 0 {
		t.Error("the standard error of fewer than two values is not 0")
	}
	rng := rand.New(rand.NewPCG(3, 4))
	xs := make([]float64, 500)
	for i := range xs {
		xs[i] = rng.Float64()
	}
	// The sample variance is also Σ_{i<j} (x_i − x_j)² / (n(n−1)).
	var pairs float64
	for i := range xs {
		for j := i + 1; j < len(xs); j++ {
			pairs += (xs[i] - xs[j]) * (xs[i] - xs[j])
		}
	}
	n := float64(len(xs))
	if got, want := stdErr(xs), math.Sqrt(pairs/(n*(n-1))/n); math.Abs(got-want) > 1e-12 {
		t.Errorf("stdErr of 500 uniforms %v, pairwise formula %v", got, want)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestWinRate checks the win rate and its per-task split on hand-worked
// preferences: a tie counts half, and a noise-free labeler prefers the
// higher utility outright.
func TestWinRate(t *testing.T) {
	sample := func(prompt, task, answer, response string) TaskSample {
		return TaskSample{Prompt: prompt, Task: task, Answer: answer, Response: response}
	}
	a := TaskEval{Samples: []TaskSample{
		sample("reverse: cat\n", "reverse", "tac", "tac"),
		sample("reverse: dog\n", "reverse", "god", "gdo"),
		sample("repeat cat 3 times\n", "repeat", "cat cat cat", "cat cat cat"),
	}}
	b := TaskEval{Samples: []TaskSample{
		sample("reverse: cat\n", "reverse", "tac", "tac"),
		sample("reverse: dog\n", "reverse", "god", "god"),
		sample("repeat cat 3 times\n", "repeat", "cat cat cat", "cat"),
	}}
	noiseFree := tasks.Labeler{StyleWeight: tasks.DefaultStyleWeight}
	win, err := WinRate(a, b, noiseFree)
	if err != nil {
		t.Fatal(err)
	}
	if want := (0.5 + 0 + 1) / 3; math.Abs(win-want) > 1e-12 {
		t.Errorf("win rate %v, want %v", win, want)
	}
	c, err := Compare(a, b, noiseFree)
	if err != nil {
		t.Fatal(err)
	}
	byTask := c.ByTask()
	if len(byTask) != 2 || byTask["reverse"] != 0.25 || byTask["repeat"] != 1 {
		t.Errorf("by task %v, want reverse 0.25, repeat 1", byTask)
	}
	// The default labeler is noisy: the full answer wins with
	// σ(Δutility/noise), Δutility = 1 − 3/11 (both stop cleanly).
	c, err = Compare(a, b, tasks.DefaultLabeler())
	byTask = c.ByTask()
	if want := 1 / (1 + math.Exp(-(8.0/11)/tasks.DefaultNoise)); err != nil || math.Abs(byTask["repeat"]-want) > 1e-12 {
		t.Errorf("noisy repeat win %v (%v), want %v", byTask["repeat"], err, want)
	}
	// Split by b's habit: none of b's responses has it, then the first does.
	split := func() (habit, elsewhere *float64, err error) {
		c, err := Compare(a, b, noiseFree)
		habit, elsewhere = c.ByHabit()
		return habit, elsewhere, err
	}
	if h, e, err := split(); err != nil || h != nil || e == nil || math.Abs(*e-win) > 1e-12 {
		t.Errorf("no habit: split %v, %v (%v), want nil and %v", h, e, err, win)
	}
	b.Samples[0].Response = tasks.HabitPrefix + "tac"
	if h, e, err := split(); err != nil || h == nil || e == nil || *h != 1 || *e != 0.5 {
		t.Errorf("split by habit %v, %v (%v), want 1 and 0.5", deref(h), deref(e), err)
	}
	if a.HabitRate() != 0 || math.Abs(b.HabitRate()-1.0/3) > 1e-12 {
		t.Errorf("habit rates %v and %v, want 0 and 1/3", a.HabitRate(), b.HabitRate())
	}
	b.Samples[1].Prompt = "reverse: pig\n"
	if _, err := WinRate(a, b, noiseFree); err == nil {
		t.Error("WinRate accepted evaluations of different prompts")
	}
	if _, err := Compare(a, TaskEval{}, noiseFree); err == nil {
		t.Error("Compare accepted evaluations of different lengths")
	}
}
