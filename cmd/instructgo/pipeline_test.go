package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/pipeline"
	"github.com/instructgo/instructgo/train/tasks"
)

// TestPipelineConfigErrors checks that a bad --config stops the pipeline
// before any stage, with the reason, and writes nothing.
func TestPipelineConfigErrors(t *testing.T) {
	dir := t.TempDir()
	typo := filepath.Join(dir, "typo.json")
	if err := os.WriteFile(typo, []byte(`{"ppo": {"iteratons": 7}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	for _, c := range []struct {
		config, want string
	}{
		{typo, `unknown field "iteratons"`},
		{filepath.Join(dir, "missing.json"), "no such file"},
		{`{"ppo": {"iteratons": 7}}`, `unknown field "iteratons"`},
		{`{"ppo": {"iterations": "many"}}`, "cannot unmarshal"},
		// A setting of the last stage fails before the first stage runs.
		{`{"ppo": {"iterations": -3}}`, "ppo: iterations"},
		{`{"sft_dropout": 1.5}`, "sft_dropout 1.5"},
	} {
		_, stderr, code := runCLI(t, "pipeline", "--out", out, "--config", c.config)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("--config %s: exit code %d, stderr %q; want %d and %q", c.config, code, stderr, exitUsage, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused pipeline created its run directory")
	}
}

// TestPipelineSizesErrors checks that a bad --sizes, or a configuration
// one size cannot run, stops before any stage and writes nothing.
func TestPipelineSizesErrors(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--sizes", "tiny,huge"}, `unknown model config "huge"`},
		{[]string{"--sizes", "tiny, tiny"}, `"tiny" given twice`},
		{[]string{"--sizes", ""}, "none given"},
		{[]string{"--sizes", "tiny", "--config", `{"ppo": {"iterations": -3}}`}, "tiny: ppo: iterations"},
	} {
		_, stderr, code := runCLI(t, append([]string{"pipeline", "--out", out}, c.args...)...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit code %d, stderr %q; want %d and %q", c.args, code, stderr, exitUsage, c.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused pipeline created its run directory")
	}
}

// TestPipelinePrintConfig checks that --print-config prints the resolved
// configuration, defaults with --config's fields and --seed over them,
// and runs nothing.
func TestPipelinePrintConfig(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	stdout, stderr, code := runCLI(t, "pipeline", "--out", out, "--seed", "3", "--config", `{"ppo": {"iterations": 7}}`, "--print-config")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	var cfg pipeline.Config
	if err := json.Unmarshal([]byte(stdout), &cfg); err != nil {
		t.Fatalf("not a pipeline configuration: %v\n%s", err, stdout)
	}
	want := pipeline.Default(out)
	want.PPO.Iterations, want.Synth.Seed = 7, 3
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("printed %+v", cfg)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("--print-config created the run directory")
	}
}

// TestPipelineSmallRun runs the main command on a configuration shrunk to
// seconds and checks what it prints against the report it writes.
func TestPipelineSmallRun(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	c := pipeline.Default(out)
	c.Synth.NSFT, c.Synth.NRM, c.Synth.NPPO, c.Synth.NEval, c.Synth.PretrainBytes = 64, 48, 64, 16, 40_000
	c.Pretrain.Steps, c.Pretrain.Batch, c.Pretrain.Seq, c.Pretrain.EvalEvery, c.Pretrain.EvalBatches = 6, 4, 64, 3, 2
	// Every demonstration has the habit, so that even this short SFT run
	// learns it and the habit line is printed.
	c.Synth.DemoHabit = 1
	c.SFT.Epochs, c.SFT.EvalEvery, c.SFT.EvalPrompts = 8, 8, 4
	c.RM.Steps, c.RM.Batch, c.RM.EvalEvery = 3, 8, 0
	c.PPO.Iterations, c.PPO.Episodes, c.PPO.MiniBatch, c.PPO.MaxNew = 2, 8, 4, 8
	c.MaxNew, c.BestOfN, c.SFTSampleLabels = 8, 2, 12
	raw, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := runCLI(t, "pipeline", "--out", out, "--config", string(raw))
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	var rep pipeline.Report
	if raw, err = os.ReadFile(filepath.Join(out, "report.json")); err != nil || json.Unmarshal(raw, &rep) != nil {
		t.Fatalf("report.json: %v", err)
	}
	if len(rep.Methods) != 1 || rep.Methods[0].Name != "ppo" {
		t.Fatalf("methods in the report: %+v", rep.Methods)
	}
	ppo := rep.Methods[0]
	// The table's rows, cell by cell (columns are two or more spaces apart).
	rows := map[string][]string{}
	for _, line := range strings.Split(stdout, "\n") {
		cells := regexp.MustCompile(`\s{2,}`).Split(strings.TrimSpace(line), -1)
		rows[cells[0]] = cells[1:]
	}
	rating := func(r train.Rating) string { return fmt.Sprintf("%.2f ± %.2f", r.Mean, r.StdErr) }
	for name, want := range map[string][]string{
		"model": {"task score", "win rate vs SFT", "Likert 1-7", "KL to SFT", "pretraining loss"},
		"SFT":   {fmt.Sprintf("%.3f", rep.SFT.TaskScore), "0.500", rating(rep.SFT.Rating), "0", fmt.Sprintf("%.4f", rep.SFTPtxLoss)},
		"PPO-ptx": {fmt.Sprintf("%.3f", ppo.TaskScore), fmt.Sprintf("%.3f ± %.3f", ppo.WinRateVsSFT, ppo.WinRateStdErr), rating(ppo.Rating),
			fmt.Sprintf("%.3f ± %.3f", ppo.KLToSFT.KL, ppo.KLToSFT.StdErr), fmt.Sprintf("%.4f", ppo.PtxLoss)},
	} {
		if !reflect.DeepEqual(rows[name], want) {
			t.Errorf("row %q: %q, want %q\n%s", name, rows[name], want, stdout)
		}
	}
	want := []string{
		fmt.Sprintf("over the 16 held-out prompts, task score gain on SFT (± standard error): PPO-ptx %+.3f ± %.3f", ppo.TaskScore-rep.SFT.TaskScore, ppo.ScoreGainStdErr),
		fmt.Sprintf("alignment tax (nats/token): PPO-ptx %+.4f", ppo.PtxLoss-rep.SFTPtxLoss),
		"report: " + filepath.Join(out, "report.md"),
	}
	habit := fmt.Sprintf("answers opening with the demonstrators' habit %q: SFT %.3f, PPO-ptx %.3f", tasks.HabitPrefix, rep.SFT.HabitRate, ppo.HabitRate)
	if rep.SFT.HabitRate == 0 {
		t.Fatalf("SFT never answered with the habit it was shown in every demonstration:\n%s", stdout)
	}
	want = append(want, habit)
	for _, w := range want {
		if !strings.Contains(stdout, w) {
			t.Errorf("output lacks %q:\n%s", w, stdout)
		}
	}
}
