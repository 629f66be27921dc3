package train

import (
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/tasks"
)

// TestBestOfNPicks checks the picks, win rates and pair accuracy on a hand
// made case: two "reverse" prompts, three samples each, known rewards.
func TestBestOfNPicks(t *testing.T) {
	lab := tasks.Labeler{Noise: 0.2, StyleWeight: 0.1}
	prompts := []TaskPrompt{{Prompt: "reverse: ab\n", Task: "reverse", Answer: "ba"}, {Prompt: "reverse: cat\n", Task: "reverse", Answer: "tac"}}
	resp := [][]string{{"ab", "ba", "b"}, {"tac", "cat", "tac"}} // resp[i][k]
	greedyResp := []string{"ab", "cat"}
	eval := func(r func(i int) string) TaskEval {
		ev := TaskEval{}
		for i, p := range prompts {
			s, err := tasks.ScoreRecord(p.Task, p.Answer, r(i))
			if err != nil {
				t.Fatal(err)
			}
			ev.Samples = append(ev.Samples, TaskSample{Prompt: p.Prompt, Task: p.Task, Answer: p.Answer, Response: r(i), Score: s})
			ev.Score += s / float64(len(prompts))
		}
		return ev
	}
	greedy := eval(func(i int) string { return greedyResp[i] })
	samples := make([]TaskEval, 3)
	for k := range samples {
		samples[k] = eval(func(i int) string { return resp[i][k] })
	}
	// The reward model prefers "ab" (wrong) on prompt 0 and the correct
	// "tac" (sample 2; sample 0 ties with it) on prompt 1.
	rewards := [][]float64{{3, 0}, {1, -1}, {-2, 0}}
	got, err := bestOfN(prompts, greedy, samples, rewards, BestOfNOptions{N: 3, Temperature: 1, Labeler: lab})
	if err != nil {
		t.Fatal(err)
	}
	score := func(p int, r string) float64 {
		s, _ := tasks.ScoreRecord("reverse", prompts[p].Answer, r)
		return s
	}
	wantRM := (score(0, "ab") + score(1, "tac")) / 2
	wantIdeal := (score(0, "ba") + score(1, "tac")) / 2
	if math.Abs(got.ByRM-wantRM) > 1e-12 || math.Abs(got.Ideal-wantIdeal) > 1e-12 {
		t.Errorf("picks: RM %.4f ideal %.4f, want %.4f and %.4f", got.ByRM, got.Ideal, wantRM, wantIdeal)
	}
	// Pairs whose utilities differ: the three of prompt 0 and, on prompt
	// 1, "cat" against each "tac" (the two "tac" tie and do not count).
	// Recount them independently of bestOfN.
	u := func(p int, r string) float64 {
		task, _ := tasks.ByName("reverse")
		return lab.Utility(task, prompts[p].Answer, r)
	}
	agree, pairs := 0.0, 0
	for i := range prompts {
		for a := 0; a < 3; a++ {
			for b := a + 1; b < 3; b++ {
				du := u(i, resp[i][a]) - u(i, resp[i][b])
				if du == 0 {
					continue
				}
				pairs++
				dr := rewards[a][i] - rewards[b][i]
				if dr == 0 {
					agree += 0.5
				} else if (dr > 0) == (du > 0) {
					agree++
				}
			}
		}
	}
	if got.Pairs != pairs || math.Abs(got.PairAccuracy-agree/float64(pairs)) > 1e-12 {
		t.Errorf("pairs %d accuracy %.4f, want %d and %.4f", got.Pairs, got.PairAccuracy, pairs, agree/float64(pairs))
	}
	if pairs != 5 {
		t.Errorf("the hand count expects 5 pairs with different utility, got %d", pairs)
	}
	// Every prompt is a reverse prompt: the per-task split has that one
	// task, at the overall accuracy.
	if by := got.PairAccuracyByTask; len(by) != 1 || by["reverse"] != got.PairAccuracy {
		t.Errorf("pair accuracy by task %v, want reverse %.4f only", by, got.PairAccuracy)
	}
	// The ideal pick is correct on both prompts, the RM's only on prompt
	// 1, so the ideal one wins more often against greedy.
	if !(got.IdealWin > got.RMWin && got.IdealWin > 0.5) {
		t.Errorf("win rates: ideal %.3f, RM %.3f", got.IdealWin, got.RMWin)
	}
	if got.Greedy != greedy.Score || got.N != 3 || got.Prompts != 2 {
		t.Errorf("header %+v", got)
	}
}

// TestMeasureBestOfNRuns runs the whole measurement on small random models:
// the ideal pick is never worse than the others, and the numbers are
// finite and within range.
func TestMeasureBestOfNRuns(t *testing.T) {
	_, policyDir, rewardDir := writePPOFixture(t)
	b := cpu.New(1)
	tok, _ := tokenizer.New("byte")
	load := func(dir string) *model.Model {
		m, err := model.Load(b, dir, model.Options{MaxBatch: 8, MaxSeq: 32})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	policy, rm := load(policyDir), load(rewardDir)
	prompts := []TaskPrompt{{Prompt: "reverse: ab\n", Task: "reverse", Answer: "ba"}, {Prompt: "add: 1 + 2\n", Task: "add", Answer: "3"}, {Prompt: "uppercase: hi\n", Task: "upper", Answer: "HI"}}
	greedy, err := EvalTasks(policy, tok, prompts, EvalOptions{MaxNew: 6})
	if err != nil {
		t.Fatal(err)
	}
	got, err := MeasureBestOfN(policy, rm, tok, prompts, greedy, BestOfNOptions{N: 4, Temperature: 1, MaxNew: 6, Seed: 3, Labeler: tasks.DefaultLabeler()})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{got.Sample, got.ByRM, got.Ideal, got.SampleWin, got.RMWin, got.IdealWin, got.PairAccuracy} {
		if math.IsNaN(v) || v < 0 || v > 1 {
			t.Fatalf("out of range: %+v", got)
		}
	}
	if got.Ideal < got.ByRM || got.Ideal < got.Sample {
		t.Errorf("the ideal pick scores %.3f, below the RM's %.3f or a sample's %.3f", got.Ideal, got.ByRM, got.Sample)
	}
	if _, err := MeasureBestOfN(policy, rm, tok, prompts, greedy, BestOfNOptions{N: 1, Temperature: 1, MaxNew: 6}); err == nil {
		t.Error("n = 1 accepted")
	}
}
