package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/tasks"
)

func TestStageState(t *testing.T) {
	write := func(path, text string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	dir := t.TempDir()
	check := func(what string, wantDone, wantResume bool) {
		t.Helper()
		done, resume := stageState(dir)
		if done != wantDone || resume != wantResume {
			t.Errorf("%s: finished %v resumable %v, want %v %v", what, done, resume, wantDone, wantResume)
		}
	}
	check("empty directory", false, false)
	write(filepath.Join(dir, train.ResumeDir, train.TrainerStateFile), `{"step": 3}`)
	check("killed after a save", false, true)
	write(filepath.Join(dir, train.SummaryFile), `{"steps": 3, "interrupted": true}`)
	check("interrupted", false, true)
	write(filepath.Join(dir, train.SummaryFile), `{"steps": 9, "interrupted": false}`)
	check("finished", true, false)
	write(filepath.Join(dir, train.SummaryFile), `{"steps": 9`)
	check("torn summary", false, true)
}

// smallPipeline is Default shrunk to seconds: a few hundred
// records, a handful of steps per stage.
func smallPipeline(out string) Config {
	c := Default(out)
	c.Synth.NSFT, c.Synth.NRM, c.Synth.NPPO, c.Synth.NEval, c.Synth.PretrainBytes = 64, 48, 64, 16, 40_000
	c.Pretrain.Steps, c.Pretrain.Batch, c.Pretrain.Seq, c.Pretrain.EvalEvery, c.Pretrain.EvalBatches = 6, 4, 64, 3, 2
	c.Pretrain.LogEvery, c.Pretrain.SaveEvery = 2, 2
	c.SFT.Epochs, c.SFT.EvalEvery, c.SFT.EvalPrompts, c.SFT.LogEvery, c.SFT.SaveEvery = 1, 2, 4, 1, 2
	c.RM.Steps, c.RM.Batch, c.RM.EvalEvery, c.RM.LogEvery, c.RM.SaveEvery = 3, 8, 0, 1, 2
	c.PPO.Iterations, c.PPO.Episodes, c.PPO.MiniBatch, c.PPO.MaxNew, c.PPO.SaveEvery = 2, 8, 4, 8, 1
	c.MaxNew, c.BestOfN, c.SFTSampleLabels = 8, 2, 12
	return c
}

// TestPipelineEndToEnd runs every stage of a small pipeline, checks the
// report, then interrupts a fresh run before its first step and requires
// the rerun to resume the interrupted stage and finish with the same
// numbers.
func TestPipelineEndToEnd(t *testing.T) {
	b := cpu.New(2)
	opt := train.RunOptions{Log: zerolog.Nop()}
	out := t.TempDir()
	rep, err := Run(context.Background(), b, smallPipeline(out), opt)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range []float64{rep.Pretrain.TaskScore, rep.SFT.TaskScore, rep.PPO.TaskScore, rep.PPO.WinRateVsSFT, rep.RM.Accuracy} {
		if !(v >= 0 && v <= 1) {
			t.Fatalf("a score outside [0, 1]: %+v", rep)
		}
	}
	if rep.EvalN != 16 || rep.RM.BestOfN == nil || rep.RM.BestOfN.N != 2 || rep.RM.BestOfN.Prompts != 16 {
		t.Errorf("report: %d held-out prompts, best-of-n %+v", rep.EvalN, rep.RM.BestOfN)
	}
	if bn := rep.RM.BestOfN; bn != nil {
		for task, acc := range bn.PairAccuracyByTask {
			if _, ok := rep.SFT.PerTask[task]; !ok || !(acc >= 0 && acc <= 1) {
				t.Errorf("pair accuracy %v for task %q, which the evaluation lacks", acc, task)
			}
		}
	}
	if !(rep.Pretrain.ValLoss > 0 && rep.SFTPtxLoss > 0 && rep.PPO.PtxLoss > 0 && rep.Seconds > 0) {
		t.Errorf("losses and time: %+v", rep)
	}
	// The PPO prompts are built-in tasks: every iteration has the
	// rollouts' ground-truth score, and the report carries first and last.
	if f, l := rep.PPO.FirstTaskScore, rep.PPO.LastTaskScore; f == nil || l == nil || !(*f >= 0 && *f <= 1 && *l >= 0 && *l <= 1) {
		t.Errorf("rollout task scores %v, %v", f, l)
	}
	iters := readMetrics[train.PPOMetrics](t, filepath.Join(out, StagePPO))
	for _, m := range iters {
		if m.TaskScore == nil || *m.TaskScore < 0 || *m.TaskScore > 1 {
			t.Fatalf("PPO iteration %d: task score %v", m.Step, m.TaskScore)
		}
	}
	if len(iters) != smallPipeline(out).PPO.Iterations {
		t.Errorf("%d PPO iterations in metrics.jsonl, want %d", len(iters), smallPipeline(out).PPO.Iterations)
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	// 12 rm.jsonl prompts got ranked SFT samples, and the reward model
	// trained on rm.jsonl's 48 records followed by them.
	if st := rep.RM.SFTSamples; st == nil || st.Prompts != 12 || st.Records < 1 || st.Comparisons < st.Records {
		t.Errorf("SFT sample rankings %+v", st)
	}
	synth, _ := os.ReadFile(filepath.Join(out, StageData, "rm.jsonl"))
	own, _ := os.ReadFile(filepath.Join(out, StageLabel, "rm_sft.jsonl"))
	all, err := os.ReadFile(filepath.Join(out, StageLabel, "rm_all.jsonl"))
	if err != nil || string(all) != string(synth)+string(own) || len(own) == 0 {
		t.Errorf("rm_all.jsonl (%d bytes, %v) is not rm.jsonl (%d) then rm_sft.jsonl (%d)", len(all), err, len(synth), len(own))
	}
	var rmRun train.RMConfig
	if raw, err := os.ReadFile(filepath.Join(out, StageRM, train.RunConfigFile)); err != nil || json.Unmarshal(raw, &rmRun) != nil || rmRun.Data != filepath.Join(out, StageLabel, "rm_all.jsonl") {
		t.Errorf("the reward model trained on %q (%v)", rmRun.Data, err)
	}
	for _, want := range []string{"| SFT |", "| PPO-ptx |", "best of 2 by the reward model", "pretrain.png", "the rollouts' ground-truth task score", "| rankings of SFT samples | 12 prompts"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	// eval_samples.jsonl is the evaluation behind the report: its mean
	// preference is the win rate, its scores the task scores, and its
	// responses give the habit rates.
	type evalRecord struct {
		SFT          string  `json:"sft"`
		PPO          string  `json:"ppo"`
		SFTScore     float64 `json:"sft_score"`
		PPOScore     float64 `json:"ppo_score"`
		PPOPreferred float64 `json:"ppo_preferred"`
	}
	raw, err := os.ReadFile(filepath.Join(out, EvalSamplesFile))
	if err != nil {
		t.Fatal(err)
	}
	var samples []evalRecord
	for _, line := range strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n") {
		var r evalRecord
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%s: %v", EvalSamplesFile, err)
		}
		samples = append(samples, r)
	}
	if len(samples) != rep.EvalN {
		t.Fatalf("%s has %d records for %d held-out prompts", EvalSamplesFile, len(samples), rep.EvalN)
	}
	var pref, sftScore, ppoScore, sftHabit, ppoHabit float64
	prefs, gains := make([]float64, len(samples)), make([]float64, len(samples))
	for i, r := range samples {
		prefs[i], gains[i] = r.PPOPreferred, r.PPOScore-r.SFTScore
		pref += r.PPOPreferred / float64(len(samples))
		sftScore += r.SFTScore / float64(len(samples))
		ppoScore += r.PPOScore / float64(len(samples))
		if strings.HasPrefix(r.SFT, tasks.HabitPrefix) {
			sftHabit += 1 / float64(len(samples))
		}
		if strings.HasPrefix(r.PPO, tasks.HabitPrefix) {
			ppoHabit += 1 / float64(len(samples))
		}
	}
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"win rate", pref, rep.PPO.WinRateVsSFT}, {"SFT score", sftScore, rep.SFT.TaskScore}, {"PPO score", ppoScore, rep.PPO.TaskScore},
		{"SFT habit rate", sftHabit, rep.SFT.HabitRate}, {"PPO habit rate", ppoHabit, rep.PPO.HabitRate},
		{"win rate standard error", sampleStdErr(prefs), rep.PPO.WinRateStdErr}, {"gain standard error", sampleStdErr(gains), rep.PPO.ScoreGainStdErr}} {
		if math.Abs(c.got-c.want) > 1e-9 {
			t.Errorf("%s: %s gives %v, the report %v", c.name, EvalSamplesFile, c.got, c.want)
		}
	}

	var onDisk Report
	raw, err = os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &onDisk); err != nil {
		t.Fatal(err)
	}
	if onDisk.SFT.TaskScore != rep.SFT.TaskScore || onDisk.PPO.WinRateVsSFT != rep.PPO.WinRateVsSFT {
		t.Errorf("report.json differs from the returned report")
	}

	// Every stage's wall time is recorded and the report's total is their
	// sum. A second invocation finds every stage done: it repeats only the
	// evaluation, and its total is still the whole run's, not its own.
	clock := readStageClock(t, out)
	for _, st := range []string{"data synth", "pretrain", "sft", "label SFT samples", "reward model", "ppo-ptx", "evaluation"} {
		if !(clock[st] > 0) {
			t.Errorf("stage %q: %v s recorded (%v)", st, clock[st], clock)
		}
	}
	if !closeTo(rep.Seconds, sumValues(clock)) {
		t.Errorf("report total %v s, stages %v s", rep.Seconds, sumValues(clock))
	}
	again, err := Run(context.Background(), b, smallPipeline(out), opt)
	if err != nil {
		t.Fatal(err)
	}
	clock2 := readStageClock(t, out)
	for st, sec := range clock {
		if st != "evaluation" && clock2[st] != sec {
			t.Errorf("stage %q: %v s after the second invocation, %v before", st, clock2[st], sec)
		}
	}
	if want := sumValues(clock) - clock["evaluation"] + clock2["evaluation"]; !closeTo(again.Seconds, want) || again.Seconds < rep.Seconds-clock["evaluation"] {
		t.Errorf("second invocation: total %v s, want %v s", again.Seconds, want)
	}

	// The run's pipeline_config.json reruns it in another directory, with
	// the same numbers.
	copyDir := t.TempDir()
	loaded, err := LoadConfig(filepath.Join(out, ConfigFile), copyDir)
	if err != nil {
		t.Fatal(err)
	}
	rerun, err := Run(context.Background(), b, loaded, opt)
	if err != nil {
		t.Fatal(err)
	}
	if rerun.SFT.TaskScore != rep.SFT.TaskScore || rerun.PPO.TaskScore != rep.PPO.TaskScore || rerun.RM.Accuracy != rep.RM.Accuracy {
		t.Errorf("rerun from pipeline_config.json: SFT %v, PPO %v, RM %v; first run %v, %v, %v",
			rerun.SFT.TaskScore, rerun.PPO.TaskScore, rerun.RM.Accuracy, rep.SFT.TaskScore, rep.PPO.TaskScore, rep.RM.Accuracy)
	}

	// Run again in the same directory with another data seed: refused
	// before anything is touched, since the finished stages would be
	// reported as the new configuration's.
	other := smallPipeline(out)
	other.Synth.Seed++
	before, _ := os.ReadFile(filepath.Join(out, ConfigFile))
	if _, err := Run(context.Background(), b, other, opt); err == nil || !strings.Contains(err.Error(), "synth.seed: 1 before, 2 now") {
		t.Errorf("a rerun with another seed: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(out, ConfigFile)); string(after) != string(before) {
		t.Error("the refused rerun rewrote the run's configuration")
	}

	// Interrupted before pretraining's first step: the stage saves and
	// says so; the rerun resumes it and ends where the first run did.
	out2 := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, b, smallPipeline(out2), opt); err == nil {
		t.Fatal("a cancelled pipeline reported success")
	}
	if fin, resumable := stageState(filepath.Join(out2, StagePretrain)); fin || !resumable {
		t.Fatalf("after the interruption pretraining is finished %v, resumable %v", fin, resumable)
	}
	rep2, err := Run(context.Background(), b, smallPipeline(out2), opt)
	if err != nil {
		t.Fatal(err)
	}
	if rep2.Pretrain.ValLoss != rep.Pretrain.ValLoss || rep2.SFT.TaskScore != rep.SFT.TaskScore || rep2.PPO.TaskScore != rep.PPO.TaskScore {
		t.Errorf("resumed pipeline: pretrain %v, SFT %v, PPO %v; uninterrupted: %v, %v, %v",
			rep2.Pretrain.ValLoss, rep2.SFT.TaskScore, rep2.PPO.TaskScore, rep.Pretrain.ValLoss, rep.SFT.TaskScore, rep.PPO.TaskScore)
	}
}

func readStageClock(t *testing.T, out string) map[string]float64 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(out, StageClockFile))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]float64
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func sumValues(m map[string]float64) float64 {
	var s float64
	for _, v := range m {
		s += v
	}
	return s
}

func closeTo(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// TestLoadPipelineConfig checks that a configuration file sets only the
// fields it names, that an earlier run's pipeline_config.json moves to the
// new directory, and that a misspelt field is an error.
func TestLoadPipelineConfig(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "new")
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := LoadConfig(write("few.json", `{"ppo": {"iterations": 7}, "synth": {"seed": 5}}`), out)
	if err != nil {
		t.Fatal(err)
	}
	want := Default(out)
	want.PPO.Iterations, want.Synth.Seed = 7, 5
	if !reflect.DeepEqual(got, want) {
		t.Errorf("a few fields: got %+v", got)
	}
	saved, _ := json.Marshal(Default(filepath.Join(dir, "old")))
	if got, err := LoadConfig(write("saved.json", string(saved)), out); err != nil || !reflect.DeepEqual(got, Default(out)) {
		t.Errorf("an earlier run's configuration: %v, %+v", err, got)
	}
	if _, err := LoadConfig(write("typo.json", `{"ppo": {"iteratons": 7}}`), out); err == nil || !strings.Contains(err.Error(), "iteratons") {
		t.Errorf("a misspelt field: %v", err)
	}
}

// TestCheckSameConfig checks the guard against resuming a pipeline run
// with another configuration: the same one passes, also after the run
// directory moved; any other difference is named.
func TestCheckSameConfig(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	path := filepath.Join(run, ConfigFile)
	if err := checkSameConfig(path, Default(run)); err != nil {
		t.Fatalf("no earlier configuration: %v", err)
	}
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(Default(run))
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkSameConfig(path, Default(run)); err != nil {
		t.Errorf("the same configuration: %v", err)
	}
	moved := filepath.Join(dir, "moved")
	if err := checkSameConfig(path, Default(moved)); err != nil {
		t.Errorf("the same configuration in a moved directory: %v", err)
	}
	changed := Default(run)
	changed.PPO.Iterations++
	want := fmt.Sprintf("ppo.iterations: %d before, %d now", changed.PPO.Iterations-1, changed.PPO.Iterations)
	if err := checkSameConfig(path, changed); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("another PPO length: %v, want it to name %q", err, want)
	}
	// Methods: one more runs only its stage; a method both name keeps its
	// settings; a configuration from before the methods existed is PPO's.
	more := Default(run)
	more.Methods = []string{"ppo", "dpo"}
	more.DPO.Loss.Beta = 0.3
	if err := checkSameConfig(path, more); err != nil {
		t.Errorf("DPO added to a finished run: %v", err)
	}
	raw, _ = json.Marshal(more)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	more.DPO.Loss.Beta = 0.1
	if err := checkSameConfig(path, more); err == nil || !strings.Contains(err.Error(), "dpo.loss.beta: 0.3 before, 0.1 now") {
		t.Errorf("DPO's β changed: %v", err)
	}
	var old map[string]any
	raw, _ = json.Marshal(Default(run))
	_ = json.Unmarshal(raw, &old)
	delete(old, "methods")
	delete(old, "dpo")
	raw, _ = json.Marshal(old)
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := checkSameConfig(path, Default(run)); err != nil {
		t.Errorf("a configuration written before the methods existed: %v", err)
	}
	elsewhere := Default(run)
	elsewhere.Pretrain.Data = []string{filepath.Join(dir, "other.txt")}
	if err := checkSameConfig(path, elsewhere); err == nil || !strings.Contains(err.Error(), "pretrain.data") {
		t.Errorf("pretraining text outside the run directory: %v", err)
	}
}

// sampleStdErr is the standard error of the mean, computed in one pass
// from Σx and Σx².
func sampleStdErr(xs []float64) float64 {
	var s, s2 float64
	for _, x := range xs {
		s += x
		s2 += x * x
	}
	n := float64(len(xs))
	return math.Sqrt((s2 - s*s/n) / (n - 1) / n)
}

// readMetrics returns the records of a run directory's metrics file.
func readMetrics[T any](t *testing.T, dir string) []T {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, train.MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var recs []T
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var rec T
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, rec)
	}
	return recs
}

// TestPipelineMethods runs PPO and DPO from the same SFT model: both are
// evaluated the same way, in the configured order, eval_samples.jsonl holds
// each method's responses with the numbers the report gives, DPO learns
// from the reward model's comparisons, and the report compares them.
func TestPipelineMethods(t *testing.T) {
	out := t.TempDir()
	cfg := smallPipeline(out)
	cfg.Methods = []string{"dpo", "ppo"}
	cfg.DPO.Steps, cfg.DPO.Batch, cfg.DPO.EvalEvery, cfg.DPO.EvalPrompts, cfg.DPO.MaxNew, cfg.DPO.LogEvery, cfg.DPO.SaveEvery = 3, 8, 0, 4, 8, 1, 2
	for _, g := range []*train.GroupConfig{&cfg.GRPO, &cfg.RLOO} {
		g.Iterations, g.PromptsPerIter, g.Group, g.MiniBatch, g.MaxNew, g.SaveEvery = 2, 2, 4, 4, 8, 1
	}
	cfg.RS.MaxPrompts, cfg.RS.N, cfg.RS.Batch, cfg.RS.MaxNew = 4, 2, 4, 8
	cfg.RS.SFT.Epochs, cfg.RS.SFT.EvalEvery, cfg.RS.SFT.EvalPrompts, cfg.RS.SFT.SaveEvery = 1, 0, 2, 1
	rep, err := Run(context.Background(), cpu.New(2), cfg, train.RunOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Methods) != 2 || rep.Methods[0].Name != "ppo" || rep.Methods[1].Name != "dpo" {
		t.Fatalf("methods in the report: %+v", rep.Methods)
	}
	// The group methods and rejection sampling join the finished run:
	// only their stages and the evaluation run.
	before := readStageClock(t, out)
	cfg.Methods = []string{"rs", "rloo", "grpo", "dpo", "ppo"}
	if rep, err = Run(context.Background(), cpu.New(2), cfg, train.RunOptions{Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range rep.Methods {
		names = append(names, m.Name)
	}
	// PPO without ptx runs in the sizes comparison's test.
	want := slices.DeleteFunc(MethodNames(), func(n string) bool { return n == "ppo-noptx" })
	if !reflect.DeepEqual(names, want) {
		t.Fatalf("methods in the report: %v, want %v", names, want)
	}
	after := readStageClock(t, out)
	for st, sec := range before {
		if st != "evaluation" && after[st] != sec {
			t.Errorf("stage %q ran again: %v s, %v before", st, after[st], sec)
		}
	}
	for _, st := range []string{"grpo", "rloo", "rejection sampling"} {
		if !(after[st] > 0) {
			t.Errorf("stage %q: %v s", st, after[st])
		}
	}
	if rep.GRPO == nil || rep.GRPO.Iterations != 2 || rep.RLOO == nil || rep.RLOO.Episodes != 16 || rep.RS == nil || rep.RS.Prompts != 4 {
		t.Errorf("group and rs summaries: %+v %+v %+v", rep.GRPO, rep.RLOO, rep.RS)
	}
	ppo, dpo := rep.Methods[0], rep.Methods[1]
	clock := readStageClock(t, out)
	if ppo.TaskScore != rep.PPO.TaskScore || ppo.WinRateVsSFT != rep.PPO.WinRateVsSFT || ppo.Seconds != clock["ppo-ptx"] || dpo.Seconds != clock["dpo"] {
		t.Errorf("PPO's row %+v differs from its section %+v", ppo, rep.PPO)
	}
	for _, m := range rep.Methods {
		if m.KLToSFT.N != rep.EvalN || !(m.KLToSFT.StdErr > 0) || math.IsNaN(m.KLToSFT.KL) || !(m.PtxLoss > 0) || !(m.Seconds > 0) ||
			!(m.Rating.Mean >= 1 && m.Rating.Mean <= 7 && m.Rating.StdErr > 0) {
			t.Errorf("%s: %+v", m.Name, m)
		}
	}
	if rep.DPO.Steps != 3 || rep.DPO.Pairs == 0 || !(rep.DPO.Accuracy >= 0 && rep.DPO.Accuracy <= 1) || !(rep.DPO.Seconds > 0) {
		t.Errorf("DPO section %+v", rep.DPO)
	}
	var dpoRun train.DPOConfig
	if raw, err := os.ReadFile(filepath.Join(out, StageDPO, train.RunConfigFile)); err != nil || json.Unmarshal(raw, &dpoRun) != nil ||
		dpoRun.Data != filepath.Join(out, StageLabel, "rm_all.jsonl") || dpoRun.Init != filepath.Join(out, StageSFT) {
		t.Errorf("DPO trained on %q from %q (%v)", dpoRun.Data, dpoRun.Init, err)
	}
	raw, err := os.ReadFile(filepath.Join(out, EvalSamplesFile))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
	var pref, score float64
	for _, line := range lines {
		var r struct {
			Prompt       string  `json:"prompt"`
			DPOScore     float64 `json:"dpo_score"`
			DPOPreferred float64 `json:"dpo_preferred"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil || r.Prompt == "" || !strings.Contains(line, `"ppo_preferred":`) {
			t.Fatalf("%s: %v: %s", EvalSamplesFile, err, line)
		}
		pref += r.DPOPreferred / float64(len(lines))
		score += r.DPOScore / float64(len(lines))
	}
	if len(lines) != rep.EvalN || !strings.Contains(lines[0], `"rs_preferred":`) || math.Abs(pref-dpo.WinRateVsSFT) > 1e-9 || math.Abs(score-dpo.TaskScore) > 1e-9 {
		t.Errorf("%s: %d records, DPO win rate %v and score %v; the report %v and %v", EvalSamplesFile, len(lines), pref, score, dpo.WinRateVsSFT, dpo.TaskScore)
	}
	md, err := os.ReadFile(filepath.Join(out, "report.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| DPO | ", "| PPO-ptx | ", "KL to SFT", "DPO's implicit reward", "| task | SFT | PPO-ptx | DPO | GRPO | RLOO | rejection sampling | PPO-ptx win rate | DPO win rate |", methodsPlotFile, "Likert 1-7", "| GRPO | 2 iterations, 16 responses", "| rejection sampling | best of 2 on 4 prompts"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("report.md lacks %q", want)
		}
	}
	if _, err := os.Stat(filepath.Join(out, methodsPlotFile)); err != nil {
		t.Error(err)
	}
	if !(clock["dpo"] > 0) {
		t.Errorf("no time recorded for the DPO stage: %v", clock)
	}
}

func TestPipelineMethodsValidated(t *testing.T) {
	for _, tc := range []struct {
		methods []string
		want    string
	}{
		{nil, "none given"}, {[]string{"ppo", "reinforce"}, `unknown method "reinforce"`}, {[]string{"dpo", "dpo"}, `"dpo" given twice`},
	} {
		c := Default(t.TempDir())
		c.Methods = tc.methods
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("methods %v: %v, want %q", tc.methods, err, tc.want)
		}
	}
	c := Default(t.TempDir())
	c.Methods = []string{"dpo"}
	c.DPO.Loss.Beta = 0
	if err := c.Validate(); err == nil || !strings.HasPrefix(err.Error(), "dpo:") {
		t.Errorf("a bad DPO setting: %v", err)
	}
}

// TestPipelineRounds: a second round ranks the first round's PPO samples,
// retrains the reward model on all comparisons so far and continues PPO
// from the first round's policy with the KL still to SFT; a third round
// added to the finished run runs only its own stages.
func TestPipelineRounds(t *testing.T) {
	out := t.TempDir()
	cfg := smallPipeline(out)
	cfg.Rounds = 2
	b, opt := cpu.New(2), train.RunOptions{Log: zerolog.Nop()}
	rep, err := Run(context.Background(), b, cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rounds) != 2 || rep.Rounds[0].Round != 1 || rep.Rounds[1].Round != 2 {
		t.Fatalf("rounds in the report: %+v", rep.Rounds)
	}
	r1, r2 := rep.Rounds[0], rep.Rounds[1]
	if r1.TaskScore != rep.PPO.TaskScore || r1.WinRateVsSFT != rep.PPO.WinRateVsSFT || !(r2.RMTrainPairs > r1.RMTrainPairs) ||
		len(r2.Scores) != rep.EvalN || !(r2.FinalRMScores.Q25 <= r2.FinalRMScores.Median && r2.FinalRMScores.Median <= r2.FinalRMScores.Q75) {
		t.Errorf("round 1 %+v, round 2 %+v", r1, r2)
	}
	// Round 2's data: all of round 1's comparisons, then the rankings of
	// PPO samples.
	prev, _ := os.ReadFile(filepath.Join(out, StageLabel, "rm_all.jsonl"))
	own, _ := os.ReadFile(filepath.Join(out, "round-2", StageLabel, "rm_policy.jsonl"))
	all, _ := os.ReadFile(filepath.Join(out, "round-2", StageLabel, "rm_all.jsonl"))
	if len(own) == 0 || string(all) != string(prev)+string(own) {
		t.Errorf("round 2's comparisons (%d bytes) are not round 1's (%d) then the PPO samples' (%d)", len(all), len(prev), len(own))
	}
	var ppo train.PPOConfig
	if raw, err := os.ReadFile(filepath.Join(out, "round-2", StagePPO, train.RunConfigFile)); err != nil || json.Unmarshal(raw, &ppo) != nil ||
		ppo.Policy != filepath.Join(out, StagePPO) || ppo.Reference != filepath.Join(out, StageSFT) || ppo.Reward != filepath.Join(out, "round-2", StageRM) {
		t.Errorf("round 2's PPO: policy %q, reference %q, reward %q (%v)", ppo.Policy, ppo.Reference, ppo.Reward, err)
	}
	md, _ := os.ReadFile(filepath.Join(out, "report.md"))
	if !strings.Contains(string(md), "## Iterated rounds") {
		t.Error("report.md lacks the rounds")
	}
	if _, err := os.Stat(filepath.Join(out, roundsPlotFile)); err != nil {
		t.Error(err)
	}
	before := readStageClock(t, out)
	cfg.Rounds = 3
	if rep, err = Run(context.Background(), b, cfg, opt); err != nil {
		t.Fatal(err)
	}
	after := readStageClock(t, out)
	for st, sec := range before {
		if st != "evaluation" && after[st] != sec {
			t.Errorf("stage %q ran again", st)
		}
	}
	if len(rep.Rounds) != 3 || !(after["round 3: ppo-ptx"] > 0) {
		t.Errorf("%d rounds, round 3's PPO %v s", len(rep.Rounds), after["round 3: ppo-ptx"])
	}
	bad := smallPipeline(t.TempDir())
	bad.Rounds, bad.SFTSampleLabels = 2, 0
	if err := bad.Validate(); err == nil || !strings.Contains(err.Error(), "sft_sample_labels") {
		t.Errorf("rounds without labels: %v", err)
	}
}
