package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"
)

// runCLI runs one instructgo command line in-process and returns its output,
// its stderr (logs and the error line) and its exit code.
func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"instructgo"}, args...), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestVersionMentionsGoVersion(t *testing.T) {
	out, stderr, code := runCLI(t, "version")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	for _, want := range []string{runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH, "commit", "cuda backend", version} {
		if !strings.Contains(out, want) {
			t.Errorf("version output lacks %q:\n%s", want, out)
		}
	}
}

func TestVersionJSONAndLinkStamps(t *testing.T) {
	oldCommit, oldModified := commit, modified
	t.Cleanup(func() { commit, modified = oldCommit, oldModified })
	commit, modified = "0123abc", "true"

	out, stderr, code := runCLI(t, "version", "--json")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	var d buildDescription
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("version --json is not JSON: %v\n%s", err, out)
	}
	if d.Commit != "0123abc" || d.Modified != "true" || d.GoVersion != runtime.Version() || d.CUDACompiled != cudaCompiled() {
		t.Errorf("version --json = %+v", d)
	}
}

func TestInfoJSON(t *testing.T) {
	out, stderr, code := runCLI(t, "--log-format", "json", "--device", "cpu", "--threads", "3", "info", "--json")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("info --json is not JSON: %v\n%s", err, out)
	}
	for _, key := range []string{
		"backend", "device", "device_reason", "threads", "cuda_compiled", "cpu_model",
		"logical_cores", "simd", "go_version", "goos", "goarch", "gomaxprocs", "mem_total_bytes",
	} {
		if _, ok := got[key]; !ok {
			t.Errorf("info --json lacks key %q", key)
		}
	}
	if cores, _ := got["logical_cores"].(float64); cores < 1 {
		t.Errorf("logical_cores = %v, want > 0", got["logical_cores"])
	}
	if got["threads"] != 3.0 || got["device"] != "cpu" || got["go_version"] != runtime.Version() {
		t.Errorf("threads, device, go_version = %v, %v, %v; want 3, cpu, %s",
			got["threads"], got["device"], got["go_version"], runtime.Version())
	}
	if _, ok := got["simd"].([]any); !ok {
		t.Errorf("simd = %#v, want a JSON array", got["simd"])
	}

	// The device choice is logged to stderr, as JSON lines.
	var entry map[string]any
	line, _, _ := strings.Cut(stderr, "\n")
	if err := json.Unmarshal([]byte(line), &entry); err != nil {
		t.Fatalf("log line is not JSON: %v: %q", err, stderr)
	}
	if entry["level"] != "info" || entry["message"] != "device: cpu (--device cpu)" {
		t.Errorf("log entry = %v", entry)
	}
}

func TestInfoText(t *testing.T) {
	out, stderr, code := runCLI(t, "--device", "cpu", "info")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"backend", "logical cores", "simd", "GOMAXPROCS", "memory", runtime.Version()} {
		if !strings.Contains(out, want) {
			t.Errorf("info output lacks %q:\n%s", want, out)
		}
	}
	if !strings.Contains(stderr, "device: cpu (--device cpu)") {
		t.Errorf("stderr lacks the device log line: %q", stderr)
	}
}

func TestLogLevelFilters(t *testing.T) {
	_, stderr, code := runCLI(t, "--log-level", "warn", "--device", "cpu", "info")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	if stderr != "" {
		t.Errorf("--log-level warn still logged info: %q", stderr)
	}
}

func TestAutoDeviceWithoutCUDA(t *testing.T) {
	if cudaCompiled() {
		t.Skip("built with the cuda backend")
	}
	out, stderr, code := runCLI(t, "info", "--json")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	if !strings.Contains(stderr, "device: cpu (binary built without the cuda backend)") {
		t.Errorf("auto did not log its choice: %q", stderr)
	}
	if !strings.Contains(out, `"device": "cpu"`) {
		t.Errorf("auto did not resolve to cpu:\n%s", out)
	}
}

func TestCUDAWithoutBackend(t *testing.T) {
	if cudaCompiled() {
		t.Skip("built with the cuda backend")
	}
	for _, dev := range []string{"cuda", "cuda:1"} {
		_, stderr, code := runCLI(t, "--device", dev, "info")
		want := "instructgo: this instructgo was built without the cuda backend (build with -tags cuda, see README)\n"
		if code != exitFailure || stderr != want {
			t.Errorf("--device %s: exit %d, stderr %q; want %d, %q", dev, code, stderr, exitFailure, want)
		}
	}
}

// TestErrors checks that bad command lines fail with exit code 2 and one
// clear line on stderr.
func TestErrors(t *testing.T) {
	tests := []struct {
		args []string
		want string // the whole stderr, less "instructgo: " and the newline
	}{
		{[]string{"--log-format", "xml", "info"}, `invalid --log-format "xml": want console or json`},
		{[]string{"--log-level", "loud", "info"}, `invalid --log-level "loud": want trace, debug, info, warn or error`},
		{[]string{"--device", "tpu", "info"}, `invalid --device "tpu": want auto, cpu, cuda or cuda:N`},
		{[]string{"--device", "cuda:x", "info"}, `invalid --device "cuda:x": the GPU ordinal after cuda: must be a whole number 0 or more, e.g. cuda:0`},
		{[]string{"--device", "cuda:-1", "info"}, `invalid --device "cuda:-1": the GPU ordinal after cuda: must be a whole number 0 or more, e.g. cuda:0`},
		{[]string{"--threads", "-1", "info"}, `invalid --threads -1: want 0 (all cores) or a positive count`},
		{[]string{"--threads", "many", "info"}, `invalid --threads "many": parse error (see 'instructgo --help')`},
		{[]string{"--bogus", "info"}, `unknown flag --bogus (see 'instructgo --help')`},
		{[]string{"info", "--bogus"}, `info: unknown flag --bogus (see 'instructgo info --help')`},
		{[]string{"version", "--bogus"}, `version: unknown flag --bogus (see 'instructgo version --help')`},
		{[]string{"info", "--device", "cpu"}, `info: --device is a global flag: put it before the command (instructgo --device ... info)`},
		{[]string{"info", "extra"}, `info takes no arguments, got "extra" (see 'instructgo info --help')`},
		{[]string{"bogus"}, `unknown command "bogus" (commands: ` + commandNames() + `, help; see 'instructgo --help')`},
		{[]string{"help", "bogus"}, `help: unknown command "bogus" (see 'instructgo --help')`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			out, stderr, code := runCLI(t, tt.args...)
			if code != exitUsage {
				t.Errorf("exit code %d, want %d", code, exitUsage)
			}
			if want := "instructgo: " + tt.want + "\n"; stderr != want {
				t.Errorf("stderr\n got %q\nwant %q", stderr, want)
			}
			if out != "" {
				t.Errorf("usage error also wrote output: %q", out)
			}
		})
	}
}

func TestHelpEverywhere(t *testing.T) {
	lines := [][]string{{}, {"--help"}, {"-h"}, {"help"}, {"--version"}}
	for _, cmd := range newApp().Commands {
		lines = append(lines, []string{cmd.Name, "--help"}, []string{cmd.Name, "-h"}, []string{"help", cmd.Name})
	}
	for _, args := range lines {
		out, stderr, code := runCLI(t, args...)
		if code != 0 || stderr != "" || out == "" {
			t.Errorf("instructgo %s: exit %d, stderr %q, %d bytes of output", strings.Join(args, " "), code, stderr, len(out))
		}
	}
	out, _, _ := runCLI(t, "--help")
	for _, flag := range []string{"--log-level", "--log-format", "--device", "--threads"} {
		if !strings.Contains(out, flag) {
			t.Errorf("app help lacks %s", flag)
		}
	}
}

func TestExitCode(t *testing.T) {
	plain := errors.New("boom")
	tests := []struct {
		name string
		err  error
		want int
	}{
		{"nil", nil, 0},
		{"plain", plain, 1},
		{"wrapped plain", fmt.Errorf("train: %w", plain), 1},
		{"usage", usageErrorf("bad flag"), 2},
		{"wrapped usage", fmt.Errorf("ctx: %w", usageErrorf("bad flag")), 2},
		{"exit coder", cli.Exit("interrupted", 130), 130},
		{"wrapped exit coder", fmt.Errorf("sft: %w", cli.Exit("interrupted", 130)), 130},
		{"multi: first decides", multi(cli.Exit("interrupted", 130), plain), 130},
		{"urfave help topic", normalizeError(cli.Exit("No help topic for 'x'", 3)), 2},
	}
	for _, tt := range tests {
		if got := exitCode(tt.err); got != tt.want {
			t.Errorf("%s: exitCode(%v) = %d, want %d", tt.name, tt.err, got, tt.want)
		}
	}
}

func TestErrorLine(t *testing.T) {
	err := multi(errors.New("first\nsecond"), cli.Exit("", 130))
	if got, want := errorLine(err), "first second"; got != want {
		t.Errorf("errorLine = %q, want %q", got, want)
	}
	if got := errorLine(cli.Exit("", 130)); got != "" {
		t.Errorf("errorLine of a code-only ExitCoder = %q, want empty", got)
	}
}

func TestCommandExitCoderHonoured(t *testing.T) {
	app := newApp()
	app.Commands = append(app.Commands, &cli.Command{
		Name:   "interrupt",
		Action: func(*cli.Context) error { return cli.Exit("interrupted; checkpoint saved", 130) },
	})
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.Run([]string{"instructgo", "interrupt"})
	if got := exitCode(normalizeError(err)); got != 130 {
		t.Errorf("exit code %d, want 130 (err %v)", got, err)
	}
}

// multiErr is a cli.MultiError like the one urfave returns when a command
// and its After hook both fail.
type multiErr []error

func (m multiErr) Error() string   { return fmt.Sprint([]error(m)) }
func (m multiErr) Errors() []error { return m }

func multi(errs ...error) error { return multiErr(errs) }

// commandNames lists the app's commands as the unknown-command error does.
func commandNames() string {
	var names []string
	for _, c := range newApp().Commands {
		names = append(names, c.Name)
	}
	return strings.Join(names, ", ")
}
