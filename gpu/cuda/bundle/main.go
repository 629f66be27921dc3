// Command bundle-runner is the program inside the GPU bundle (`make
// gpu-bundle`): on a GPU machine without Go it runs every compiled cuda test
// binary (the CUDA-vs-CPU parity tests), `instructgo --device cuda info`,
// the benchmarks of the test binaries, `instructgo bench` when the binary
// has it, a short `instructgo pretrain` smoke run on generated text and a
// pipeline with a few steps per stage, and writes one JSON report
// (report.json) plus the raw logs.
//
//	bundle-runner [-bundle DIR] [-out DIR] [-timeout 4m] [-budget 8m] [-skip-bench]
//
// The bundle's run.sh calls it with the bundle directory and the output
// directory ($OUT or ./gpu-report), passing on any further flags. The steps
// run most important first (the parity tests, then the backend's info, a
// short training run and a few steps of every pipeline stage, then the
// benchmarks), each within -timeout and all
// within -budget, so that a session on a borrowed GPU with a hard time
// limit gets its answers before the limit; a step the budget no longer
// allows is recorded as skipped. report.json is rewritten after every
// step, so a run killed from outside still leaves what it found. It exits 0
// when every test passed and every step succeeded, 1 otherwise.
//
// It is plain Go (no cgo, no build tag) so that it runs anywhere and its
// parsing is tested by the ordinary `go test ./...`.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

func main() {
	bundle := flag.String("bundle", ".", "the bundle directory (instructgo, tests/*.test)")
	out := flag.String("out", "", "directory for report.json and logs (default $OUT, else ./gpu-report)")
	timeout := flag.Duration("timeout", 4*time.Minute, "time limit of each step")
	budget := flag.Duration("budget", 8*time.Minute, "time limit of all steps together")
	skipBench := flag.Bool("skip-bench", false, "skip the benchmarks")
	flag.Parse()
	if *out == "" {
		*out = os.Getenv("OUT")
	}
	if *out == "" {
		*out = "gpu-report"
	}
	r := &runner{bundle: *bundle, out: *out, timeout: *timeout, skipBench: *skipBench}
	ctx, cancel := context.WithTimeout(context.Background(), *budget)
	defer cancel()
	rep, err := r.run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bundle-runner:", err)
		os.Exit(2)
	}
	path := filepath.Join(*out, "report.json")
	fmt.Printf("report: %s (tests %d passed, %d failed, %d skipped; steps ok: %v)\n",
		path, rep.Summary.TestsPassed, rep.Summary.TestsFailed, rep.Summary.TestsSkipped, rep.Summary.OK)
	if !rep.Summary.OK {
		os.Exit(1)
	}
}

// pipelineSmokeConfig sizes the pipeline smoke run: every stage of the
// default pipeline on the tiny model with a few steps each (24 s on the
// 2-core CPU).
const pipelineSmokeConfig = `{"synth": {"sft": 200, "rm": 100, "ppo": 100, "eval": 20, "pretrain_bytes": 100000},
 "pretrain": {"steps": 20, "eval_every": 0, "save_every": 0}, "sft": {"steps": 20, "eval_every": 10, "save_every": 0},
 "rm": {"steps": 10, "eval_every": 5, "save_every": 0}, "ppo": {"iterations": 3}, "sft_sample_labels": 20, "eval_best_of_n": 2}`

// Report is report.json.
type Report struct {
	Created    time.Time        `json:"created"`
	Host       string           `json:"host"`
	GPU        []map[string]any `json:"gpu,omitempty"` // nvidia-smi, one entry per GPU
	GPUError   string           `json:"gpu_error,omitempty"`
	Version    string           `json:"instructgo_version,omitempty"`
	Info       json.RawMessage  `json:"info,omitempty"` // instructgo --device cuda info --json
	InfoError  string           `json:"info_error,omitempty"`
	Tests      []TestBinary     `json:"tests"`
	Benchmarks []Benchmark      `json:"benchmarks,omitempty"`
	Steps      []Step           `json:"steps"`
	// PipelineSmoke is the report.json of the pipeline smoke run.
	PipelineSmoke json.RawMessage `json:"pipeline_smoke,omitempty"`
	// Complete is false while the runner is still at work (report.json is
	// rewritten after every step) or when it was stopped.
	Complete bool    `json:"complete"`
	Summary  Summary `json:"summary"`
}

// TestBinary is one compiled test binary's run.
type TestBinary struct {
	Binary   string       `json:"binary"`
	ExitCode int          `json:"exit_code"`
	Seconds  float64      `json:"seconds"`
	Results  []TestResult `json:"results"`
	Log      string       `json:"log"`
}

// TestResult is one test's outcome as -test.v prints it.
type TestResult struct {
	Name    string  `json:"name"`
	Status  string  `json:"status"` // PASS, FAIL, SKIP
	Seconds float64 `json:"seconds"`
}

// Benchmark is one benchmark line: iterations and every metric (ns/op and
// the custom ones a benchmark reports, e.g. TFLOP/s).
type Benchmark struct {
	Binary     string             `json:"binary"`
	Name       string             `json:"name"`
	Iterations int64              `json:"iterations"`
	Metrics    map[string]float64 `json:"metrics"`
}

// Step is a command run for the report.
type Step struct {
	Name     string   `json:"name"`
	Command  []string `json:"command"`
	ExitCode int      `json:"exit_code"`
	Seconds  float64  `json:"seconds"`
	Tail     string   `json:"output_tail"` // the last lines of its output
	Log      string   `json:"log"`
	Skipped  string   `json:"skipped,omitempty"`
}

// Summary counts the results.
type Summary struct {
	TestsPassed  int `json:"tests_passed"`
	TestsFailed  int `json:"tests_failed"`
	TestsSkipped int `json:"tests_skipped"`
	StepsFailed  int `json:"steps_failed"`
	// OutOfTime counts the steps the time budget left no room for.
	OutOfTime int  `json:"steps_out_of_time"`
	OK        bool `json:"ok"`
}

type runner struct {
	bundle, out string
	timeout     time.Duration
	skipBench   bool
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	if err := os.MkdirAll(filepath.Join(r.out, "logs"), 0o755); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	rep := &Report{Created: time.Now().UTC(), Host: host}
	bin := filepath.Join(r.bundle, "instructgo")
	// save rewrites report.json with what is known so far.
	save := func() error {
		rep.Summary = summarize(rep)
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(r.out, "report.json"), append(data, '\n'), 0o644)
	}
	step := func(s Step) error {
		rep.Steps = append(rep.Steps, s)
		return save()
	}
	last := func(s Step) (*Report, error) {
		rep.Complete = true
		return rep, step(s)
	}

	// The machine.
	smi := r.exec(ctx, "nvidia-smi", []string{"nvidia-smi",
		"--query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm,power.limit",
		"--format=csv,noheader,nounits"}, 30*time.Second)
	if smi.ExitCode == 0 {
		rep.GPU = parseNvidiaSMI(readFile(smi.Log))
	} else {
		rep.GPUError = smi.Tail
	}
	if v := r.exec(ctx, "version", []string{bin, "version"}, 30*time.Second); v.ExitCode == 0 {
		rep.Version = strings.TrimSpace(readFile(v.Log))
	}

	// Parity tests.
	tests, err := filepath.Glob(filepath.Join(r.bundle, "tests", "*.test"))
	if err != nil {
		return nil, err
	}
	sort.Strings(tests)
	for _, tb := range tests {
		s := r.exec(ctx, "test-"+filepath.Base(tb), []string{tb, "-test.v", "-test.count=1", "-test.timeout=" + r.timeout.String()}, r.timeout+time.Minute)
		res := TestBinary{Binary: filepath.Base(tb), ExitCode: s.ExitCode, Seconds: s.Seconds, Results: parseTestOutput(readFile(s.Log)), Log: s.Log}
		rep.Tests = append(rep.Tests, res)
		if s.ExitCode != 0 && !hasFailure(res.Results) {
			// A crash or a timeout: no FAIL line says so.
			res.Results = append(res.Results, TestResult{Name: "(binary)", Status: "FAIL", Seconds: s.Seconds})
			rep.Tests[len(rep.Tests)-1] = res
		}
		if s.Skipped != "" {
			res.Results = append(res.Results, TestResult{Name: "(binary)", Status: "SKIP"})
			rep.Tests[len(rep.Tests)-1] = res
			rep.Steps = append(rep.Steps, s)
		}
		if err := save(); err != nil {
			return nil, err
		}
	}

	// The backend as instructgo sees it.
	info := r.exec(ctx, "info", []string{bin, "--device", "cuda", "info", "--json"}, time.Minute)
	if raw := strings.TrimSpace(readFile(info.Log)); info.ExitCode == 0 && json.Valid([]byte(lastJSONObject(raw))) {
		rep.Info = json.RawMessage(lastJSONObject(raw))
	} else {
		rep.InfoError = info.Tail
	}
	if err := step(info); err != nil {
		return nil, err
	}

	// A short training run on generated text.
	text := filepath.Join(r.out, "smoke.txt")
	if err := os.WriteFile(text, []byte(smokeText(200_000)), 0o644); err != nil {
		return nil, err
	}
	if err := step(r.exec(ctx, "pretrain-smoke", []string{bin, "--device", "cuda", "pretrain",
		"--data", text, "--out", filepath.Join(r.out, "pretrain-run"), "--config", "tiny",
		"--steps", "30", "--batch", "8", "--seq", "64", "--eval-every", "0", "--save-every", "0", "--log-every", "10"}, r.timeout)); err != nil {
		return nil, err
	}

	// Every stage of the pipeline, a few steps each: the CUDA path of SFT,
	// the reward model, generation and PPO end to end.
	smokeDir := filepath.Join(r.out, "pipeline-smoke")
	if err := step(r.exec(ctx, "pipeline-smoke", []string{bin, "--device", "cuda", "pipeline", "--out", smokeDir,
		"--config", pipelineSmokeConfig}, r.timeout)); err != nil {
		return nil, err
	}
	if raw, err := os.ReadFile(filepath.Join(smokeDir, "report.json")); err == nil && json.Valid(raw) {
		rep.PipelineSmoke = json.RawMessage(raw)
		if err := save(); err != nil {
			return nil, err
		}
	}

	// Benchmarks.
	if r.skipBench {
		return last(Step{Name: "benchmarks", Skipped: "-skip-bench"})
	}
	for _, tb := range tests {
		s := r.exec(ctx, "bench-"+filepath.Base(tb), []string{tb, "-test.run=^$", "-test.bench=.", "-test.benchtime=20x", "-test.timeout=" + r.timeout.String()}, r.timeout+time.Minute)
		for _, b := range parseBenchOutput(readFile(s.Log)) {
			b.Binary = filepath.Base(tb)
			rep.Benchmarks = append(rep.Benchmarks, b)
		}
		if err := step(s); err != nil {
			return nil, err
		}
	}
	if h := r.exec(ctx, "bench-help", []string{bin, "help", "bench"}, 30*time.Second); h.ExitCode == 0 && strings.Contains(readFile(h.Log), "bench") && !strings.Contains(readFile(h.Log), "No help topic") {
		return last(r.exec(ctx, "instructgo-bench", []string{bin, "--device", "cuda", "bench"}, r.timeout))
	}
	return last(Step{Name: "instructgo-bench", Skipped: "this instructgo has no bench command"})
}

func hasFailure(rs []TestResult) bool {
	for _, t := range rs {
		if t.Status == "FAIL" {
			return true
		}
	}
	return false
}

func summarize(rep *Report) Summary {
	var s Summary
	for _, tb := range rep.Tests {
		for _, t := range tb.Results {
			if strings.Contains(t.Name, "/") {
				continue // subtests are counted in their parent
			}
			switch t.Status {
			case "PASS":
				s.TestsPassed++
			case "FAIL":
				s.TestsFailed++
			case "SKIP":
				s.TestsSkipped++
			}
		}
	}
	for _, st := range rep.Steps {
		switch {
		case st.Skipped == outOfTime:
			s.OutOfTime++
		case st.Skipped == "" && st.ExitCode != 0:
			s.StepsFailed++
		}
	}
	s.OK = rep.Complete && s.TestsFailed == 0 && s.StepsFailed == 0 && s.OutOfTime == 0 && len(rep.Tests) > 0
	return s
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}
