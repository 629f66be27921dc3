package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/data"
)

// labelCommand is `instructgo data label`: comparisons collected from a
// policy's samples, ranked by the simulated labeler.
func labelCommand() *cli.Command {
	d := train.DefaultLabel()
	return &cli.Command{
		Name:      "label",
		Usage:     "sample K responses per prompt from a model and have the simulated labeler rank them (rm.jsonl records)",
		UsageText: "instructgo [global options] data label --policy DIR --prompts FILE --out FILE [-k 4..9] [--seed N] [--temperature 1] [options]",
		Description: "Collects comparisons the way InstructGPT did, from model outputs. For each {\"prompt\", \"task\",\n" +
			"\"answer\"} record of --prompts (ppo.jsonl or eval.jsonl of data synth; built-in tasks only) it\n" +
			"draws K uniformly in the -k range, samples K responses from --policy (temperature 1 by\n" +
			"default), redraws a response that is empty or identical to an earlier one up to --resamples\n" +
			"times (then drops empty ones and keeps duplicates, which the labeler orders at random and\n" +
			"which give the reward model no net gradient), ranks them with the simulated labeler and\n" +
			"writes {\"prompt\", \"responses\", \"ranking\", \"task\", \"answer\"} records to --out. The same\n" +
			"policy, prompts, --seed and --batch give the same file.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "policy", Usage: "language-model checkpoint to sample from (an SFT or PPO model)"},
			&cli.StringFlag{Name: "prompts", Usage: "JSONL of {\"prompt\", \"task\", \"answer\"} records"},
			&cli.StringFlag{Name: "out", Usage: "rm.jsonl-format file to write (replaced atomically)"},
			&cli.StringFlag{Name: "k", Value: fmt.Sprintf("%d..%d", d.KMin, d.KMax), Usage: "responses per prompt: N, or MIN..MAX drawn uniformly per prompt (2 to 9)"},
			&cli.Uint64Flag{Name: "seed", Value: d.Seed, Usage: "seed of K, the samples and the labeler's noise"},
			&cli.Float64Flag{Name: "temperature", Value: float64(d.Sampling.Temperature), Usage: "sampling temperature (> 0)"},
			&cli.IntFlag{Name: "max-new", Value: d.MaxNew, Usage: "tokens per response at most"},
			&cli.IntFlag{Name: "resamples", Value: d.Resamples, Usage: "rounds that redraw empty or duplicate responses"},
			&cli.Float64Flag{Name: "noise", Value: d.Labeler.Noise, Usage: "the labeler's noise (temperature of its choice model; 0: noise-free)"},
			&cli.IntFlag{Name: "batch", Value: 64, Usage: "sequences sampled together"},
			&cli.IntFlag{Name: "limit", Usage: "label only the first N prompts (0: all)"},
			&cli.BoolFlag{Name: "json", Usage: "print the summary as one JSON object"},
		},
		Action:       runDataLabel,
		OnUsageError: subcommandUsageError,
	}
}

// parseKRange reads -k: "N" or "MIN..MAX".
func parseKRange(s string) (int, int, error) {
	lo, hi, ranged := strings.Cut(strings.TrimSpace(s), "..")
	a, err := strconv.Atoi(strings.TrimSpace(lo))
	if err != nil {
		return 0, 0, fmt.Errorf("invalid -k %q: want N or MIN..MAX", s)
	}
	b := a
	if ranged {
		if b, err = strconv.Atoi(strings.TrimSpace(hi)); err != nil {
			return 0, 0, fmt.Errorf("invalid -k %q: want N or MIN..MAX", s)
		}
	}
	if a < data.MinResponses || b > data.MaxResponses || a > b {
		return 0, 0, fmt.Errorf("invalid -k %q: want responses per prompt within %d..%d", s, data.MinResponses, data.MaxResponses)
	}
	return a, b, nil
}

func runDataLabel(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if c.String("policy") == "" || c.String("prompts") == "" || c.String("out") == "" {
		return usageErrorf("data label needs --policy DIR, --prompts FILE and --out FILE")
	}
	if err := notAnInput(c.String("out"), c.String("prompts")); err != nil {
		return err
	}
	cfg := train.DefaultLabel()
	var err error
	if cfg.KMin, cfg.KMax, err = parseKRange(c.String("k")); err != nil {
		return usageErrorf("data label: %v", err)
	}
	cfg.Seed, cfg.MaxNew, cfg.Resamples = c.Uint64("seed"), c.Int("max-new"), c.Int("resamples")
	cfg.Sampling = gpu.Sampling{Temperature: float32(c.Float64("temperature"))}
	cfg.Labeler.Noise = c.Float64("noise")
	if !(c.Float64("temperature") > 0) {
		return usageErrorf("data label: invalid --temperature %g: want > 0 (comparisons need different samples)", c.Float64("temperature"))
	}
	if c.Int("batch") <= 0 || c.Int("limit") < 0 {
		return usageErrorf("data label: --batch must be positive and --limit not negative")
	}
	if err := cfg.Validate(); err != nil {
		return usageErrorf("data label: %v", err)
	}
	dir := c.String("policy")
	mcfg, err := model.ReadConfig(dir)
	if err != nil {
		return err
	}
	if mcfg.ScalarHead {
		return fmt.Errorf("data label: %s is a scalar-head model (reward or value), not a policy", dir)
	}
	tok, err := modelTokenizer(c, dir, mcfg.Tokenizer)
	if err != nil {
		return fmt.Errorf("data label: %s: %w", dir, err)
	}
	prompts, _, err := data.ReadPrompts(c.String("prompts"), data.ReadOptions{}.ChatFor(tok))
	if err != nil {
		return err
	}
	if n := c.Int("limit"); n > 0 && n < len(prompts) {
		prompts = prompts[:n]
	}
	b, prec, err := openBackendPrecision(c)
	if err != nil {
		return err
	}
	defer b.Close()
	m, err := train.LoadSampler(b, dir, tok, prompts, c.Int("batch"), model.Options{Precision: prec, AllowNonFinite: c.Bool(flagAllowNonFinite)})
	if err != nil {
		return err
	}
	logger(c).Info().Int("prompts", len(prompts)).Str("k", c.String("k")).Float32("temperature", cfg.Sampling.Temperature).
		Str("policy", dir).Msg("sampling and ranking responses")
	groups, st, err := train.LabelFromPolicy(m, tok, prompts, cfg)
	if err != nil {
		return err
	}
	if err := train.WriteComparisons(c.String("out"), groups); err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(c, st)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "wrote %s: %d records (%d prompts, %d skipped), %d responses, %d comparisons\n",
		c.String("out"), st.Records, st.Prompts, st.Skipped, st.Responses, st.Comparisons)
	fmt.Fprintf(w, "sampled %d responses (%d redraws of empty or duplicate ones); %d duplicates kept, %d empty dropped; mean task score %.3f\n",
		st.Generated, st.Redrawn, st.DuplicatesKept, st.EmptyDropped, st.MeanScore)
	a := st.Agreement
	_, err = fmt.Fprintf(w, "labeler (noise %g, style weight %g): agrees with the noise-free order on %.1f%% of %d pairs, with a second labeler on %.1f%% of %d\n",
		cfg.Labeler.Noise, cfg.Labeler.StyleWeight, 100*a.WithTruth, a.TruthPairs, 100*a.BetweenLabelers, a.Pairs)
	return err
}
