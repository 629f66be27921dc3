package bench

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/instructgo/instructgo/model"
)

// Comparison sets the figures of report B against those of report A.
type Comparison struct {
	A, B *Report `json:"-"`
	// PrecisionA and PrecisionB are the reports' precision modes;
	// CrossPrecision flags a comparison between two modes, whose ratios
	// measure the precision as much as the code.
	PrecisionA     model.Precision `json:"precision_a"`
	PrecisionB     model.Precision `json:"precision_b"`
	CrossPrecision bool            `json:"cross_precision"`
	// Rows are the figures both reports have (same key, and units of one
	// quantity: GFLOP/s and TFLOP/s compare), in B's order.
	Rows []CompareRow `json:"rows"`
	// OnlyA and OnlyB are the keys one report has and the other lacks (or
	// has in another unit).
	OnlyA []string `json:"only_a"`
	OnlyB []string `json:"only_b"`
	// GeoMean is the geometric mean of the rows' ratios, by group, and of
	// every row under "all" (ceilings excluded from "all").
	GeoMean map[string]float64 `json:"geomean"`
}

// CompareRow is one figure in both reports, both in B's unit. Ratio is B's
// value over A's: above 1, B is faster (every figure is a rate).
// OfMeasuredA and OfMeasuredB are each figure's share of its own report's
// measured ceiling.
type CompareRow struct {
	Key         string  `json:"key"`
	Unit        string  `json:"unit"`
	A           float64 `json:"a"`
	B           float64 `json:"b"`
	Ratio       float64 `json:"ratio"`
	OfMeasuredA float64 `json:"of_measured_a"`
	OfMeasuredB float64 `json:"of_measured_b"`
}

// Compare matches the results of a and b by key (group/name) and unit, and
// flags reports of different precisions.
func Compare(a, b *Report) Comparison {
	c := Comparison{A: a, B: b, OnlyA: []string{}, OnlyB: []string{}, Rows: []CompareRow{}, GeoMean: map[string]float64{},
		PrecisionA: a.Settings.Precision, PrecisionB: b.Settings.Precision, CrossPrecision: a.Settings.Precision != b.Settings.Precision}
	inA := map[string]Result{}
	for _, r := range a.Results {
		inA[r.Key()] = r
	}
	matched := map[string]bool{}
	logSum, count := map[string]float64{}, map[string]int{}
	for _, rb := range b.Results {
		ra, ok := inA[rb.Key()]
		scale, same := unitRatio(ra.Unit, rb.Unit)
		if !ok || !same {
			c.OnlyB = append(c.OnlyB, rb.Key())
			continue
		}
		matched[rb.Key()] = true
		row := CompareRow{Key: rb.Key(), Unit: rb.Unit, A: ra.Value * scale, B: rb.Value, OfMeasuredA: ra.OfMeasured, OfMeasuredB: rb.OfMeasured}
		if row.A > 0 {
			row.Ratio = row.B / row.A
		}
		c.Rows = append(c.Rows, row)
		if row.Ratio > 0 && !math.IsInf(row.Ratio, 0) {
			l := math.Log(row.Ratio)
			logSum[rb.Group] += l
			count[rb.Group]++
			if rb.Group != "ceiling" {
				logSum["all"] += l
				count["all"]++
			}
		}
	}
	for _, r := range a.Results {
		if !matched[r.Key()] {
			c.OnlyA = append(c.OnlyA, r.Key())
		}
	}
	for g, s := range logSum {
		c.GeoMean[g] = math.Exp(s / float64(count[g]))
	}
	return c
}

// WriteTable prints both reports' headers, a warning when their precisions
// differ, then per figure A, B, B/A and both shares of the measured
// ceiling, then the geometric means.
func (c Comparison) WriteTable(w io.Writer) error {
	rows := [][]string{{"benchmark", "unit", "A", "B", "B/A", "of measured A", "of measured B"}}
	for _, r := range c.Rows {
		rows = append(rows, []string{r.Key, r.Unit, formatValue(r.A), formatValue(r.B), formatRatio(r.Ratio),
			fmt.Sprintf("%.3f", r.OfMeasuredA), fmt.Sprintf("%.3f", r.OfMeasuredB)})
	}
	text := fmt.Sprintf("A: %s\nB: %s\n", oneLine(c.A), oneLine(c.B))
	if c.CrossPrecision {
		text += fmt.Sprintf("WARNING: A ran in %s and B in %s: every ratio below compares the precisions as well as the code\n", c.PrecisionA, c.PrecisionB)
	}
	text += "\n" + alignColumns(rows, []bool{false, false, true, true, true, true, true})
	if _, err := io.WriteString(w, text); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	if g, ok := c.GeoMean["all"]; ok {
		fmt.Fprintf(w, "\ngeometric mean of B/A over %d figures (ceilings excluded): %s\n", len(c.Rows)-countGroup(c.Rows, "ceiling"), formatRatio(g))
	}
	for _, group := range slices.Sorted(maps.Keys(c.GeoMean)) {
		if group != "all" {
			fmt.Fprintf(w, "  %s: %s\n", group, formatRatio(c.GeoMean[group]))
		}
	}
	if len(c.OnlyA) > 0 {
		fmt.Fprintf(w, "only in A: %v\n", c.OnlyA)
	}
	if len(c.OnlyB) > 0 {
		fmt.Fprintf(w, "only in B: %v\n", c.OnlyB)
	}
	return nil
}

// oneLine names a report's machine, backend, precision, commit and date.
func oneLine(r *Report) string {
	m := r.Machine
	s := fmt.Sprintf("%s, %s, %s, %s", r.Date.Format("2006-01-02 15:04"), m.Backend, r.Settings.Precision, m.CPUModel)
	if m.GPUName != "" {
		s += ", " + m.GPUName
	}
	return s + ", commit " + shortCommit(m.Commit)
}

func formatRatio(r float64) string {
	if r == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2fx", r)
}

func countGroup(rows []CompareRow, group string) int {
	n := 0
	for _, r := range rows {
		if strings.HasPrefix(r.Key, group+"/") {
			n++
		}
	}
	return n
}

// unitRatio says whether units a and b measure one quantity and, if so,
// the factor that converts a value in a into b: equal units, or FLOP
// rates with the prefixes G and T (attention figures were GFLOP/s before
// schema 2).
func unitRatio(a, b string) (float64, bool) {
	if a == b {
		return 1, true
	}
	prefix := map[string]float64{"GFLOP/s": 1e9, "TFLOP/s": 1e12}
	pa, okA := prefix[a]
	pb, okB := prefix[b]
	if !okA || !okB {
		return 0, false
	}
	return pa / pb, true
}
