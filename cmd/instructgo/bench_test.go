package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/bench"
	"github.com/instructgo/instructgo/model"
)

// benchArgs is a bench command line quick enough for a test: one matmul,
// the ceilings at their shortest.
var benchArgs = []string{"--log-format", "json", "--device", "cpu", "--threads", "2", "bench", "--only", "ops", "--match", "^matmul/square 256$", "--min-time", "1ms"}

func TestBenchJSON(t *testing.T) {
	out, stderr, code := runCLI(t, append(benchArgs, "--json")...)
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	var r bench.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bench --json is not a report: %v\n%s", err, out)
	}
	m := r.Machine
	if m.GoVersion != runtime.Version() || m.Commit == "" || m.Backend != "cpu (2 threads)" || m.Device != "cpu" || m.LogicalCores < 1 || m.GPUName != "" {
		t.Errorf("machine = %+v", m)
	}
	// --precision auto is fp32 on the cpu.
	if r.Settings.Precision != model.FP32 {
		t.Errorf("precision %v, want fp32 (auto on the cpu)", r.Settings.Precision)
	}
	var keys []string
	for _, res := range r.Results {
		keys = append(keys, res.Key())
		if !(res.OfMeasured > 0) {
			t.Errorf("%s has no ceiling fraction", res.Key())
		}
	}
	if got, want := strings.Join(keys, ","), "ceiling/fma peak,ceiling/memory copy,ceiling/memory read,matmul/square 256"; got != want {
		t.Errorf("results %s, want %s", got, want)
	}
	if !strings.Contains(stderr, `"bench":"matmul/square 256"`) {
		t.Errorf("no progress line on stderr:\n%s", stderr)
	}

	// The same report against itself: every ratio 1.
	path := filepath.Join(t.TempDir(), "a.json")
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		t.Fatal(err)
	}
	cmp, stderr, code := runCLI(t, "bench", "--compare", path, path)
	if code != 0 {
		t.Fatalf("compare: exit code %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"matmul/square 256", "1.00x", "geometric mean"} {
		if !strings.Contains(cmp, want) {
			t.Errorf("comparison lacks %q:\n%s", want, cmp)
		}
	}
	cmpJSON, _, code := runCLI(t, "bench", "--compare", path, "--json", path)
	var c bench.Comparison
	if code != 0 || json.Unmarshal([]byte(cmpJSON), &c) != nil || len(c.Rows) != 4 {
		t.Errorf("compare --json: exit %d, %d rows:\n%s", code, len(c.Rows), cmpJSON)
	}
}

// TestBenchPrecision: --precision bf16 reaches the benchmarks (the report
// says bf16, the ops' shapes name it), and --compare of an fp32 and a bf16
// report flags the difference.
func TestBenchPrecision(t *testing.T) {
	args := []string{"--log-format", "json", "--device", "cpu", "--threads", "2", "--precision", "bf16", "bench", "--only", "ops",
		"--match", "^(matmul/square 256|crossentropy/tiny)$", "--min-time", "1ms", "--json"}
	out, stderr, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	var r bench.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("bench --json is not a report: %v\n%s", err, out)
	}
	if r.Settings.Precision != model.BF16 || len(r.Results) != 5 || !strings.Contains(r.Results[4].Shape, "bf16") {
		t.Fatalf("precision %v, results %+v: want bf16 and the cross-entropy in bf16", r.Settings.Precision, r.Results)
	}
	dir := t.TempDir()
	bf16 := filepath.Join(dir, "bf16.json")
	fp32 := filepath.Join(dir, "fp32.json")
	os.WriteFile(bf16, []byte(out), 0o644)
	out32, stderr, code := runCLI(t, append(benchArgs, "--json")...)
	if code != 0 {
		t.Fatalf("fp32 run: exit code %d, stderr %q", code, stderr)
	}
	os.WriteFile(fp32, []byte(out32), 0o644)
	cmp, stderr, code := runCLI(t, "bench", "--compare", fp32, bf16)
	if code != 0 || !strings.Contains(cmp, "WARNING: A ran in fp32 and B in bf16") || !strings.Contains(cmp, "matmul/square 256") {
		t.Errorf("compare fp32 with bf16: exit %d, stderr %q:\n%s", code, stderr, cmp)
	}
}

// TestBenchCompareSchema1: the reports kept in bench/results (schema 1)
// still compare with new ones, attention's GFLOP/s then against its
// TFLOP/s now.
func TestBenchCompareSchema1(t *testing.T) {
	old := filepath.Join("..", "..", "bench", "results", "2026-11-28-cpu-epyc-2core.json")
	out, stderr, code := runCLI(t, "--device", "cpu", "--threads", "2", "bench", "--only", "ops", "--match", "^attention/tiny fwd$", "--min-time", "1ms", "--json")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	path := filepath.Join(t.TempDir(), "new.json")
	os.WriteFile(path, []byte(out), 0o644)
	cmp, stderr, code := runCLI(t, "bench", "--compare", old, path)
	row := ""
	for _, line := range strings.Split(cmp, "\n") {
		if strings.HasPrefix(line, "attention/tiny fwd ") {
			row = strings.Join(strings.Fields(line), " ")
		}
	}
	if code != 0 || !strings.HasPrefix(row, "attention/tiny fwd TFLOP/s 0.0317 ") || strings.Contains(cmp, "WARNING") {
		t.Errorf("compare a schema 1 report with a new one: exit %d, stderr %q, attention row %q:\n%s", code, stderr, row, cmp)
	}
}

func TestBenchTable(t *testing.T) {
	out, stderr, code := runCLI(t, benchArgs...)
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	for _, want := range []string{"precision: fp32", "measured ceilings: compute", "published peak: none known", "of measured", "of published",
		"GFLOP/s", "square 256", "256×256×256", runtime.Version()} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}

func TestBenchUsageErrors(t *testing.T) {
	dir := t.TempDir()
	notReport := filepath.Join(dir, "x.json")
	os.WriteFile(notReport, []byte(`{"schema": 7}`), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"bench", "--only", "all"}, 2, "--only"},
		{[]string{"bench", "--config", "huge"}, 2, "unknown model config"},
		{[]string{"bench", "--config", ","}, 2, "--config"},
		{[]string{"bench", "--seq", "300"}, 2, "--seq 300"},
		{[]string{"bench", "--batch", "-1"}, 2, "--batch"},
		{[]string{"bench", "--match", "("}, 2, "--match"},
		{[]string{"bench", "--min-time", "-1s"}, 2, "--min-time"},
		{[]string{"bench", "extra"}, 2, "no arguments"},
		{[]string{"bench", "--compare", notReport}, 2, "two reports"},
		{[]string{"bench", "--compare", notReport, notReport}, 1, "schema"},
		{[]string{"bench", "--compare", filepath.Join(dir, "none.json"), notReport}, 1, "none.json"},
	} {
		out, stderr, code := runCLI(t, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) || out != "" {
			t.Errorf("instructgo %s: exit %d, stderr %q, stdout %q; want exit %d and %q", strings.Join(tc.args, " "), code, stderr, out, tc.code, tc.want)
		}
	}
}

func TestParseNvidiaSMI(t *testing.T) {
	banner := `+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI 550.54.15              Driver Version: 550.54.15      CUDA Version: 12.4     |
|-----------------------------------------+------------------------+----------------------+`
	if d, c := parseNvidiaSMI(banner); d != "550.54.15" || c != "12.4" {
		t.Errorf("parseNvidiaSMI = %q, %q; want 550.54.15, 12.4", d, c)
	}
	if d, c := parseNvidiaSMI("no GPU here"); d != "" || c != "" {
		t.Errorf("parseNvidiaSMI of other text = %q, %q", d, c)
	}
}
