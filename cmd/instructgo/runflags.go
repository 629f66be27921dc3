package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/train"
)

// stepLoopFlags are the step loop's flags that sft, rm and dpo share: how
// many steps, how often the run validates, logs and saves (with these
// defaults), whether bad data lines are skipped, and --resume.
func stepLoopFlags(evalEvery, logEvery, saveEvery int) []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "steps", Value: 0, Usage: "optimizer steps (0: from --epochs)"},
		&cli.IntFlag{Name: "eval-every", Value: evalEvery, Usage: "steps between validations (0: only at the end)"},
		&cli.IntFlag{Name: "log-every", Value: logEvery, Usage: "steps between log lines and metrics records"},
		&cli.IntFlag{Name: "save-every", Value: saveEvery, Usage: "steps between resumable saves (0: only at the end)"},
		&cli.BoolFlag{Name: "skip-bad-lines", Usage: "skip and count malformed records instead of stopping"},
		resumeFlag,
	}
}

// optimFlags are the AdamW and schedule flags every training command
// shares, with d's values as defaults.
func optimFlags(d train.OptimConfig) []cli.Flag {
	return []cli.Flag{
		&cli.Float64Flag{Name: "lr", Value: exact(d.LR), Usage: "peak learning rate"},
		&cli.IntFlag{Name: "warmup", Value: d.Warmup, Usage: "linear warmup steps"},
		&cli.Float64Flag{Name: "min-lr-frac", Value: exact(d.MinLRFrac), Usage: "cosine decay ends at lr × this"},
		&cli.Float64Flag{Name: "weight-decay", Value: exact(d.WeightDecay), Usage: "AdamW decoupled weight decay (matrices and embeddings)"},
		&cli.Float64Flag{Name: "max-grad-norm", Value: exact(d.MaxGradNorm), Usage: "global gradient-norm clip (0: off)"},
	}
}

// optimFromFlags reads the flags optimFlags defined.
func optimFromFlags(c *cli.Context) train.OptimConfig {
	d := train.DefaultOptim()
	d.LR = float32(c.Float64("lr"))
	d.Warmup = c.Int("warmup")
	d.MinLRFrac = float32(c.Float64("min-lr-frac"))
	d.WeightDecay = float32(c.Float64("weight-decay"))
	d.MaxGradNorm = float32(c.Float64("max-grad-norm"))
	return d
}

// resumeFlag continues an interrupted run.
var resumeFlag = &cli.StringFlag{Name: "resume", Usage: "continue the interrupted run in this directory (no other options)"}

// readResumeConfig loads the run configuration saved in dir into cfg,
// refusing other options: a resumed run must be the run it continues.
func readResumeConfig(c *cli.Context, dir string, cfg any) error {
	return readResumeConfigFile(c, filepath.Join(dir, train.RunConfigFile), cfg)
}

// readResumeConfigFile is readResumeConfig for a run whose configuration
// is the file at path.
func readResumeConfigFile(c *cli.Context, path string, cfg any) error {
	for _, f := range c.Command.Flags {
		if name := f.Names()[0]; name != resumeFlag.Name && c.IsSet(name) {
			return usageErrorf("--resume continues with the run's saved configuration; drop --%s", name)
		}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	if err := json.Unmarshal(data, cfg); err != nil {
		return fmt.Errorf("resume %s: %w", path, err)
	}
	return nil
}

// checkFreshOut refuses to start a new run over an existing one.
func checkFreshOut(out string) error {
	if train.HasState(out) {
		return usageErrorf("%s already holds a run; continue it with --resume %s or choose another --out", out, out)
	}
	return nil
}

// exact widens a float32 default to the float64 with the same shortest
// decimal form, so --help shows 0.001 rather than 0.0010000000474974513.
func exact(x float32) float64 {
	v, _ := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
	return v
}

// runTraining opens the backend and runs a training stage with a context
// that Ctrl-C or SIGTERM cancels (see interruptContext) and the command's
// log and progress view; an interrupted stage (which has saved its state)
// ends with exit status 130.
func runTraining(c *cli.Context, resume bool, run func(ctx context.Context, b gpu.Backend, opt train.RunOptions) error) error {
	dtype, err := saveDType(c)
	if err != nil {
		return err
	}
	b, prec, err := openBackendPrecision(c)
	if err != nil {
		return err
	}
	defer b.Close()
	comm, err := openComm(c, b)
	if err != nil {
		return err
	}
	if comm != nil {
		defer comm.Close()
	}
	ctx, stop := interruptContext(c, "interrupted: finishing the current step and saving (Ctrl-C again to quit at once, unsaved)")
	defer stop()
	if err := run(ctx, b, train.RunOptions{Log: rankView(c, comm, *logger(c)), Progress: progress(c), Resume: resume, Precision: prec, SaveDType: dtype,
		AllowNonFinite: c.Bool(flagAllowNonFinite), AllowChangedData: c.Bool(flagAllowChangedData), Comm: comm}); err != nil {
		if errors.Is(err, train.ErrFinished) {
			// Nothing to do is no failure: say so, change nothing.
			logger(c).Info().Msg(err.Error())
			return nil
		}
		if ctx.Err() != nil {
			return cli.Exit(err.Error(), 130)
		}
		return err
	}
	return nil
}

// interruptContext returns a context that the first Ctrl-C or SIGTERM
// cancels, logging msg. After that signal the default handling is back,
// so a second Ctrl-C ends the program at once, without waiting for work
// that cannot stop early (sampling a batch, an evaluation) or for a save.
// stop releases the signals.
func interruptContext(c *cli.Context, msg string) (ctx context.Context, stop func()) {
	ctx, cancel := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-done:
		case <-ctx.Done():
			cancel()
			if c.Context.Err() == nil {
				logger(c).Warn().Msg(msg)
			}
		}
	}()
	return ctx, func() {
		close(done) // before cancel, which ends ctx too
		cancel()
	}
}
