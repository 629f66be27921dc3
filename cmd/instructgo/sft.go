package main

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
)

func sftCommand() *cli.Command {
	d := train.DefaultSFT()
	return &cli.Command{
		Name:  "sft",
		Usage: "supervised fine-tuning on demonstrations (stage 1)",
		UsageText: "instructgo [global options] sft --data sft.jsonl --out DIR (--init DIR | --config NAME) [options]\n" +
			"   instructgo [global options] sft --resume DIR",
		Description: "Trains on {\"prompt\", \"completion\"} or {\"messages\"} records with the loss on completion\n" +
			"tokens only. Holds out --val-frac of the examples; every --eval-every steps it measures the\n" +
			"validation loss and, for records of the built-in tasks (a \"task\" field), generates\n" +
			"responses and scores them. The best checkpoint by task score (else by loss) is written\n" +
			"to the top of --out; resumable state goes to DIR/resume every --save-every steps and on\n" +
			"Ctrl-C (exit status 130).",
		Flags: slices.Concat([]cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "SFT JSONL file"},
			&cli.StringFlag{Name: "out", Usage: "run directory to write"},
			&cli.StringFlag{Name: "init", Usage: "checkpoint to start from (a pretrained model)"},
			&cli.StringFlag{Name: "config", Usage: "start from a fresh model of this size instead: " + strings.Join(model.ConfigNames(), ", ")},
			&cli.Float64Flag{Name: "epochs", Value: d.Epochs, Usage: "passes over the training examples (when --steps is 0)"},
			&cli.IntFlag{Name: "token-budget", Value: d.TokenBudget, Usage: "padded tokens per micro-batch"},
			&cli.IntFlag{Name: "max-batch", Value: d.MaxBatch, Usage: "sequences per micro-batch at most"},
			&cli.IntFlag{Name: "max-len", Value: d.MaxLen, Usage: "tokens per example; longer ones lose the prompt's start, then the completion's end"},
			&cli.IntFlag{Name: "accum", Value: d.Accum, Usage: "micro-batches accumulated per step"},
			&cli.Float64Flag{Name: "dropout", Value: 0.2, Usage: "residual and embedding dropout (the paper's 0.2)"},
			&cli.Uint64Flag{Name: "seed", Value: d.Seed, Usage: "seed of the data order, hold-out split and dropout"},
			&cli.Float64Flag{Name: "val-frac", Value: d.ValFrac, Usage: "share of the examples held out for validation"},
			&cli.IntFlag{Name: "eval-prompts", Value: d.EvalPrompts, Usage: "validation prompts generated for the task score"},
			&cli.IntFlag{Name: "max-new", Value: d.MaxNew, Usage: "tokens generated per validation prompt"},
		}, stepLoopFlags(d.EvalEvery, d.LogEvery, d.SaveEvery), optimFlags(d.Optim)),
		Action: runSFT,
	}
}

func runSFT(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, resume, err := sftConfig(c)
	if err != nil {
		return err
	}
	tok, err := modelTokenizer(c, cfg.Init, cfg.Model.Tokenizer)
	if err != nil {
		return err
	}
	var sum *train.SFTSummary
	if err := runTraining(c, resume, func(ctx context.Context, b gpu.Backend, opt train.RunOptions) (err error) {
		sum, err = train.SFT(ctx, b, tok, cfg, opt)
		return err
	}); err != nil || sum == nil { // nil: a finished run, nothing done
		return err
	}
	fmt.Fprintf(c.App.Writer, "best step %d of %d: validation loss %.4f", sum.BestStep, sum.Steps, sum.BestValLoss)
	if sum.TaskScore != nil {
		fmt.Fprintf(c.App.Writer, ", task score %.3f", *sum.TaskScore)
	}
	fmt.Fprintf(c.App.Writer, "; checkpoint in %s\n", cfg.Out)
	return nil
}

func sftConfig(c *cli.Context) (train.SFTConfig, bool, error) {
	cfg := train.DefaultSFT()
	if dir := c.String("resume"); dir != "" {
		if err := readResumeConfig(c, dir, &cfg); err != nil {
			return cfg, false, err
		}
		cfg.Out = dir
		return cfg, true, nil
	}
	switch {
	case c.String("data") == "":
		return cfg, false, usageErrorf("sft needs --data FILE")
	case c.String("out") == "":
		return cfg, false, usageErrorf("sft needs --out DIR")
	case (c.String("init") == "") == (c.String("config") == ""):
		return cfg, false, usageErrorf("sft needs exactly one of --init DIR (a pretrained checkpoint) and --config NAME (a fresh model)")
	}
	var err error
	if dir := c.String("init"); dir != "" {
		cfg.Init = dir
		if cfg.Model, err = model.ReadConfig(dir); err != nil {
			return cfg, false, err
		}
	} else if cfg.Model, err = model.ConfigByName(c.String("config")); err != nil {
		return cfg, false, usageErrorf("%v", err)
	}
	cfg.Model.Dropout = float32(c.Float64("dropout"))
	cfg.Data, cfg.Out = c.String("data"), c.String("out")
	cfg.Epochs, cfg.Steps = c.Float64("epochs"), c.Int("steps")
	cfg.TokenBudget, cfg.MaxBatch, cfg.MaxLen, cfg.Accum = c.Int("token-budget"), c.Int("max-batch"), c.Int("max-len"), c.Int("accum")
	cfg.Optim = optimFromFlags(c)
	cfg.Seed, cfg.ValFrac = c.Uint64("seed"), c.Float64("val-frac")
	cfg.EvalEvery, cfg.EvalPrompts, cfg.MaxNew = c.Int("eval-every"), c.Int("eval-prompts"), c.Int("max-new")
	cfg.LogEvery, cfg.SaveEvery, cfg.SkipBadLines = c.Int("log-every"), c.Int("save-every"), c.Bool("skip-bad-lines")
	if cfg.MaxLen > cfg.Model.MaxSeqLen {
		cfg.MaxLen = cfg.Model.MaxSeqLen
	}
	if err := cfg.Validate(); err != nil {
		return cfg, false, usageErrorf("sft: %v", err)
	}
	return cfg, false, checkFreshOut(cfg.Out)
}
