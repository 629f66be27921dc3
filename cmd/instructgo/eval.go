package main

import (
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/data"
)

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:      "eval",
		Usage:     "score a model's responses to held-out prompts of the built-in tasks",
		UsageText: "instructgo [global options] eval --model DIR --data eval.jsonl [--json]",
		Description: "Generates a response to each {\"prompt\", \"task\", \"answer\"} record (greedy by default)\n" +
			"and scores it with the task's scorer (1 = exact, partial credit below). Prints the mean\n" +
			"score per task and overall; --json prints {\"task_score\", \"per_task\", \"n\"}.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "checkpoint directory"},
			&cli.StringFlag{Name: "data", Usage: "JSONL of {\"prompt\", \"task\", \"answer\"} records (eval.jsonl of data synth)"},
			&cli.IntFlag{Name: "max-new", Value: 32, Usage: "tokens generated per prompt"},
			&cli.IntFlag{Name: "batch", Value: 64, Usage: "prompts decoded together"},
			&cli.Float64Flag{Name: "temperature", Value: 0, Usage: "sampling temperature (0: greedy)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "sampling seed"},
			&cli.IntFlag{Name: "limit", Usage: "evaluate only the first N records (0: all)"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
			&cli.BoolFlag{Name: "samples", Usage: "also print every prompt, response and score"},
		},
		Action: runEval,
	}
}

func runEval(c *cli.Context) error {
	if err := noArgs(c); err != nil {
		return err
	}
	if c.String("model") == "" || c.String("data") == "" {
		return usageErrorf("eval needs --model DIR and --data FILE")
	}
	if c.Int("batch") <= 0 || c.Int("max-new") <= 0 || c.Float64("temperature") < 0 || c.Int("limit") < 0 {
		return usageErrorf("eval: --batch and --max-new must be positive, --temperature and --limit not negative")
	}
	prompts, err := readTaskPrompts(c.String("data"), c.Int("limit"), "eval")
	if err != nil {
		return err
	}
	b, prec, err := openBackendPrecision(c)
	if err != nil {
		return err
	}
	defer b.Close()
	cfg, err := model.ReadConfig(c.String("model"))
	if err != nil {
		return err
	}
	tok, err := tokenizer.ForModel(c.String("model"), cfg.Tokenizer)
	if err != nil {
		return err
	}
	m, err := model.Load(b, c.String("model"), model.Options{MaxBatch: c.Int("batch"), MaxSeq: cfg.MaxSeqLen, Precision: prec, AllowNonFinite: c.Bool(flagAllowNonFinite)})
	if err != nil {
		return err
	}
	ev, err := train.EvalTasks(m, tok, prompts, train.EvalOptions{
		MaxNew: c.Int("max-new"), Seed: c.Uint64("seed"),
		Sampling: gpu.Sampling{Temperature: float32(c.Float64("temperature"))},
	})
	if err != nil {
		return err
	}
	if c.Bool("json") {
		return writeJSON(c, ev)
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', tabwriter.AlignRight)
	if c.Bool("samples") {
		for _, s := range ev.Samples {
			fmt.Fprintf(c.App.Writer, "%.2f  %-8s %q -> %q (answer %q)\n", s.Score, s.Task, s.Prompt, s.Response, s.Answer)
		}
	}
	fmt.Fprintln(w, "task\tscore\t")
	for _, t := range ev.TaskNames() {
		fmt.Fprintf(w, "%s\t%.3f\t\n", t, ev.PerTask[t])
	}
	fmt.Fprintf(w, "all (%d prompts)\t%.3f\t\n", ev.N, ev.Score)
	return w.Flush()
}

// readTaskPrompts reads records of the built-in tasks ({"prompt", "task",
// "answer"}), the first limit of them (0: all); cmd names the command in
// the error for a record without a task.
func readTaskPrompts(path string, limit int, cmd string) ([]train.TaskPrompt, error) {
	records, _, err := data.ReadPrompts(path, data.ReadOptions{})
	if err != nil {
		return nil, err
	}
	var prompts []train.TaskPrompt
	for _, r := range records {
		if r.Task == "" {
			return nil, fmt.Errorf("%s:%d: field \"task\": missing (%s scores the built-in tasks)", path, r.Line, cmd)
		}
		prompts = append(prompts, train.TaskPrompt{Prompt: r.Prompt, Task: r.Task, Answer: r.Answer, Source: r.Source})
	}
	if limit > 0 && limit < len(prompts) {
		prompts = prompts[:limit]
	}
	return prompts, nil
}
