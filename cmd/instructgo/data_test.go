package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/train/tasks"
)

// runData runs one command line against an app holding the data command,
// built like newApp, and returns stdout, stderr and the exit code the way
// run does.
func runDataCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	app := &cli.App{
		Name:           "instructgo",
		Flags:          globalFlags(),
		Before:         setupGlobals,
		Action:         rootAction,
		Commands:       []*cli.Command{dataCommand()},
		OnUsageError:   onUsageError,
		ExitErrHandler: func(*cli.Context, error) {},
		Writer:         &out,
		ErrWriter:      &errOut,
	}
	for _, cmd := range app.Commands {
		cmd.OnUsageError = onUsageError
	}
	err := normalizeError(app.RunContext(context.Background(), append([]string{"instructgo"}, args...)))
	if line := errorLine(err); line != "" {
		errOut.WriteString("instructgo: " + line + "\n")
	}
	return out.String(), errOut.String(), exitCode(err)
}

var smallSynth = []string{"--sft", "14", "--rm", "21", "--ppo", "7", "--eval", "7", "--pretrain-bytes", "3000"}

func TestDataSynthWritesAndSummarises(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "new", "data")
	out, stderr, code := runDataCLI(t, append([]string{"data", "synth", "--out", dir, "--seed", "5"}, smallSynth...)...)
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"pretrain.txt", "sft.jsonl", "rm.jsonl", "ppo.jsonl", "eval.jsonl", "comparisons", "seed 5", "labelers agree", "noise-free order"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for name, records := range map[string]int{"sft.jsonl": 14, "rm.jsonl": 21, "ppo.jsonl": 7, "eval.jsonl": 7} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if n := bytes.Count(data, []byte("\n")); n != records {
			t.Errorf("%s has %d records, want %d", name, n, records)
		}
		if name == "sft.jsonl" {
			habit := bytes.Count(data, []byte(`"completion":"`+tasks.HabitPrefix))
			if want := fmt.Sprintf("habit %q: %d of 14\n", tasks.HabitPrefix, habit); habit == 0 || !strings.Contains(out, want) {
				t.Errorf("%d demonstrations have the habit; output lacks %q:\n%s", habit, want, out)
			}
		}
	}
	t.Log("\n" + out)
}

func TestDataSynthJSON(t *testing.T) {
	dir := t.TempDir()
	out, stderr, code := runDataCLI(t, append([]string{"data", "synth", "--out", dir, "--json"}, smallSynth...)...)
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	var sum tasks.Summary
	if err := json.Unmarshal([]byte(out), &sum); err != nil {
		t.Fatalf("--json output is not a summary: %v\n%s", err, out)
	}
	if len(sum.Files) != 5 || sum.Comparisons < 21*6 || sum.Seed != 1 || sum.Labeler.Noise != tasks.DefaultNoise {
		t.Errorf("summary %+v", sum)
	}
}

func TestDataUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"data", "synth"}, "needs --out"},
		{[]string{"data", "synth", "--out", dir, "--sft", "-1"}, "invalid --sft -1"},
		{[]string{"data", "synth", "--out", dir, "--rm", "many"}, `data synth: invalid --rm "many"`},
		{[]string{"data", "synth", "--out", dir, "--demo-habit", "1.2"}, "invalid --demo-habit 1.2"},
		{[]string{"data", "synth", "--out", dir, "--bogus"}, "data synth: unknown flag --bogus (see 'instructgo data synth --help')"},
		{[]string{"data", "synth", "--out", dir, "--device", "cpu"}, "--device is a global flag"},
		{[]string{"data", "synth", "--out", dir, "extra"}, "takes no arguments"},
		{[]string{"data", "fetch"}, `unknown subcommand "fetch"`},
	} {
		_, stderr, code := runDataCLI(t, c.args...)
		if code != exitUsage || !strings.Contains(stderr, c.want) {
			t.Errorf("%q: exit code %d, stderr %q; want %d and %q", c.args, code, stderr, exitUsage, c.want)
		}
	}
}

func TestDataHelp(t *testing.T) {
	out, stderr, code := runDataCLI(t, "data")
	if code != 0 || !strings.Contains(out, "synth") {
		t.Errorf("data: exit code %d, stdout %q, stderr %q", code, out, stderr)
	}
	out, _, code = runDataCLI(t, "data", "synth", "--help")
	if code != 0 || !strings.Contains(out, "--pretrain-bytes") || !strings.Contains(out, "eval.jsonl") {
		t.Errorf("data synth --help: exit code %d, output %q", code, out)
	}
}

// TestDataSynthFamiliesAndKinds: --families and --prompt-kinds (commas or
// repeats) reach the data: records of the families' tasks and of each kind;
// an unknown family is a usage error that writes nothing.
func TestDataSynthFamiliesAndKinds(t *testing.T) {
	out := t.TempDir()
	if _, stderr, code := runCLI(t, "data", "synth", "--out", out, "--families", "honesty,harmlessness", "--prompt-kinds", "user",
		"--prompt-kinds", "few-shot", "--sft", "60", "--rm", "10", "--ppo", "10", "--eval", "10", "--pretrain-bytes", "2000"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	raw, err := os.ReadFile(filepath.Join(out, "sft.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"task":"honesty"`, `"task":"harmlessness"`, `"kind":"user"`, `"kind":"few-shot"`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("sft.jsonl has no %s", want)
		}
	}
	if strings.Contains(string(raw), `"kind":"plain"`) {
		t.Error("a kind that was not asked for")
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if _, stderr, code := runCLI(t, "data", "synth", "--out", bad, "--families", "honesty,flattery"); code != exitUsage || !strings.Contains(stderr, `"flattery"`) {
		t.Errorf("unknown family: exit %d, %s", code, stderr)
	}
	if _, err := os.Stat(bad); err == nil {
		t.Error("a refused synth created its directory")
	}
}
