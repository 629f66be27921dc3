package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
)

// ppoFixture writes a tiny random policy, a tiny random reward model and a
// prompt file, and returns the ppo command line of a short run into out.
func ppoFixture(t *testing.T) func(out string) []string {
	t.Helper()
	dir := t.TempDir()
	cfg := model.Config{VocabSize: 258, MaxSeqLen: 32, NLayer: 1, NHead: 2, NEmbd: 16, Tokenizer: "byte"}
	policy, reward := filepath.Join(dir, "sft"), filepath.Join(dir, "rm")
	if err := model.SaveHost(policy, cfg, model.InitGPT2(cfg, 1)); err != nil {
		t.Fatal(err)
	}
	cfg.ScalarHead = true
	if err := model.SaveHost(reward, cfg, model.InitGPT2(cfg, 2)); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for i := range 8 {
		rec, _ := json.Marshal(map[string]string{"prompt": fmt.Sprintf("say %d:", i)})
		sb.Write(append(rec, '\n'))
	}
	prompts := filepath.Join(dir, "ppo.jsonl")
	if err := os.WriteFile(prompts, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return func(out string) []string {
		return []string{"--device", "cpu", "--threads", "2", "--log-format", "json", "ppo",
			"--prompts", prompts, "--policy", policy, "--reward", reward, "--out", out,
			"--iterations", "3", "--episodes", "4", "--minibatch", "2", "--max-new", "4", "--lr", "0.001", "--save-every", "1"}
	}
}

// TestPPOCommandResumes: Ctrl-C stops ppo with exit status 130 and the
// resumable state saved, and --resume continues it to the EMA policy of an
// uninterrupted run; --resume takes no other options, and a new run does
// not overwrite a resumable one.
func TestPPOCommandResumes(t *testing.T) {
	args := ppoFixture(t)
	whole, split := filepath.Join(t.TempDir(), "whole"), filepath.Join(t.TempDir(), "split")
	if _, stderr, code := runCLI(t, args(whole)...); code != 0 {
		t.Fatalf("ppo: exit %d, stderr %s", code, stderr)
	}

	// Ctrl-C before the first iteration ends, the way the signal handler
	// cancels the command's context.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var out, errOut bytes.Buffer
	if code := run(ctx, append([]string{"instructgo"}, args(split)...), &out, &errOut); code != 130 {
		t.Fatalf("interrupted ppo: exit %d, want 130; stderr %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "--resume "+split) {
		t.Errorf("the interruption message does not say how to resume: %s", errOut.String())
	}
	if _, err := os.Stat(filepath.Join(split, train.ResumeDir, train.TrainerStateFile)); err != nil {
		t.Fatalf("no resumable state after Ctrl-C: %v", err)
	}

	if _, stderr, code := runCLI(t, args(split)...); code != 2 || !strings.Contains(stderr, "already holds a run") {
		t.Errorf("a new run over a resumable one: exit %d, stderr %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "--device", "cpu", "ppo", "--resume", split, "--iterations", "5"); code != 2 || !strings.Contains(stderr, "drop --iterations") {
		t.Errorf("--resume with another option: exit %d, stderr %s", code, stderr)
	}
	stdout, stderr, code := runCLI(t, "--device", "cpu", "--threads", "2", "--log-format", "json", "ppo", "--resume", split)
	if code != 0 || !strings.Contains(stdout, "over 3 iterations") || !strings.Contains(stderr, "resuming") {
		t.Fatalf("ppo --resume: exit %d, stdout %q, stderr %s", code, stdout, stderr)
	}
	a, _ := os.ReadFile(filepath.Join(whole, model.WeightsFile))
	b, _ := os.ReadFile(filepath.Join(split, model.WeightsFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("the resumed run's EMA policy differs from the uninterrupted run's")
	}
	metrics, _ := os.ReadFile(filepath.Join(split, train.MetricsFile))
	if n := strings.Count(string(metrics), "\n"); n != 3 {
		t.Errorf("%d metrics records, want 3", n)
	}
}

// TestPPOGenBatch: --gen-batch generates the episodes in one batch with
// the same tokens, so the run's EMA policy is the same file as with the
// default batches; a batch larger than the episodes is a usage error.
func TestPPOGenBatch(t *testing.T) {
	args := ppoFixture(t)
	dirs := []string{filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")}
	for i, extra := range [][]string{nil, {"--gen-batch", "4"}} {
		if _, stderr, code := runCLI(t, append(args(dirs[i]), extra...)...); code != 0 {
			t.Fatalf("ppo %v: exit %d, stderr %s", extra, code, stderr)
		}
	}
	a, _ := os.ReadFile(filepath.Join(dirs[0], model.WeightsFile))
	b, _ := os.ReadFile(filepath.Join(dirs[1], model.WeightsFile))
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Error("--gen-batch 4 trained another policy than the default batches of 2")
	}
	_, stderr, code := runCLI(t, append(args(filepath.Join(t.TempDir(), "c")), "--gen-batch", "5")...)
	if code != exitUsage || !strings.Contains(stderr, "generation batch 5") {
		t.Errorf("--gen-batch 5 for 4 episodes: exit %d, stderr %q", code, stderr)
	}
}
