package main

import (
	"context"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train"
)

func pretrainCommand() *cli.Command {
	d := train.DefaultOptim()
	return &cli.Command{
		Name:  "pretrain",
		Usage: "train a causal language model on plain text (stage 0)",
		UsageText: "instructgo [global options] pretrain --data FILE|DIR [--data ...] --out DIR [--config tiny | --init DIR] [options]\n" +
			"   instructgo [global options] pretrain --resume DIR",
		Description: "Reads plain-text files (or .jsonl files of {\"text\": ...}), holds out the last --val-frac\n" +
			"of the tokens, trains with AdamW and a cosine schedule, and writes a Hugging Face style\n" +
			"checkpoint (config.json, model.safetensors) with run_config.json, metrics.jsonl and\n" +
			"summary.json to --out. It saves resumable state (DIR/resume) every --save-every steps and\n" +
			"on Ctrl-C, which exits with status 130; --resume DIR continues such a run exactly, with\n" +
			"the configuration saved in DIR/run_config.json.",
		Flags: append([]cli.Flag{
			&cli.StringSliceFlag{Name: "data", Usage: "text file, .jsonl of {\"text\"}, or directory of text files (repeat for several)"},
			&cli.StringFlag{Name: "out", Usage: "run directory to write"},
			&cli.StringFlag{Name: "config", Value: "tiny", Usage: "model size for a fresh model: " + strings.Join(model.ConfigNames(), ", ")},
			&cli.StringFlag{Name: "init", Usage: "continue from this checkpoint directory instead of a fresh model"},
			&cli.IntFlag{Name: "steps", Value: 300, Usage: "optimizer steps"},
			&cli.IntFlag{Name: "batch", Value: 16, Usage: "sequences per micro-batch"},
			&cli.IntFlag{Name: "seq", Value: 128, Usage: "tokens per sequence (at most the model's context)"},
			&cli.IntFlag{Name: "accum", Value: 1, Usage: "micro-batches accumulated per step"},
			&cli.Float64Flag{Name: "dropout", Value: 0, Usage: "residual and embedding dropout"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the initialisation, data order and dropout"},
			&cli.Float64Flag{Name: "val-frac", Value: 0.1, Usage: "fraction of the text held out for validation"},
			&cli.IntFlag{Name: "eval-every", Value: 100, Usage: "steps between held-out evaluations (0: only at the end)"},
			&cli.IntFlag{Name: "eval-batches", Value: 8, Usage: "held-out batches per evaluation"},
			&cli.IntFlag{Name: "log-every", Value: 10, Usage: "steps between log lines and metrics records"},
			&cli.IntFlag{Name: "save-every", Value: 100, Usage: "steps between resumable saves (0: only at the end)"},
			resumeFlag,
		}, optimFlags(d)...),
		Action: runPretrain,
	}
}

func runPretrain(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, resume, err := pretrainConfig(c)
	if err != nil {
		return err
	}
	tok, err := tokenizer.ForModel(cfg.Init, cfg.Model.Tokenizer)
	if err != nil {
		return err
	}
	var sum *train.PretrainSummary
	if err := runTraining(c, resume, func(ctx context.Context, b gpu.Backend, opt train.RunOptions) (err error) {
		sum, err = train.Pretrain(ctx, b, tok, cfg, opt)
		return err
	}); err != nil || sum == nil { // nil: a finished run, nothing done
		return err
	}
	fmt.Fprintf(c.App.Writer, "held-out loss %.4f nats/token (unigram baseline %.4f), %d steps, %.0f tokens/s; checkpoint in %s\n",
		sum.ValLoss, sum.UnigramLoss, sum.Steps, sum.TokensPerSec, sum.CheckpointPath)
	return nil
}

// pretrainConfig resolves the command line into a run configuration: the
// saved one with --resume, else the flags'.
func pretrainConfig(c *cli.Context) (train.PretrainConfig, bool, error) {
	var cfg train.PretrainConfig
	if dir := c.String("resume"); dir != "" {
		if err := readResumeConfig(c, dir, &cfg); err != nil {
			return cfg, false, err
		}
		cfg.Out = dir
		return cfg, true, nil
	}
	if len(c.StringSlice("data")) == 0 {
		return cfg, false, usageErrorf("pretrain needs at least one --data FILE")
	}
	if c.String("out") == "" {
		return cfg, false, usageErrorf("pretrain needs --out DIR")
	}
	var mc model.Config
	var err error
	if dir := c.String("init"); dir != "" {
		if mc, err = model.ReadConfig(dir); err != nil {
			return cfg, false, err
		}
	} else if mc, err = model.ConfigByName(c.String("config")); err != nil {
		return cfg, false, usageErrorf("%v", err)
	}
	mc.Dropout = float32(c.Float64("dropout"))
	cfg = train.PretrainConfig{
		Data: c.StringSlice("data"), Model: mc, Init: c.String("init"), Out: c.String("out"),
		Steps: c.Int("steps"), Batch: c.Int("batch"), Seq: c.Int("seq"), Accum: c.Int("accum"),
		Optim: optimFromFlags(c),
		Seed:  c.Uint64("seed"), ValFrac: c.Float64("val-frac"),
		EvalEvery: c.Int("eval-every"), EvalBatches: c.Int("eval-batches"), LogEvery: c.Int("log-every"),
		SaveEvery: c.Int("save-every"),
	}
	if err := cfg.Validate(); err != nil {
		return cfg, false, usageErrorf("pretrain: %v", err)
	}
	return cfg, false, checkFreshOut(cfg.Out)
}
