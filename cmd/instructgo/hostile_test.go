package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/safetensors"
)

// The hostile suite: damaged and malicious checkpoints and data files
// against every command that reads them. Each run is a child process (this
// test binary acting as instructgo, see TestMain) that must fail with exit
// status 1 or 2 and one line on stderr, never panic, stay under a memory
// limit and write nothing.

// asMainEnv makes the test binary run the command line instead of tests.
const asMainEnv = "INSTRUCTGO_TEST_AS_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(asMainEnv) == "1" {
		os.Exit(run(context.Background(), append([]string{"instructgo"}, os.Args[1:]...), os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// hostileMemLimit bounds a child's peak resident memory: the fixtures are
// tiny, so anything near it means a size was taken from hostile input.
const hostileMemLimit = 1 << 30

// hostileTimeout bounds a child's run: every fixture fails in well under a
// second, so a child still running was sent reading an endless input.
const hostileTimeout = 20 * time.Second

// childResult is how a child process ended.
type childResult struct {
	code     int
	stderr   string
	timedOut bool
	maxRSS   int64 // bytes
}

// runChild runs the command line in a child process.
func runChild(args ...string) childResult {
	ctx, cancel := context.WithTimeout(context.Background(), hostileTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], append([]string{"--log-level", "error"}, args...)...)
	cmd.Env = append(os.Environ(), asMainEnv+"=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr // stdin is /dev/null, stdout discarded
	cmd.Run()
	r := childResult{code: cmd.ProcessState.ExitCode(), stderr: stderr.String(), timedOut: ctx.Err() != nil}
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss * 1024
	}
	return r
}

// runHostile runs the command line in a child and checks that it failed
// cleanly and wrote nothing at out (when out is not ""). It returns the
// error line.
func runHostile(t *testing.T, what, out string, args ...string) string {
	t.Helper()
	r := runChild(args...)
	lines := strings.Split(strings.TrimSpace(r.stderr), "\n")
	switch {
	case r.timedOut:
		t.Errorf("%s: still running after %v: %v", what, hostileTimeout, args)
	case r.code == 0:
		t.Errorf("%s: %v succeeded", what, args)
	case r.code != exitFailure && r.code != exitUsage:
		t.Errorf("%s: exit status %d, stderr:\n%s", what, r.code, r.stderr)
	case strings.Contains(r.stderr, "panic") || strings.Contains(r.stderr, "goroutine "):
		t.Errorf("%s: panicked:\n%s", what, r.stderr)
	case len(lines) != 1 || !strings.HasPrefix(lines[0], "instructgo: "):
		t.Errorf("%s: want one error line, stderr:\n%s", what, r.stderr)
	}
	if r.maxRSS > hostileMemLimit {
		t.Errorf("%s: peak memory %d MiB", what, r.maxRSS>>20)
	}
	if out != "" {
		if _, err := os.Lstat(out); err == nil {
			t.Errorf("%s: %s was written", what, out)
		}
	}
	return lines[0]
}

// runValid runs the command line on valid inputs in a child and checks that
// it succeeded: the control that shows a hostile failure comes from the
// damage and not from the command line.
func runValid(t *testing.T, what string, args ...string) {
	t.Helper()
	if r := runChild(args...); r.code != 0 || r.timedOut {
		t.Fatalf("%s on valid inputs: exit status %d, stderr:\n%s", what, r.code, r.stderr)
	}
}

// hostileFixtures are the valid inputs the hostile variants are made from.
type hostileFixtures struct {
	data       string // data synth's directory
	lm, rm     string // valid checkpoints
	lmCfg, rmC model.Config
}

func newHostileFixtures(t *testing.T) hostileFixtures {
	dir := t.TempDir()
	f := hostileFixtures{data: filepath.Join(dir, "data"), lm: filepath.Join(dir, "lm"), rm: filepath.Join(dir, "rm")}
	if _, stderr, code := runCLI(t, "data", "synth", "--out", f.data, "--sft", "20", "--rm", "10", "--ppo", "8", "--eval", "5", "--pretrain-bytes", "20000"); code != 0 {
		t.Fatalf("data synth: %s", stderr)
	}
	f.lmCfg = model.Config{VocabSize: 258, MaxSeqLen: 128, NLayer: 1, NHead: 2, NEmbd: 16, Tokenizer: "byte"}
	f.rmC = f.lmCfg
	f.rmC.ScalarHead = true
	if err := model.SaveHost(f.lm, f.lmCfg, model.InitGPT2(f.lmCfg, 1)); err != nil {
		t.Fatal(err)
	}
	if err := model.SaveHost(f.rm, f.rmC, model.InitGPT2(f.rmC, 2)); err != nil {
		t.Fatal(err)
	}
	return f
}

// hostileCheckpoint is a damaged copy of a valid checkpoint.
type hostileCheckpoint struct {
	name, dir string
}

// hostileCheckpoints writes the damaged variants of the checkpoint in src:
// every size field of config.json zero, negative, huge and of the wrong
// type; options the network does not have; a config.json that is not JSON,
// that is huge, or that is a link to /dev/zero; tensors missing, extra, of
// the wrong shape, holding NaN; a truncated or garbled weights file.
func hostileCheckpoints(t *testing.T, src string) []hostileCheckpoint {
	root := t.TempDir()
	cfgRaw, err := os.ReadFile(filepath.Join(src, model.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	weights, err := os.ReadFile(filepath.Join(src, model.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []hostileCheckpoint
	add := func(name string, cfg []byte, w []byte) {
		dir := filepath.Join(root, strings.NewReplacer("/", "_", " ", "_").Replace(name))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if cfg != nil {
			os.WriteFile(filepath.Join(dir, model.ConfigFile), cfg, 0o644)
		}
		os.WriteFile(filepath.Join(dir, model.WeightsFile), w, 0o644)
		out = append(out, hostileCheckpoint{name, dir})
	}
	withField := func(key string, v any) []byte {
		var m map[string]any
		if err := json.Unmarshal(cfgRaw, &m); err != nil {
			t.Fatal(err)
		}
		m[key] = v
		b, _ := json.Marshal(m)
		return b
	}
	for _, f := range []string{"vocab_size", "n_positions", "n_layer", "n_head", "n_embd"} {
		for _, v := range []any{0, -3, int64(1) << 40, 1e9 + 0.5, "4", true, nil} {
			add(fmt.Sprintf("%s=%v", f, v), withField(f, v), weights)
		}
	}
	for _, kv := range []struct {
		k string
		v any
	}{
		{"n_layer", 100000}, {"n_embd", 1 << 20}, {"n_head", 3}, {"n_layer", 2}, {"n_positions", 32},
		{"n_inner", 7}, {"resid_pdrop", 1.5}, {"resid_pdrop", -0.1}, {"layer_norm_epsilon", 1e-3},
		{"activation_function", "relu"}, {"model_type", "llama"}, {"instructgo_tokenizer", "nope"},
		{"scale_attn_weights", false}, {"tie_word_embeddings", false}, {"instructgo_score_bias", "x"},
	} {
		add(fmt.Sprintf("%s=%v", kv.k, kv.v), withField(kv.k, kv.v), weights)
	}
	add("config not JSON", []byte("{"), weights)
	add("config null", []byte("null"), weights)
	add("config empty", []byte{}, weights)
	add("config missing", nil, weights)
	huge := filepath.Join(root, "huge")
	add("config huge", nil, weights)
	hugeDir := out[len(out)-1].dir
	if f, err := os.Create(filepath.Join(hugeDir, model.ConfigFile)); err == nil {
		f.Truncate(64 << 20) // sparse: takes no disk
		f.Close()
	}
	_ = huge
	add("config is /dev/zero", nil, weights)
	os.Symlink("/dev/zero", filepath.Join(out[len(out)-1].dir, model.ConfigFile))

	// Weights.
	f, err := safetensors.Open(filepath.Join(src, model.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	var tensors []safetensors.Tensor
	for _, info := range f.Tensors() {
		data, shape, err := f.Float32(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		tensors = append(tensors, safetensors.Tensor{Name: info.Name, Shape: shape, Data: data})
	}
	f.Close()
	encode := func(ts []safetensors.Tensor) []byte {
		var b strings.Builder
		if err := safetensors.Encode(&b, ts, nil); err != nil {
			t.Fatal(err)
		}
		return []byte(b.String())
	}
	clone := func() []safetensors.Tensor {
		out := make([]safetensors.Tensor, len(tensors))
		for i, x := range tensors {
			out[i] = safetensors.Tensor{Name: x.Name, Shape: append([]int(nil), x.Shape...), Data: append([]float32(nil), x.Data...)}
		}
		return out
	}
	ts := clone()
	add("tensor missing", cfgRaw, encode(ts[1:]))
	ts = clone()
	ts = append(ts, safetensors.Tensor{Name: "transformer.h.9.mlp.c_fc.weight", Shape: []int{2, 2}, Data: []float32{1, 2, 3, 4}})
	add("tensor extra", cfgRaw, encode(ts))
	ts = clone()
	for i := range ts {
		if len(ts[i].Shape) == 2 && ts[i].Shape[0] != ts[i].Shape[1] {
			ts[i].Shape[0], ts[i].Shape[1] = ts[i].Shape[1], ts[i].Shape[0]
			break
		}
	}
	add("tensor wrong shape", cfgRaw, encode(ts))
	ts = clone()
	ts[len(ts)/2].Data[0] = float32(nanValue())
	add("tensor NaN", cfgRaw, encode(ts))
	add("weights truncated", cfgRaw, weights[:len(weights)/2])
	add("weights empty", cfgRaw, []byte{})
	garbled := append([]byte(nil), weights...)
	garbled[0], garbled[1], garbled[7] = 0xff, 0xff, 0x7f // a header length of exabytes
	add("weights header huge", cfgRaw, garbled)
	return out
}

// TestHostileCheckpoints runs every damaged checkpoint through every
// command that reads a checkpoint.
func TestHostileCheckpoints(t *testing.T) {
	if testing.Short() {
		t.Skip("hundreds of processes")
	}
	fx := newHostileFixtures(t)
	d := func(name string) string { return filepath.Join(fx.data, name) }
	lmCommands := []struct {
		name string
		args func(ckpt, out string) []string
	}{
		{"generate", func(c, _ string) []string { return []string{"generate", "--model", c, "--prompt", "hi"} }},
		{"eval", func(c, _ string) []string {
			return []string{"eval", "--model", c, "--data", d("eval.jsonl"), "--limit", "2"}
		}},
		{"sft --init", func(c, o string) []string {
			return []string{"sft", "--init", c, "--data", d("sft.jsonl"), "--steps", "1", "--out", o}
		}},
		{"data label", func(c, o string) []string {
			return []string{"data", "label", "--policy", c, "--prompts", d("rm.jsonl"), "--limit", "2", "--out", o}
		}},
		{"ppo --policy", func(c, o string) []string {
			return []string{"ppo", "--policy", c, "--reward", fx.rm, "--prompts", d("ppo.jsonl"), "--iterations", "1", "--episodes", "4", "--minibatch", "4", "--out", o}
		}},
		{"dpo --init", func(c, o string) []string {
			return []string{"dpo", "--init", c, "--data", d("rm.jsonl"), "--steps", "1", "--eval-prompts", "1", "--max-new", "2", "--out", o}
		}},
		{"grpo --policy", func(c, o string) []string {
			return []string{"grpo", "--policy", c, "--reward", fx.rm, "--prompts", d("ppo.jsonl"), "--iterations", "1", "--prompts-per-iter", "2", "--group", "2", "--minibatch", "4", "--max-new", "4", "--out", o}
		}},
		{"rs --policy", func(c, o string) []string {
			return []string{"rs", "--policy", c, "--reward", fx.rm, "--prompts", d("ppo.jsonl"), "--n", "2", "--max-prompts", "40", "--batch", "8", "--max-new", "4", "--steps", "1", "--eval-prompts", "0", "--out", o}
		}},
		{"rloo --policy", func(c, o string) []string {
			return []string{"rloo", "--policy", c, "--reward", "tasks", "--prompts", d("ppo.jsonl"), "--iterations", "1", "--prompts-per-iter", "2", "--group", "2", "--minibatch", "4", "--max-new", "4", "--out", o}
		}},
	}
	rmCommands := []struct {
		name string
		args func(ckpt, out string) []string
	}{
		{"rm score", func(c, o string) []string {
			return []string{"rm", "score", "--model", c, "--data", d("rm.jsonl"), "--out", o}
		}},
		{"rm eval", func(c, _ string) []string { return []string{"rm", "eval", "--model", c, "--data", d("rm.jsonl")} }},
		{"ppo --reward", func(c, o string) []string {
			return []string{"ppo", "--policy", fx.lm, "--reward", c, "--prompts", d("ppo.jsonl"), "--iterations", "1", "--episodes", "4", "--minibatch", "4", "--out", o}
		}},
		{"rs --reward", func(c, o string) []string {
			return []string{"rs", "--policy", fx.lm, "--reward", c, "--prompts", d("ppo.jsonl"), "--n", "2", "--max-prompts", "40", "--batch", "8", "--max-new", "4", "--steps", "1", "--eval-prompts", "0", "--out", o}
		}},
		{"grpo --reward", func(c, o string) []string {
			return []string{"grpo", "--policy", fx.lm, "--reward", c, "--reward", "tasks", "--prompts", d("ppo.jsonl"), "--iterations", "1", "--prompts-per-iter", "2", "--group", "2", "--minibatch", "4", "--max-new", "4", "--out", o}
		}},
	}
	for _, c := range lmCommands {
		runValid(t, c.name, c.args(fx.lm, filepath.Join(t.TempDir(), "out"))...)
	}
	for _, c := range rmCommands {
		runValid(t, c.name, c.args(fx.rm, filepath.Join(t.TempDir(), "out"))...)
	}
	runs := 0
	for _, ck := range hostileCheckpoints(t, fx.lm) {
		for i, c := range lmCommands {
			out := filepath.Join(t.TempDir(), "out")
			msg := runHostile(t, c.name+" on "+ck.name, out, c.args(ck.dir, out)...)
			if i == 0 {
				t.Logf("%s: %s", ck.name, msg)
			}
			runs++
		}
	}
	for _, ck := range hostileCheckpoints(t, fx.rm) {
		for _, c := range rmCommands {
			out := filepath.Join(t.TempDir(), "out")
			runHostile(t, c.name+" on "+ck.name, out, c.args(ck.dir, out)...)
			runs++
		}
	}
	t.Logf("%d hostile runs", runs)
}

// TestHostileData runs damaged JSONL and text files through every command
// that reads them.
func TestHostileData(t *testing.T) {
	if testing.Short() {
		t.Skip("many processes")
	}
	fx := newHostileFixtures(t)
	dir := t.TempDir()
	files := map[string]string{
		"not JSON":     "{\"prompt\": \"a\"}\n{oops\n",
		"wrong type":   "{\"prompt\": 3, \"completion\": 4, \"chosen\": 1, \"rejected\": 2, \"task\": 5, \"answer\": 6}\n",
		"missing":      "{\"other\": \"x\"}\n",
		"invalid UTF8": "{\"prompt\": \"caf\xe9\", \"completion\": \"x\", \"chosen\": \"a\", \"rejected\": \"b\", \"task\": \"upper\", \"answer\": \"A\"}\n",
		"empty":        "",
		"blank lines":  "\n\n   \n",
		"binary":       "\x00\x01\x02\xff\xfe",
	}
	var paths []struct{ name, path string }
	for name, text := range files {
		p := filepath.Join(dir, strings.ReplaceAll(name, " ", "_")+".jsonl")
		os.WriteFile(p, []byte(text), 0o644)
		paths = append(paths, struct{ name, path string }{name, p})
	}
	zero := filepath.Join(dir, "zero.jsonl")
	os.Symlink("/dev/zero", zero)
	paths = append(paths, struct{ name, path string }{"/dev/zero", zero})

	commands := []struct {
		name string
		args func(file, out string) []string
	}{
		{"sft --data", func(f, o string) []string {
			return []string{"sft", "--init", fx.lm, "--data", f, "--steps", "1", "--out", o}
		}},
		{"rm --data", func(f, o string) []string {
			return []string{"rm", "--init", fx.lm, "--data", f, "--steps", "1", "--out", o}
		}},
		{"dpo --data", func(f, o string) []string {
			return []string{"dpo", "--init", fx.lm, "--data", f, "--steps", "1", "--eval-prompts", "1", "--max-new", "2", "--out", o}
		}},
		{"ppo --prompts", func(f, o string) []string {
			return []string{"ppo", "--policy", fx.lm, "--reward", fx.rm, "--prompts", f, "--iterations", "1", "--episodes", "4", "--minibatch", "4", "--out", o}
		}},
		{"grpo --prompts", func(f, o string) []string {
			return []string{"grpo", "--policy", fx.lm, "--reward", fx.rm, "--prompts", f, "--iterations", "1", "--prompts-per-iter", "2", "--group", "2", "--minibatch", "4", "--max-new", "4", "--out", o}
		}},
		{"rs --prompts", func(f, o string) []string {
			return []string{"rs", "--policy", fx.lm, "--reward", fx.rm, "--prompts", f, "--n", "2", "--max-prompts", "40", "--batch", "8", "--max-new", "4", "--steps", "1", "--eval-prompts", "0", "--out", o}
		}},
		{"rloo --prompts", func(f, o string) []string {
			return []string{"rloo", "--policy", fx.lm, "--reward", "tasks", "--prompts", f, "--iterations", "1", "--prompts-per-iter", "2", "--group", "2", "--minibatch", "4", "--max-new", "4", "--out", o}
		}},
		{"generate --prompts", func(f, _ string) []string { return []string{"generate", "--model", fx.lm, "--prompts", f} }},
		{"eval --data", func(f, _ string) []string { return []string{"eval", "--model", fx.lm, "--data", f} }},
		{"data label --prompts", func(f, o string) []string {
			return []string{"data", "label", "--policy", fx.lm, "--prompts", f, "--out", o}
		}},
		{"rm score --data", func(f, o string) []string { return []string{"rm", "score", "--model", fx.rm, "--data", f, "--out", o} }},
		{"pretrain --data", func(f, o string) []string {
			return []string{"pretrain", "--data", f, "--config", "tiny", "--steps", "1", "--out", o}
		}},
	}
	valid := map[string]string{
		"sft --data": fx.data + "/sft.jsonl", "rm --data": fx.data + "/rm.jsonl", "dpo --data": fx.data + "/rm.jsonl", "ppo --prompts": fx.data + "/ppo.jsonl",
		"grpo --prompts": fx.data + "/ppo.jsonl", "rloo --prompts": fx.data + "/ppo.jsonl", "rs --prompts": fx.data + "/ppo.jsonl",
		"generate --prompts": fx.data + "/ppo.jsonl", "eval --data": fx.data + "/eval.jsonl",
		"data label --prompts": fx.data + "/rm.jsonl", "rm score --data": fx.data + "/rm.jsonl",
		"pretrain --data": fx.data + "/pretrain.txt",
	}
	for _, c := range commands {
		runValid(t, c.name, c.args(valid[c.name], filepath.Join(t.TempDir(), "out"))...)
	}
	for _, p := range paths {
		for _, c := range commands {
			if c.name == "pretrain --data" && p.name != "empty" && p.name != "/dev/zero" {
				continue // plain text of any content is pretraining text
			}
			out := filepath.Join(t.TempDir(), "out")
			msg := runHostile(t, c.name+" on "+p.name, out, c.args(p.path, out)...)
			t.Logf("%s on %s: %s", c.name, p.name, msg)
		}
	}
}

func nanValue() float64 { var z float64; return z / z }
