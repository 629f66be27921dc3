package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
