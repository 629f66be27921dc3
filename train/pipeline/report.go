package pipeline

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/tasks"
)

// curve is one metric of a stage's metrics.jsonl against its step.
type curve struct {
	stage, metric, label string
}

// reportPlots are the training curves report.md shows, one PNG each.
var reportPlots = []struct {
	file, title, ylabel string
	curves              []curve
}{
	{"pretrain.png", "Pretraining", "loss (nats/token)", []curve{{StagePretrain, "loss", "train"}, {StagePretrain, "val_loss", "held-out"}}},
	{"sft.png", "Supervised fine-tuning", "", []curve{{StageSFT, "loss", "train loss"}, {StageSFT, "val_loss", "validation loss"}, {StageSFT, "task_score", "validation task score"}}},
	{"rm.png", "Reward model", "", []curve{{StageRM, "loss", "train loss"}, {StageRM, "val_accuracy", "validation accuracy"}}},
	{"ppo_score.png", "PPO-ptx: reward", "", []curve{{StagePPO, "rm_score", "mean RM score"}, {StagePPO, "task_score", "rollouts' task score (ground truth)"}, {StagePPO, "kl", "KL to SFT (per episode)"}}},
	{"ppo_losses.png", "PPO-ptx: losses", "", []curve{{StagePPO, "value_loss", "value loss"}, {StagePPO, "ptx_loss", "ptx loss"}, {StagePPO, "clip_frac", "clip fraction"}}},
}

// WriteReport writes dir/report.md with the pipeline's tables and the PNG
// plots of its training curves (from each stage's metrics.jsonl).
func WriteReport(dir string, rep *Report) error {
	var plots []string
	if len(rep.Rounds) > 0 {
		if err := plotRounds(dir, rep); err != nil {
			return fmt.Errorf("report: %s: %w", roundsPlotFile, err)
		}
	}
	if len(rep.Methods) > 1 {
		if err := plotMethods(dir, rep); err != nil {
			return fmt.Errorf("report: %s: %w", methodsPlotFile, err)
		}
	}
	for _, p := range reportPlots {
		ok, err := plotCurves(dir, p.file, p.title, p.ylabel, p.curves)
		if err != nil {
			return fmt.Errorf("report: %s: %w", p.file, err)
		}
		if ok {
			plots = append(plots, p.file)
		}
	}
	return atomicfile.Write(filepath.Join(dir, "report.md"), func(w io.Writer) error {
		if err := writeMarkdown(w, rep, plots); err != nil {
			return err
		}
		return writeBehaviourSection(w, dir)
	})
}

// headline is the summary the terminal prints and report.md opens with,
// stated once: the table of the models and the notes under it.
func headline(r *Report) (rows [][]string, notes []string) {
	rows = [][]string{
		{"model", "task score", "win rate vs SFT", "Likert 1-7", "KL to SFT", "pretraining loss"},
		{"pretrained", fmt.Sprintf("%.3f", r.Pretrain.TaskScore), "", rating(r.Pretrain.Rating), "", fmt.Sprintf("%.4f", r.Pretrain.ValLoss)},
		{"SFT", fmt.Sprintf("%.3f", r.SFT.TaskScore), "0.500", rating(r.SFT.Rating), "0", fmt.Sprintf("%.4f", r.SFTPtxLoss)},
	}
	var gains, taxes, habits []string
	for _, m := range r.Methods {
		label := methodLabel(m.Name)
		rows = append(rows, []string{label, fmt.Sprintf("%.3f", m.TaskScore), fmt.Sprintf("%.3f ± %.3f", m.WinRateVsSFT, m.WinRateStdErr), rating(m.Rating),
			fmt.Sprintf("%.3f ± %.3f", m.KLToSFT.KL, m.KLToSFT.StdErr), fmt.Sprintf("%.4f", m.PtxLoss)})
		gains = append(gains, fmt.Sprintf("%s %+.3f ± %.3f", label, m.TaskScore-r.SFT.TaskScore, m.ScoreGainStdErr))
		taxes = append(taxes, fmt.Sprintf("%s %+.4f", label, m.PtxLoss-r.SFTPtxLoss))
		habits = append(habits, fmt.Sprintf("%s %.3f", label, m.HabitRate))
	}
	notes = append(notes,
		fmt.Sprintf("over the %d held-out prompts, task score gain on SFT (± standard error): %s; KL to SFT in nats per response on each policy's own samples",
			r.EvalN, strings.Join(gains, ", ")),
		fmt.Sprintf("reward model: held-out accuracy %.3f (labelers agree %.3f); alignment tax (nats/token): %s; %.0f s in all",
			r.RM.Accuracy, r.RM.LabelerAgrement, strings.Join(taxes, ", "), r.Seconds))
	if r.SFT.HabitRate > 0 || slices.ContainsFunc(r.Methods, func(m MethodResult) bool { return m.HabitRate > 0 }) {
		h := fmt.Sprintf("answers opening with the demonstrators' habit %q: SFT %.3f, %s", tasks.HabitPrefix, r.SFT.HabitRate, strings.Join(habits, ", "))
		if hr, e := r.PPO.WinRateSFTHabit, r.PPO.WinRateElsewhere; hr != nil && e != nil {
			h += fmt.Sprintf("; PPO's win rate where SFT's has it %.3f, elsewhere %.3f", *hr, *e)
		}
		notes = append(notes, h)
	}
	if ran(r, "dpo") {
		n := fmt.Sprintf("DPO's implicit reward: held-out pairwise accuracy %.3f on the reward model's %d held-out pairs (reward model %.3f)", r.DPO.Accuracy, r.DPO.Pairs, r.RM.Accuracy)
		if r.DPO.TruthAccuracy != nil && r.RM.TruthAccuracy != nil {
			n += fmt.Sprintf("; against the noise-free order %.3f (reward model %.3f)", *r.DPO.TruthAccuracy, *r.RM.TruthAccuracy)
		}
		notes = append(notes, n)
	}
	if bn := r.RM.BestOfN; bn != nil {
		notes = append(notes, fmt.Sprintf("on SFT's own samples, best of %d: by the reward model %.3f, by the ideal reward %.3f, one sample %.3f (task score)",
			bn.N, bn.ByRM, bn.Ideal, bn.Sample))
	}
	return rows, notes
}

// rating shows a mean Likert rating with its standard error.
func rating(r train.Rating) string { return fmt.Sprintf("%.2f ± %.2f", r.Mean, r.StdErr) }

// methodLabel is a method's name in the report's tables.
func methodLabel(name string) string {
	for _, m := range allMethods {
		if m.name == name {
			return m.label
		}
	}
	return name
}

// ran reports whether the method named ran in the pipeline of r.
func ran(r *Report, name string) bool {
	return slices.ContainsFunc(r.Methods, func(m MethodResult) bool { return m.Name == name })
}

// WriteSummary prints the headline for a terminal: the table aligned in
// columns, then the notes, one a line.
func WriteSummary(w io.Writer, r *Report) error {
	rows, notes := headline(r)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, row := range rows {
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range notes {
		if _, err := fmt.Fprintln(w, n); err != nil {
			return err
		}
	}
	return nil
}

func writeMarkdown(w io.Writer, r *Report, plots []string) error {
	var sb strings.Builder
	f := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	f("# InstructGPT pipeline report\n\n")
	f("Backend: %s. Total time: %.0f s. Held-out prompts: %d.\n\n", r.Backend, r.Seconds, r.EvalN)
	f("## Held-out task score and preference\n\n")
	rows, notes := headline(r)
	for i, row := range rows {
		f("| %s |\n", strings.Join(row, " | "))
		if i == 0 {
			f("|%s\n", strings.Repeat(" --- |", len(row)))
		}
	}
	f("\nThe win rate is the simulated labeler's expected preference for a policy's response over the SFT\n")
	f("response to the same prompt (ties count half), with its standard error over the prompts; the task score\n")
	f("gain's standard error is paired by prompt. KL to SFT is measured the same way for every method: the mean\n")
	f("over the held-out prompts of log π(y|x) − log π_SFT(y|x) for one sample y of the policy at temperature 1.\n")
	f("The Likert rating is the labeler's mean 1–7 rating of the responses (an ordered-logit model on the\n")
	f("utility and noise it compares with; tasks.Labeler.ExpectedRating), ± its standard error.\n")
	f("The pretrained model's pretraining loss is its own at the end of pretraining; the alignment tax is a\n")
	f("policy's held-out pretraining loss minus SFT's (negative: it lowered it).\n\n")
	for _, n := range notes {
		f("- %s\n", n)
	}
	f("\n")
	if len(r.Methods) > 1 {
		f("![task score against KL to SFT](%s)\n\n", methodsPlotFile)
	}
	f("Every held-out prompt's responses, scores and the labeler's preferences are in %s.\n\n", EvalSamplesFile)
	f("## Per task\n\n| task | SFT |")
	for _, m := range r.Methods {
		f(" %s |", methodLabel(m.Name))
	}
	for _, m := range r.Methods {
		f(" %s win rate |", methodLabel(m.Name))
	}
	f("\n|%s\n", strings.Repeat(" --- |", 2+2*len(r.Methods)))
	for _, n := range slices.Sorted(maps.Keys(r.SFT.PerTask)) {
		f("| %s | %.3f |", n, r.SFT.PerTask[n])
		for _, m := range r.Methods {
			f(" %.3f |", m.PerTask[n])
		}
		for _, m := range r.Methods {
			f(" %.3f |", m.WinRateByTask[n])
		}
		f("\n")
	}
	f("\n## Stages\n\n| stage | result | seconds |\n| --- | --- | --- |\n")
	f("| pretrain | held-out loss %.4f nats/token (unigram baseline %.4f) | %.0f |\n", r.Pretrain.ValLoss, r.Pretrain.UnigramLoss, r.Pretrain.Seconds)
	f("| SFT | best validation step %d | %.0f |\n", r.SFT.BestStep, r.SFT.Seconds)
	truth := ""
	if r.RM.TruthAccuracy != nil {
		truth = fmt.Sprintf(", %.3f against the noise-free order", *r.RM.TruthAccuracy)
	}
	if st := r.RM.SFTSamples; st != nil {
		f("| rankings of SFT samples | %d prompts, %d comparisons (mean task score of the samples %.3f; two labelers agree on %.3f of the pairs) | |\n",
			st.Records, st.Comparisons, st.MeanScore, st.Agreement.BetweenLabelers)
	}
	f("| reward model | held-out pairwise accuracy %.3f on %d pairs%s (two labelers agree on %.3f); demonstrations' mean reward after centring %.4f | %.0f |\n",
		r.RM.Accuracy, r.RM.Pairs, truth, r.RM.LabelerAgrement, r.RM.CentredMean, r.RM.Seconds)
	rollouts := ""
	if r.PPO.FirstTaskScore != nil && r.PPO.LastTaskScore != nil {
		rollouts = fmt.Sprintf("; the rollouts' ground-truth task score %.3f → %.3f", *r.PPO.FirstTaskScore, *r.PPO.LastTaskScore)
	}
	if ran(r, "ppo") {
		f("| PPO-ptx | mean RM score %.3f → %.3f%s; the rollouts' KL to SFT %.3f per episode | %.0f |\n", r.PPO.FirstScore, r.PPO.LastScore, rollouts, r.PPO.KLToSFT, r.PPO.Seconds)
	}
	if ran(r, "dpo") {
		f("| DPO | %d steps; implicit reward's held-out pairwise accuracy %.3f on %d pairs | %.0f |\n", r.DPO.Steps, r.DPO.Accuracy, r.DPO.Pairs, r.DPO.Seconds)
	}
	for _, g := range []*train.GroupSummary{r.GRPO, r.RLOO} {
		if g == nil {
			continue
		}
		rollouts := ""
		if g.FirstTaskScore != nil && g.LastTaskScore != nil {
			rollouts = fmt.Sprintf("; the rollouts' ground-truth task score %.3f → %.3f", *g.FirstTaskScore, *g.LastTaskScore)
		}
		f("| %s | %d iterations, %d responses; mean reward %.3f → %.3f%s; KL to SFT %.3f per response | %.0f |\n",
			methodLabel(g.Method), g.Iterations, g.Episodes, g.FirstReward, g.LastReward, rollouts, g.LastKL, g.Seconds)
	}
	if rs := r.RS; rs != nil {
		task := ""
		if rs.PickTaskScore != nil && rs.SampleTaskScore != nil {
			task = fmt.Sprintf(" (task score %.3f, all samples %.3f)", *rs.PickTaskScore, *rs.SampleTaskScore)
		}
		f("| %s | best of %d on %d prompts by the reward model: its score %.3f, all samples %.3f%s; then SFT on the picks | |\n",
			methodLabel("rs"), rs.N, rs.Prompts, rs.PickScore, rs.SampleScore, task)
	}
	f("\n")
	if len(r.Rounds) > 0 {
		writeRounds(f, r)
	}
	if bn := r.RM.BestOfN; bn != nil {
		f("## The reward model on the SFT policy's own samples\n\n")
		f("%d samples per held-out prompt at temperature %.2g; one is picked at random, by the reward model, or by the\n", bn.N, bn.Temperature)
		f("labeler's noise-free utility (the ideal reward). PPO behaves much like best-of-n sampling, so the reward\n")
		f("model's pick is what PPO can hope for, the ideal pick what a perfect reward model would allow.\n\n")
		f("| response | task score | labeler win rate vs SFT greedy |\n| --- | --- | --- |\n")
		f("| SFT greedy | %.3f | 0.5 |\n| one sample | %.3f | %.3f |\n", bn.Greedy, bn.Sample, bn.SampleWin)
		f("| best of %d by the reward model | %.3f | %.3f |\n| best of %d by the ideal reward | %.3f | %.3f |\n\n", bn.N, bn.ByRM, bn.RMWin, bn.N, bn.Ideal, bn.IdealWin)
		f("The reward model orders %.3f of the %d same-prompt sample pairs whose utilities differ as the labeler's\n", bn.PairAccuracy, bn.Pairs)
		f("noise-free utility does (0.5 is chance); by task:\n\n| task | pairs ordered rightly |\n| --- | --- |\n")
		for _, n := range slices.Sorted(maps.Keys(bn.PairAccuracyByTask)) {
			f("| %s | %.3f |\n", n, bn.PairAccuracyByTask[n])
		}
		f("\n")
	}
	if len(plots) > 0 {
		f("## Training curves\n\n")
		for _, p := range plots {
			f("![%s](%s)\n\n", strings.TrimSuffix(p, ".png"), p)
		}
	}
	_, err := io.WriteString(w, sb.String())
	return err
}

// plotCurves draws the curves found in the stages' metrics files; it
// reports false when none has data.
func plotCurves(dir, file, title, ylabel string, curves []curve) (bool, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	p.Y.Label.Text = ylabel
	var lines []any
	for _, c := range curves {
		pts, err := readCurve(filepath.Join(dir, c.stage, train.MetricsFile), c.metric)
		if err != nil {
			return false, err
		}
		if len(pts) > 0 {
			lines = append(lines, c.label, pts)
		}
	}
	if len(lines) == 0 {
		return false, nil
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return false, err
	}
	p.Legend.Top = true
	return true, p.Save(6*vg.Inch, 3.5*vg.Inch, filepath.Join(dir, file))
}

// readCurve returns (step, metric) points of a metrics.jsonl file; a
// missing file or metric gives no points.
func readCurve(path, metric string) (plotter.XYs, error) {
	fh, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	var pts plotter.XYs
	sc := bufio.NewScanner(fh)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		step, ok1 := rec["step"].(float64)
		v, ok2 := rec[metric].(float64)
		if ok1 && ok2 {
			pts = append(pts, plotter.XY{X: step, Y: v})
		}
	}
	return pts, sc.Err()
}

// methodsPlotFile shows each policy's task score against its KL to SFT.
const methodsPlotFile = "methods.png"

// plotMethods draws methodsPlotFile: SFT at KL 0 and every method's
// policy, each point labelled, with its KL's standard error as a bar.
func plotMethods(dir string, r *Report) error {
	p := plot.New()
	p.Title.Text = "Policies: held-out task score against KL to SFT"
	p.X.Label.Text = "KL to SFT (nats per response)"
	p.Y.Label.Text = "task score"
	pts := plotter.XYs{{X: 0, Y: r.SFT.TaskScore}}
	labels := []string{"SFT"}
	errs := plotter.XErrors{{Low: 0, High: 0}}
	for _, m := range r.Methods {
		pts = append(pts, plotter.XY{X: m.KLToSFT.KL, Y: m.TaskScore})
		labels = append(labels, methodLabel(m.Name))
		errs = append(errs, struct{ Low, High float64 }{m.KLToSFT.StdErr, m.KLToSFT.StdErr})
	}
	sc, err := plotter.NewScatter(pts)
	if err != nil {
		return err
	}
	lb, err := plotter.NewLabels(plotter.XYLabels{XYs: pts, Labels: labels})
	if err != nil {
		return err
	}
	bars, err := plotter.NewXErrorBars(struct {
		plotter.XYer
		plotter.XErrorer
	}{pts, errs})
	if err != nil {
		return err
	}
	p.Add(sc, bars, lb)
	// Room around the points for their labels and error bars.
	yPad := 0.1*(p.Y.Max-p.Y.Min) + 0.01
	p.X.Min, p.X.Max = 0, 1.25*p.X.Max+0.01
	p.Y.Min, p.Y.Max = p.Y.Min-yPad, p.Y.Max+yPad
	return p.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(dir, methodsPlotFile))
}
