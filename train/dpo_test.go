package train

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
)

// dpoLMConfig is the reward-model tests' network with an LM head.
func dpoLMConfig() model.Config {
	c := rmTestConfig()
	c.ScalarHead = false
	return c
}

func smallDPO(rmData, init, out string) DPOConfig {
	cfg := DefaultDPO()
	cfg.Data, cfg.Init, cfg.Out = rmData, init, out
	cfg.Model = dpoLMConfig()
	cfg.MaxLen, cfg.MaxRows, cfg.TokenBudget = 32, 48, 48*32
	cfg.Batch, cfg.Epochs, cfg.EvalEvery, cfg.LogEvery, cfg.SaveEvery = 16, 2, 20, 5, 0
	cfg.Optim.LR = 3e-3
	return cfg
}

// TestDPOLearnsAPreference: from an LM that knows nothing of it, DPO
// learns to prefer longer responses (the labels of writeLengthRM) on
// held-out prompts, whose implicit rewards start at exactly 0 (accuracy
// 0.5); the run directory holds what it should and the metrics carry
// TRL's names.
func TestDPOLearnsAPreference(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	rmData, _ := writeLengthRM(t, 400)
	init := writeInitWith(t, dpoLMConfig())
	cfg := smallDPO(rmData, init, t.TempDir())
	sum, err := DPO(context.Background(), cpu.New(2), tok, cfg, RunOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	v := sum.Val
	if v == nil {
		t.Fatal("no final evaluation")
	}
	t.Logf("held-out accuracy %.3f on %d pairs, mean margin %.3f; best vs worst %.3f (rewards %.3f / %.3f), loss %.3f",
		v.Preference.Accuracy, v.Preference.Pairs, v.Preference.MeanMargin, v.Rewards.Accuracy, v.Rewards.Chosen, v.Rewards.Rejected, v.Loss)
	if v.Preference.Accuracy < 0.8 || v.Preference.MeanMargin <= 0 || v.Rewards.Margin <= 0 {
		t.Errorf("held-out evaluation %+v, want accuracy ≥ 0.8 on a length preference", v)
	}
	if v.TaskScore != nil || sum.Ceiling != nil || v.Preference.TruthAccuracy != nil {
		t.Error("task scores or ceilings reported for records without built-in tasks")
	}
	// Every training response forwarded once per epoch.
	cs, _, _ := data.ReadComparisons(rmData, data.ReadOptions{})
	train, _ := splitComparisons(cs, cfg.ValFrac, cfg.Seed)
	responses := 0
	for _, c := range train {
		responses += len(c.Responses)
	}
	if sum.ResponsesForwarded != int64(cfg.Epochs)*int64(responses) || sum.TrainPrompts != len(train) {
		t.Errorf("%d responses forwarded in %g epochs of %d prompts with %d responses", sum.ResponsesForwarded, cfg.Epochs, sum.TrainPrompts, responses)
	}
	for _, f := range []string{model.ConfigFile, model.WeightsFile, RunConfigFile, MetricsFile, SummaryFile, ReferenceFile} {
		if _, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil {
			t.Errorf("run directory lacks %s: %v", f, err)
		}
	}
	// The saved policy, evaluated again against the saved reference.
	m, err := model.Load(cpu.New(2), cfg.Out, model.Options{MaxBatch: cfg.MaxRows, MaxSeq: cfg.MaxLen})
	if err != nil {
		t.Fatal(err)
	}
	d, err := readComparisonSplit(splitSpec{path: rmData, valFrac: cfg.ValFrac, seed: cfg.Seed, maxLen: cfg.MaxLen}, tok, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var st dpoState
	raw, _ := os.ReadFile(filepath.Join(cfg.Out, ResumeDir, TrainerStateFile))
	var ts TrainerState
	if err := json.Unmarshal(raw, &ts); err != nil || json.Unmarshal(ts.Method, &st) != nil {
		t.Fatalf("trainer state: %v", err)
	}
	ref, err := readReference(cfg.Out, st.ReferenceSHA256, d.train, d.val)
	if err != nil {
		t.Fatal(err)
	}
	again, err := evalDPO(m, d.val, ref.Val, d.valUtil, cfg.Loss, tok.Pad(), cfg.MaxRows, cfg.TokenBudget)
	if err != nil {
		t.Fatal(err)
	}
	if again.Preference.Accuracy != v.Preference.Accuracy || again.Loss != v.Loss {
		t.Errorf("reloaded evaluation %+v, summary %+v", again, *v)
	}
	// The starting policy is the reference: every implicit reward is 0.
	start, err := model.Load(cpu.New(2), init, model.Options{MaxBatch: cfg.MaxRows, MaxSeq: cfg.MaxLen})
	if err != nil {
		t.Fatal(err)
	}
	ev0, err := evalDPO(start, d.val, ref.Val, d.valUtil, cfg.Loss, tok.Pad(), cfg.MaxRows, cfg.TokenBudget)
	if err != nil {
		t.Fatal(err)
	}
	if ev0.Preference.Accuracy != 0.5 || ev0.Preference.RewardStd != 0 || ev0.Rewards.Accuracy != 0 {
		t.Errorf("the starting policy's evaluation %+v, want rewards all 0", ev0)
	}
	// metrics.jsonl: TRL's names on every line, the evaluation at eval steps.
	lines := strings.Split(strings.TrimSpace(readFile(t, filepath.Join(cfg.Out, MetricsFile))), "\n")
	for _, line := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"loss", "lr", "grad_norm", "tokens_per_sec", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"} {
			if _, ok := rec[k]; !ok {
				t.Fatalf("metrics record %s lacks %q", line, k)
			}
		}
	}
	var last dpoMetrics
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if last.Step != sum.Steps || last.ValAccuracy == nil || *last.ValAccuracy != v.Preference.Accuracy || last.Accuracy <= 0.5 {
		t.Errorf("last metrics record %+v", last)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestDPOResumeIsExact: a run interrupted after step 7 (between two logged
// steps, so its reward metrics' window is part of the state) and resumed
// gives the metrics and final weights of an uninterrupted run; a resume
// against another reference file is refused.
func TestDPOResumeIsExact(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	rmData, _ := writeLengthRM(t, 120)
	init := writeInitWith(t, dpoLMConfig())
	cfg := func(out string) DPOConfig {
		c := smallDPO(rmData, init, out)
		c.Steps, c.Batch, c.EvalEvery, c.LogEvery, c.SaveEvery = 12, 8, 6, 3, 5
		return c
	}
	whole, split := t.TempDir(), t.TempDir()
	if _, err := DPO(context.Background(), cpu.New(2), tok, cfg(whole), RunOptions{Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err := DPO(ctx, cpu.New(2), tok, cfg(split), RunOptions{Log: zerolog.Nop(), Progress: cancelAt{step: 7, cancel: cancel}})
	if err == nil || !strings.Contains(err.Error(), "interrupted after step 7") {
		t.Fatalf("interrupted run: %v", err)
	}
	// A changed reference file is refused, the original accepted.
	refPath := filepath.Join(split, ReferenceFile)
	orig := readFile(t, refPath)
	if err := os.WriteFile(refPath, []byte(strings.Replace(orig, "-", "-1", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := DPO(context.Background(), cpu.New(2), tok, cfg(split), RunOptions{Log: zerolog.Nop(), Resume: true}); err == nil || !strings.Contains(err.Error(), "not the file the run wrote") {
		t.Fatalf("resume with a changed reference: %v", err)
	}
	if err := os.WriteFile(refPath, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := DPO(context.Background(), cpu.New(2), tok, cfg(split), RunOptions{Log: zerolog.Nop(), Resume: true}); err != nil {
		t.Fatal(err)
	}
	a, b := readMetricsLines(t, whole), readMetricsLines(t, split)
	if len(a) != 4 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("resumed metrics differ:\n%v\n%v", a, b)
	}
	for _, f := range []string{model.WeightsFile, model.ConfigFile, ReferenceFile} {
		if readFile(t, filepath.Join(whole, f)) != readFile(t, filepath.Join(split, f)) {
			t.Errorf("%s differs between the resumed and the uninterrupted run", f)
		}
	}
}

// readMetricsLines returns dir's metrics records without their timings.
func readMetricsLines(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(readFile(t, filepath.Join(dir, MetricsFile))), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		dropTimings(m)
		out = append(out, fmt.Sprint(m))
	}
	return out
}

func TestDPOConfigErrors(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	rmData, _ := writeLengthRM(t, 20)
	base := smallDPO(rmData, writeInitWith(t, dpoLMConfig()), t.TempDir())
	cases := []struct {
		name string
		edit func(*DPOConfig)
		want string
	}{
		{"no init", func(c *DPOConfig) { c.Init = "" }, "initial checkpoint"},
		{"reward model", func(c *DPOConfig) { c.Model.ScalarHead = true }, "reward model"},
		{"tiny budget", func(c *DPOConfig) { c.TokenBudget = 100 }, "token budget"},
		{"few rows", func(c *DPOConfig) { c.MaxRows = 4 }, "max rows"},
		{"bad beta", func(c *DPOConfig) { c.Loss.Beta = 0 }, "beta"},
		{"ipo smoothing", func(c *DPOConfig) { c.Loss.Form, c.Loss.LabelSmoothing = LossIPO, 0.1 }, "IPO"},
		{"bad form", func(c *DPOConfig) { c.Loss.Form = "sigmoid" }, "sigmoid"},
		{"missing data", func(c *DPOConfig) { c.Data = filepath.Join(t.TempDir(), "none.jsonl") }, "none.jsonl"},
		{"missing init", func(c *DPOConfig) { c.Init = t.TempDir() }, "model.safetensors"},
		{"out is init", func(c *DPOConfig) { c.Out = c.Init }, "checkpoint the run starts from"},
	}
	for _, tc := range cases {
		cfg := base
		cfg.Out = t.TempDir()
		tc.edit(&cfg)
		_, err := DPO(context.Background(), cpu.New(1), tok, cfg, RunOptions{Log: zerolog.Nop()})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

// TestDPOOnBuiltinTasks: on records of the built-in tasks the run reports
// the accuracy against the noise-free order, the labeler's ceilings and the
// greedy task score at the start and the end.
func TestDPOOnBuiltinTasks(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	dir := t.TempDir()
	if _, err := synthForTest(dir, 120); err != nil {
		t.Fatal(err)
	}
	cfg := smallDPO(filepath.Join(dir, "rm.jsonl"), "", t.TempDir())
	cfg.Model.MaxSeqLen, cfg.MaxLen, cfg.TokenBudget = 128, 128, 48*128
	cfg.Init = writeInitWith(t, cfg.Model)
	cfg.Steps, cfg.EvalEvery, cfg.ValFrac, cfg.EvalPrompts, cfg.MaxNew = 2, 0, 0.25, 5, 4
	sum, err := DPO(context.Background(), cpu.New(2), tok, cfg, RunOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	v := sum.Val
	if v == nil || v.Preference.TruthAccuracy == nil || sum.Ceiling == nil || v.TaskScore == nil || sum.StartTaskScore == nil || len(v.PerTask) == 0 {
		t.Fatalf("summary %+v", sum)
	}
	if c := sum.Ceiling; c.Pairs != v.Preference.Pairs || c.TruthPairs != v.Preference.TruthPairs {
		t.Errorf("ceiling over %d/%d pairs, evaluation over %d/%d", c.Pairs, c.TruthPairs, v.Preference.Pairs, v.Preference.TruthPairs)
	}
}
