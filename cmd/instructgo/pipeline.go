package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/pipeline"
)

func pipelineCommand() *cli.Command {
	return &cli.Command{
		Name:      "pipeline",
		Usage:     "run InstructGPT end to end on the built-in tasks: data, pretrain, SFT, RM, PPO-ptx, evaluation",
		UsageText: "instructgo [global options] pipeline [--out DIR] [--seed N] [--methods ppo,dpo] [--rounds N] [--sizes tiny,small] [--config FILE.json | JSON] [--print-config]",
		Description: "Each stage writes a sub-directory of --out (data, pretrain, sft, label: rankings of SFT\n" +
			"samples for the reward model, rm, ppo); a stage that finished in an earlier run is not\n" +
			"repeated and an interrupted one resumes from its saved state, so an interrupted pipeline\n" +
			"continues where it stopped (a directory made with another configuration, such as another\n" +
			"--seed, is refused). It ends with a table and writes report.md (tables, per-task\n" +
			"win rates, training curves, and a best-of-8 check of the reward model on the SFT policy's\n" +
			"own samples), report.json and eval_samples.jsonl (every held-out prompt's SFT and PPO\n" +
			"answers). Ctrl-C saves the running stage and exits with status 130.\n" +
			"Half of the synthetic demonstrations open with \"sure, \", a writer's habit the labeler\n" +
			"marks down, which PPO can learn to drop; --config '{\"synth\": {\"demo_habit\": 0}}' makes\n" +
			"them the bare answers.\n" +
			"About 8 minutes on two CPU cores. Under mpirun or launch it runs as data-parallel ranks: the\n" +
			"training stages data parallel, the data, labelling, evaluation and report on rank 0.\n" +
			"--methods ppo,dpo trains each method from the same SFT model (DPO on the comparisons the\n" +
			"reward model saw) and the report compares them: task score, win rate over SFT, KL to SFT\n" +
			"on each policy's own samples, pretraining loss, time, and a plot of score against KL.\n" +
			"--rounds 3 iterates as InstructGPT's later data collection did: each round ranks samples of\n" +
			"the last PPO policy, retrains the reward model on all comparisons so far and continues\n" +
			"PPO from that policy (KL still to SFT); the report adds a table and the reward\n" +
			"distribution per round.\n" +
			"--sizes tiny,small runs the recipe at each model size in its own sub-directory of --out (the\n" +
			"same data, PPO with and without ptx) and compares, as the paper's Figure 1, the labeler's win\n" +
			"rate of every model (pretrained, pretrained with a few-shot prompt, SFT, PPO, PPO-ptx) at every\n" +
			"size against SFT at the largest, and the few-shot skill score of each (the alignment tax):\n" +
			"sizes.md, sizes.json, sizes.png. small costs about 6.5 times tiny per step on the CPU.\n" +
			"--config sets any part of the configuration from JSON over the defaults, inline or in a\n" +
			"file: a few fields (--config '{\"ppo\": {\"iterations\": 120}}') or a whole pipeline_config.json\n" +
			"of an earlier run, which reruns it (its paths move to --out; --seed, when given, overrides\n" +
			"its seed).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "out", Value: filepath.Join("runs", "pipeline"), Usage: "run directory"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the synthetic data (the stages keep their own seeds)"},
			&cli.StringFlag{Name: "methods", Usage: "the methods that train a policy from the SFT model, compared in the report, comma-separated: " +
				strings.Join(pipeline.MethodNames(), ", ") + " (default: ppo, or --config's)"},
			&cli.IntFlag{Name: "rounds", Value: 1, Usage: "iterated rounds: each ranks samples of the last PPO policy, retrains the reward model on every comparison so far and continues PPO (default: 1, or --config's)"},
			&cli.StringFlag{Name: "sizes", Usage: "model sizes to run the recipe at and compare, comma-separated named configs (e.g. tiny,small); --config applies to each"},
			&cli.StringFlag{Name: "config", Usage: "configuration fields over the defaults: a JSON file (e.g. an earlier run's pipeline_config.json) or inline JSON"},
			&cli.BoolFlag{Name: "print-config", Usage: "print the resolved configuration as JSON (a starting point for --config) and exit"},
		},
		Action: runPipeline,
	}
}

func runPipeline(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	cfg := pipeline.Default(c.String("out"))
	if arg := c.String("config"); arg != "" {
		var err error
		if strings.HasPrefix(strings.TrimSpace(arg), "{") {
			cfg, err = pipeline.ParseConfig([]byte(arg), c.String("out"))
		} else {
			cfg, err = pipeline.LoadConfig(arg, c.String("out"))
		}
		if err != nil {
			return usageErrorf("pipeline --config: %v", err)
		}
	}
	if c.IsSet("seed") || c.String("config") == "" {
		cfg.Synth.Seed = c.Uint64("seed")
	}
	if c.IsSet("methods") {
		cfg.Methods = strings.Split(c.String("methods"), ",")
		for i := range cfg.Methods {
			cfg.Methods[i] = strings.TrimSpace(cfg.Methods[i])
		}
	}
	if c.IsSet("rounds") {
		cfg.Rounds = c.Int("rounds")
	}
	if c.Bool("print-config") {
		return writeJSON(c, cfg)
	}
	if c.IsSet("sizes") {
		return runSizes(c, cfg, splitList([]string{c.String("sizes")}))
	}
	if err := cfg.Validate(); err != nil {
		return usageErrorf("pipeline: %v", err)
	}
	var rep *pipeline.Report
	if err := runTraining(c, false, func(ctx context.Context, b gpu.Backend, opt train.RunOptions) (err error) {
		rep, err = pipeline.Run(ctx, b, cfg, opt)
		return err
	}); err != nil {
		return err
	}
	if err := pipeline.WriteSummary(c.App.Writer, rep); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "report: %s\n", filepath.Join(cfg.Out, "report.md"))
	return nil
}

// runSizes runs the pipeline at each size (pipeline.RunSizes) and prints
// the comparison.
func runSizes(c *cli.Context, cfg pipeline.Config, sizes []string) error {
	if err := pipeline.ValidSizes(sizes); err != nil {
		return usageErrorf("pipeline --sizes: %v", err)
	}
	for _, s := range sizes {
		sc, err := pipeline.SizeConfig(cfg, s)
		if err == nil {
			err = sc.Validate()
		}
		if err != nil {
			return usageErrorf("pipeline --sizes: %s: %v", s, err)
		}
	}
	var rep *pipeline.SizesReport
	if err := runTraining(c, false, func(ctx context.Context, b gpu.Backend, opt train.RunOptions) (err error) {
		rep, err = pipeline.RunSizes(ctx, b, cfg, sizes, opt)
		return err
	}); err != nil {
		return err
	}
	if err := pipeline.WriteSizesSummary(c.App.Writer, rep); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "report: %s\n", filepath.Join(cfg.Out, "sizes.md"))
	return nil
}
