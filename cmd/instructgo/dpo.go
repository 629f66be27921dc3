package main

import (
	"context"
	"fmt"
	"slices"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
)

// dpoCommand is `instructgo dpo`: Direct Preference Optimization from an
// SFT model on the reward model's comparisons.
func dpoCommand() *cli.Command {
	d := train.DefaultDPO()
	return &cli.Command{
		Name:  "dpo",
		Usage: "train a policy on ranked comparisons with DPO (Rafailov et al. 2023), no reward model",
		UsageText: "instructgo [global options] dpo --data rm.jsonl --init SFT_DIR --out DIR [options]\n" +
			"   instructgo [global options] dpo --resume DIR",
		Description: "Starts the policy from the SFT checkpoint; the reference is the same model, frozen: the\n" +
			"log-probs it gives every response are computed once and kept in DIR/reference_logps.json.\n" +
			"A response's implicit reward is r = β·(log π(y|x) − log π_ref(y|x)), summed over the\n" +
			"response's tokens (the prompt's carry none). Each response is forwarded once; a ranking's\n" +
			"loss is the Plackett–Luce negative log-likelihood of its order under the rewards (for a\n" +
			"pair, −log σ(r_chosen − r_rejected)), or with --pairs the mean over its C(K,2) pairs of\n" +
			"that pair loss, or with --ipo IPO's mean of (h − 1/(2β))², h the pair's log-ratio\n" +
			"difference. --label-smoothing ε mixes in the reversed ranking with weight ε (conservative\n" +
			"DPO on pairs). The data are the reward model's (pairs or rankings; margins are ignored) and\n" +
			"--val-frac of the distinct prompts are held out as rm holds them out: the implicit reward's\n" +
			"pairwise accuracy against the labels (and, for the built-in tasks, against the noise-free\n" +
			"order) and the greedy task score of --eval-prompts of them go to metrics.jsonl with TRL's\n" +
			"rewards/* and logps/* metrics (best against worst response of a ranking). No dropout. The\n" +
			"last step's policy is saved at the top of --out. Resumable (--resume) and interruptible\n" +
			"(Ctrl-C saves, exit status 130) like rm.",
		Flags: slices.Concat([]cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "comparison JSONL: rankings {\"prompt\", \"responses\", \"ranking\"} or pairs {\"prompt\", \"chosen\", \"rejected\"}"},
			&cli.StringFlag{Name: "init", Usage: "SFT checkpoint: the starting policy and the frozen reference"},
			&cli.StringFlag{Name: "out", Usage: "run directory to write"},
			&cli.Float64Flag{Name: "beta", Value: d.Loss.Beta, Usage: "β: the scale of the implicit reward, how far from the reference the policy may go"},
			&cli.BoolFlag{Name: "pairs", Usage: "the mean over a ranking's C(K,2) pairs instead of the Plackett–Luce likelihood"},
			&cli.BoolFlag{Name: "ipo", Usage: "IPO's squared loss on the pairs instead of DPO's"},
			&cli.Float64Flag{Name: "label-smoothing", Value: d.Loss.LabelSmoothing, Usage: "ε: the probability that a ranking is reversed (conservative DPO); not with --ipo"},
			&cli.Float64Flag{Name: "epochs", Value: d.Epochs, Usage: "passes over the training prompts (when --steps is 0)"},
			&cli.IntFlag{Name: "batch", Value: d.Batch, Usage: "prompts per optimizer step"},
			&cli.IntFlag{Name: "max-prompts", Value: d.MaxPrompts, Usage: "train on a seeded subset of this many prompts (0: all)"},
			&cli.IntFlag{Name: "token-budget", Value: d.TokenBudget, Usage: "padded tokens per micro-batch"},
			&cli.IntFlag{Name: "max-rows", Value: d.MaxRows, Usage: "responses per micro-batch at most"},
			&cli.IntFlag{Name: "max-len", Value: d.MaxLen, Usage: "tokens per sequence; longer ones lose the prompt's start, then the response's end"},
			&cli.Uint64Flag{Name: "seed", Value: d.Seed, Usage: "seed of the split and the data order"},
			&cli.Float64Flag{Name: "val-frac", Value: d.ValFrac, Usage: "share of the distinct prompts held out for validation"},
			&cli.IntFlag{Name: "eval-prompts", Value: d.EvalPrompts, Usage: "held-out task prompts answered greedily at each validation (0: none)"},
			&cli.IntFlag{Name: "max-new", Value: d.MaxNew, Usage: "tokens generated per validation prompt"},
		}, stepLoopFlags(d.EvalEvery, d.LogEvery, d.SaveEvery), optimFlags(d.Optim)),
		Action: runDPO,
	}
}

func runDPO(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, resume, err := dpoConfig(c)
	if err != nil {
		return err
	}
	tok, err := modelTokenizer(c, cfg.Init, cfg.Model.Tokenizer)
	if err != nil {
		return err
	}
	var sum *train.DPOSummary
	rank := 0
	if err := runTraining(c, resume, func(ctx context.Context, b gpu.Backend, opt train.RunOptions) (err error) {
		if opt.Comm != nil {
			rank = opt.Comm.Rank()
		}
		sum, err = train.DPO(ctx, b, tok, cfg, opt)
		return err
	}); err != nil || sum == nil || rank != 0 { // nil: a finished run, nothing done; rank 0 alone validates and prints
		return err
	}
	w := c.App.Writer
	if sum.Val == nil {
		return fmt.Errorf("dpo: the run ended without its final evaluation")
	}
	v := sum.Val.Preference
	fmt.Fprintf(w, "dpo after %d steps (%.2f epochs, %s): implicit reward's held-out pairwise accuracy %.3f on %d pairs (0.5 at the start), mean margin %.3f\n",
		sum.Steps, sum.Epochs, formatSeconds(sum.Seconds), v.Accuracy, v.Pairs, v.MeanMargin)
	if v.TruthAccuracy != nil && sum.Ceiling != nil {
		fmt.Fprintf(w, "  against the noise-free order: %.3f on %d pairs (one labeler: %.3f)\n", *v.TruthAccuracy, v.TruthPairs, sum.Ceiling.LabelerVsTruth)
	}
	if ts := sum.Val.TaskScore; ts != nil && sum.StartTaskScore != nil {
		fmt.Fprintf(w, "  greedy task score on %d held-out prompts: %.3f (SFT model: %.3f)\n", cfg.EvalPrompts, *ts, *sum.StartTaskScore)
	}
	fmt.Fprintf(w, "policy in %s\n", cfg.Out)
	return nil
}

func dpoConfig(c *cli.Context) (train.DPOConfig, bool, error) {
	cfg := train.DefaultDPO()
	if dir := c.String("resume"); dir != "" {
		if err := readResumeConfig(c, dir, &cfg); err != nil {
			return cfg, false, err
		}
		cfg.Out = dir
		return cfg, true, nil
	}
	switch {
	case c.String("data") == "":
		return cfg, false, usageErrorf("dpo needs --data FILE")
	case c.String("out") == "":
		return cfg, false, usageErrorf("dpo needs --out DIR")
	case c.String("init") == "":
		return cfg, false, usageErrorf("dpo needs --init DIR (the SFT checkpoint)")
	case c.Bool("pairs") && c.Bool("ipo"):
		return cfg, false, usageErrorf("dpo: --pairs and --ipo are two losses; IPO is always pairwise")
	}
	var err error
	cfg.Init = c.String("init")
	if cfg.Model, err = model.ReadConfig(cfg.Init); err != nil {
		return cfg, false, err
	}
	cfg.Model.Dropout = 0
	cfg.Data, cfg.Out = c.String("data"), c.String("out")
	cfg.Loss.Beta, cfg.Loss.LabelSmoothing = c.Float64("beta"), c.Float64("label-smoothing")
	switch {
	case c.Bool("pairs"):
		cfg.Loss.Form = train.LossPairs
	case c.Bool("ipo"):
		cfg.Loss.Form = train.LossIPO
	}
	cfg.Epochs, cfg.Steps, cfg.Batch, cfg.MaxPrompts = c.Float64("epochs"), c.Int("steps"), c.Int("batch"), c.Int("max-prompts")
	cfg.TokenBudget, cfg.MaxRows, cfg.MaxLen = c.Int("token-budget"), c.Int("max-rows"), c.Int("max-len")
	cfg.Optim = optimFromFlags(c)
	cfg.Seed, cfg.ValFrac = c.Uint64("seed"), c.Float64("val-frac")
	cfg.EvalEvery, cfg.EvalPrompts, cfg.MaxNew = c.Int("eval-every"), c.Int("eval-prompts"), c.Int("max-new")
	cfg.LogEvery, cfg.SaveEvery, cfg.SkipBadLines = c.Int("log-every"), c.Int("save-every"), c.Bool("skip-bad-lines")
	if cfg.MaxLen > cfg.Model.MaxSeqLen {
		cfg.MaxLen = cfg.Model.MaxSeqLen
	}
	if err := cfg.Validate(); err != nil {
		return cfg, false, usageErrorf("dpo: %v", err)
	}
	return cfg, false, checkFreshOut(cfg.Out)
}
