package pipeline

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/train/tasks"
)

// sizesPlotFile is Figure 1 in miniature: each model's win rate against
// the baseline over the model sizes.
const sizesPlotFile = "sizes.png"

// sizesGrid is a table of the models (rows) at every size (columns), a
// cell each from cell.
func sizesGrid(r *SizesReport, cell func(SizeModel) string) [][]string {
	head := []string{"model"}
	for _, s := range r.Sizes {
		head = append(head, fmt.Sprintf("%s (%.2fM)", s.Size, float64(s.Params)/1e6))
	}
	rows := [][]string{head}
	for j, m := range sizeModels {
		row := []string{m.label}
		for _, s := range r.Sizes {
			row = append(row, cell(s.Models[j]))
		}
		rows = append(rows, row)
	}
	return rows
}

// sizesWinRates is the Figure 1 table: win rate against the baseline ±
// its standard error.
func sizesWinRates(r *SizesReport) [][]string {
	return sizesGrid(r, func(m SizeModel) string { return fmt.Sprintf("%.3f ± %.3f", m.WinRate, m.WinRateStdErr) })
}

// sizesTaskScores is the models' held-out task score at every size.
func sizesTaskScores(r *SizesReport) [][]string {
	return sizesGrid(r, func(m SizeModel) string { return fmt.Sprintf("%.3f", m.TaskScore) })
}

// alignmentTax is the table of the few-shot skill score (± standard
// error, then per skill) and the held-out pretraining loss of each
// size's models that have them.
func alignmentTax(r *SizesReport) [][]string {
	rows := [][]string{append(append([]string{"size", "model", "few-shot skill score"}, tasks.SkillNames()...), "pretraining loss")}
	for _, s := range r.Sizes {
		for _, m := range s.Models {
			if m.Skill == nil || m.PtxLoss == nil {
				continue
			}
			row := []string{s.Size, m.Model, fmt.Sprintf("%.3f ± %.3f", m.Skill.Score.Value, m.Skill.Score.StdErr)}
			for _, k := range tasks.SkillNames() {
				row = append(row, fmt.Sprintf("%.2f", m.Skill.PerSkill[k]))
			}
			rows = append(rows, append(row, fmt.Sprintf("%.4f", *m.PtxLoss)))
		}
	}
	return rows
}

// sizesNotes are the lines under the tables: what the numbers are and
// the paper's question, the aligned smallest model against the baseline.
func sizesNotes(r *SizesReport) []string {
	notes := []string{fmt.Sprintf("win rate: the simulated labeler's expected preference for a model's response over %s's to the same one of the %d held-out prompts (ties half), ± its standard error over the prompts; %.0f s in all",
		r.Baseline, r.EvalN, r.Seconds)}
	if len(r.Sizes) > 0 {
		small := r.Sizes[0]
		for _, s := range r.Sizes {
			if s.Params < small.Params {
				small = s
			}
		}
		for _, m := range small.Models {
			if m.Model == "PPO-ptx" {
				notes = append(notes, fmt.Sprintf("PPO-ptx %s against %s: %.3f ± %.3f (0.5: no preference)", small.Size, r.Baseline, m.WinRate, m.WinRateStdErr))
			}
		}
	}
	return notes
}

// WriteSizesSummary prints the sizes comparison for a terminal.
func WriteSizesSummary(w io.Writer, r *SizesReport) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for i, table := range [][][]string{sizesWinRates(r), alignmentTax(r)} {
		if i > 0 {
			fmt.Fprintln(tw)
		}
		for _, row := range table {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, n := range sizesNotes(r) {
		if _, err := fmt.Fprintln(w, n); err != nil {
			return err
		}
	}
	return nil
}

// WriteSizesReport writes dir/sizes.md and its plot.
func WriteSizesReport(dir string, r *SizesReport) error {
	if err := plotSizes(dir, r); err != nil {
		return fmt.Errorf("report: %s: %w", sizesPlotFile, err)
	}
	return atomicfile.Write(filepath.Join(dir, "sizes.md"), func(w io.Writer) error {
		var sb strings.Builder
		f := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
		table := func(rows [][]string) {
			for i, row := range rows {
				f("| %s |\n", strings.Join(row, " | "))
				if i == 0 {
					f("|%s\n", strings.Repeat(" --- |", len(row)))
				}
			}
			f("\n")
		}
		f("# InstructGPT at several model sizes\n\n")
		f("Backend: %s. Each size is a whole pipeline run in its sub-directory (its own report.md), on the same data.\n\n", r.Backend)
		f("## Win rate against %s\n\n", r.Baseline)
		table(sizesWinRates(r))
		f("The few-shot prompt puts %d demonstrations of the prompt's task (without the writers' habit) before it;\n", fewShotShots)
		f("its response ends at its first line break. PPO is PPO without the pretraining mix (ptx coefficient 0),\n")
		f("otherwise as PPO-ptx.\n\n")
		for _, n := range sizesNotes(r) {
			f("- %s\n", n)
		}
		f("\n![win rate against %s by model size](%s)\n\n", r.Baseline, sizesPlotFile)
		f("## Held-out task score\n\n")
		table(sizesTaskScores(r))
		f("## The alignment tax on held-out skills\n\n")
		f("%d few-shot probes of what the pretraining text teaches (%s; as many of each, after %d solved lines of\n",
			r.SkillN, strings.Join(tasks.SkillNames(), ", "), skillShots)
		f("the same form); a probe is right when the model finds its answer likelier than each of %d wrong choices of\n", tasks.SkillChoices-1)
		f("the same form (chance %.2f), ± the standard error over the probes; and the\n", 1/float64(tasks.SkillChoices))
		f("held-out pretraining loss (nats/token; the pretrained model's from the end of pretraining).\n\n")
		table(alignmentTax(r))
		_, err := io.WriteString(w, sb.String())
		return err
	})
}

// plotSizes draws sizesPlotFile: a line per model over the sizes'
// parameter counts (log scale), with the win rates' standard errors as
// bars.
func plotSizes(dir string, r *SizesReport) error {
	p := plot.New()
	p.Title.Text = "Win rate against " + r.Baseline
	p.X.Label.Text = "parameters"
	p.Y.Label.Text = "win rate"
	p.X.Scale, p.X.Tick.Marker = plot.LogScale{}, plot.LogTicks{}
	var lines []any
	for j, m := range sizeModels {
		pts := make(plotter.XYs, len(r.Sizes))
		errs := make(plotter.YErrors, len(r.Sizes))
		for i, s := range r.Sizes {
			pts[i] = plotter.XY{X: float64(s.Params), Y: s.Models[j].WinRate}
			errs[i].Low, errs[i].High = s.Models[j].WinRateStdErr, s.Models[j].WinRateStdErr
		}
		bars, err := plotter.NewYErrorBars(struct {
			plotter.XYer
			plotter.YErrorer
		}{pts, errs})
		if err != nil {
			return err
		}
		p.Add(bars)
		lines = append(lines, m.label, pts)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	p.Legend.Top, p.Legend.Left = true, true
	p.Y.Min, p.Y.Max = 0, 1
	// Room either side of the sizes on the log axis.
	p.X.Min, p.X.Max = p.X.Min/2, p.X.Max*2
	return p.Save(6*vg.Inch, 4*vg.Inch, filepath.Join(dir, sizesPlotFile))
}
