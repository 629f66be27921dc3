package train

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
)

func smallRS(prompts, policy, reward, out string) RSConfig {
	c := DefaultRS()
	c.Prompts, c.Policy, c.Reward, c.Out = prompts, policy, reward, out
	c.N, c.MaxPrompts, c.Batch, c.MaxNew, c.MissingEOSPenalty = 4, 40, 16, 8, 0
	c.SFT.Steps, c.SFT.EvalEvery, c.SFT.EvalPrompts, c.SFT.LogEvery, c.SFT.SaveEvery, c.SFT.MaxBatch, c.SFT.TokenBudget = 4, 0, 0, 1, 2, 8, 8*32
	return c
}

// Rejection sampling keeps one response per prompt, the reward model's
// best: the picks score above the samples on average, and SFT on them
// moves the policy.
func TestRejectionSampling(t *testing.T) {
	prompts, policy, reward := writePPOFixture(t)
	cfg := smallRS(prompts, policy, reward, t.TempDir())
	sum, err := RejectionSampling(context.Background(), cpu.New(2), byteTok, cfg, RunOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("RM score of the picks %.3f, of all samples %.3f", sum.PickScore, sum.SampleScore)
	if sum.Prompts != 40 || !(sum.PickScore > sum.SampleScore+0.1) {
		t.Errorf("%d prompts, picks' score %v, samples' %v", sum.Prompts, sum.PickScore, sum.SampleScore)
	}
	f, err := os.Open(filepath.Join(cfg.Out, RSPicksFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines, mean := 0, 0.0
	for sc := bufio.NewScanner(f); sc.Scan(); lines++ {
		var p rsPick
		if err := json.Unmarshal(sc.Bytes(), &p); err != nil || p.Prompt == "" {
			t.Fatalf("pick %q: %v", sc.Text(), err)
		}
		mean += p.RMScore / 40
	}
	if lines != 40 || mean-sum.PickScore > 1e-6 || sum.PickScore-mean > 1e-6 {
		t.Errorf("%d picks of mean score %v; summary %v", lines, mean, sum.PickScore)
	}
	if sum.SFT == nil || sum.SFT.Steps != 4 {
		t.Fatalf("SFT summary %+v", sum.SFT)
	}
	before, _ := os.ReadFile(filepath.Join(policy, model.WeightsFile))
	after, err := os.ReadFile(filepath.Join(cfg.Out, model.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	if string(before) == string(after) {
		t.Error("the fine-tuned policy is the starting one")
	}
	// A finished run has nothing to resume.
	if _, err := RejectionSampling(context.Background(), cpu.New(2), byteTok, cfg, RunOptions{Log: zerolog.Nop(), Resume: true}); !errors.Is(err, ErrFinished) {
		t.Errorf("resuming a finished run: %v", err)
	}
}
