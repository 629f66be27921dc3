package main

import (
	"fmt"
	"maps"
	"slices"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/tasks"
)

func rmBestOfNCommand() *cli.Command {
	return &cli.Command{
		Name:      "best-of-n",
		Usage:     "check a reward model on a policy's own samples before PPO: best of n by the reward model vs a random sample vs the ideal pick",
		UsageText: "instructgo [global options] rm best-of-n --model RM_DIR --policy SFT_DIR --data eval.jsonl [-n 8] [--json]",
		Description: "Samples -n responses of the policy to each prompt of the built-in tasks ({\"prompt\", \"task\",\n" +
			"\"answer\"}, e.g. data synth's eval.jsonl) at --temperature and reports the mean task score of\n" +
			"the greedy response, of one sample, of the sample the reward model scores highest and of the\n" +
			"one the simulated labeler's noise-free utility ranks first (the ideal reward), each also as\n" +
			"the labeler's win rate against the greedy response, and the reward model's accuracy on pairs\n" +
			"of samples of the same prompt. PPO behaves much like best-of-n sampling: a reward model\n" +
			"whose pick is no better than a random sample gives PPO nothing to climb.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "reward-model checkpoint directory"},
			&cli.StringFlag{Name: "policy", Usage: "language-model checkpoint to sample from (the SFT model PPO would start from)"},
			&cli.StringFlag{Name: "data", Usage: "JSONL of {\"prompt\", \"task\", \"answer\"} records"},
			&cli.IntFlag{Name: "n", Value: 8, Usage: "samples per prompt (≥ 2)"},
			&cli.Float64Flag{Name: "temperature", Value: 1, Usage: "sampling temperature (> 0; PPO's rollouts use 1)"},
			&cli.IntFlag{Name: "max-new", Value: 32, Usage: "tokens per response at most"},
			&cli.IntFlag{Name: "batch", Value: 64, Usage: "sequences decoded or scored together at most"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "seed of the samples"},
			&cli.IntFlag{Name: "limit", Value: 0, Usage: "use only the first N records (0: all)"},
			&cli.BoolFlag{Name: "json", Usage: "print the report as one JSON object"},
		},
		Action:       runRMBestOfN,
		OnUsageError: subcommandUsageError,
	}
}

func runRMBestOfN(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if c.String("model") == "" || c.String("policy") == "" || c.String("data") == "" {
		return usageErrorf("rm best-of-n needs --model RM_DIR, --policy DIR and --data FILE")
	}
	if c.Int("n") < 2 || !(c.Float64("temperature") > 0) || c.Int("max-new") <= 0 || c.Int("batch") <= 0 || c.Int("limit") < 0 {
		return usageErrorf("rm best-of-n: -n must be at least 2, --temperature, --max-new and --batch positive, --limit not negative")
	}
	rmCfg, tok, err := loadRewardModel(c, c.String("model"))
	if err != nil {
		return err
	}
	polCfg, err := model.ReadConfig(c.String("policy"))
	if err != nil {
		return err
	}
	if err := train.CheckPolicyReward(polCfg, rmCfg); err != nil {
		return fmt.Errorf("--policy %s, --model %s: %w", c.String("policy"), c.String("model"), err)
	}
	prompts, _, err := readTaskPrompts(c.String("data"), c.Int("limit"), "rm best-of-n", tok)
	if err != nil {
		return err
	}
	b, prec, err := openBackendPrecision(c)
	if err != nil {
		return err
	}
	defer b.Close()
	opts := model.Options{MaxBatch: c.Int("batch"), Precision: prec, AllowNonFinite: c.Bool(flagAllowNonFinite)}
	opts.MaxSeq = polCfg.MaxSeqLen
	policy, err := model.Load(b, c.String("policy"), opts)
	if err != nil {
		return err
	}
	opts.MaxSeq = rmCfg.MaxSeqLen
	rm, err := model.Load(b, c.String("model"), opts)
	if err != nil {
		return err
	}
	greedy, err := train.EvalTasks(policy, tok, prompts, train.EvalOptions{MaxNew: c.Int("max-new")})
	if err != nil {
		return err
	}
	rep, err := train.MeasureBestOfN(policy, rm, tok, prompts, greedy, train.BestOfNOptions{
		N: c.Int("n"), Temperature: float32(c.Float64("temperature")), MaxNew: c.Int("max-new"),
		Seed: c.Uint64("seed"), Labeler: tasks.DefaultLabeler(),
	})
	if err != nil {
		return fmt.Errorf("--policy %s, --model %s: %w", c.String("policy"), c.String("model"), err)
	}
	if c.Bool("json") {
		return writeJSON(c, rep)
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "response (%d prompts, %d samples each, T %.2g)\ttask score\twin rate vs greedy\n", rep.Prompts, rep.N, rep.Temperature)
	fmt.Fprintf(w, "greedy\t%.3f\t0.500\n", rep.Greedy)
	fmt.Fprintf(w, "one sample\t%.3f\t%.3f\n", rep.Sample, rep.SampleWin)
	fmt.Fprintf(w, "best of %d by the reward model\t%.3f\t%.3f\n", rep.N, rep.ByRM, rep.RMWin)
	fmt.Fprintf(w, "best of %d by the ideal reward\t%.3f\t%.3f\n", rep.N, rep.Ideal, rep.IdealWin)
	if err := w.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(c.App.Writer, "reward model's accuracy on same-prompt sample pairs: %.3f of %d (0.5 is chance)\n", rep.PairAccuracy, rep.Pairs)
	for _, t := range slices.Sorted(maps.Keys(rep.PairAccuracyByTask)) {
		fmt.Fprintf(c.App.Writer, "  %-8s %.3f\n", t, rep.PairAccuracyByTask[t])
	}
	return nil
}
