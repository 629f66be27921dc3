package main

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/instructgo/instructgo/gpu/cuda/internal/cudalib"
)

type runner struct {
	bundle, out, work string
	timeout           time.Duration
	python            string
	tests             string // -test.run of the parity tests
	allowFallback     bool
	skipBench         bool
	skipBaselines     bool
	skipSmoke         bool
}

// Each step's own time limit (capped by -timeout). They add up to more
// than the default budget: they are there to stop a hung step, and the
// budget decides how far the run gets.
const (
	limitQuick     = 30 * time.Second
	limitTests     = 3 * time.Minute
	limitInfo      = time.Minute
	limitLaunch    = 90 * time.Second
	limitBenchSFT  = 3 * time.Minute
	limitBenchPPO  = 2 * time.Minute
	limitOps       = 90 * time.Second
	limitEager     = 2 * time.Minute
	limitCompile   = 3 * time.Minute
	limitVenv      = 90 * time.Second
	limitTRL       = 4 * time.Minute
	limitSmoke     = 90 * time.Second
	limitPipeline  = 3 * time.Minute
	logsTarball    = "logs.tar.gz"
	summaryFile    = "summary.txt"
	reportFile     = "report.json"
	allowFallbackV = "INSTRUCTGO_ALLOW_FALLBACK_GEMM"
	// refused starts Step.Skipped of a measurement not taken because it
	// would have run on the fallback GEMM.
	refused = "refused: "
)

// The shapes of the goals (issue 16): GPT-2 124M; the SFT step at
// B16×T1024; PPO at minibatch 64 with 64 prompt and 64 generated tokens
// (instructgo bench: an iteration is two minibatches, 128 episodes; TRL:
// the 256 episodes). The op shapes are bench's own (attention at
// T 2048: 8 sequences, 768 wide; cross-entropy 8192×50257 with --full).
const (
	goalConfig   = "gpt2"
	sftBatch     = "16"
	sftSeq       = "1024"
	ppoMiniBatch = "64"
	ppoSeq       = "128" // half prompt, half generated
	trlEpisodes  = "256"
)

// benchMatchSFT selects the benchmarks of the "sft" run: the largest square
// GEMM, the model's products at the SFT shape, the goals' attention and
// cross-entropy, and the SFT step; benchMatchNoGEMM the ones that do not
// depend on the GEMM path (a fallback GEMM, refused).
const (
	benchMatchSFT    = `^(matmul/square 8192|matmul/gpt2 .*|attention/hs(64|128) T2048 (fwd|bwd)|crossentropy/V50257 N8192|step/gpt2 sft)$`
	benchMatchNoGEMM = `^(attention/hs(64|128) T2048 (fwd|bwd)|crossentropy/V50257 N8192)$`
)

func (r *runner) limit(d time.Duration) time.Duration { return min(d, r.timeout) }

// backendEnv is the environment of the programs that open the cuda
// backend: the library search asks the same interpreter as the runner.
func (r *runner) backendEnv() []string {
	if os.Getenv(cudalib.PythonEnv) != "" {
		return nil
	}
	return []string{cudalib.PythonEnv + "=" + r.python}
}

func (r *runner) run(ctx context.Context) (*Report, error) {
	for _, dir := range []string{filepath.Join(r.work, "logs"), r.out} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
	}
	host, _ := os.Hostname()
	rep := &Report{Created: time.Now().UTC(), Host: host, Goals: []Goal{},
		InstructgoBench: map[string]json.RawMessage{}, Baselines: map[string]json.RawMessage{}}
	bin := filepath.Join(r.bundle, "instructgo")
	pyDir := filepath.Join(r.bundle, "python")
	save := func() error { return r.save(rep) }
	step := func(s Step) error {
		rep.Steps = append(rep.Steps, s)
		return save()
	}

	// 1. The machine and its libraries.
	smi := r.exec(ctx, command{name: "nvidia-smi", argv: []string{"nvidia-smi",
		"--query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm,power.limit,clocks.sm,temperature.gpu",
		"--format=csv,noheader,nounits"}, limit: limitQuick})
	if smi.ExitCode == 0 {
		rep.GPU = parseNvidiaSMI(readFile(smi.Log))
	} else {
		rep.GPUError = smi.Tail
	}
	rep.Libraries = r.libraries(ctx)
	if v := r.exec(ctx, command{name: "version", argv: []string{bin, "version"}, limit: limitQuick}); v.ExitCode == 0 {
		rep.Version = strings.TrimSpace(readFile(v.Log))
	}
	if err := save(); err != nil {
		return nil, err
	}

	// 2. The parity tests.
	tests, err := filepath.Glob(filepath.Join(r.bundle, "tests", "*.test"))
	if err != nil {
		return nil, err
	}
	sort.Strings(tests)
	for _, tb := range tests {
		s := r.exec(ctx, command{name: "test-" + filepath.Base(tb), argv: []string{tb, "-test.v", "-test.count=1",
			"-test.run=" + r.tests, "-test.timeout=" + r.limit(limitTests).String()}, limit: r.limit(limitTests) + 30*time.Second, env: r.backendEnv()})
		res := TestBinary{Binary: filepath.Base(tb), Run: r.tests, ExitCode: s.ExitCode, Seconds: s.Seconds, Results: parseTestOutput(readFile(s.Log)), Log: s.Log}
		switch {
		case s.Skipped != "":
			res.Results = append(res.Results, TestResult{Name: "(binary)", Status: "SKIP"})
			rep.Steps = append(rep.Steps, s)
		case s.ExitCode != 0 && !hasFailure(res.Results):
			// A crash or a timeout: no FAIL line says so.
			res.Results = append(res.Results, TestResult{Name: "(binary)", Status: "FAIL", Seconds: s.Seconds})
		}
		rep.Tests = append(rep.Tests, res)
		if err := save(); err != nil {
			return nil, err
		}
	}

	// 3. The backend as instructgo sees it: which GEMM libraries loaded.
	info := r.exec(ctx, command{name: "info", argv: []string{bin, "--device", "cuda", "info", "--json"}, limit: limitInfo, json: true, env: r.backendEnv()})
	if raw := jsonResult(info); raw != nil {
		rep.Info = raw
	} else {
		rep.InfoError = info.Tail
	}
	r.readGEMM(rep)
	if err := step(info); err != nil {
		return nil, err
	}

	// 4. The host cost of a launch.
	for _, tb := range tests {
		s := r.exec(ctx, command{name: "bench-launch-" + filepath.Base(tb), argv: []string{tb, "-test.run=^$",
			"-test.bench=^BenchmarkLaunch", "-test.benchtime=20000x", "-test.benchmem"}, limit: r.limit(limitLaunch), env: r.backendEnv()})
		for _, b := range parseBenchOutput(readFile(s.Log)) {
			b.Binary = filepath.Base(tb)
			rep.Benchmarks = append(rep.Benchmarks, b)
		}
		if err := step(s); err != nil {
			return nil, err
		}
	}

	// 5. instructgo bench at the goals' shapes.
	if r.skipBench {
		if err := step(Step{Name: "instructgo-bench", Skipped: "-skip-bench"}); err != nil {
			return nil, err
		}
	} else {
		gemmOK := !rep.Libraries.FallbackGEMM || r.allowFallback
		match := benchMatchSFT
		if !gemmOK {
			match = benchMatchNoGEMM
			fmt.Fprintf(os.Stderr, "== refusing GEMM and step figures: the GEMM runs our fallback kernels (%s); -allow-fallback-gemm measures them anyway\n", rep.Libraries.Loaded)
		}
		benches := []struct {
			name  string
			args  []string
			limit time.Duration
			run   bool
		}{
			{"sft", []string{"--full", "--config", goalConfig, "--batch", sftBatch, "--seq", sftSeq, "--min-time", "500ms", "--match", match}, limitBenchSFT, true},
			{"ppo", []string{"--config", goalConfig, "--batch", ppoMiniBatch, "--seq", ppoSeq, "--only", "steps", "--min-time", "500ms", "--match", "^ppo/gpt2 "}, limitBenchPPO, gemmOK},
		}
		for _, b := range benches {
			if !b.run {
				if err := step(Step{Name: "instructgo-bench-" + b.name, Skipped: refused + "the GEMM runs our fallback kernels (-allow-fallback-gemm measures it)"}); err != nil {
					return nil, err
				}
				continue
			}
			argv := append([]string{bin, "--device", "cuda", "bench", "--json"}, b.args...)
			s := r.exec(ctx, command{name: "instructgo-bench-" + b.name, argv: argv, limit: r.limit(b.limit), json: true, env: r.backendEnv()})
			if raw := jsonResult(s); raw != nil {
				rep.InstructgoBench[b.name] = raw
			}
			if err := step(s); err != nil {
				return nil, err
			}
		}
	}

	// 6. The baselines on the same machine.
	if r.skipBaselines {
		if err := step(Step{Name: "baselines", Skipped: "-skip-baselines"}); err != nil {
			return nil, err
		}
	} else {
		trainStep := []string{r.python, filepath.Join(pyDir, "train_step.py"), "--device", "cuda", "--dtype", "bf16", "--config", goalConfig,
			"--batch", sftBatch, "--seq", sftSeq, "--dropout", "0.2", "--steps", "10", "--warmup", "3", "--json"}
		venv := filepath.Join(r.work, "trl-venv")
		baselines := []struct {
			name  string
			argv  []string
			limit time.Duration
		}{
			{"pytorch_ops", []string{r.python, filepath.Join(pyDir, "ops.py"), "--min-time", "0.3"}, limitOps},
			{"pytorch_eager", trainStep, limitEager},
			{"pytorch_compile", append(trainStep, "--compile"), limitCompile},
			{"trl_venv", []string{"sh", filepath.Join(r.bundle, "trl-venv.sh"), r.python, filepath.Join(r.bundle, "wheels"), venv}, limitVenv},
			{"trl_ppo", []string{filepath.Join(venv, "bin", "python"), filepath.Join(pyDir, "ppo_iteration.py"), "--device", "cuda", "--config", goalConfig,
				"--episodes", trlEpisodes, "--minibatch", ppoMiniBatch, "--prompt", "64", "--response", "64", "--iterations", "2", "--warmup", "1", "--json"}, limitTRL},
		}
		for _, b := range baselines {
			s := r.exec(ctx, command{name: b.name, argv: b.argv, limit: r.limit(b.limit), json: true, env: []string{"PYTHONUNBUFFERED=1"}})
			if raw := jsonResult(s); raw != nil && b.name != "trl_venv" {
				rep.Baselines[b.name] = raw
			}
			if err := step(s); err != nil {
				return nil, err
			}
		}
	}

	// 7. Smoke runs of the command line.
	if r.skipSmoke {
		return r.finish(rep, Step{Name: "smoke", Skipped: "-skip-smoke"})
	}
	text := filepath.Join(r.work, "smoke.txt")
	if err := os.WriteFile(text, []byte(smokeText(200_000)), 0o644); err != nil {
		return nil, err
	}
	if err := step(r.exec(ctx, command{name: "pretrain-smoke", argv: []string{bin, "--device", "cuda", "pretrain",
		"--data", text, "--out", filepath.Join(r.work, "pretrain-run"), "--config", "tiny",
		"--steps", "30", "--batch", "8", "--seq", "64", "--eval-every", "0", "--save-every", "0", "--log-every", "10"},
		limit: r.limit(limitSmoke), env: r.backendEnv()})); err != nil {
		return nil, err
	}
	smokeDir := filepath.Join(r.work, "pipeline-smoke")
	s := r.exec(ctx, command{name: "pipeline-smoke", argv: []string{bin, "--device", "cuda", "pipeline", "--out", smokeDir,
		"--config", pipelineSmokeConfig}, limit: r.limit(limitPipeline), env: r.backendEnv()})
	if raw, err := os.ReadFile(filepath.Join(smokeDir, "report.json")); err == nil && json.Valid(raw) {
		rep.PipelineSmoke = json.RawMessage(raw)
	}
	return r.finish(rep, s)
}

// pipelineSmokeConfig sizes the pipeline smoke run: every stage of the
// default pipeline on the tiny model with a few steps each (24 s on the
// 2-core CPU).
const pipelineSmokeConfig = `{"synth": {"sft": 200, "rm": 100, "ppo": 100, "eval": 20, "pretrain_bytes": 100000},
 "pretrain": {"steps": 20, "eval_every": 0, "save_every": 0}, "sft": {"steps": 20, "eval_every": 10, "save_every": 0},
 "rm": {"steps": 10, "eval_every": 5, "save_every": 0}, "ppo": {"iterations": 3}, "sft_sample_labels": 20, "eval_best_of_n": 2}`

// finish records the last step and marks the report complete.
func (r *runner) finish(rep *Report, last Step) (*Report, error) {
	rep.Steps = append(rep.Steps, last)
	rep.Complete = true
	return rep, r.save(rep)
}

// libraries runs the cuda backend's library search (the same code) with
// the runner's interpreter, and prints what it finds.
func (r *runner) libraries(ctx context.Context) Libraries {
	l := Libraries{Python: r.python, FallbackAllowed: r.allowFallback}
	path, err := cudalib.PythonSysPath(ctx, r.python)
	if err != nil {
		l.PythonError = err.Error()
	}
	l.PythonPath = path
	env := cudalib.Host()
	env.PythonPath = func() []string { return path }
	found := func(list []string, err error) []string {
		if err != nil {
			return []string{err.Error()}
		}
		return list
	}
	l.Cublas = found(cudalib.Search("cublas", cudalib.CublasEnv, cudalib.Majors, env))
	l.CublasLt = found(cudalib.LtSearch("", 0, env))
	fmt.Fprintf(os.Stderr, "== libraries: python %s; cuBLAS search %v; cuBLASLt search %v\n", r.python, l.Cublas, l.CublasLt)
	return l
}

// readGEMM reads from info which GEMM libraries the backend loaded and
// whether a GEMM path runs the fallback kernels.
func (r *runner) readGEMM(rep *Report) {
	var info struct {
		Backend string `json:"backend"`
		GEMM    string `json:"gemm"`
	}
	l := &rep.Libraries
	l.FallbackGEMM = true // unless info says otherwise
	if rep.Info == nil || json.Unmarshal(rep.Info, &info) != nil || info.GEMM == "" {
		l.Loaded = "unknown: instructgo info gave no GEMM description"
		fmt.Fprintf(os.Stderr, "== libraries loaded: %s\n", l.Loaded)
		return
	}
	l.Loaded = info.GEMM
	l.CublasLoaded = strings.Contains(info.GEMM, "cuBLAS from ")
	l.CublasLtLoaded = strings.Contains(info.GEMM, "cuBLASLt from ")
	l.FallbackGEMM = !l.CublasLoaded || !l.CublasLtLoaded
	fmt.Fprintf(os.Stderr, "== libraries loaded: %s\n", l.Loaded)
}

// save rewrites report.json, summary.txt and logs.tar.gz in the output
// folder with what is known so far.
func (r *runner) save(rep *Report) error {
	rep.Summary = summarize(rep)
	rep.Goals = computeGoals(rep)
	data, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.out, reportFile), append(data, '\n'), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(r.out, summaryFile), []byte(goalTable(rep)), 0o644); err != nil {
		return err
	}
	return packLogs(filepath.Join(r.work, "logs"), filepath.Join(r.out, logsTarball))
}

// packLogs writes every file of dir into a gzipped tar at dst.
func packLogs(dir, dst string) error {
	f, err := os.Create(dst + ".tmp")
	if err != nil {
		return err
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if err := addFile(tw, filepath.Join(dir, e.Name()), "logs/"+e.Name()); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(dst+".tmp", dst)
}

func addFile(tw *tar.Writer, path, name string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	// A log still being written may grow while it is copied: take the
	// size seen now.
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: fi.Size(), ModTime: fi.ModTime()}); err != nil {
		return err
	}
	_, err = io.CopyN(tw, f, fi.Size())
	return err
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
		case strings.HasPrefix(st.Skipped, refused):
			s.Refused++
		case st.Skipped == "" && st.ExitCode != 0:
			s.StepsFailed++
		}
	}
	s.OK = rep.Complete && s.TestsFailed == 0 && s.StepsFailed == 0 && s.OutOfTime == 0 && s.Refused == 0 && len(rep.Tests) > 0
	return s
}

func readFile(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return string(b)
}
