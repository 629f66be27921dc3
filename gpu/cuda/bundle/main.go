// Command bundle-runner is the program inside the GPU bundle (`make
// gpu-bundle`). On a GPU machine without Go, in one command that fits a
// borrowed GPU's time limit, it checks the cuda backend and measures issue
// 16's goals against their baselines, and writes one JSON report:
//
//	bundle-runner [-bundle DIR] [-out DIR] [-work DIR] [-budget 8m] [-timeout 4m]
//	              [-python python3] [-tests REGEXP] [-allow-fallback-gemm]
//	              [-skip-bench] [-skip-baselines] [-skip-smoke]
//
// The steps, most important first, each within its own limit (at most
// -timeout) and all within -budget (a step the budget no longer allows is
// recorded as out of time):
//
//  1. the machine: nvidia-smi (card, driver, clocks), and where the CUDA
//     math libraries are: the files the cuda backend's library search
//     (gpu/cuda/internal/cudalib, the same code) finds, python3's
//     site-packages included;
//  2. the cuda parity tests: the gpu/cuda test binary (CUDA against the
//     CPU backend, every op), -tests selecting which;
//  3. `instructgo --device cuda info`: which cuBLAS and cuBLASLt the
//     backend loaded, from which files, or why it runs its fallback GEMM
//     kernels. Figures measured with the fallback GEMM are refused (the
//     GEMM-bound benchmarks are not run) unless -allow-fallback-gemm or
//     INSTRUCTGO_ALLOW_FALLBACK_GEMM=1 says otherwise;
//  4. the host cost of a kernel launch (the test binary's BenchmarkLaunch
//     and BenchmarkLaunchCu, ours against gorgonia.org/cu's);
//  5. `instructgo bench` at the goals' shapes: the GEMM ceiling, the GPT-2
//     124M SFT step at B16×T1024 (MFU), causal attention at head sizes 64
//     and 128, T 2048, forward and backward, cross-entropy over 8192×50257
//     logits, then a GPT-2 PPO iteration (minibatch 64, 64 prompt + 64
//     generated tokens) with its generation (decode) rate;
//  6. the baselines on the same machine: PyTorch's training step
//     (bench/pytorch/train_step.py, eager and torch.compile, bf16 autocast,
//     SDPA), PyTorch's ops (bench/pytorch/ops.py), and TRL's PPO iteration
//     and Hugging Face generate (bench/trl/ppo_iteration.py, in a virtual
//     environment made offline from the bundle's wheels: trl-venv.sh);
//  7. smoke runs of the command line: a short `instructgo pretrain` and a
//     pipeline with a few steps of every stage.
//
// report.json holds every figure: the card and driver, the libraries, the
// test results, the benchmark reports, the baselines' results and the
// goals, each with instructgo's figure, its MFU where it has one, and its
// ratio to each baseline (above 1: instructgo is faster). It is rewritten
// after every step, so a run killed from outside still leaves what it
// found. The output folder gets only report.json, summary.txt (the goals
// as a table, also printed at the end) and logs.tar.gz (every step's log):
// a GPU lease returns few files. Everything else (logs, runs, the
// virtual environment) goes to the work folder. It exits 0 when every test
// passed and every step succeeded, 1 otherwise.
//
// It is plain Go (no cgo, no build tag) so that it runs anywhere and is
// tested by the ordinary `go test ./...`. It imports the standard library
// and gpu/cuda/internal/cudalib only (not package bench, whose report it
// reads: see goals.go).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

func main() {
	r := &runner{}
	flag.StringVar(&r.bundle, "bundle", ".", "the bundle directory (instructgo, tests/*.test, python/, wheels/)")
	flag.StringVar(&r.out, "out", "", "directory for report.json, summary.txt and logs.tar.gz (default $OUT, else ./gpu-report)")
	flag.StringVar(&r.work, "work", "", "directory for logs, runs and the TRL environment (default a new temporary one)")
	flag.DurationVar(&r.timeout, "timeout", 4*time.Minute, "time limit of any one step")
	budget := flag.Duration("budget", 8*time.Minute, "time limit of all steps together")
	flag.StringVar(&r.python, "python", "python3", "the Python interpreter with torch, transformers and accelerate")
	flag.StringVar(&r.tests, "tests", ".", "regular expression of the parity tests to run (-test.run of the test binary)")
	flag.BoolVar(&r.allowFallback, "allow-fallback-gemm", os.Getenv(allowFallbackV) == "1",
		"measure GEMM and step speeds even when cuBLAS or cuBLASLt did not load (env INSTRUCTGO_ALLOW_FALLBACK_GEMM=1)")
	flag.BoolVar(&r.skipBench, "skip-bench", false, "skip instructgo's benchmarks")
	flag.BoolVar(&r.skipBaselines, "skip-baselines", false, "skip the PyTorch and TRL baselines")
	flag.BoolVar(&r.skipSmoke, "skip-smoke", false, "skip the pretrain and pipeline smoke runs")
	flag.Parse()
	if r.out == "" {
		r.out = os.Getenv("OUT")
	}
	if r.out == "" {
		r.out = "gpu-report"
	}
	if r.work == "" {
		dir, err := os.MkdirTemp("", "instructgo-bundle-")
		if err != nil {
			fmt.Fprintln(os.Stderr, "bundle-runner:", err)
			os.Exit(2)
		}
		r.work = dir
	}
	ctx, cancel := context.WithTimeout(context.Background(), *budget)
	defer cancel()
	rep, err := r.run(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bundle-runner:", err)
		os.Exit(2)
	}
	fmt.Print(goalTable(rep))
	fmt.Printf("report: %s (tests %d passed, %d failed, %d skipped; steps ok: %v; work folder %s)\n",
		filepath.Join(r.out, "report.json"), rep.Summary.TestsPassed, rep.Summary.TestsFailed, rep.Summary.TestsSkipped, rep.Summary.OK, r.work)
	if !rep.Summary.OK {
		os.Exit(1)
	}
}

// Report is report.json.
type Report struct {
	Created   time.Time        `json:"created"`
	Host      string           `json:"host"`
	GPU       []map[string]any `json:"gpu,omitempty"` // nvidia-smi, one entry per GPU
	GPUError  string           `json:"gpu_error,omitempty"`
	Version   string           `json:"instructgo_version,omitempty"`
	Libraries Libraries        `json:"libraries"`
	Info      json.RawMessage  `json:"info,omitempty"` // instructgo --device cuda info --json
	InfoError string           `json:"info_error,omitempty"`
	Tests     []TestBinary     `json:"tests"`
	// Benchmarks are the Go benchmarks of the test binaries (the launch
	// path's host cost).
	Benchmarks []Benchmark `json:"benchmarks,omitempty"`
	// InstructgoBench are the reports of `instructgo bench --json`, by
	// run: "sft" (the ceilings, the ops and the SFT step), "ppo".
	InstructgoBench map[string]json.RawMessage `json:"instructgo_bench,omitempty"`
	// Baselines are the JSON results of the baseline scripts, by run:
	// "pytorch_eager", "pytorch_compile", "pytorch_ops", "trl_ppo".
	Baselines map[string]json.RawMessage `json:"baselines,omitempty"`
	// Goals are issue 16's figures: instructgo's, and its ratio to each
	// baseline.
	Goals []Goal `json:"goals"`
	Steps []Step `json:"steps"`
	// PipelineSmoke is the report.json of the pipeline smoke run.
	PipelineSmoke json.RawMessage `json:"pipeline_smoke,omitempty"`
	// Complete is false while the runner is still at work (report.json is
	// rewritten after every step) or when it was stopped.
	Complete bool    `json:"complete"`
	Summary  Summary `json:"summary"`
}

// Libraries says where the CUDA math libraries are and which the backend
// loaded.
type Libraries struct {
	// Python is the interpreter asked for its sys.path, PythonPath its
	// answer, PythonError why there is none.
	Python      string   `json:"python"`
	PythonPath  []string `json:"python_sys_path,omitempty"`
	PythonError string   `json:"python_error,omitempty"`
	// Cublas and CublasLt are the backend's search order for each library
	// (cudalib.Search, cudalib.LtSearch without a cuBLAS loaded): sonames,
	// which the dynamic loader resolves, and the files found on disk.
	Cublas   []string `json:"cublas_search"`
	CublasLt []string `json:"cublaslt_search"`
	// Loaded is what the backend reports it loaded (info's gemm).
	Loaded         string `json:"loaded,omitempty"`
	CublasLoaded   bool   `json:"cublas_loaded"`
	CublasLtLoaded bool   `json:"cublaslt_loaded"`
	// FallbackGEMM is true when a GEMM path runs our fallback kernels (or
	// the backend did not say), FallbackAllowed when such figures are
	// measured anyway (-allow-fallback-gemm).
	FallbackGEMM    bool `json:"fallback_gemm"`
	FallbackAllowed bool `json:"fallback_allowed"`
}

// TestBinary is one compiled test binary's run.
type TestBinary struct {
	Binary   string       `json:"binary"`
	Run      string       `json:"run"` // its -test.run
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
	Stdout   string   `json:"stdout,omitempty"` // its standard output, where kept apart
	Skipped  string   `json:"skipped,omitempty"`
}

// Summary counts the results.
type Summary struct {
	TestsPassed  int `json:"tests_passed"`
	TestsFailed  int `json:"tests_failed"`
	TestsSkipped int `json:"tests_skipped"`
	StepsFailed  int `json:"steps_failed"`
	// OutOfTime counts the steps the time budget left no room for.
	OutOfTime int `json:"steps_out_of_time"`
	// Refused counts the measurements not taken on the fallback GEMM.
	Refused int  `json:"steps_refused"`
	OK      bool `json:"ok"`
}
