package main

import (
	"encoding/json"
	"fmt"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
)

func evalCommand() *cli.Command {
	return &cli.Command{
		Name:      "eval",
		Usage:     "score a model's responses to held-out prompts of the built-in tasks",
		UsageText: "instructgo [global options] eval --model DIR --data eval.jsonl [--json]",
		Description: "Generates a response to each {\"prompt\", \"task\", \"answer\"} record (greedy by default)\n" +
			"and scores it with the task's scorer (1 = exact, partial credit below). Prints the mean\n" +
			"score per task and overall; --json prints {\"task_score\", \"per_task\", \"n\"}. With --against DIR\n" +
			"the second model answers the same prompts and the simulated labeler compares the two:\n" +
			"the win rate of --model over --against (ties count half) and the task score gain, each\n" +
			"with its standard error over the prompts, and the win rate per task. When the data has the opt-in honesty and harmlessness\n" +
			"families or prompt kinds (data synth's families, prompt_kinds), it also prints the\n" +
			"fabrication and refusal rates and the score per prompt kind (--json: \"behaviour\").",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "checkpoint directory"},
			&cli.StringFlag{Name: "against", Usage: "a second checkpoint directory: the labeler's win rate of --model over it"},
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
	tok, err := dirTokenizer(c, c.String("model"))
	if err != nil {
		return err
	}
	prompts, conv, err := readTaskPrompts(c.String("data"), c.Int("limit"), "eval", tok)
	if err != nil {
		return err
	}
	if against := c.String("against"); against != "" && conv {
		// The prompts were rendered for --model's template.
		other, err := dirTokenizer(c, against)
		if err != nil {
			return err
		}
		if a, b := chatName(tok), chatName(other); a != b {
			return fmt.Errorf("eval: the prompts are conversations, which --model renders as %s and --against as %s; compare models with one chat template", a, b)
		}
	}
	b, prec, err := openBackendPrecision(c)
	if err != nil {
		return err
	}
	defer b.Close()
	ev, err := evalModel(c, b, prec, c.String("model"), prompts)
	if err != nil {
		return err
	}
	if c.String("against") != "" {
		return evalAgainst(c, b, prec, ev, prompts)
	}
	behaviour := train.MeasureBehaviour(ev)
	if c.Bool("json") {
		out := evalReport{TaskEval: ev}
		if behaviour.Measured() {
			out.Behaviour = &behaviour
		}
		return writeJSON(c, out)
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
	if err := w.Flush(); err != nil {
		return err
	}
	if !behaviour.Measured() {
		return nil
	}
	return printBehaviour(c, behaviour)
}

// evalReport is eval --json's output: the task scores, and the behaviour
// on the opt-in families and prompt kinds when the data has them.
type evalReport struct {
	train.TaskEval
	Behaviour *train.Behaviour `json:"behaviour,omitempty"`
}

// printBehaviour prints the fabrication and refusal rates and the score
// per prompt kind, one a line, as the pipeline's report shows them.
func printBehaviour(c *cli.Context, b train.Behaviour) error {
	kinds := b.Kinds()
	header, row := train.BehaviourHeader(kinds), b.Row("model", kinds)
	fmt.Fprintln(c.App.Writer, "\nhonesty, harmlessness and prompt kinds (± standard error, prompts in brackets)")
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', 0)
	for i := 1; i < len(header); i++ {
		fmt.Fprintf(w, "%s\t%s\n", header[i], row[i])
	}
	return w.Flush()
}

// evalModel loads the checkpoint in dir and scores its responses to prompts
// as eval's flags say.
func evalModel(c *cli.Context, b gpu.Backend, prec model.Precision, dir string, prompts []train.TaskPrompt) (train.TaskEval, error) {
	cfg, err := model.ReadConfig(dir)
	if err != nil {
		return train.TaskEval{}, err
	}
	tok, err := modelTokenizer(c, dir, cfg.Tokenizer)
	if err != nil {
		return train.TaskEval{}, err
	}
	m, err := model.Load(b, dir, model.Options{MaxBatch: c.Int("batch"), MaxSeq: cfg.MaxSeqLen, Precision: prec, AllowNonFinite: c.Bool(flagAllowNonFinite)})
	if err != nil {
		return train.TaskEval{}, err
	}
	return train.EvalTasks(m, tok, prompts, train.EvalOptions{
		MaxNew: c.Int("max-new"), Seed: c.Uint64("seed"),
		Sampling: gpu.Sampling{Temperature: float32(c.Float64("temperature"))},
	})
}

// againstReport is eval --against --json's output.
type againstReport struct {
	Model           string             `json:"model"`
	Against         string             `json:"against"`
	N               int                `json:"n"`
	TaskScore       float64            `json:"task_score"`
	AgainstScore    float64            `json:"against_task_score"`
	WinRate         float64            `json:"win_rate"`
	WinRateStdErr   float64            `json:"win_rate_stderr"`
	ScoreGain       float64            `json:"task_score_gain"`
	ScoreGainStdErr float64            `json:"task_score_gain_stderr"`
	WinRateByTask   map[string]float64 `json:"win_rate_by_task"`
}

// evalAgainst scores --against's responses to the same prompts and prints
// the labeler's comparison of ev's model with it.
func evalAgainst(c *cli.Context, b gpu.Backend, prec model.Precision, ev train.TaskEval, prompts []train.TaskPrompt) error {
	other, err := evalModel(c, b, prec, c.String("against"), prompts)
	if err != nil {
		return err
	}
	cmp, err := train.Compare(ev, other, tasks.DefaultLabeler())
	if err != nil {
		return err
	}
	seWin, seGain := cmp.StdErrs()
	r := againstReport{
		Model: c.String("model"), Against: c.String("against"), N: ev.N,
		TaskScore: ev.Score, AgainstScore: other.Score,
		WinRate: cmp.WinRate(), WinRateStdErr: seWin,
		ScoreGain: ev.Score - other.Score, ScoreGainStdErr: seGain,
		WinRateByTask: cmp.ByTask(),
	}
	if c.Bool("json") {
		return writeJSON(c, r)
	}
	w := tabwriter.NewWriter(c.App.Writer, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(w, "task\tscore\tagainst\twin rate\t")
	for _, t := range ev.TaskNames() {
		fmt.Fprintf(w, "%s\t%.3f\t%.3f\t%.3f\t\n", t, ev.PerTask[t], other.PerTask[t], r.WinRateByTask[t])
	}
	fmt.Fprintf(w, "all (%d prompts)\t%.3f\t%.3f\t%.3f\t\n", ev.N, ev.Score, other.Score, r.WinRate)
	if err := w.Flush(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(c.App.Writer, "win rate %.3f ± %.3f, task score gain %+.3f ± %.3f (standard errors over %d prompts)\n",
		r.WinRate, seWin, r.ScoreGain, seGain, ev.N)
	return err
}

// readTaskPrompts reads records of the built-in tasks ({"prompt", "task",
// "answer"}), the first limit of them (0: all), conversations rendered for
// tok; conv reports whether any prompt was one. cmd names the command in
// the error for a record without a task.
func readTaskPrompts(path string, limit int, cmd string, tok tokenizer.Tokenizer) (prompts []train.TaskPrompt, conv bool, err error) {
	records, _, err := data.ReadPrompts(path, data.ReadOptions{}.ChatFor(tok))
	if err != nil {
		return nil, false, err
	}
	for _, r := range records {
		if r.Task == "" {
			return nil, false, fmt.Errorf("%s:%d: field \"task\": missing (%s scores the built-in tasks)", path, r.Line, cmd)
		}
		var kind string
		if raw, ok := r.Meta["kind"]; ok {
			if err := json.Unmarshal(raw, &kind); err != nil {
				return nil, false, fmt.Errorf("%s:%d: field \"kind\": not a string", path, r.Line)
			}
		}
		conv = conv || r.Conversational
		prompts = append(prompts, train.TaskPrompt{Prompt: r.Prompt, Task: r.Task, Answer: r.Answer, Kind: kind, Source: r.Source})
	}
	if limit > 0 && limit < len(prompts) {
		prompts = prompts[:limit]
	}
	return prompts, conv, nil
}
