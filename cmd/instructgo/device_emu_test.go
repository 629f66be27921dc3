//go:build cuda && cudaemu

package main

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/safetensors"
)

// TestEmulatedCUDAMatchesCPU runs the command line on the cuda backend of
// the emulated build (build tags cuda and cudaemu: every kernel on the CPU
// emulator of gpu/cuda/emu) and on the cpu backend: a few pretraining steps
// must give the same losses and weights, sampling from one checkpoint the
// same tokens, and SFT, RM, PPO and DPO steps the same metrics. It checks the cuda backend through the real training
// and decoding code, not op by op. Run by make cuda-emu-test.
func TestEmulatedCUDAMatchesCPU(t *testing.T) {
	dir := t.TempDir()
	emulatedPretrain(t, dir, "--config", "tiny")
	checkEmulatedRun(t, dir)
}

// TestEmulatedCUDAMatchesCPULlama is TestEmulatedCUDAMatchesCPU for the
// Llama family (RMSNorm, RoPE, grouped-query attention, SwiGLU, a tied
// head) on a Llama smaller than llama-tiny, which would take as long as
// tiny's 4 minutes on the 2-core machine: 2 layers of width 32, 4 query
// heads on 2 key/value heads, started from a random checkpoint (27 s).
func TestEmulatedCUDAMatchesCPULlama(t *testing.T) {
	dir := t.TempDir()
	cfg := model.Config{VocabSize: 258, MaxSeqLen: 64, NLayer: 2, NHead: 4, NEmbd: 32, Tokenizer: "byte",
		Arch: model.ArchLlama, KVHeads: 2, Intermediate: 88, RopeTheta: 10000, RMSNormEps: 1e-5, TieEmbeddings: true}
	start := filepath.Join(dir, "init")
	saveRandomModel(t, start, cfg, 5)
	emulatedPretrain(t, dir, "--init", start)
	checkEmulatedRun(t, dir)
}

// checkEmulatedRun compares the pretraining runs in dir/cpu and dir/cuda
// (logged losses, gradient norms and the weights they end with), sampling
// from dir/cpu's checkpoint on both backends, and every later stage
// (checkEmulatedStages).
func checkEmulatedRun(t *testing.T, dir string) {
	type step struct {
		Step     int      `json:"step"`
		Loss     float64  `json:"loss"`
		GradNorm float64  `json:"grad_norm"`
		ValLoss  *float64 `json:"val_loss"`
	}
	readSteps := func(dev string) []step {
		raw, err := os.ReadFile(filepath.Join(dir, dev, "metrics.jsonl"))
		if err != nil {
			t.Fatal(err)
		}
		var out []step
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var s step
			if err := json.Unmarshal([]byte(line), &s); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		return out
	}
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-4*math.Max(1, math.Abs(b)) }
	cpuSteps, cudaSteps := readSteps("cpu"), readSteps("cuda")
	if len(cpuSteps) != 3 || len(cudaSteps) != 3 {
		t.Fatalf("%d and %d logged steps, want 3", len(cpuSteps), len(cudaSteps))
	}
	for i, c := range cpuSteps {
		g := cudaSteps[i]
		if !near(g.Loss, c.Loss) || !near(g.GradNorm, c.GradNorm) {
			t.Errorf("step %d: cuda loss %v grad norm %v, cpu %v and %v", c.Step, g.Loss, g.GradNorm, c.Loss, c.GradNorm)
		}
	}
	if c, g := cpuSteps[2].ValLoss, cudaSteps[2].ValLoss; c == nil || g == nil || !near(*g, *c) {
		t.Errorf("held-out loss: cuda %v, cpu %v", g, c)
	}

	// The weights after three AdamW steps (a layernorm backward without one
	// of its barriers moves them by 2e-4).
	open := func(dev string) *safetensors.File {
		f, err := safetensors.Open(filepath.Join(dir, dev, "model.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		return f
	}
	fc, fg := open("cpu"), open("cuda")
	for _, info := range fc.Tensors() {
		c, _, err := fc.Float32(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		g, _, err := fg.Float32(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		worst := 0.0
		for i := range c {
			worst = math.Max(worst, math.Abs(float64(g[i]-c[i])))
		}
		if worst > 1e-6 { // measured: at most 5e-8
			t.Errorf("%s: cuda and cpu weights differ by up to %g", info.Name, worst)
		}
	}

	// Sampling from the same checkpoint draws the same tokens.
	gen := func(dev string) string {
		out, stderr, code := runCLI(t, "--device", dev, "--precision", "fp32", "generate", "--model", filepath.Join(dir, "cpu"),
			"--prompt", "reverse: apple\n", "--prompt", "the cat", "--max-new", "12", "--temperature", "1", "--seed", "7", "--json")
		if code != 0 {
			t.Fatalf("generate on %s: %s", dev, stderr)
		}
		return out
	}
	if c, g := gen("cpu"), gen("cuda"); c != g {
		t.Errorf("sampled continuations differ:\ncpu  %s\ncuda %s", c, g)
	}
	checkEmulatedStages(t, dir)
}

// emulatedPretrain writes a small dataset into dir/data and pretrains the
// model that from names (--config NAME or --init DIR) for three steps on
// each backend, into dir/cpu and dir/cuda.
func emulatedPretrain(t *testing.T, dir string, from ...string) {
	t.Helper()
	data := filepath.Join(dir, "data")
	if _, stderr, code := runCLI(t, "data", "synth", "--out", data, "--sft", "20", "--rm", "10", "--ppo", "5", "--eval", "5", "--pretrain-bytes", "20000"); code != 0 {
		t.Fatalf("data synth: %s", stderr)
	}
	for _, dev := range []string{"cpu", "cuda"} {
		args := append([]string{"--device", dev, "--precision", "fp32", "pretrain", "--data", filepath.Join(data, "pretrain.txt")}, from...)
		args = append(args, "--steps", "3", "--batch", "4", "--seq", "64", "--log-every", "1", "--out", filepath.Join(dir, dev))
		if _, stderr, code := runCLI(t, args...); code != 0 {
			t.Fatalf("pretrain on %s: %s", dev, stderr)
		}
	}

}

// checkEmulatedStages runs SFT, the reward model, one PPO-ptx iteration,
// DPO, and one GRPO and RLOO iteration from the same starting checkpoints (dir/cpu's) on both backends, a few
// steps each, and requires the same numbers in their metrics: every stage
// of the pipeline through the cuda backend, as the GPU bundle's pipeline
// smoke run does on a GPU.
func checkEmulatedStages(t *testing.T, dir string) {
	data := func(name string) string { return filepath.Join(dir, "data", name) }
	at := func(name string) string { return filepath.Join(dir, name) }
	for _, dev := range []string{"cpu", "cuda"} {
		stages := [][]string{
			{"sft", "--data", data("sft.jsonl"), "--init", at("cpu"), "--steps", "2", "--token-budget", "512",
				"--eval-every", "0", "--eval-prompts", "4", "--max-new", "8", "--log-every", "1", "--out", at("sft-" + dev)},
			{"rm", "--data", data("rm.jsonl"), "--init", at("sft-cpu"), "--steps", "2", "--batch", "3", "--max-len", "48", "--token-budget", "512",
				"--eval-every", "0", "--log-every", "1", "--out", at("rm-" + dev)},
			{"ppo", "--prompts", data("ppo.jsonl"), "--ptx", data("pretrain.txt"), "--policy", at("sft-cpu"), "--reward", at("rm-cpu"),
				"--iterations", "1", "--episodes", "4", "--minibatch", "2", "--max-new", "6", "--ptx-batch", "2", "--ptx-seq", "32",
				"--out", at("ppo-" + dev)},
			{"dpo", "--data", data("rm.jsonl"), "--init", at("sft-cpu"), "--steps", "2", "--batch", "3", "--max-len", "48", "--token-budget", "512",
				"--lr", "1e-3", "--warmup", "0", "--eval-every", "0", "--eval-prompts", "2", "--max-new", "6", "--log-every", "1", "--out", at("dpo-" + dev)},
			{"grpo", "--prompts", data("ppo.jsonl"), "--policy", at("sft-cpu"), "--reward", at("rm-cpu"), "--reward", "tasks",
				"--iterations", "1", "--prompts-per-iter", "2", "--group", "2", "--minibatch", "2", "--max-new", "6",
				"--lr", "1e-3", "--warmup", "0", "--out", at("grpo-" + dev)},
			{"rloo", "--prompts", data("ppo.jsonl"), "--policy", at("sft-cpu"), "--reward", at("rm-cpu"),
				"--iterations", "1", "--prompts-per-iter", "2", "--group", "2", "--minibatch", "2", "--max-new", "6",
				"--lr", "1e-3", "--warmup", "0", "--out", at("rloo-" + dev)},
		}
		for _, args := range stages {
			if _, stderr, code := runCLI(t, append([]string{"--device", dev, "--precision", "fp32"}, args...)...); code != 0 {
				t.Fatalf("%s on %s: %s", args[0], dev, stderr)
			}
		}
	}
	for _, stage := range []string{"sft", "rm", "ppo", "dpo", "grpo", "rloo"} {
		c, g := lastMetrics(t, at(stage+"-cpu")), lastMetrics(t, at(stage+"-cuda"))
		compared := 0
		for k, cv := range c {
			x, ok := cv.(float64)
			if !ok || timing(k) {
				continue
			}
			y, ok := g[k].(float64)
			if !ok || math.Abs(x-y) > 1e-4*math.Max(1, math.Abs(x)) {
				t.Errorf("%s %s: cuda %v, cpu %v", stage, k, g[k], x)
			}
			compared++
		}
		if compared < 4 {
			t.Errorf("%s: only %d numbers compared in %v", stage, compared, c)
		}
		t.Logf("%s: %d numbers agree", stage, compared)
	}
}

// lastMetrics is the last record of a run's metrics.jsonl.
func lastMetrics(t *testing.T, dir string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// timing reports a metrics field that measures time or speed
// (elapsed_sec, gen_sec, tokens_per_sec, ...), which the backends need not
// share.
func timing(key string) bool {
	return strings.HasSuffix(key, "_sec") || strings.Contains(key, "per_sec") || key == "seconds"
}
