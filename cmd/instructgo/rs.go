package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
)

// rsCommand is `instructgo rs`: rejection-sampling fine-tuning.
func rsCommand() *cli.Command {
	d := train.DefaultRS()
	return &cli.Command{
		Name:  "rs",
		Usage: "rejection-sampling fine-tuning: SFT on the reward model's best of N samples",
		UsageText: "instructgo [global options] rs --prompts ppo.jsonl --policy SFT_DIR --reward RM_DIR --out DIR [options]\n" +
			"   instructgo [global options] rs --resume DIR",
		Description: "Samples --n responses to each of the first --max-prompts prompts from the policy, scores\n" +
			"them with the reward model (read at the final token as in ppo, less --missing-eos-penalty\n" +
			"for a response that does not end) and keeps each prompt's best in DIR/" + train.RSPicksFile + ";\n" +
			"then fine-tunes the policy on those with sft (its metrics.jsonl, summary.json and resume\n" +
			"state in DIR, the fine-tuned policy at the top of DIR). DIR/rs_summary.json compares the\n" +
			"picks' reward-model score and task score with the samples'. The sampling is seeded and\n" +
			"repeats exactly: Ctrl-C during it saves nothing, and --resume DIR samples again; during the\n" +
			"fine-tuning it saves (exit status 130) and --resume DIR continues exactly.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "prompts", Usage: "JSONL of {\"prompt\"} records (\"task\" and \"answer\" pass to the picks)"},
			&cli.StringFlag{Name: "policy", Usage: "SFT checkpoint: the sampler and the fine-tuning's start"},
			&cli.StringFlag{Name: "reward", Usage: "reward-model checkpoint that picks the best sample"},
			&cli.StringFlag{Name: "out", Usage: "run directory to write"},
			&cli.IntFlag{Name: "n", Value: d.N, Usage: "samples per prompt"},
			&cli.IntFlag{Name: "max-prompts", Value: d.MaxPrompts, Usage: "sample the first this many prompts (0: all)"},
			&cli.IntFlag{Name: "batch", Value: d.Batch, Usage: "prompts sampled together"},
			&cli.IntFlag{Name: "max-new", Value: d.MaxNew, Usage: "tokens per response at most"},
			&cli.Float64Flag{Name: "temperature", Value: exact(d.Temperature), Usage: "sampling temperature"},
			&cli.Float64Flag{Name: "missing-eos-penalty", Value: exact(d.MissingEOSPenalty), Usage: "subtracted from the score of a response that does not end"},
			&cli.Uint64Flag{Name: "seed", Value: d.Seed, Usage: "seed of the sampling and of the fine-tuning's split and order"},
			&cli.Float64Flag{Name: "epochs", Value: d.SFT.Epochs, Usage: "fine-tuning passes over the picks (when --steps is 0)"},
			&cli.IntFlag{Name: "steps", Usage: "fine-tuning optimizer steps (0: from --epochs)"},
			&cli.IntFlag{Name: "eval-every", Value: d.SFT.EvalEvery, Usage: "fine-tuning steps between validations (0: only at the end)"},
			&cli.IntFlag{Name: "eval-prompts", Value: d.SFT.EvalPrompts, Usage: "held-out picks' prompts answered greedily for the task score"},
			&cli.IntFlag{Name: "log-every", Value: d.SFT.LogEvery, Usage: "fine-tuning steps between log lines"},
			&cli.IntFlag{Name: "save-every", Value: d.SFT.SaveEvery, Usage: "fine-tuning steps between resumable saves (0: only at the end)"},
			resumeFlag,
		}, optimFlags(d.SFT.Optim)...),
		Action: runRS,
	}
}

func runRS(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, resume, err := rsConfig(c)
	if err != nil {
		return err
	}
	pc, err := model.ReadConfig(cfg.Policy)
	if err != nil {
		return fmt.Errorf("rs: policy: %w", err)
	}
	tok, err := modelTokenizer(c, cfg.Policy, pc.Tokenizer)
	if err != nil {
		return err
	}
	var sum *train.RSSummary
	if err := runTraining(c, resume, func(ctx context.Context, b gpu.Backend, opt train.RunOptions) (err error) {
		sum, err = train.RejectionSampling(ctx, b, tok, cfg, opt)
		return err
	}); err != nil || sum == nil { // nil: a finished run, nothing done
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "rs: best of %d on %d prompts: reward-model score %.3f (all samples %.3f)", sum.N, sum.Prompts, sum.PickScore, sum.SampleScore)
	if sum.PickTaskScore != nil {
		fmt.Fprintf(w, ", task score %.3f (all samples %.3f)", *sum.PickTaskScore, *sum.SampleTaskScore)
	}
	fmt.Fprintf(w, "\n")
	if s := sum.SFT; s != nil && s.TaskScore != nil {
		fmt.Fprintf(w, "  fine-tuned %d steps; greedy task score on held-out picks' prompts %.3f\n", s.Steps, *s.TaskScore)
	}
	fmt.Fprintf(w, "policy in %s\n", cfg.Out)
	return nil
}

// rsConfig is the run's configuration: the saved one with --resume, else
// the flags'.
func rsConfig(c *cli.Context) (train.RSConfig, bool, error) {
	cfg := train.DefaultRS()
	if dir := c.String("resume"); dir != "" {
		if err := readResumeConfigFile(c, filepath.Join(dir, train.RSConfigFile), &cfg); err != nil {
			return cfg, false, err
		}
		cfg.Out = dir
		return cfg, true, nil
	}
	cfg.Prompts, cfg.Policy, cfg.Reward, cfg.Out = c.String("prompts"), c.String("policy"), c.String("reward"), c.String("out")
	cfg.N, cfg.MaxPrompts, cfg.Batch, cfg.MaxNew = c.Int("n"), c.Int("max-prompts"), c.Int("batch"), c.Int("max-new")
	cfg.Temperature, cfg.MissingEOSPenalty = float32(c.Float64("temperature")), float32(c.Float64("missing-eos-penalty"))
	cfg.Seed = c.Uint64("seed")
	s := &cfg.SFT
	s.Seed, s.Epochs, s.Steps = cfg.Seed, c.Float64("epochs"), c.Int("steps")
	s.EvalEvery, s.EvalPrompts, s.LogEvery, s.SaveEvery = c.Int("eval-every"), c.Int("eval-prompts"), c.Int("log-every"), c.Int("save-every")
	s.Optim = optimFromFlags(c)
	if err := cfg.Validate(); err != nil {
		return cfg, false, usageErrorf("rs: %v", err)
	}
	return cfg, false, checkFreshOut(cfg.Out)
}
