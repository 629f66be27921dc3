package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/instructgo/instructgo/model"
)

// SchemaVersion is the version of the Report JSON layout. Version 2 added
// the precision, the published peak and the two named fractions
// (of_measured_ceiling, of_published_peak) in place of version 1's
// "fraction"; ReadReport reads version 1 too (fp32, no published peak).
const SchemaVersion = 2

// Report is one run of the harness: where it ran, with which settings, the
// ceilings, and every figure.
type Report struct {
	Schema   int       `json:"schema"`
	Date     time.Time `json:"date"`
	Seconds  float64   `json:"seconds"` // wall time of the whole run
	Machine  Machine   `json:"machine"`
	Settings Settings  `json:"settings"`
	Ceilings Ceilings  `json:"ceilings"`
	Results  []Result  `json:"results"`
}

// Machine says where a report was measured. The command line fills what
// package bench cannot know (the build, the GPU driver); Run adds the
// backend, the cache size and the load.
type Machine struct {
	CPUModel      string   `json:"cpu_model"`
	LogicalCores  int      `json:"logical_cores"`
	SIMD          []string `json:"simd"`
	MemTotalBytes uint64   `json:"mem_total_bytes"`
	CacheBytes    int64    `json:"llc_bytes"` // last-level cache, as the OS reports it
	GOOS          string   `json:"goos"`
	GOARCH        string   `json:"goarch"`
	GoVersion     string   `json:"go_version"`
	Version       string   `json:"version"`  // instructgo's version
	Commit        string   `json:"commit"`   // git commit of the build, "unknown" without a stamp
	Modified      string   `json:"modified"` // whether the build had uncommitted changes
	Backend       string   `json:"backend"`  // the backend's Name
	Device        string   `json:"device"`   // "cpu" or "cuda:N"
	Threads       int      `json:"threads"`  // cpu backend workers (0 on other backends)
	// The GPU: empty on the cpu backend.
	GPUName              string `json:"gpu_name"`
	GPUComputeCapability string `json:"gpu_compute_capability"`
	GPUDriver            string `json:"gpu_driver"`
	CUDAVersion          string `json:"cuda_version"` // the driver's CUDA version
	// LoadStart and LoadEnd are the 1-minute load averages when the run
	// started and ended (−1: unknown): other work on a shared machine.
	LoadStart float64 `json:"load_start"`
	LoadEnd   float64 `json:"load_end"`
}

// Settings are the options a report was measured with.
type Settings struct {
	Configs []string `json:"configs"`
	Batch   int      `json:"batch"` // 0: each config's default
	Seq     int      `json:"seq"`
	Full    bool     `json:"full"`
	Only    string   `json:"only"`
	Match   string   `json:"match,omitempty"`
	// Precision is the run's precision mode: the step benchmarks' models
	// and the activation dtype of the op benchmarks.
	Precision model.Precision `json:"precision"`
	// Timing is the ops' timing, StepTiming the steps', CeilingTime the
	// time spent on each ceiling.
	Timing      Timing        `json:"timing"`
	StepTiming  Timing        `json:"step_timing"`
	CeilingTime time.Duration `json:"ceiling_time_ns"`
	Rotate      int64         `json:"rotate_bytes"`
	Clock       string        `json:"clock"` // "host clock" or "device events"
}

// Ceilings are the limits every figure is a fraction of: the compute and
// memory ceilings measured on this machine, in the run's precision, and
// the card's published dense peak for that precision where one is known
// (never on the cpu: no vendor publishes a bf16 matrix peak for it).
type Ceilings struct {
	ComputeGFLOPs float64 `json:"compute_gflops"`
	ComputeMethod string  `json:"compute_method"`
	MemoryGBs     float64 `json:"memory_gbs"`
	MemoryMethod  string  `json:"memory_method"`
	// PublishedGFLOPs is the published peak (LookupPeak), 0 when none is
	// known; PublishedSource names the card, the precision and the source.
	PublishedGFLOPs float64 `json:"published_peak_gflops,omitempty"`
	PublishedSource string  `json:"published_peak_source,omitempty"`
}

// Ceiling kinds a Result is measured against.
const (
	CeilCompute = "compute" // GFLOP/s; for steps MFU
	CeilMemory  = "memory"  // GB/s
)

// Result is one figure: the rate at the median time per call, its spread,
// and its fractions of the measured ceiling and of the published peak.
type Result struct {
	Group string `json:"group"` // ceiling, matmul, attention, logsoftmax, ...
	Name  string `json:"name"`  // unique within the group
	Shape string `json:"shape"` // what was measured, in words and numbers
	Unit  string `json:"unit"`  // of Value, Min, Max
	// Value is Work over the median seconds per call; Min and Max are the
	// rates of the slowest and the fastest sample.
	Value float64 `json:"value"`
	Min   float64 `json:"min"`
	Max   float64 `json:"max"`
	// Work is what one call does in Unit's numerator (FLOPs, bytes,
	// tokens, comparisons; GFLOP/s and GB/s are scaled by 1e9).
	Work float64 `json:"work"`
	// Ceiling names the measured ceiling (compute or memory); OfMeasured
	// is the figure's share of it: the FLOP rate (for steps the model FLOP
	// rate: MFU) over the measured compute ceiling (the GEMM rate of this
	// precision on a GPU, the FMA peak on the cpu), or GB/s over the
	// memory ceiling. OfPublished is the same FLOP rate over the card's
	// published dense peak for the run's precision (Ceilings); 0 for
	// memory figures and where no peak is known.
	Ceiling     string  `json:"ceiling"`
	OfMeasured  float64 `json:"of_measured_ceiling"`
	OfPublished float64 `json:"of_published_peak,omitempty"`
	Time        Stats   `json:"time"`
	// PerSample is the number of calls each timed sample averaged.
	PerSample int `json:"per_sample"`
	// Extra holds secondary figures of the same timing (the model FLOP
	// rate of a step, tokens/s of an RM step, ...).
	Extra []Metric `json:"extra,omitempty"`
}

// Metric is a secondary figure of a Result.
type Metric struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Key identifies a result across reports: group/name.
func (r Result) Key() string { return r.Group + "/" + r.Name }

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("write report JSON: %w", err)
	}
	return nil
}

// ReadReport reads a report written by WriteJSON (instructgo bench --json),
// of this schema or of version 1, whose figures were all fp32 and whose
// "fraction" was the share of the measured ceiling.
func ReadReport(path string) (*Report, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read report: %w", err)
	}
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("read report %s: %w", path, err)
	}
	switch r.Schema {
	case SchemaVersion:
	case 1:
		var v1 struct {
			Results []struct {
				Fraction float64 `json:"fraction"`
			} `json:"results"`
		}
		if err := json.Unmarshal(data, &v1); err != nil || len(v1.Results) != len(r.Results) {
			return nil, fmt.Errorf("read report %s: not a schema 1 report (%v)", path, err)
		}
		for i := range r.Results {
			r.Results[i].OfMeasured = v1.Results[i].Fraction
		}
		r.Settings.Precision = model.FP32
	default:
		return nil, fmt.Errorf("read report %s: schema %d, want %d or 1 (is it instructgo bench --json output?)", path, r.Schema, SchemaVersion)
	}
	return &r, nil
}

// Header is the report's first lines: machine, build, ceilings.
func (r *Report) Header() string {
	m := r.Machine
	var b strings.Builder
	fmt.Fprintf(&b, "instructgo bench, %s, %s\n", r.Date.Format("2006-01-02 15:04 MST"), m.Backend)
	fmt.Fprintf(&b, "machine: %s, %d logical cores", m.CPUModel, m.LogicalCores)
	if m.MemTotalBytes > 0 {
		fmt.Fprintf(&b, ", %.0f GiB", float64(m.MemTotalBytes)/(1<<30))
	}
	if m.CacheBytes > 0 {
		fmt.Fprintf(&b, ", LLC %d MiB", m.CacheBytes>>20)
	}
	if m.GPUName != "" {
		fmt.Fprintf(&b, "; GPU %s (sm %s, driver %s, CUDA %s)", m.GPUName, orUnknown(m.GPUComputeCapability), orUnknown(m.GPUDriver), orUnknown(m.CUDAVersion))
	}
	b.WriteString("\n")
	fmt.Fprintf(&b, "build: %s, commit %s (modified: %s), %s %s/%s\n", m.Version, shortCommit(m.Commit), orUnknown(m.Modified), m.GoVersion, m.GOOS, m.GOARCH)
	if m.LoadStart >= 0 {
		fmt.Fprintf(&b, "load average: %.2f at start, %.2f at end; run took %.0f s\n", m.LoadStart, m.LoadEnd, r.Seconds)
	}
	c := r.Ceilings
	fmt.Fprintf(&b, "precision: %s\n", r.Settings.Precision)
	fmt.Fprintf(&b, "measured ceilings: compute %s GFLOP/s (%s); memory %s GB/s (%s)\n",
		formatValue(c.ComputeGFLOPs), c.ComputeMethod, formatValue(c.MemoryGBs), c.MemoryMethod)
	if c.PublishedGFLOPs > 0 {
		fmt.Fprintf(&b, "published peak: %s GFLOP/s (%s)\n", formatValue(c.PublishedGFLOPs), c.PublishedSource)
	} else {
		b.WriteString("published peak: none known for this device and precision (no \"of published\" figures)\n")
	}
	s := r.Settings
	fmt.Fprintf(&b, "timing (%s): ops %d warm-up call(s), then the median of ≥%d samples of ≥%v over ≥%v; steps %d warm-up, then ≥%d over ≥%v; memory-bound ops rotate %d MiB of inputs\n",
		s.Clock, s.Timing.Warmup, s.Timing.MinReps, s.Timing.MinSample, s.Timing.MinTime,
		s.StepTiming.Warmup, s.StepTiming.MinReps, s.StepTiming.MinTime, s.Rotate>>20)
	return b.String()
}

// WriteTable prints the header and one row per result: the median rate,
// the range of the samples' rates, the interquartile spread, the fractions
// of the measured ceiling and of the published peak, the median time per
// call and the sample count.
func (r *Report) WriteTable(w io.Writer) error {
	rows := [][]string{{"group", "benchmark", "shape", "median", "unit", "min–max", "IQR", "of measured", "of published", "time/call", "n", "notes"}}
	for i, res := range r.Results {
		if i > 0 && res.Group != r.Results[i-1].Group {
			rows = append(rows, nil)
		}
		spread, iqr, perCall, n := formatValue(res.Min)+"–"+formatValue(res.Max), fmt.Sprintf("%.1f%%", res.Time.IQRPercent()), formatDuration(res.Time.Median), fmt.Sprint(res.Time.N)
		if res.Time.N == 0 { // a ceiling: the best round of its own measurement
			spread, iqr, perCall, n = "best round", "–", "–", "–"
		}
		rows = append(rows, []string{
			res.Group, res.Name, res.Shape, formatValue(res.Value), res.Unit,
			spread, iqr, formatFraction(res, res.OfMeasured), formatFraction(res, res.OfPublished), perCall, n, formatExtra(res.Extra),
		})
	}
	right := []bool{false, false, false, true, false, true, true, true, true, true, true, false}
	legend := "of measured: the share of the measured ceiling above (compute: the FLOP rate over the compute ceiling, MFU for steps; mem: GB/s over the memory ceiling); " +
		"of published: the FLOP rate over the published peak\n"
	if _, err := io.WriteString(w, r.Header()+legend+"\n"+alignColumns(rows, right)); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// alignColumns lays rows out in columns two spaces apart, right-aligning
// the columns marked so; a nil row is an empty line. Widths count runes.
func alignColumns(rows [][]string, right []bool) string {
	var width []int
	for _, row := range rows {
		for i, cell := range row {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(cell))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		var line strings.Builder
		for i, cell := range row {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell))
			if i > 0 {
				line.WriteString("  ")
			}
			if i < len(right) && right[i] {
				line.WriteString(pad + cell)
			} else {
				line.WriteString(cell + pad)
			}
		}
		b.WriteString(strings.TrimRight(line.String(), " ") + "\n")
	}
	return b.String()
}

// formatFraction prints a fraction of a result's ceiling, marked "MFU" for
// steps and "mem" for the memory ceiling; "–" for none.
func formatFraction(r Result, f float64) string {
	switch {
	case f == 0:
		return "–"
	case r.Group == "step" || r.Group == "ppo":
		return fmt.Sprintf("%.3f MFU", f)
	case r.Ceiling == CeilMemory:
		return fmt.Sprintf("%.3f mem", f)
	}
	return fmt.Sprintf("%.3f", f)
}

func formatExtra(ms []Metric) string {
	parts := make([]string, len(ms))
	for i, m := range ms {
		parts[i] = fmt.Sprintf("%s %s %s", m.Name, formatValue(m.Value), m.Unit)
	}
	return strings.Join(parts, ", ")
}

// formatValue prints a rate with three significant digits, thousands
// grouped: 0.0123, 1.23, 123, 12,345.
func formatValue(v float64) string {
	a := math.Abs(v)
	switch {
	case v == 0:
		return "0"
	case a >= 1000:
		return groupThousands(int64(math.Round(v)))
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	case a >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, ch := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(ch)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// formatDuration prints seconds in µs, ms or s.
func formatDuration(s float64) string {
	switch {
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 1e-3:
		return fmt.Sprintf("%.2f ms", s*1e3)
	default:
		return fmt.Sprintf("%.1f µs", s*1e6)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return orUnknown(c)
}
