package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/train"
)

// TestRunConfigPathsAreAbsolute: a run started with relative paths records
// them absolute, so that --resume works from any working directory.
func TestRunConfigPathsAreAbsolute(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.WriteFile("text.txt", []byte(strings.Repeat("relative paths resume anywhere. ", 200)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runCLI(t, "pretrain", "--data", "text.txt", "--config", "tiny", "--steps", "1", "--batch", "2", "--seq", "32", "--out", "run"); code != 0 {
		t.Fatalf("pretrain: exit %d, %s", code, stderr)
	}
	raw, err := os.ReadFile(filepath.Join(dir, "run", train.RunConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		Data []string `json:"data"`
		Out  string   `json:"out"`
	}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.Data) != 1 || cfg.Data[0] != filepath.Join(dir, "text.txt") || cfg.Out != filepath.Join(dir, "run") {
		t.Errorf("recorded data %q, out %q; want them absolute under %s", cfg.Data, cfg.Out, dir)
	}
}
