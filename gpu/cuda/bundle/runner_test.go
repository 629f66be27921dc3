package main

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/instructgo/instructgo/train/pipeline"
)

// fakeBundle writes a bundle whose programs are shell scripts: a test
// binary that passes one test (or sleeps, when slow is set) and an
// instructgo that prints a JSON object for info and succeeds otherwise.
func fakeBundle(t *testing.T, slow bool) string {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake bundle is made of shell scripts")
	}
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tests"), 0o755); err != nil {
		t.Fatal(err)
	}
	test := "#!/bin/sh\necho '--- PASS: TestParity (0.01s)'\n"
	if slow {
		test = "#!/bin/sh\nsleep 30\n"
	}
	instructgo := "#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = info ] && echo '{\"backend\":\"fake\"}'; done\nexit 0\n"
	for path, body := range map[string]string{
		filepath.Join(dir, "tests", "a.test"): test,
		filepath.Join(dir, "instructgo"):      instructgo,
	} {
		if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func readReport(t *testing.T, out string) Report {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

// TestRunnerWritesReport runs every step of a fake bundle: the report on
// disk is complete and counts the passing test.
func TestRunnerWritesReport(t *testing.T) {
	out := t.TempDir()
	r := &runner{bundle: fakeBundle(t, false), out: out, timeout: time.Minute, skipBench: true}
	if _, err := r.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep := readReport(t, out)
	var info map[string]string
	_ = json.Unmarshal(rep.Info, &info)
	if !rep.Complete || !rep.Summary.OK || rep.Summary.TestsPassed != 1 || info["backend"] != "fake" {
		t.Errorf("report: complete %v, summary %+v, info %s", rep.Complete, rep.Summary, rep.Info)
	}
}

// TestRunnerBudget gives a fake bundle whose tests hang a budget they use
// up: the test binary is stopped at the budget, the steps after it are
// skipped as out of time, and the report on disk says so and is not OK.
func TestRunnerBudget(t *testing.T) {
	out := t.TempDir()
	r := &runner{bundle: fakeBundle(t, true), out: out, timeout: time.Minute, skipBench: true}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
	defer cancel()
	start := time.Now()
	if _, err := r.run(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 25*time.Second {
		t.Errorf("the run took %v with a 6 s budget", took)
	}
	rep := readReport(t, out)
	if rep.Summary.OK || rep.Summary.OutOfTime < 2 || rep.Summary.TestsFailed != 1 {
		t.Errorf("summary %+v, want the hung test failed and the info and smoke steps out of time", rep.Summary)
	}
}

// TestPipelineSmokeConfig checks that the smoke run's configuration is one
// the pipeline accepts (a renamed field would otherwise only show on a GPU).
func TestPipelineSmokeConfig(t *testing.T) {
	cfg, err := pipeline.ParseConfig([]byte(pipelineSmokeConfig), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.PPO.Iterations != 3 || cfg.Synth.NSFT != 200 || cfg.SFTSampleLabels != 20 {
		t.Errorf("smoke configuration read as %+v", cfg)
	}
}
