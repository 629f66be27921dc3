package main

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/instructgo/instructgo/bench"
	"github.com/instructgo/instructgo/train/pipeline"
)

// A fake bundle: its programs are shell scripts that print what the real
// ones print, from fixtures. The test binary passes one test (or hangs,
// when slow is set) and prints a launch benchmark; instructgo answers
// version, info (with cuBLAS and cuBLASLt loaded, or not) and bench --json
// (the sft and ppo fixtures, recording its arguments), and succeeds
// otherwise; the fake Python interpreter answers the sys.path query, runs
// the bundle's real trl-venv.sh through -m venv, -m pip and stdin scripts,
// and prints the baselines' fixtures for ops.py, train_step.py (eager or
// --compile) and ppo_iteration.py.

type fakeOpts struct {
	slow     bool // the test binary hangs
	noCublas bool // info says cuBLASLt did not load
}

const fakeInstructgo = `#!/bin/sh
here=$(dirname "$0")
for a in "$@"; do
	case "$a" in
	version) echo "instructgo fake"; exit 0 ;;
	info) cat "$here/fixtures/info.json"; exit 0 ;;
	bench)
		echo "$*" >> "$here/bench-args.txt"
		echo "12:00 INF bench: measuring" >&2
		for b in "$@"; do [ "$b" = steps ] && { cat "$here/fixtures/bench-ppo.json"; exit 0; }; done
		cat "$here/fixtures/bench-sft.json"; exit 0 ;;
	esac
done
exit 0
`

const fakePython = `#!/bin/sh
fix=FIXTURES
case "$1" in
-c)
	case "$2" in
	*sysconfig*) echo "$(dirname "$(dirname "$0")")" ;;
	*) printf '%s\n' /usr/lib/python312.zip /nonexistent/site-packages ;;
	esac ;;
-m)
	case "$2" in
	venv) for d in "$@"; do v=$d; done; mkdir -p "$v/bin" && cp "$0" "$v/bin/python" ;;
	pip) exit 0 ;;
	esac ;;
-) cat > /dev/null; echo "trl-venv: trl 1.12.0 (fake)" ;;
*ops.py) echo "not json"; cat "$fix/ops.json" ;;
*train_step.py)
	for a in "$@"; do [ "$a" = --compile ] && { cat "$fix/compile.json"; exit 0; }; done
	cat "$fix/eager.json" ;;
*ppo_iteration.py) echo "===training policy==="; cat "$fix/trl.json" ;;
*) echo "fake python: $*" >&2; exit 2 ;;
esac
`

// Figures of the fixtures, chosen so that every ratio is known.
const (
	sftTokens       = 200000.0 // instructgo's SFT step, tokens/s
	eagerTokens     = 50000.0  // → 4x
	attnSeconds     = 1e-3     // instructgo's attention call; PyTorch takes twice as long
	trlEpisodesPerS = 40.0     // TRL; instructgo 100 → 2.5x
	hfTokens        = 2000.0   // HF generate; instructgo 8000 → 4x
)

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
}

func fakeBundle(t *testing.T, o fakeOpts) (bundle, python string) {
	t.Helper()
	if runtime.GOOS == "windows" {
		t.Skip("the fake bundle is made of shell scripts")
	}
	dir := t.TempDir()
	fix := filepath.Join(dir, "fixtures")
	for _, d := range []string{"tests", "python", "wheels", "fixtures"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	test := "#!/bin/sh\nfor a in \"$@\"; do case \"$a\" in -test.bench=*) echo 'BenchmarkLaunch-16   20000   3100 ns/op   0 B/op   0 allocs/op'; exit 0;; esac; done\n" +
		"echo \"args: $*\"\necho '--- PASS: TestParity (0.01s)'\n"
	if o.slow {
		test = "#!/bin/sh\nsleep 30\n"
	}
	trlVenv, err := os.ReadFile("trl-venv.sh")
	if err != nil {
		t.Fatal(err)
	}
	for path, body := range map[string]string{
		"tests/cuda.test":         test,
		"instructgo":              fakeInstructgo,
		"trl-venv.sh":             string(trlVenv),
		"wheels/x.whl":            "",
		"python/python":           strings.Replace(fakePython, "FIXTURES", fix, 1),
		"python/ops.py":           "",
		"python/train_step.py":    "",
		"python/ppo_iteration.py": "",
	} {
		if err := os.WriteFile(filepath.Join(dir, path), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	gemm := "cuBLAS 13.1.0 FP32, cuBLASLt 13.1.0 bf16; cuBLAS from /v/nvidia/cu13/lib/libcublas.so.13; cuBLASLt from /v/nvidia/cu13/lib/libcublasLt.so.13"
	if o.noCublas {
		gemm = "cuBLAS 13.1.0 FP32, bf16 tensor-core GEMM kernel, no cuBLASLt; cuBLAS from /v/libcublas.so.13; cuBLASLt: not found"
	}
	writeJSON(t, filepath.Join(fix, "info.json"), map[string]any{"backend": "cuda:0 (fake)", "gemm": gemm})
	res := func(group, name, unit string, value, seconds, peak float64) bench.Result {
		return bench.Result{Group: group, Name: name, Unit: unit, Value: value, Time: bench.Stats{Median: seconds}, OfPublished: peak}
	}
	sft := bench.Report{Schema: bench.SchemaVersion, Results: []bench.Result{
		res("ceiling", "gemm", "GFLOP/s", 7e5, 1e-3, 0.7),
		res("matmul", "square 8192", "GFLOP/s", 6e5, 2*math.Pow(8192, 3)/6e14, 0.6),
		res("step", "gpt2 sft", "tokens/s", sftTokens, 16384/sftTokens, 0.45),
	}}
	ops := map[string]any{"device_name": "fake"}
	var cases []map[string]any
	for _, k := range []string{"hs64 T2048 fwd", "hs64 T2048 bwd", "hs128 T2048 fwd", "hs128 T2048 bwd"} {
		sft.Results = append(sft.Results, res("attention", k, "TFLOP/s", 300, attnSeconds, 0.3))
		cases = append(cases, map[string]any{"key": "attention/" + k, "seconds": 2 * attnSeconds})
	}
	sft.Results = append(sft.Results, res("crossentropy", "V50257 N8192", "GB/s", 2000, 8e-4, 0))
	cases = append(cases, map[string]any{"key": "crossentropy/V50257 N8192", "seconds": 4e-4}) // PyTorch twice as fast
	ops["cases"] = cases
	ppo := bench.Report{Schema: bench.SchemaVersion, Results: []bench.Result{
		res("ppo", "gpt2 generate", "tokens/s", 4*hfTokens, 1, 0.01),
		res("ppo", "gpt2 iteration", "episodes/s", 2.5*trlEpisodesPerS, 1.28, 0.2),
	}}
	writeJSON(t, filepath.Join(fix, "bench-sft.json"), sft)
	writeJSON(t, filepath.Join(fix, "bench-ppo.json"), ppo)
	writeJSON(t, filepath.Join(fix, "ops.json"), ops)
	writeJSON(t, filepath.Join(fix, "eager.json"), map[string]any{"tokens_per_s": eagerTokens})
	writeJSON(t, filepath.Join(fix, "compile.json"), map[string]any{"tokens_per_s": 2 * eagerTokens})
	writeJSON(t, filepath.Join(fix, "trl.json"), map[string]any{"episodes_per_s": trlEpisodesPerS, "generate": map[string]any{"tokens_per_s": hfTokens}})
	return dir, filepath.Join(dir, "python", "python")
}

func readReport(t *testing.T, out string) Report {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(out, reportFile))
	if err != nil {
		t.Fatal(err)
	}
	var rep Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatal(err)
	}
	return rep
}

func goalByKey(t *testing.T, rep Report, key string) Goal {
	t.Helper()
	for _, g := range rep.Goals {
		if g.Key == key {
			return g
		}
	}
	t.Fatalf("no goal %s in %+v", key, rep.Goals)
	return Goal{}
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Abs(b) }

// TestRunnerWritesReport runs every step of a fake bundle: the report is
// complete, counts the passing test, names the loaded libraries, holds the
// bench reports and the baselines, and every goal has the ratios the
// fixtures imply; the output folder holds only the report, the summary
// and the logs' tarball.
func TestRunnerWritesReport(t *testing.T) {
	bundle, python := fakeBundle(t, fakeOpts{})
	out, work := t.TempDir(), t.TempDir()
	r := &runner{bundle: bundle, out: out, work: work, timeout: time.Minute, python: python, tests: "Parity"}
	if _, err := r.run(context.Background()); err != nil {
		t.Fatal(err)
	}
	rep := readReport(t, out)
	if !rep.Complete || !rep.Summary.OK || rep.Summary.TestsPassed != 1 || rep.Summary.StepsFailed != 0 {
		for _, s := range rep.Steps {
			if s.ExitCode != 0 {
				t.Logf("step %s failed: %s", s.Name, s.Tail)
			}
		}
		t.Fatalf("report: complete %v, summary %+v", rep.Complete, rep.Summary)
	}
	if !strings.Contains(readFile(rep.Tests[0].Log), "-test.run=Parity") {
		t.Errorf("the test binary did not get -test.run=Parity: %s", readFile(rep.Tests[0].Log))
	}
	l := rep.Libraries
	if !l.CublasLoaded || !l.CublasLtLoaded || l.FallbackGEMM || !strings.Contains(l.Loaded, "libcublasLt.so.13") || len(l.Cublas) == 0 {
		t.Errorf("libraries %+v", l)
	}
	if len(rep.Benchmarks) != 1 || rep.Benchmarks[0].Metrics["ns/op"] != 3100 {
		t.Errorf("launch benchmarks %+v", rep.Benchmarks)
	}
	for _, run := range []string{"sft", "ppo"} {
		if rep.InstructgoBench[run] == nil {
			t.Errorf("no instructgo bench report %s", run)
		}
	}
	for _, b := range []string{"pytorch_ops", "pytorch_eager", "pytorch_compile", "trl_ppo"} {
		if rep.Baselines[b] == nil {
			t.Errorf("no baseline %s", b)
		}
	}
	want := map[string][]float64{
		"step/gpt2 sft":             {sftTokens / eagerTokens, sftTokens / (2 * eagerTokens)},
		"attention/hs64 T2048 fwd":  {2},
		"attention/hs128 T2048 bwd": {2},
		"crossentropy/V50257 N8192": {0.5},
		"ppo/gpt2 generate":         {4},
		"ppo/gpt2 iteration":        {2.5},
	}
	for key, ratios := range want {
		g := goalByKey(t, rep, key)
		if g.Missing != "" || len(g.Baselines) != len(ratios) {
			t.Errorf("goal %s: %+v", key, g)
			continue
		}
		for i, w := range ratios {
			if b := g.Baselines[i]; b.Missing != "" || !near(b.Ratio, w) || !near(b.Value*b.Ratio, g.Value) {
				t.Errorf("goal %s, baseline %s: value %v ratio %v (%s), want ratio %v", key, b.Name, b.Value, b.Ratio, b.Missing, w)
			}
		}
	}
	if g := goalByKey(t, rep, "step/gpt2 sft"); !near(g.OfPublished, 0.45) {
		t.Errorf("SFT MFU %v", g.OfPublished)
	}
	// The matmul baseline was not in ops.json: said so, not invented.
	if g := goalByKey(t, rep, "matmul/square 8192"); g.Missing != "" || g.Baselines[0].Missing == "" {
		t.Errorf("GEMM goal %+v", g)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "logs.tar.gz report.json summary.txt" {
		t.Errorf("output folder holds %v", names)
	}
	if s := readFile(filepath.Join(out, summaryFile)); !strings.Contains(s, "4.00x") || !strings.Contains(s, "SFT step") {
		t.Errorf("summary:\n%s", s)
	}
}

// TestRunnerRefusesFallbackGEMM: with cuBLASLt missing, the GEMM-bound
// benchmarks are not run (the sft run measures only attention and
// cross-entropy, the ppo run is refused), their goals say why, and the
// report is not OK; -allow-fallback-gemm measures them.
func TestRunnerRefusesFallbackGEMM(t *testing.T) {
	for _, allow := range []bool{false, true} {
		bundle, python := fakeBundle(t, fakeOpts{noCublas: true})
		out := t.TempDir()
		r := &runner{bundle: bundle, out: out, work: t.TempDir(), timeout: time.Minute, python: python, tests: ".",
			allowFallback: allow, skipBaselines: true, skipSmoke: true}
		if _, err := r.run(context.Background()); err != nil {
			t.Fatal(err)
		}
		rep := readReport(t, out)
		args := readFile(filepath.Join(bundle, "bench-args.txt"))
		sft, ppo := goalByKey(t, rep, "step/gpt2 sft"), goalByKey(t, rep, "ppo/gpt2 iteration")
		attn := goalByKey(t, rep, "attention/hs64 T2048 fwd")
		if !rep.Libraries.FallbackGEMM || attn.Missing != "" {
			t.Errorf("allow %v: libraries %+v, attention goal %+v", allow, rep.Libraries, attn)
		}
		if allow {
			if sft.Missing != "" || ppo.Missing != "" || !strings.Contains(args, benchMatchSFT) || !rep.Summary.OK {
				t.Errorf("allowed: sft %+v, ppo %+v, summary %+v, bench args %q", sft, ppo, rep.Summary, args)
			}
			continue
		}
		if !strings.HasPrefix(sft.Missing, refused) || !strings.HasPrefix(ppo.Missing, refused) || rep.Summary.OK || rep.Summary.Refused != 1 {
			t.Errorf("refused: sft %+v, ppo %+v, summary %+v", sft, ppo, rep.Summary)
		}
		if !strings.Contains(args, benchMatchNoGEMM) || strings.Contains(args, "steps") {
			t.Errorf("refused: bench ran with %q", args)
		}
	}
}

// TestRunnerBudget gives a fake bundle whose tests hang a budget they use
// up: the test binary is stopped at the budget, the steps after it are
// skipped as out of time, and the report on disk says so and is not OK.
func TestRunnerBudget(t *testing.T) {
	bundle, python := fakeBundle(t, fakeOpts{slow: true})
	out := t.TempDir()
	r := &runner{bundle: bundle, out: out, work: t.TempDir(), timeout: time.Minute, python: python, tests: "."}
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
	if rep.Summary.OK || rep.Summary.OutOfTime < 5 || rep.Summary.TestsFailed != 1 {
		t.Errorf("summary %+v, want the hung test failed and the later steps out of time", rep.Summary)
	}
	for _, g := range rep.Goals {
		if g.Missing == "" {
			t.Errorf("goal %s has a figure from a run that never happened", g.Key)
		}
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
