package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
)

func ppoCommand() *cli.Command {
	d := train.DefaultPPO()
	return &cli.Command{
		Name:  "ppo",
		Usage: "PPO-ptx against a reward model (stage 3)",
		UsageText: "instructgo [global options] ppo --prompts ppo.jsonl --policy SFT_DIR --reward RM_DIR --out DIR\n" +
			"   [--ptx pretrain.txt] [options]\n" +
			"   instructgo [global options] ppo --resume DIR",
		Description: "Samples responses to the prompts from the policy, scores them with the reward model,\n" +
			"penalises the per-token KL to the frozen SFT model (β), computes GAE advantages with a\n" +
			"value function initialised from the reward model, and takes clipped PPO steps mixed with\n" +
			"the pretraining loss on --ptx text (γ). The EMA of the policy weights is saved to --out;\n" +
			"resumable state (policy, value function, their optimizers, the EMA, β and the data\n" +
			"positions) goes to DIR/resume every --save-every iterations and on Ctrl-C (exit status\n" +
			"130), and --resume DIR continues such a run exactly.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "prompts", Usage: "JSONL of {\"prompt\"} records"},
			&cli.StringSliceFlag{Name: "ptx", Usage: "pretraining text for the ptx term (repeatable; none: plain PPO)"},
			&cli.StringFlag{Name: "policy", Usage: "SFT checkpoint (policy and KL reference)"},
			&cli.StringFlag{Name: "reference", Usage: "another KL reference than --policy (e.g. the SFT model when --policy continues an earlier PPO run)"},
			&cli.StringFlag{Name: "reward", Usage: "reward-model checkpoint (reward and value-function init)"},
			&cli.StringFlag{Name: "out", Usage: "run directory to write"},
			&cli.IntFlag{Name: "iterations", Value: d.Iterations, Usage: "rollout and update rounds"},
			&cli.IntFlag{Name: "episodes", Value: d.Episodes, Usage: "prompts per rollout (paper: 512)"},
			&cli.IntFlag{Name: "minibatch", Value: d.MiniBatch, Usage: "episodes per update (paper: 64)"},
			&cli.IntFlag{Name: "ppo-epochs", Value: d.Epochs, Usage: "passes over each rollout"},
			&cli.IntFlag{Name: "max-new", Value: d.MaxNew, Usage: "tokens per response at most"},
			&cli.Float64Flag{Name: "temperature", Value: exact(d.Temperature), Usage: "rollout sampling temperature"},
			&cli.IntFlag{Name: "gen-batch", Value: d.GenBatch, Usage: "episodes generated together (0: on a GPU as many as half its free memory holds, up to --episodes; on the CPU a minibatch at a time); the tokens are the same"},
			&cli.Float64Flag{Name: "missing-eos-penalty", Value: exact(d.MissingEOSPenalty), Usage: "subtracted from the score of a response that does not end"},
			&cli.Float64Flag{Name: "kl-coef", Value: exact(d.KLCoef), Usage: "β, the per-token KL penalty"},
			&cli.Float64Flag{Name: "kl-target", Usage: "adaptive β aiming at this KL per episode (0: fixed β)"},
			&cli.IntFlag{Name: "kl-horizon", Value: d.KLHorizon, Usage: "episodes over which the adaptive controller acts"},
			&cli.StringFlag{Name: "kl-estimator", Value: "k1", Usage: "k1 (log π − log π_ref) or k3"},
			&cli.Float64Flag{Name: "gamma", Value: exact(d.Gamma), Usage: "GAE discount"},
			&cli.Float64Flag{Name: "lambda", Value: exact(d.Lambda), Usage: "GAE λ"},
			&cli.Float64Flag{Name: "clip", Value: exact(d.ClipEps), Usage: "PPO ratio clip ε"},
			&cli.Float64Flag{Name: "value-clip", Value: exact(d.ValueClip), Usage: "value-loss clip"},
			&cli.Float64Flag{Name: "entropy-coef", Usage: "entropy bonus"},
			&cli.Float64Flag{Name: "reward-clip", Usage: "clip scores to ±this (0: off)"},
			&cli.Float64Flag{Name: "ptx-coef", Value: exact(d.PtxCoef), Usage: "γ, weight of the pretraining loss (paper: 27.8)"},
			&cli.IntFlag{Name: "ptx-batch", Value: d.PtxBatch, Usage: "pretraining sequences per update"},
			&cli.IntFlag{Name: "ptx-seq", Value: d.PtxSeq, Usage: "tokens per pretraining sequence"},
			&cli.Float64Flag{Name: "ema", Value: exact(d.EMADecay), Usage: "EMA decay of the saved policy"},
			&cli.Float64Flag{Name: "lr", Value: exact(d.PolicyOptim.LR), Usage: "policy learning rate"},
			&cli.Float64Flag{Name: "value-lr", Value: exact(d.ValueOptim.LR), Usage: "value-function learning rate"},
			&cli.Uint64Flag{Name: "seed", Value: d.Seed, Usage: "seed of the prompt order, sampling and dropout"},
			&cli.IntFlag{Name: "log-every", Value: d.LogEvery, Usage: "iterations between log lines"},
			&cli.IntFlag{Name: "save-every", Value: d.SaveEvery, Usage: "iterations between saves of the EMA policy and the resumable state (0: only at the end)"},
			resumeFlag,
		},
		Action: runPPO,
	}
}

func runPPO(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg, resume, err := ppoConfig(c)
	if err != nil {
		return err
	}
	pc, err := model.ReadConfig(cfg.Policy)
	if err != nil {
		return fmt.Errorf("ppo: policy: %w", err)
	}
	tok, err := modelTokenizer(c, cfg.Policy, pc.Tokenizer)
	if err != nil {
		return err
	}
	var sum *train.PPOSummary
	if err := runTraining(c, resume, func(ctx context.Context, b gpu.Backend, opt train.RunOptions) (err error) {
		sum, err = train.PPO(ctx, b, tok, cfg, opt)
		return err
	}); err != nil || sum == nil { // nil: a finished run, nothing done
		return err
	}
	fmt.Fprintf(c.App.Writer, "mean RM score %.3f → %.3f over %d iterations, KL to SFT %.3f; EMA policy in %s\n",
		sum.FirstScore, sum.LastScore, sum.Iterations, sum.LastKL, cfg.Out)
	return nil
}

// ppoConfig is the run's configuration: the saved one with --resume, else
// the flags'.
func ppoConfig(c *cli.Context) (train.PPOConfig, bool, error) {
	cfg := train.DefaultPPO()
	if dir := c.String("resume"); dir != "" {
		if err := readResumeConfig(c, dir, &cfg); err != nil {
			return cfg, false, err
		}
		cfg.Out = dir
		return cfg, true, nil
	}
	cfg.Prompts, cfg.Ptx, cfg.Policy, cfg.Reward, cfg.Out = c.String("prompts"), c.StringSlice("ptx"), c.String("policy"), c.String("reward"), c.String("out")
	cfg.Reference = c.String("reference")
	cfg.Iterations, cfg.Episodes, cfg.MiniBatch, cfg.Epochs = c.Int("iterations"), c.Int("episodes"), c.Int("minibatch"), c.Int("ppo-epochs")
	cfg.MaxNew, cfg.Temperature, cfg.MissingEOSPenalty = c.Int("max-new"), float32(c.Float64("temperature")), float32(c.Float64("missing-eos-penalty"))
	cfg.GenBatch = c.Int("gen-batch")
	cfg.KLCoef, cfg.KLTarget, cfg.KLHorizon = float32(c.Float64("kl-coef")), float32(c.Float64("kl-target")), c.Int("kl-horizon")
	switch c.String("kl-estimator") {
	case "k1":
		cfg.KLEstimator = 0
	case "k3":
		cfg.KLEstimator = 1
	default:
		return cfg, false, usageErrorf("invalid --kl-estimator %q: want k1 or k3", c.String("kl-estimator"))
	}
	cfg.Gamma, cfg.Lambda = float32(c.Float64("gamma")), float32(c.Float64("lambda"))
	cfg.ClipEps, cfg.ValueClip, cfg.EntropyCoef = float32(c.Float64("clip")), float32(c.Float64("value-clip")), float32(c.Float64("entropy-coef"))
	cfg.RewardClip = float32(c.Float64("reward-clip"))
	cfg.PtxCoef, cfg.PtxBatch, cfg.PtxSeq = float32(c.Float64("ptx-coef")), c.Int("ptx-batch"), c.Int("ptx-seq")
	cfg.EMADecay = float32(c.Float64("ema"))
	cfg.PolicyOptim.LR, cfg.ValueOptim.LR = float32(c.Float64("lr")), float32(c.Float64("value-lr"))
	cfg.Seed, cfg.LogEvery, cfg.SaveEvery = c.Uint64("seed"), c.Int("log-every"), c.Int("save-every")
	if err := cfg.Validate(); err != nil {
		return cfg, false, usageErrorf("ppo: %v", err)
	}
	return cfg, false, checkFreshOut(cfg.Out)
}
