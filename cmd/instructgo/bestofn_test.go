package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
)

func TestRMBestOfNCommand(t *testing.T) {
	dataDir, policy := rmFixture(t)
	cfg, err := model.ReadConfig(policy)
	if err != nil {
		t.Fatal(err)
	}
	cfg.ScalarHead = true
	rm := t.TempDir()
	if err := model.SaveHost(rm, cfg, model.InitGPT2(cfg, 2)); err != nil {
		t.Fatal(err)
	}
	evalData := filepath.Join(dataDir, "eval.jsonl")
	args := []string{"--device", "cpu", "rm", "best-of-n", "--model", rm, "--policy", policy, "--data", evalData, "-n", "3", "--max-new", "5"}

	stdout, stderr, code := runCLI(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	var rep train.BestOfN
	if err := json.Unmarshal([]byte(stdout), &rep); err != nil {
		t.Fatalf("%v:\n%s", err, stdout)
	}
	if rep.N != 3 || rep.Prompts != 8 || rep.Temperature != 1 {
		t.Errorf("report header %+v", rep)
	}
	for _, v := range []float64{rep.Greedy, rep.Sample, rep.ByRM, rep.Ideal, rep.SampleWin, rep.RMWin, rep.IdealWin} {
		if !(v >= 0 && v <= 1) {
			t.Fatalf("a figure outside [0, 1]: %+v", rep)
		}
	}
	if rep.Ideal < rep.Sample {
		t.Errorf("the ideal pick %.3f scores below a random sample %.3f", rep.Ideal, rep.Sample)
	}

	stdout, stderr, code = runCLI(t, args...)
	if code != 0 || !strings.Contains(stdout, "best of 3 by the reward model") || !strings.Contains(stdout, "same-prompt sample pairs") {
		t.Errorf("table: exit code %d\n%s%s", code, stdout, stderr)
	}
	for _, bad := range [][]string{
		{"--device", "cpu", "rm", "best-of-n", "--model", rm, "--policy", policy, "--data", evalData, "-n", "1"},
		{"--device", "cpu", "rm", "best-of-n", "--model", rm, "--data", evalData},
	} {
		if _, stderr, code := runCLI(t, bad...); code != 2 {
			t.Errorf("%v: exit code %d, want 2 (usage): %s", bad, code, stderr)
		}
	}
	if _, stderr, code := runCLI(t, "--device", "cpu", "rm", "best-of-n", "--model", rm, "--policy", rm, "--data", evalData); code == 0 || !strings.Contains(stderr, "needs a language model") {
		t.Errorf("a reward model as the policy: exit code %d: %s", code, stderr)
	}
}
