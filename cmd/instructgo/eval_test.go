package main

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/model"
)

// TestEvalAgainst: eval --against scores both models on the same prompts
// (each score the one eval gives alone), a model against itself wins half
// and gains nothing, and swapping the two turns the win rate w into 1-w.
// The fixture's random models both score near 0, so this checks the
// command's plumbing; the labeler's comparison is tested in train
// (TestWinRate).
func TestEvalAgainst(t *testing.T) {
	dataDir, a := rmFixture(t)
	cfg := model.Config{VocabSize: 258, MaxSeqLen: 128, NLayer: 1, NHead: 2, NEmbd: 16, Tokenizer: "byte"}
	b := t.TempDir()
	if err := model.SaveHost(b, cfg, model.InitGPT2(cfg, 7)); err != nil {
		t.Fatal(err)
	}
	evalData := filepath.Join(dataDir, "eval.jsonl")
	run := func(args ...string) map[string]any {
		t.Helper()
		stdout, stderr, code := runCLI(t, append([]string{"--device", "cpu", "eval", "--data", evalData, "--max-new", "6", "--temperature", "1", "--json"}, args...)...)
		if code != 0 {
			t.Fatalf("eval %v: exit %d, stderr %s", args, code, stderr)
		}
		var out map[string]any
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("eval %v: %v\n%s", args, err, stdout)
		}
		return out
	}
	aAlone, bAlone := run("--model", a), run("--model", b)
	ab, ba, aa := run("--model", a, "--against", b), run("--model", b, "--against", a), run("--model", a, "--against", a)
	if ab["task_score"] != aAlone["task_score"] || ab["against_task_score"] != bAlone["task_score"] {
		t.Errorf("--against scores %v/%v, alone %v/%v", ab["task_score"], ab["against_task_score"], aAlone["task_score"], bAlone["task_score"])
	}
	if aa["win_rate"] != 0.5 || aa["task_score_gain"] != 0.0 || aa["win_rate_stderr"] != 0.0 {
		t.Errorf("a model against itself: %v", aa)
	}
	w1, w2 := ab["win_rate"].(float64), ba["win_rate"].(float64)
	if math.Abs(w1+w2-1) > 1e-12 || w1 < 0 || w1 > 1 {
		t.Errorf("win rates %v and %v of the swapped pair do not sum to 1", w1, w2)
	}
	if ab["n"].(float64) != 8 {
		t.Errorf("n %v, want the fixture's 8 prompts", ab["n"])
	}
	stdout, _, code := runCLI(t, "--device", "cpu", "eval", "--data", evalData, "--max-new", "4", "--model", a, "--against", b)
	if code != 0 || !strings.Contains(stdout, "win rate") || !strings.Contains(stdout, "standard errors over 8 prompts") {
		t.Errorf("eval --against table: exit %d\n%s", code, stdout)
	}
	if _, stderr, code := runCLI(t, "--device", "cpu", "eval", "--data", evalData, "--model", a, "--against", filepath.Join(t.TempDir(), "none")); code == 0 || !strings.Contains(stderr, "none") {
		t.Errorf("--against a missing directory: exit %d, stderr %s", code, stderr)
	}
}
