package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/train"
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

// TestPipelinePrintConfig checks that --print-config prints the resolved
// configuration, defaults with --config's fields and --seed over them,
// and runs nothing.
func TestPipelinePrintConfig(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	stdout, stderr, code := runCLI(t, "pipeline", "--out", out, "--seed", "3", "--config", `{"ppo": {"iterations": 7}}`, "--print-config")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	var cfg train.PipelineConfig
	if err := json.Unmarshal([]byte(stdout), &cfg); err != nil {
		t.Fatalf("not a pipeline configuration: %v\n%s", err, stdout)
	}
	want := train.DefaultPipeline(out)
	want.PPO.Iterations, want.Synth.Seed = 7, 3
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("printed %+v", cfg)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("--print-config created the run directory")
	}
}
