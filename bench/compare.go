package bench

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
)

// Comparison sets the figures of report B against those of report A.
type Comparison struct {
	A, B *Report `json:"-"`
	// Rows are the figures both reports have (same key and unit), in B's
	// order.
	Rows []CompareRow `json:"rows"`
	// OnlyA and OnlyB are the keys one report has and the other lacks (or
	// has in another unit).
	OnlyA []string `json:"only_a"`
	OnlyB []string `json:"only_b"`
	// GeoMean is the geometric mean of the rows' ratios, by group, and of
	// every row under "all" (ceilings excluded from "all").
	GeoMean map[string]float64 `json:"geomean"`
}

// CompareRow is one figure in both reports. Ratio is B's value over A's:
// above 1, B is faster (every figure is a rate).
type CompareRow struct {
	Key       string  `json:"key"`
	Unit      string  `json:"unit"`
	A         float64 `json:"a"`
	B         float64 `json:"b"`
	Ratio     float64 `json:"ratio"`
	FractionA float64 `json:"fraction_a"`
	FractionB float64 `json:"fraction_b"`
}

// Compare matches the results of a and b by key (group/name) and unit.
func Compare(a, b *Report) Comparison {
	c := Comparison{A: a, B: b, OnlyA: []string{}, OnlyB: []string{}, Rows: []CompareRow{}, GeoMean: map[string]float64{}}
	inA := map[string]Result{}
	for _, r := range a.Results {
		inA[r.Key()] = r
	}
	matched := map[string]bool{}
	logSum, count := map[string]float64{}, map[string]int{}
	for _, rb := range b.Results {
		ra, ok := inA[rb.Key()]
		if !ok || ra.Unit != rb.Unit {
			c.OnlyB = append(c.OnlyB, rb.Key())
			continue
		}
		matched[rb.Key()] = true
		row := CompareRow{Key: rb.Key(), Unit: rb.Unit, A: ra.Value, B: rb.Value, FractionA: ra.Fraction, FractionB: rb.Fraction}
		if ra.Value > 0 {
			row.Ratio = rb.Value / ra.Value
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

// WriteTable prints both reports' headers, then per figure A, B, B/A and
// both ceiling fractions, then the geometric means.
func (c Comparison) WriteTable(w io.Writer) error {
	rows := [][]string{{"benchmark", "unit", "A", "B", "B/A", "ceiling A", "ceiling B"}}
	for _, r := range c.Rows {
		rows = append(rows, []string{r.Key, r.Unit, formatValue(r.A), formatValue(r.B), formatRatio(r.Ratio),
			fmt.Sprintf("%.3f", r.FractionA), fmt.Sprintf("%.3f", r.FractionB)})
	}
	text := fmt.Sprintf("A: %s\nB: %s\n\n", oneLine(c.A), oneLine(c.B)) +
		alignColumns(rows, []bool{false, false, true, true, true, true, true})
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

// oneLine names a report's machine, backend, commit and date.
func oneLine(r *Report) string {
	m := r.Machine
	s := fmt.Sprintf("%s, %s, %s", r.Date.Format("2006-01-02 15:04"), m.Backend, m.CPUModel)
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
