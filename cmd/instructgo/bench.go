package main

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/bench"
	"github.com/instructgo/instructgo/model"
)

func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "benchmark the ops and training steps on this machine in the run's --precision, as fractions of its measured ceilings and of the card's published peak (roofline, MFU)",
		UsageText: "instructgo [global options] bench [--json] [--full] [--config tiny,gpt2] [--batch N] [--seq N] [--only ops|steps] [--match REGEXP]\n" +
			"instructgo bench --compare A.json B.json [--json]",
		Description: "Runs in the global --precision (auto: bf16 on cuda, fp32 on the cpu): the steps' models use\n" +
			"it and the ops run in its activation dtype. Measures the machine's ceilings first (cpu: the\n" +
			"float32 FMA peak and the memory bandwidth; a GPU: the GEMM rate of a large MatMul in the\n" +
			"precision and the copy bandwidth, through the backend) and looks up the card's published\n" +
			"dense peak for the precision (H100, H200, A100, A10, L4, L40S, RTX 4090; none on the cpu),\n" +
			"then times the ops (matmul, fused attention forward and backward in TFLOP/s with\n" +
			"FlashAttention's FLOP count, log-softmax, cross-entropy in GB/s of logits moved, layernorm,\n" +
			"AdamW, decode attention, sampling) and the steps of each --config (an SFT step, a\n" +
			"reward-model step, a PPO-ptx iteration split into generation, scoring and update). Every\n" +
			"figure is the median of repeated timed runs after a warm-up, with its spread, its fraction\n" +
			"of the measured ceiling and, for FLOP rates, of the published peak; steps report MFU with\n" +
			"llm.c's FLOP count (6·N + 6·L·C·T per token), against both. The table goes to stdout (--json:\n" +
			"one JSON report with the machine, build and settings), progress to stderr. Defaults take\n" +
			"30-40 s on two cores; --full adds larger shapes, the gpt2 config (about 7 GB of memory for\n" +
			"its PPO models) and more samples, and takes several minutes.\n" +
			"--compare A.json B.json prints B's figures over A's, with a warning when the two reports'\n" +
			"precisions differ. Results and their reading are kept in\n" +
			"bench/RESULTS.md.",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print the report as JSON (with --compare: the comparison)"},
			&cli.BoolFlag{Name: "full", Usage: "larger shapes, more samples, and the gpt2 config unless --config is given (several minutes)"},
			&cli.StringFlag{Name: "config", Value: "tiny", Usage: "model configs of the steps and model-shaped ops, comma-separated: " + strings.Join(model.ConfigNames(), ", ")},
			&cli.IntFlag{Name: "batch", Usage: "sequences per step (the PPO minibatch; 0: each config's default, tiny 16, gpt2 1)"},
			&cli.IntFlag{Name: "seq", Usage: "tokens per sequence (a PPO episode is half prompt, half generated; 0: tiny 128, gpt2 256)"},
			&cli.StringFlag{Name: "only", Usage: "run only the op benchmarks (ops) or the step benchmarks (steps)"},
			&cli.StringFlag{Name: "match", Usage: "run only the benchmarks whose group/name matches this regular expression (the ceilings always run)"},
			&cli.DurationFlag{Name: "min-time", Usage: "least time spent sampling each benchmark and ceiling", DefaultText: "400ms per op, 1s per step and ceiling; --full: 1s, 3s, 2s"},
			&cli.StringFlag{Name: "compare", Usage: "compare two reports of bench --json: --compare A.json B.json prints B/A"},
		},
		Action: runBench,
	}
}

func runBench(c *cli.Context) (err error) {
	if c.String("compare") != "" {
		return runBenchCompare(c)
	}
	if err := noArgs(c); err != nil {
		return err
	}
	opt, err := benchOptions(c)
	if err != nil {
		return err
	}
	b, prec, err := openBackendPrecision(c)
	if err != nil {
		return err
	}
	device := backendDevice(b.Name())
	defer func() {
		if cerr := b.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s backend: %w", device, cerr)
		}
	}()
	ctx, stop := interruptContext(c, "interrupted: stopping after the current measurement (Ctrl-C again to quit at once)")
	defer stop()
	opt.Precision = prec
	opt.Machine = benchMachine(ctx, device)
	opt.Log = *logger(c)
	logger(c).Info().Strs("configs", opt.Configs).Bool("full", opt.Full).Str("only", opt.Only).Str("precision", prec.String()).
		Msg("bench: measuring the ceilings, then each benchmark")
	rep, err := bench.Run(ctx, b, opt)
	if err != nil {
		if ctx.Err() != nil {
			return cli.Exit(fmt.Sprintf("bench: interrupted (%v)", err), 130)
		}
		return err
	}
	logger(c).Info().Float64("seconds", rep.Seconds).Int("figures", len(rep.Results)).Msg("bench done")
	if c.Bool("json") {
		return rep.WriteJSON(c.App.Writer)
	}
	return rep.WriteTable(c.App.Writer)
}

// benchOptions reads and checks the flags of a benchmark run.
func benchOptions(c *cli.Context) (bench.Options, error) {
	opt := bench.Options{Full: c.Bool("full"), Only: c.String("only"), Batch: c.Int("batch"), Seq: c.Int("seq"), Seed: 1}
	switch opt.Only {
	case "", "ops", "steps":
	default:
		return opt, usageErrorf("invalid --only %q: want ops or steps", opt.Only)
	}
	if opt.Batch < 0 || opt.Seq < 0 {
		return opt, usageErrorf("invalid --batch %d / --seq %d: want a positive count, or 0 for the defaults", opt.Batch, opt.Seq)
	}
	configs := c.String("config")
	if opt.Full && !c.IsSet("config") {
		configs = "tiny,gpt2"
	}
	for _, name := range strings.Split(configs, ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		cfg, err := model.ConfigByName(name)
		if err != nil {
			return opt, usageErrorf("invalid --config: %v", err)
		}
		if s := bench.DefaultShape(name, opt.Batch, opt.Seq); s.Seq > cfg.MaxSeqLen || s.Seq < 4 {
			return opt, usageErrorf("invalid --seq %d for config %s: want 4..%d", s.Seq, name, cfg.MaxSeqLen)
		}
		opt.Configs = append(opt.Configs, name)
	}
	if len(opt.Configs) == 0 {
		return opt, usageErrorf("invalid --config %q: name at least one of %s", configs, strings.Join(model.ConfigNames(), ", "))
	}
	if m := c.String("match"); m != "" {
		re, err := regexp.Compile(m)
		if err != nil {
			return opt, usageErrorf("invalid --match %q: %v", m, err)
		}
		opt.Match = re
	}
	opt.Timing, opt.StepTiming, opt.CeilingTime = bench.DefaultTiming(), bench.DefaultStepTiming(), time.Second
	if opt.Full {
		opt.Timing.MinTime, opt.StepTiming.MinTime, opt.CeilingTime = time.Second, 3*time.Second, 2*time.Second
	}
	if c.IsSet("min-time") {
		d := c.Duration("min-time")
		if d < 0 {
			return opt, usageErrorf("invalid --min-time %v: want a duration of 0 or more", d)
		}
		opt.Timing.MinTime, opt.StepTiming.MinTime, opt.CeilingTime = d, d, max(d, 20*time.Millisecond)
	}
	return opt, nil
}

// runBenchCompare prints B/A for two reports: --compare A.json B.json.
func runBenchCompare(c *cli.Context) error {
	if c.NArg() != 1 {
		return usageErrorf("--compare takes two reports: instructgo bench --compare A.json B.json (got %d after A)", c.NArg())
	}
	a, err := bench.ReadReport(c.String("compare"))
	if err != nil {
		return err
	}
	b, err := bench.ReadReport(c.Args().First())
	if err != nil {
		return err
	}
	cmp := bench.Compare(a, b)
	if c.Bool("json") {
		return writeJSON(c, cmp)
	}
	return cmp.WriteTable(c.App.Writer)
}

// backendDevice is the device part of a backend's name: "cpu" of "cpu (2
// threads)", "cuda:0" of "cuda:0 (NVIDIA H100 80GB HBM3, ...)".
func backendDevice(name string) string {
	if f := strings.Fields(name); len(f) > 0 {
		return f[0]
	}
	return name
}

// benchMachine describes the machine and build for a report; Run adds the
// backend's part.
func benchMachine(ctx context.Context, device string) bench.Machine {
	mi, bd := DescribeMachine(), describeBuild()
	m := bench.Machine{
		CPUModel: mi.CPUModel, LogicalCores: mi.LogicalCores, SIMD: mi.SIMD, MemTotalBytes: mi.MemTotalBytes,
		GOOS: mi.GOOS, GOARCH: mi.GOARCH, GoVersion: bd.GoVersion,
		Version: bd.Version, Commit: bd.Commit, Modified: bd.Modified, Device: device,
	}
	if m.Commit == "unknown" {
		// Not stamped (go run, go test): ask git, when the working
		// directory is a checkout.
		if out, err := commandOutput(ctx, "git", "rev-parse", "HEAD"); err == nil {
			m.Commit = strings.TrimSpace(out)
		}
	}
	if strings.HasPrefix(device, "cuda") {
		if out, err := commandOutput(ctx, "nvidia-smi"); err == nil {
			m.GPUDriver, m.CUDAVersion = parseNvidiaSMI(out)
		}
	}
	return m
}

// commandOutput runs a short command and returns its standard output.
func commandOutput(ctx context.Context, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).Output()
	return string(out), err
}

var (
	smiDriver = regexp.MustCompile(`Driver Version:\s*([0-9][0-9.]*)`)
	smiCUDA   = regexp.MustCompile(`CUDA Version:\s*([0-9][0-9.]*)`)
)

// parseNvidiaSMI reads the driver version and the driver's CUDA version
// from nvidia-smi's banner; "" for what it does not find.
func parseNvidiaSMI(out string) (driver, cuda string) {
	if m := smiDriver.FindStringSubmatch(out); m != nil {
		driver = m[1]
	}
	if m := smiCUDA.FindStringSubmatch(out); m != nil {
		cuda = m[1]
	}
	return driver, cuda
}
