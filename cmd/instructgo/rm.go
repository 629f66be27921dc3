package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/data"
)

// rmCommand is `instructgo rm`: training a reward model (the command's own
// action) and the subcommands score and eval.
func rmCommand() *cli.Command {
	d := train.DefaultRM()
	score := &cli.Command{
		Name:      "score",
		Usage:     "print the reward of every prompt/response of a file",
		UsageText: "instructgo [global options] rm score --model DIR --data FILE [--json | --out FILE]",
		Description: "Scores SFT records ({\"prompt\", \"completion\"} or {\"messages\"}: the completion) or comparison\n" +
			"records ({\"prompt\", \"responses\", \"ranking\"} or {\"prompt\", \"chosen\", \"rejected\"}: every\n" +
			"response) with a reward model, its centring bias included. The kind of file is decided by its\n" +
			"first record. Prints one line per response (reward, then the texts quoted); --json prints\n" +
			"one JSON object per record instead ({\"prompt\", \"completion\", \"reward\"} or {\"prompt\",\n" +
			"\"responses\", \"ranking\", \"rewards\"}), and --out writes those records to a file.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "reward-model checkpoint directory"},
			&cli.StringFlag{Name: "data", Usage: "JSONL of SFT or comparison records"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per record"},
			&cli.StringFlag{Name: "out", Usage: "write the JSON records to this file instead of printing"},
			&cli.IntFlag{Name: "batch", Value: 64, Usage: "sequences scored together at most"},
			&cli.IntFlag{Name: "token-budget", Value: d.TokenBudget, Usage: "padded tokens per forward pass"},
		},
		Action:       runRMScore,
		OnUsageError: subcommandUsageError,
	}
	eval := &cli.Command{
		Name:      "eval",
		Usage:     "pairwise accuracy of a reward model on ranked comparisons",
		UsageText: "instructgo [global options] rm eval --model DIR --data FILE [--json]",
		Description: "Scores every response of every comparison once and counts the pairs (all C(K,2) of a\n" +
			"ranking) in which the better response gets the higher reward (a tie counts ½).\n" +
			"--json prints exactly {\"accuracy\": x, \"n_pairs\": N, \"mean_margin\": m}, m being the mean of\n" +
			"r_better − r_worse. Without it a table adds the ranking loss, the rewards' mean and spread and,\n" +
			"for records of the built-in tasks, the accuracy against the noise-free utility order.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "reward-model checkpoint directory"},
			&cli.StringFlag{Name: "data", Usage: "JSONL of comparison records (rm.jsonl)"},
			&cli.BoolFlag{Name: "json", Usage: "print {\"accuracy\", \"n_pairs\", \"mean_margin\"}"},
			&cli.IntFlag{Name: "batch", Value: 64, Usage: "sequences scored together at most"},
			&cli.IntFlag{Name: "token-budget", Value: d.TokenBudget, Usage: "padded tokens per forward pass"},
		},
		Action:       runRMEval,
		OnUsageError: subcommandUsageError,
	}
	return &cli.Command{
		Name:  "rm",
		Usage: "train a reward model on ranked comparisons (stage 2); rm score and rm eval use one",
		UsageText: "instructgo [global options] rm --data rm.jsonl --init SFT_DIR --out DIR [options]\n" +
			"   instructgo [global options] rm --resume DIR\n" +
			"   instructgo [global options] rm score --model DIR --data FILE [--json]\n" +
			"   instructgo [global options] rm eval --model DIR --data FILE [--json]\n" +
			"   instructgo [global options] rm best-of-n --model DIR --policy SFT_DIR --data eval.jsonl [--json]",
		Description: "Starts from the SFT checkpoint with its unembedding replaced by a scalar head (a new head,\n" +
			"N(0, 0.02²), unless --init is already a reward model), read at the last token of each\n" +
			"response (EOS when the response was not cut). A step takes --batch prompts; each prompt's\n" +
			"K ranked responses are forwarded once and its C(K,2) pairs give the loss\n" +
			"mean −log σ(r_better − r_worse − margin); the step averages over prompts. One epoch by\n" +
			"default, cosine decay to 10%. --val-frac of the distinct prompts are held out: pairwise\n" +
			"accuracy, mean margin, reward mean/std (and, for the built-in tasks, accuracy against the\n" +
			"noise-free order and the labeler's own ceilings) go to metrics.jsonl and summary.json.\n" +
			"After training a bias is fitted so that the demonstrations of --center-data score 0 on\n" +
			"average (without it: the best-ranked response of each training comparison); it is saved in\n" +
			"config.json (instructgo_score_bias) and applied whenever the model scores. The model is\n" +
			"saved as GPT2ForSequenceClassification with one label. Defaults train on all of data\n" +
			"synth's rm.jsonl (about 4500 prompts, 88k pairs) in a few minutes on two CPU cores;\n" +
			"--max-prompts trains on a seeded subset. Resumable (--resume) and interruptible (Ctrl-C\n" +
			"saves, exit status 130) like sft.",
		Flags: slices.Concat([]cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "comparison JSONL: rankings {\"prompt\", \"responses\", \"ranking\"} or pairs {\"prompt\", \"chosen\", \"rejected\"}"},
			&cli.StringFlag{Name: "init", Usage: "SFT checkpoint to start from"},
			&cli.StringFlag{Name: "out", Usage: "run directory to write"},
			&cli.StringFlag{Name: "center-data", Usage: "SFT JSONL whose demonstrations are centred to mean reward 0 (default: the chosen training responses)"},
			&cli.Float64Flag{Name: "epochs", Value: d.Epochs, Usage: "passes over the training prompts (when --steps is 0); the paper's 1"},
			&cli.IntFlag{Name: "batch", Value: d.Batch, Usage: "prompts per optimizer step (the paper's 64; 32 gives the tiny model twice the updates in its one epoch)"},
			&cli.IntFlag{Name: "max-prompts", Value: d.MaxPrompts, Usage: "train on a seeded subset of this many prompts (0: all)"},
			&cli.IntFlag{Name: "token-budget", Value: d.TokenBudget, Usage: "padded tokens per micro-batch"},
			&cli.IntFlag{Name: "max-rows", Value: d.MaxRows, Usage: "responses per micro-batch at most"},
			&cli.IntFlag{Name: "max-len", Value: d.MaxLen, Usage: "tokens per sequence; longer ones lose the prompt's start, then the response's end"},
			&cli.Float64Flag{Name: "dropout", Value: 0, Usage: "residual and embedding dropout"},
			&cli.Float64Flag{Name: "head-init-std", Value: d.HeadInitStd, Usage: "std of the new score head's initialisation"},
			&cli.Uint64Flag{Name: "seed", Value: d.Seed, Usage: "seed of the split, data order, head init and dropout"},
			&cli.Float64Flag{Name: "val-frac", Value: d.ValFrac, Usage: "share of the distinct prompts held out for validation"},
		}, stepLoopFlags(d.EvalEvery, d.LogEvery, d.SaveEvery), optimFlags(d.Optim)),
		Subcommands: []*cli.Command{score, eval, rmBestOfNCommand()},
		Action:      runRM,
	}
}

func runRM(c *cli.Context) error {
	if c.Args().Present() {
		return usageErrorf("rm: unknown subcommand %q (subcommands: score, eval; train with flags only, see '%s rm --help')", c.Args().First(), c.App.Name)
	}
	if c.NumFlags() == 0 {
		return cli.ShowSubcommandHelp(c)
	}
	cfg, resume, err := rmConfig(c)
	if err != nil {
		return err
	}
	tok, err := modelTokenizer(c, cfg.Init, cfg.Model.Tokenizer)
	if err != nil {
		return err
	}
	var sum *train.RMSummary
	rank := 0
	if err := runTraining(c, resume, func(ctx context.Context, b gpu.Backend, opt train.RunOptions) (err error) {
		if opt.Comm != nil {
			rank = opt.Comm.Rank()
		}
		sum, err = train.RM(ctx, b, tok, cfg, opt)
		return err
	}); err != nil || sum == nil || rank != 0 { // nil: a finished run, nothing done; rank 0 alone validates and prints
		return err
	}
	w := c.App.Writer
	v := sum.Val
	fmt.Fprintf(w, "reward model after %d steps (%.2f epochs, %s): held-out pairwise accuracy %.3f on %d pairs, mean margin %.3f\n",
		sum.Steps, sum.Epochs, formatSeconds(sum.Seconds), v.Accuracy, v.Pairs, v.MeanMargin)
	if v.TruthAccuracy != nil && sum.Ceiling != nil {
		fmt.Fprintf(w, "  against the noise-free order: %.3f on %d pairs (one labeler: %.3f)\n", *v.TruthAccuracy, v.TruthPairs, sum.Ceiling.LabelerVsTruth)
		fmt.Fprintf(w, "  ceilings against the held-out labels: noise-free order %.3f, a second labeler %.3f\n", sum.Ceiling.OracleVsLabels, sum.Ceiling.LabelerVsLabeler)
	}
	ce := sum.Centering
	fmt.Fprintf(w, "centred on %d sequences (%s): bias %.4f, their mean reward now %.2g; checkpoint in %s\n",
		ce.N, ce.Source, ce.Bias, ce.MeanAfter, cfg.Out)
	return nil
}

func rmConfig(c *cli.Context) (train.RMConfig, bool, error) {
	cfg := train.DefaultRM()
	if dir := c.String("resume"); dir != "" {
		if err := readResumeConfig(c, dir, &cfg); err != nil {
			return cfg, false, err
		}
		cfg.Out = dir
		cfg.Model.ScalarHead = true
		return cfg, true, nil
	}
	switch {
	case c.String("data") == "":
		return cfg, false, usageErrorf("rm needs --data FILE")
	case c.String("out") == "":
		return cfg, false, usageErrorf("rm needs --out DIR")
	case c.String("init") == "":
		return cfg, false, usageErrorf("rm needs --init DIR (the SFT checkpoint)")
	}
	var err error
	cfg.Init = c.String("init")
	if cfg.Model, err = model.ReadConfig(cfg.Init); err != nil {
		return cfg, false, err
	}
	cfg.Model.ScalarHead, cfg.Model.ScoreBias = true, 0
	cfg.Model.Dropout = float32(c.Float64("dropout"))
	cfg.Data, cfg.Out, cfg.CenterData = c.String("data"), c.String("out"), c.String("center-data")
	cfg.Epochs, cfg.Steps, cfg.Batch, cfg.MaxPrompts = c.Float64("epochs"), c.Int("steps"), c.Int("batch"), c.Int("max-prompts")
	cfg.TokenBudget, cfg.MaxRows, cfg.MaxLen = c.Int("token-budget"), c.Int("max-rows"), c.Int("max-len")
	cfg.HeadInitStd = c.Float64("head-init-std")
	cfg.Optim = optimFromFlags(c)
	cfg.Seed, cfg.ValFrac = c.Uint64("seed"), c.Float64("val-frac")
	cfg.EvalEvery, cfg.LogEvery, cfg.SaveEvery = c.Int("eval-every"), c.Int("log-every"), c.Int("save-every")
	cfg.SkipBadLines = c.Bool("skip-bad-lines")
	if cfg.MaxLen > cfg.Model.MaxSeqLen {
		cfg.MaxLen = cfg.Model.MaxSeqLen
	}
	if err := cfg.Validate(); err != nil {
		return cfg, false, usageErrorf("rm: %v", err)
	}
	return cfg, false, checkFreshOut(cfg.Out)
}

// formatSeconds renders a duration in seconds as e.g. "2m31s".
func formatSeconds(s float64) string {
	return time.Duration(s * float64(time.Second)).Round(time.Second).String()
}

// loadRewardModel reads a reward model's config and its tokenizer.
func loadRewardModel(c *cli.Context, dir string) (model.Config, tokenizer.Tokenizer, error) {
	cfg, err := model.ReadConfig(dir)
	if err != nil {
		return cfg, nil, err
	}
	if !cfg.ScalarHead {
		return cfg, nil, fmt.Errorf("%s is not a reward model (config.json architecture is not GPT2ForSequenceClassification)", dir)
	}
	tok, err := modelTokenizer(c, dir, cfg.Tokenizer)
	return cfg, tok, err
}

func rmInferenceFlags(c *cli.Context, what string) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if c.String("model") == "" || c.String("data") == "" {
		return usageErrorf("rm %s needs --model DIR and --data FILE", what)
	}
	if c.Int("batch") <= 0 || c.Int("token-budget") <= 0 {
		return usageErrorf("rm %s: --batch and --token-budget must be positive", what)
	}
	return nil
}

func runRMEval(c *cli.Context) error {
	if err := rmInferenceFlags(c, "eval"); err != nil {
		return err
	}
	cfg, tok, err := loadRewardModel(c, c.String("model"))
	if err != nil {
		return err
	}
	cs, _, err := data.ReadComparisons(c.String("data"), data.ReadOptions{}.ChatFor(tok))
	if err != nil {
		return err
	}
	ct, trunc := data.TokenizeComparisons(cs, tok, cfg.MaxSeqLen)
	if trunc.Dropped > 0 || trunc.PromptTruncated > 0 || trunc.CompletionTruncated > 0 {
		logger(c).Warn().Str("truncation", trunc.String()).Int("context", cfg.MaxSeqLen).Msg("comparisons cut to the model's context")
	}
	longest := 1
	for _, x := range ct {
		longest = max(longest, x.MaxLen())
	}
	b, prec, err := openBackendPrecision(c)
	if err != nil {
		return err
	}
	defer b.Close()
	m, err := model.Load(b, c.String("model"), model.Options{MaxBatch: c.Int("batch"), MaxSeq: longest, Precision: prec, AllowNonFinite: c.Bool(flagAllowNonFinite)})
	if err != nil {
		return err
	}
	ev, _, err := train.EvalComparisons(m, tok, cs, c.Int("token-budget"))
	if err != nil {
		return err
	}
	if c.Bool("json") {
		// One line, these three keys in this order (both numbers are
		// finite: there is at least one pair).
		_, err := fmt.Fprintf(c.App.Writer, "{\"accuracy\": %s, \"n_pairs\": %d, \"mean_margin\": %s}\n",
			strconv.FormatFloat(ev.Accuracy, 'g', -1, 64), ev.Pairs, strconv.FormatFloat(ev.MeanMargin, 'g', -1, 64))
		return err
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "prompts\t%d\n", ev.Prompts)
	fmt.Fprintf(w, "pairs\t%d\n", ev.Pairs)
	fmt.Fprintf(w, "accuracy\t%.4f\n", ev.Accuracy)
	fmt.Fprintf(w, "mean margin\t%.4f\n", ev.MeanMargin)
	fmt.Fprintf(w, "ranking loss\t%.4f\n", ev.Loss)
	fmt.Fprintf(w, "reward mean ± std\t%.4f ± %.4f\n", ev.RewardMean, ev.RewardStd)
	if ev.TruthAccuracy != nil {
		fmt.Fprintf(w, "accuracy vs noise-free order\t%.4f (%d pairs)\n", *ev.TruthAccuracy, ev.TruthPairs)
	}
	return w.Flush()
}

// scoredSFT and scoredComparison are the records rm score writes.
type scoredSFT struct {
	Prompt     string  `json:"prompt"`
	Completion string  `json:"completion"`
	Reward     float64 `json:"reward"`
}

type scoredComparison struct {
	Prompt    string    `json:"prompt"`
	Responses []string  `json:"responses"`
	Ranking   []int     `json:"ranking"`
	Rewards   []float64 `json:"rewards"`
}

func runRMScore(c *cli.Context) error {
	if err := rmInferenceFlags(c, "score"); err != nil {
		return err
	}
	if c.Bool("json") && c.String("out") != "" {
		return usageErrorf("rm score: --json prints the records and --out writes them; give one")
	}
	if err := notAnInput(c.String("out"), c.String("data")); err != nil {
		return err
	}
	cfg, tok, err := loadRewardModel(c, c.String("model"))
	if err != nil {
		return err
	}
	path := c.String("data")
	comparisons, err := data.IsComparisonFile(path)
	if err != nil {
		return fmt.Errorf("rm score: %w", err)
	}
	// seqs are every sequence to score; owner maps them back to records.
	var seqs [][]int32
	var records []any
	var fill []func(rewards []float64)
	if comparisons {
		cs, _, err := data.ReadComparisons(path, data.ReadOptions{}.ChatFor(tok))
		if err != nil {
			return err
		}
		ct, trunc := data.TokenizeComparisons(cs, tok, cfg.MaxSeqLen)
		warnTruncation(c, trunc, cfg.MaxSeqLen)
		for _, x := range ct {
			rec := cs[x.Source]
			out := &scoredComparison{Prompt: rec.Prompt, Responses: rec.Responses, Ranking: rec.Ranking}
			start := len(seqs)
			seqs = append(seqs, x.Responses...)
			records = append(records, out)
			fill = append(fill, func(r []float64) { out.Rewards = r[start : start+len(x.Responses)] })
		}
	} else {
		ex, _, err := data.ReadSFT(path, data.ReadOptions{}.ChatFor(tok))
		if err != nil {
			return err
		}
		toks, trunc := data.TokenizeSFT(ex, tok, cfg.MaxSeqLen)
		warnTruncation(c, trunc, cfg.MaxSeqLen)
		for _, x := range toks {
			rec := ex[x.Source]
			out := &scoredSFT{Prompt: rec.Prompt, Completion: rec.Completion}
			i := len(seqs)
			seqs = append(seqs, x.Tokens)
			records = append(records, out)
			fill = append(fill, func(r []float64) { out.Reward = r[i] })
		}
	}
	if len(seqs) == 0 {
		return fmt.Errorf("rm score: %s: no record fits in the model's context of %d tokens", path, cfg.MaxSeqLen)
	}
	longest := 1
	for _, s := range seqs {
		longest = max(longest, len(s))
	}
	b, prec, err := openBackendPrecision(c)
	if err != nil {
		return err
	}
	defer b.Close()
	m, err := model.Load(b, c.String("model"), model.Options{MaxBatch: c.Int("batch"), MaxSeq: longest, Precision: prec, AllowNonFinite: c.Bool(flagAllowNonFinite)})
	if err != nil {
		return err
	}
	rewards, err := train.ScoreSequences(m, seqs, tok.Pad(), c.Int("token-budget"))
	if err != nil {
		return err
	}
	for _, f := range fill {
		f(rewards)
	}
	var sum, sumSq float64
	for _, r := range rewards {
		sum += r
		sumSq += r * r
	}
	n := float64(len(rewards))
	mean := sum / n
	logger(c).Info().Int("records", len(records)).Int("responses", len(rewards)).Float64("mean", mean).
		Float64("std", math.Sqrt(math.Max(0, sumSq/n-mean*mean))).Float32("bias", cfg.ScoreBias).Msg("scored")

	writeRecords := func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, r := range records {
			if err := enc.Encode(r); err != nil {
				return err
			}
		}
		return nil
	}
	switch {
	case c.String("out") != "":
		return atomicfile.Write(c.String("out"), writeRecords)
	case c.Bool("json"):
		return writeRecords(c.App.Writer)
	}
	bw := bufio.NewWriter(c.App.Writer)
	for _, r := range records {
		switch r := r.(type) {
		case *scoredSFT:
			fmt.Fprintf(bw, "%.4f\t%q\t%q\n", r.Reward, r.Prompt, r.Completion)
		case *scoredComparison:
			place := make([]int, len(r.Ranking))
			for p, i := range r.Ranking {
				place[i] = p + 1
			}
			for i, resp := range r.Responses {
				fmt.Fprintf(bw, "%.4f\trank %d/%d\t%q\t%q\n", r.Rewards[i], place[i], len(r.Responses), r.Prompt, resp)
			}
		}
	}
	return bw.Flush()
}

func warnTruncation(c *cli.Context, st data.TruncStats, context int) {
	if st.Dropped > 0 || st.PromptTruncated > 0 || st.CompletionTruncated > 0 {
		logger(c).Warn().Str("truncation", st.String()).Int("context", context).Msg("records cut to the model's context")
	}
}
