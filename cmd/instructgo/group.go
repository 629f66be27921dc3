package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
)

// rewardTasks is the --reward value that selects the built-in tasks'
// scorers.
const rewardTasks = "tasks"

// grpoCommand is `instructgo grpo`: GRPO (and Dr. GRPO) from an SFT model.
func grpoCommand() *cli.Command {
	d := train.DefaultGRPO()
	return &cli.Command{
		Name:  "grpo",
		Usage: "GRPO or Dr. GRPO: group-relative policy optimisation, no value model",
		UsageText: "instructgo [global options] grpo --prompts ppo.jsonl --policy SFT_DIR --reward RM_DIR|tasks --out DIR [options]\n" +
			"   instructgo [global options] grpo --resume DIR",
		Description: "Each iteration samples --group responses to each of --prompts-per-iter prompts from the\n" +
			"policy and rewards them: --reward RM_DIR with a reward model's score, --reward tasks with\n" +
			"the built-in tasks' scorers (verifiable rewards; the prompts must name their task), both\n" +
			"flags together with the sum. A response's advantage is its reward minus its group's mean,\n" +
			"divided by the group's standard deviation; its loss is PPO's clipped surrogate averaged\n" +
			"over its tokens plus β (--kl-coef) times the k3 estimate of the KL to the frozen SFT\n" +
			"model; the step averages over the minibatch's responses (Shao et al. 2024). --dr-grpo\n" +
			"(Liu et al. 2025) drops the division by the standard deviation and sums a response's\n" +
			"token losses over a constant (--max-new) instead of its length. The last iterate is saved\n" +
			"at the top of --out with metrics.jsonl (reward, rm_score, task_score, kl, clip_frac,\n" +
			"flat_groups: groups with one reward for all). Resumable (--resume) and interruptible\n" +
			"(Ctrl-C saves, exit status 130) like ppo.",
		Flags:  append(groupFlags(d), &cli.BoolFlag{Name: "dr-grpo", Usage: "Dr. GRPO: no std normalisation, token sums over the constant --max-new"}),
		Action: func(c *cli.Context) error { return runGroup(c, train.MethodGRPO) },
	}
}

// rlooCommand is `instructgo rloo`: RLOO from an SFT model.
func rlooCommand() *cli.Command {
	d := train.DefaultRLOO()
	return &cli.Command{
		Name:  "rloo",
		Usage: "RLOO: REINFORCE with a leave-one-out baseline, no value model",
		UsageText: "instructgo [global options] rloo --prompts ppo.jsonl --policy SFT_DIR --reward RM_DIR|tasks --out DIR [options]\n" +
			"   instructgo [global options] rloo --resume DIR",
		Description: "Each iteration samples --group (K) responses to each of --prompts-per-iter prompts and\n" +
			"rewards them like grpo (--reward RM_DIR, tasks, or both). The KL is in the reward: a\n" +
			"response's reward is the score minus β (--kl-coef) times Σ over its tokens of log π −\n" +
			"log π_ref. Its advantage is that reward minus the mean of the other K−1 responses' (the\n" +
			"leave-one-out baseline), and the loss is REINFORCE on the response's sequence log-prob,\n" +
			"−advantage · Σ_t log π(y_t), averaged over the minibatch (Ahmadian et al. 2024; TRL's\n" +
			"RLOOTrainer); a minibatch after the rollout's first update weights its tokens by the\n" +
			"clipped importance ratio, as PPO does. Saved, logged and resumable like grpo.",
		Flags:  groupFlags(d),
		Action: func(c *cli.Context) error { return runGroup(c, train.MethodRLOO) },
	}
}

// groupFlags are the flags GRPO and RLOO share, with d's defaults.
func groupFlags(d train.GroupConfig) []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "prompts", Usage: "JSONL of {\"prompt\"} records (with \"task\" and \"answer\" for --reward tasks)"},
		&cli.StringFlag{Name: "policy", Usage: "SFT checkpoint (policy and KL reference)"},
		&cli.StringSliceFlag{Name: "reward", Usage: "a reward-model checkpoint, or \"tasks\" for the built-in tasks' scorers; repeat for the sum of both"},
		&cli.StringFlag{Name: "out", Usage: "run directory to write"},
		&cli.IntFlag{Name: "iterations", Value: d.Iterations, Usage: "rollout and update rounds"},
		&cli.IntFlag{Name: "prompts-per-iter", Value: d.PromptsPerIter, Usage: "prompts per rollout"},
		&cli.IntFlag{Name: "group", Value: d.Group, Usage: "responses sampled per prompt"},
		&cli.IntFlag{Name: "minibatch", Value: d.MiniBatch, Usage: "responses per update"},
		&cli.IntFlag{Name: "epochs", Value: d.Epochs, Usage: "passes over each rollout"},
		&cli.IntFlag{Name: "max-new", Value: d.MaxNew, Usage: "tokens per response at most"},
		&cli.Float64Flag{Name: "temperature", Value: exact(d.Temperature), Usage: "rollout sampling temperature"},
		&cli.Float64Flag{Name: "missing-eos-penalty", Value: exact(d.MissingEOSPenalty), Usage: "subtracted from the reward of a response that does not end"},
		&cli.Float64Flag{Name: "kl-coef", Value: exact(d.KLCoef), Usage: "β, the weight of the KL to the reference"},
		&cli.Float64Flag{Name: "clip", Value: exact(d.ClipEps), Usage: "ratio clip ε"},
		&cli.Uint64Flag{Name: "seed", Value: d.Seed, Usage: "seed of the prompt order and sampling"},
		&cli.IntFlag{Name: "log-every", Value: d.LogEvery, Usage: "iterations between log lines"},
		&cli.IntFlag{Name: "save-every", Value: d.SaveEvery, Usage: "iterations between saves of the policy and the resumable state (0: only at the end)"},
		resumeFlag,
	}, optimFlags(d.Optim)...)
}

func runGroup(c *cli.Context, method string) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, resume, err := groupConfig(c, method)
	if err != nil {
		return err
	}
	pc, err := model.ReadConfig(cfg.Policy)
	if err != nil {
		return fmt.Errorf("%s: policy: %w", method, err)
	}
	tok, err := modelTokenizer(c, cfg.Policy, pc.Tokenizer)
	if err != nil {
		return err
	}
	run := train.GRPO
	if method == train.MethodRLOO {
		run = train.RLOO
	}
	var sum *train.GroupSummary
	if err := runTraining(c, resume, func(ctx context.Context, b gpu.Backend, opt train.RunOptions) (err error) {
		sum, err = run(ctx, b, tok, cfg, opt)
		return err
	}); err != nil || sum == nil { // nil: a finished run, nothing done
		return err
	}
	w := c.App.Writer
	fmt.Fprintf(w, "%s: mean reward %.3f → %.3f over %d iterations, KL to SFT %.3f", method, sum.FirstReward, sum.LastReward, sum.Iterations, sum.LastKL)
	if sum.LastTaskScore != nil {
		fmt.Fprintf(w, ", rollout task score %.3f → %.3f", *sum.FirstTaskScore, *sum.LastTaskScore)
	}
	fmt.Fprintf(w, "; policy in %s\n", cfg.Out)
	return nil
}

// groupConfig is the run's configuration: the saved one with --resume,
// else the flags'.
func groupConfig(c *cli.Context, method string) (train.GroupConfig, bool, error) {
	cfg := train.DefaultGRPO()
	if method == train.MethodRLOO {
		cfg = train.DefaultRLOO()
	}
	if dir := c.String("resume"); dir != "" {
		if err := readResumeConfig(c, dir, &cfg); err != nil {
			return cfg, false, err
		}
		if cfg.Method != method {
			return cfg, false, usageErrorf("%s holds a %s run; resume it with instructgo %s", dir, cfg.Method, cfg.Method)
		}
		cfg.Out = dir
		return cfg, true, nil
	}
	for _, r := range c.StringSlice("reward") {
		switch {
		case r == rewardTasks && !cfg.TaskReward:
			cfg.TaskReward = true
		case r != rewardTasks && cfg.Reward == "":
			cfg.Reward = r
		default:
			return cfg, false, usageErrorf("%s: --reward takes one reward model and %q at most once each", method, rewardTasks)
		}
	}
	cfg.Prompts, cfg.Policy, cfg.Out = c.String("prompts"), c.String("policy"), c.String("out")
	cfg.Iterations, cfg.PromptsPerIter, cfg.Group = c.Int("iterations"), c.Int("prompts-per-iter"), c.Int("group")
	cfg.MiniBatch, cfg.Epochs, cfg.MaxNew = c.Int("minibatch"), c.Int("epochs"), c.Int("max-new")
	cfg.Temperature, cfg.MissingEOSPenalty = float32(c.Float64("temperature")), float32(c.Float64("missing-eos-penalty"))
	cfg.KLCoef, cfg.ClipEps = float32(c.Float64("kl-coef")), float32(c.Float64("clip"))
	cfg.DrGRPO = method == train.MethodGRPO && c.Bool("dr-grpo")
	cfg.Optim = optimFromFlags(c)
	cfg.Seed, cfg.LogEvery, cfg.SaveEvery = c.Uint64("seed"), c.Int("log-every"), c.Int("save-every")
	if err := cfg.Validate(); err != nil {
		return cfg, false, usageErrorf("%s: %v", method, err)
	}
	return cfg, false, checkFreshOut(cfg.Out)
}
