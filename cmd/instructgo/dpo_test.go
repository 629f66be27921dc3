package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
)

// TestDPOCommand: dpo trains on the built-in tasks' rankings and reports
// the implicit reward's accuracies and the task scores; Ctrl-C stops it with
// exit status 130 and --resume continues it to the uninterrupted run's
// policy; the loss flags reach the run configuration.
func TestDPOCommand(t *testing.T) {
	dataDir, initDir := rmFixture(t)
	rmData := filepath.Join(dataDir, "rm.jsonl")
	args := func(out string, extra ...string) []string {
		return append([]string{"--device", "cpu", "--threads", "2", "--log-format", "json", "dpo",
			"--data", rmData, "--init", initDir, "--out", out, "--steps", "3", "--batch", "4", "--val-frac", "0.2",
			"--eval-every", "0", "--eval-prompts", "3", "--max-new", "4", "--save-every", "1"}, extra...)
	}
	whole, split := filepath.Join(t.TempDir(), "whole"), filepath.Join(t.TempDir(), "split")
	stdout, stderr, code := runCLI(t, args(whole)...)
	if code != 0 {
		t.Fatalf("dpo: exit %d, stderr %s", code, stderr)
	}
	for _, want := range []string{"held-out pairwise accuracy", "noise-free order", "greedy task score on 3 held-out prompts", whole} {
		if !strings.Contains(stdout, want) {
			t.Errorf("dpo output lacks %q:\n%s", want, stdout)
		}
	}
	if _, err := os.Stat(filepath.Join(whole, train.ReferenceFile)); err != nil {
		t.Error(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	if code := run(ctx, append([]string{"instructgo"}, args(split)...), &out, &errOut); code != 130 {
		t.Fatalf("interrupted dpo: exit %d, want 130; stderr %s", code, errOut.String())
	}
	if _, stderr, code := runCLI(t, "--device", "cpu", "dpo", "--resume", split, "--beta", "0.5"); code != 2 || !strings.Contains(stderr, "drop --beta") {
		t.Errorf("--resume with another option: exit %d, stderr %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "--device", "cpu", "--threads", "2", "dpo", "--resume", split); code != 0 || !strings.Contains(stderr, "resuming") {
		t.Fatalf("dpo --resume: exit %d, stderr %s", code, stderr)
	}
	a, _ := os.ReadFile(filepath.Join(whole, model.WeightsFile))
	b, _ := os.ReadFile(filepath.Join(split, model.WeightsFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("the resumed run's policy differs from the uninterrupted run's")
	}

	// The loss flags, and the combination refused.
	for _, tc := range []struct {
		flags []string
		want  train.PreferenceLoss
	}{
		{nil, train.PreferenceLoss{Form: train.LossPlackettLuce, Beta: 0.1}},
		{[]string{"--pairs", "--label-smoothing", "0.1", "--beta", "0.2"}, train.PreferenceLoss{Form: train.LossPairs, Beta: 0.2, LabelSmoothing: 0.1}},
		{[]string{"--ipo", "--beta", "0.5"}, train.PreferenceLoss{Form: train.LossIPO, Beta: 0.5}},
	} {
		dir := filepath.Join(t.TempDir(), "run")
		if _, stderr, code := runCLI(t, append(args(dir), append(tc.flags, "--steps", "1")...)...); code != 0 {
			t.Fatalf("dpo %v: exit %d, stderr %s", tc.flags, code, stderr)
		}
		var cfg train.DPOConfig
		raw, _ := os.ReadFile(filepath.Join(dir, train.RunConfigFile))
		if err := json.Unmarshal(raw, &cfg); err != nil || cfg.Loss != tc.want {
			t.Errorf("dpo %v: run config loss %+v (%v), want %+v", tc.flags, cfg.Loss, err, tc.want)
		}
	}
	for _, bad := range [][]string{{"--pairs", "--ipo"}, {"--ipo", "--label-smoothing", "0.1"}, {"--beta", "0"}} {
		if _, stderr, code := runCLI(t, append(args(filepath.Join(t.TempDir(), "run")), bad...)...); code != 2 {
			t.Errorf("dpo %v: exit %d, want 2; stderr %s", bad, code, stderr)
		}
	}
}
