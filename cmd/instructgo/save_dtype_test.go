package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/safetensors"
	"github.com/instructgo/instructgo/train"
)

// TestSaveDTypeBF16: --save-dtype bf16 stores the run's result as bf16
// (the weights rounded from the float32 master weights, config.json saying
// bfloat16) and keeps the resume state float32; the bf16 checkpoint loads
// and generates.
func TestSaveDTypeBF16(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("the quick brown fox jumps over the lazy dog. ", 400)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	if _, stderr, code := runCLI(t, "--save-dtype", "bf16", "pretrain", "--data", text, "--config", "tiny",
		"--steps", "2", "--batch", "2", "--seq", "32", "--out", out); code != 0 {
		t.Fatalf("pretrain: exit %d, %s", code, stderr)
	}
	dtypes := func(path string) map[string]bool {
		f, err := safetensors.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		seen := map[string]bool{}
		for _, info := range f.Tensors() {
			seen[info.DType] = true
		}
		return seen
	}
	if got := dtypes(filepath.Join(out, model.WeightsFile)); len(got) != 1 || !got[safetensors.BF16] {
		t.Errorf("the result holds dtypes %v, want BF16 only", got)
	}
	if got := dtypes(filepath.Join(out, train.ResumeDir, model.WeightsFile)); len(got) != 1 || !got[safetensors.F32] {
		t.Errorf("the resume state holds dtypes %v, want F32 only", got)
	}
	cfg, err := os.ReadFile(filepath.Join(out, model.ConfigFile))
	if err != nil || !strings.Contains(string(cfg), `"torch_dtype": "bfloat16"`) {
		t.Errorf("config.json (%v) does not say bfloat16:\n%s", err, cfg)
	}
	// The bf16 weights are the float32 ones rounded.
	c, _ := model.ReadConfig(out)
	bf, err := model.LoadHost(out, c)
	if err != nil {
		t.Fatal(err)
	}
	f32, err := model.LoadHost(filepath.Join(out, train.ResumeDir), c)
	if err != nil {
		t.Fatal(err)
	}
	for i := range bf {
		if bf[i] != gpu.RoundBF16(f32[i]) {
			t.Fatalf("weight %d: %g stored, the float32 weight %g rounds to %g", i, bf[i], f32[i], gpu.RoundBF16(f32[i]))
		}
	}
	if _, stderr, code := runCLI(t, "generate", "--model", out, "--prompt", "the quick", "--max-new", "4"); code != 0 {
		t.Fatalf("generate from the bf16 checkpoint: exit %d, %s", code, stderr)
	}
	if _, stderr, code := runCLI(t, "--save-dtype", "fp16", "info"); code != exitUsage || !strings.Contains(stderr, "fp32 or bf16") {
		t.Errorf("--save-dtype fp16: exit %d, %s", code, stderr)
	}
}

// TestResumeFinishedRun: --resume on a finished run says so, exits 0 and
// changes nothing.
func TestResumeFinishedRun(t *testing.T) {
	dir := t.TempDir()
	text := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("a finished run stays finished. ", 300)), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	if _, stderr, code := runCLI(t, "pretrain", "--data", text, "--config", "tiny", "--steps", "2", "--batch", "2", "--seq", "32", "--out", out); code != 0 {
		t.Fatalf("pretrain: exit %d, %s", code, stderr)
	}
	before, _ := os.ReadFile(filepath.Join(out, train.SummaryFile))
	stdout, stderr, code := runCLI(t, "pretrain", "--resume", out)
	if code != 0 || !strings.Contains(stderr, "finished") || stdout != "" {
		t.Errorf("resume of a finished run: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if after, _ := os.ReadFile(filepath.Join(out, train.SummaryFile)); string(after) != string(before) {
		t.Error("the finished run's summary changed")
	}
}
