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
		return writeMarkdown(w, rep, plots)
	})
}

// headline is the summary the terminal prints and report.md opens with,
// stated once: the table of the three models and the notes under it.
func headline(r *Report) (rows [][]string, notes []string) {
	rows = [][]string{
		{"model", "task score", "win rate vs SFT", "pretraining loss"},
		{"pretrained", fmt.Sprintf("%.3f", r.Pretrain.TaskScore), "", fmt.Sprintf("%.4f", r.Pretrain.ValLoss)},
		{"SFT", fmt.Sprintf("%.3f", r.SFT.TaskScore), "0.500", fmt.Sprintf("%.4f", r.SFTPtxLoss)},
		{"PPO-ptx", fmt.Sprintf("%.3f", r.PPO.TaskScore), fmt.Sprintf("%.3f", r.PPO.WinRateVsSFT), fmt.Sprintf("%.4f", r.PPO.PtxLoss)},
	}
	notes = append(notes,
		fmt.Sprintf("standard errors over the %d held-out prompts: win rate ±%.3f, task score gain %+.3f ± %.3f",
			r.EvalN, r.PPO.WinRateStdErr, r.PPO.TaskScore-r.SFT.TaskScore, r.PPO.ScoreGainStdErr),
		fmt.Sprintf("reward model: held-out accuracy %.3f (labelers agree %.3f); PPO KL to SFT %.3f; alignment tax %+.4f nats/token; %.0f s in all",
			r.RM.Accuracy, r.RM.LabelerAgrement, r.PPO.KLToSFT, r.PPO.PtxLoss-r.SFTPtxLoss, r.Seconds))
	if r.SFT.HabitRate > 0 || r.PPO.HabitRate > 0 {
		h := fmt.Sprintf("answers opening with the demonstrators' habit %q: SFT %.3f, PPO %.3f", tasks.HabitPrefix, r.SFT.HabitRate, r.PPO.HabitRate)
		if hr, e := r.PPO.WinRateSFTHabit, r.PPO.WinRateElsewhere; hr != nil && e != nil {
			h += fmt.Sprintf("; win rate where SFT's has it %.3f, elsewhere %.3f", *hr, *e)
		}
		notes = append(notes, h)
	}
	if bn := r.RM.BestOfN; bn != nil {
		notes = append(notes, fmt.Sprintf("on SFT's own samples, best of %d: by the reward model %.3f, by the ideal reward %.3f, one sample %.3f (task score)",
			bn.N, bn.ByRM, bn.Ideal, bn.Sample))
	}
	return rows, notes
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
	f("\nThe win rate is the simulated labeler's expected preference for the PPO response over the SFT\n")
	f("response to the same prompt (ties count half); the task score gain's standard error is paired by\n")
	f("prompt. The pretrained model's pretraining loss is its own at the end of pretraining; the alignment\n")
	f("tax is PPO's held-out pretraining loss minus SFT's (negative: PPO-ptx lowered it).\n\n")
	for _, n := range notes {
		f("- %s\n", n)
	}
	f("\n")
	f("Every held-out prompt's SFT and PPO responses, scores and the labeler's preference are in %s.\n\n", EvalSamplesFile)
	f("## Per task\n\n| task | SFT | PPO | win rate vs SFT |\n| --- | --- | --- | --- |\n")
	for _, n := range slices.Sorted(maps.Keys(r.SFT.PerTask)) {
		f("| %s | %.3f | %.3f | %.3f |\n", n, r.SFT.PerTask[n], r.PPO.PerTask[n], r.PPO.WinRateByTask[n])
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
	f("| PPO-ptx | mean RM score %.3f → %.3f%s; KL to SFT %.3f per episode | %.0f |\n\n", r.PPO.FirstScore, r.PPO.LastScore, rollouts, r.PPO.KLToSFT, r.PPO.Seconds)
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
