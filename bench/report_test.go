package bench

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/instructgo/instructgo/model"
)

// sampleReport is a small report with every kind of figure.
func sampleReport(values map[string]float64) *Report {
	r := &Report{
		Schema:  SchemaVersion,
		Date:    time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC),
		Seconds: 42,
		Machine: Machine{CPUModel: "AMD EPYC", LogicalCores: 2, SIMD: []string{"avx2", "fma"}, GoVersion: "go1.26.8",
			GOOS: "linux", GOARCH: "amd64", Commit: "0123456789abcdef", Modified: "false", Version: "dev",
			Backend: "cpu (2 threads)", Device: "cpu", Threads: 2, LoadStart: 0.5, LoadEnd: 1.5},
		Settings: Settings{Configs: []string{"tiny"}, Timing: DefaultTiming(), Rotate: 64 << 20, Clock: "host clock"},
		Ceilings: Ceilings{ComputeGFLOPs: 200, ComputeMethod: "fma", MemoryGBs: 40, MemoryMethod: "copy"},
	}
	units := map[string]string{"ceiling": "GFLOP/s", "matmul": "GFLOP/s", "step": "tokens/s", "layernorm": "GB/s"}
	for _, key := range []string{"ceiling/fma peak", "matmul/square 512", "layernorm/tiny fwd", "step/tiny sft"} {
		v, ok := values[key]
		if !ok {
			continue
		}
		group, name, _ := strings.Cut(key, "/")
		r.Results = append(r.Results, Result{Group: group, Name: name, Shape: "s", Unit: units[group],
			Value: v, Min: v * 0.9, Max: v * 1.1, Work: 1e9, Ceiling: CeilCompute, OfMeasured: v / 200,
			Time: Summarize([]float64{1e-3, 2e-3, 3e-3}), PerSample: 1,
			Extra: []Metric{{Name: "model", Value: 12.5, Unit: "GFLOP/s"}}})
	}
	return r
}

// gpuReport is sampleReport as a bf16 run on an H100 with its published
// peak: every compute figure has both fractions.
func gpuReport(values map[string]float64) *Report {
	r := sampleReport(values)
	r.Machine.GPUName, r.Machine.Backend = "NVIDIA H100 80GB HBM3", "cuda:0 (NVIDIA H100 80GB HBM3)"
	r.Settings.Precision = model.BF16
	r.Ceilings.ComputeGFLOPs, r.Ceilings.ComputeMethod = 800000, "gemm"
	r.Ceilings.PublishedGFLOPs, r.Ceilings.PublishedSource = 989500, "H100 SXM5, bf16 dense: datasheet"
	for i := range r.Results {
		// The step's fractions are of its model FLOP rate, as if 0.36
		// PFLOP/s; every other figure is a FLOP rate.
		flops := r.Results[i].Value * 1e9
		if r.Results[i].Group == "step" {
			flops = 0.36e15
		}
		r.Results[i].OfMeasured, r.Results[i].OfPublished = flops/800000e9, flops/989500e9
	}
	return r
}

func TestReportJSONRoundTrip(t *testing.T) {
	r := gpuReport(map[string]float64{"ceiling/fma peak": 200, "matmul/square 512": 150, "step/tiny sft": 9000})
	path := filepath.Join(t.TempDir(), "r.json")
	var buf bytes.Buffer
	if err := r.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, r) {
		t.Errorf("round trip changed the report:\n got %+v\nwant %+v", got, r)
	}
	// The new fields are there under names that say what they are.
	var raw struct {
		Machine  map[string]any   `json:"machine"`
		Settings map[string]any   `json:"settings"`
		Ceilings map[string]any   `json:"ceilings"`
		Results  []map[string]any `json:"results"`
	}
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"cpu_model", "logical_cores", "go_version", "commit", "backend", "gpu_name", "gpu_driver", "cuda_version", "load_start"} {
		if _, ok := raw.Machine[key]; !ok {
			t.Errorf("report JSON lacks machine.%s", key)
		}
	}
	if raw.Settings["precision"] != "bf16" || raw.Ceilings["published_peak_gflops"] != 989500.0 || raw.Ceilings["published_peak_source"] == "" {
		t.Errorf("settings %v, ceilings %v: want precision bf16 and the published peak", raw.Settings, raw.Ceilings)
	}
	for _, res := range raw.Results {
		if res["of_measured_ceiling"] == nil || res["of_published_peak"] == nil || res["fraction"] != nil {
			t.Errorf("result %v: want of_measured_ceiling and of_published_peak, no fraction", res)
		}
	}

	// A cpu report has no published peak: the fields are left out, not 0.
	buf.Reset()
	if err := sampleReport(map[string]float64{"matmul/square 512": 150}).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"published_peak_gflops", "of_published_peak"} {
		if strings.Contains(buf.String(), key) {
			t.Errorf("cpu report JSON has %s:\n%s", key, buf.String())
		}
	}
	if !strings.Contains(buf.String(), `"precision": "fp32"`) {
		t.Errorf("cpu report JSON lacks its precision:\n%s", buf.String())
	}
}

// TestReadSchema1 reads a report of the first layout: "fraction" is the
// share of the measured ceiling, and the run was fp32.
func TestReadSchema1(t *testing.T) {
	v1 := `{"schema": 1, "settings": {"configs": ["tiny"]}, "results": [
		{"group": "matmul", "name": "square 256", "unit": "GFLOP/s", "value": 150, "ceiling": "compute", "fraction": 0.644},
		{"group": "attention", "name": "tiny fwd", "unit": "GFLOP/s", "value": 31.7, "ceiling": "compute", "fraction": 0.136}]}`
	path := filepath.Join(t.TempDir(), "v1.json")
	if err := os.WriteFile(path, []byte(v1), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := ReadReport(path)
	if err != nil {
		t.Fatal(err)
	}
	if r.Settings.Precision != model.FP32 || len(r.Results) != 2 || r.Results[0].OfMeasured != 0.644 || r.Results[1].OfMeasured != 0.136 || r.Results[0].OfPublished != 0 {
		t.Errorf("schema 1 report read as %+v", r)
	}
}

func TestReadReportErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := ReadReport(filepath.Join(dir, "missing.json")); err == nil {
		t.Error("a missing file read without error")
	}
	bad := filepath.Join(dir, "bad.json")
	os.WriteFile(bad, []byte("{not json"), 0o644)
	if _, err := ReadReport(bad); err == nil || !strings.Contains(err.Error(), "bad.json") {
		t.Errorf("bad JSON: err = %v, want one naming the file", err)
	}
	other := filepath.Join(dir, "other.json")
	os.WriteFile(other, []byte(`{"schema": 99}`), 0o644)
	if _, err := ReadReport(other); err == nil || !strings.Contains(err.Error(), "schema") {
		t.Errorf("wrong schema: err = %v", err)
	}
}

func TestWriteTable(t *testing.T) {
	r := sampleReport(map[string]float64{"ceiling/fma peak": 200, "matmul/square 512": 150, "step/tiny sft": 9000})
	var buf bytes.Buffer
	if err := r.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"AMD EPYC", "0123456789ab", "go1.26.8", "precision: fp32", "measured ceilings: compute 200 GFLOP/s",
		"published peak: none known", "of measured", "of published", "square 512", "150", "0.750", "9,000", "45.000 MFU", "model 12.5 GFLOP/s", "2.00 ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}

	// A GPU report prints both fractions in their own columns.
	buf.Reset()
	if err := gpuReport(map[string]float64{"matmul/square 512": 600000, "step/tiny sft": 900000}).WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	out = buf.String()
	for _, want := range []string{"precision: bf16", "published peak: 989,500 GFLOP/s (H100 SXM5, bf16 dense"} {
		if !strings.Contains(out, want) {
			t.Errorf("GPU table lacks %q:\n%s", want, out)
		}
	}
	// The measured fraction, then the published one, in each row.
	for name, want := range map[string]string{"square 512": "0.750 0.606", "tiny sft": "0.450 MFU 0.364 MFU"} {
		found := false
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, name) {
				found = strings.Contains(strings.Join(strings.Fields(line), " "), want)
			}
		}
		if !found {
			t.Errorf("GPU table row %s lacks %q:\n%s", name, want, out)
		}
	}
}

// TestCompareAcrossPrecisions: a comparison of an fp32 and a bf16 report
// says so in its JSON and its table; one within a precision does not.
func TestCompareAcrossPrecisions(t *testing.T) {
	a := sampleReport(map[string]float64{"matmul/square 512": 100})
	b := sampleReport(map[string]float64{"matmul/square 512": 80})
	b.Settings.Precision = model.BF16
	c := Compare(a, b)
	if !c.CrossPrecision || c.PrecisionA != model.FP32 || c.PrecisionB != model.BF16 || len(c.Rows) != 1 || c.Rows[0].Ratio != 0.8 {
		t.Errorf("comparison %+v: want it flagged fp32 against bf16, ratio 0.8", c)
	}
	var buf bytes.Buffer
	if err := c.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "WARNING: A ran in fp32 and B in bf16") {
		t.Errorf("cross-precision table lacks the warning:\n%s", buf.String())
	}
	data, err := json.Marshal(c)
	if err != nil || !strings.Contains(string(data), `"cross_precision":true`) || !strings.Contains(string(data), `"precision_b":"bf16"`) {
		t.Errorf("comparison JSON %s (%v): want cross_precision true and the precisions", data, err)
	}
	same := Compare(a, a)
	buf.Reset()
	if err := same.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	if same.CrossPrecision || strings.Contains(buf.String(), "WARNING") {
		t.Errorf("a report against itself is flagged:\n%s", buf.String())
	}
}

// TestCompareConvertsFLOPRates: attention was GFLOP/s before schema 2 and
// is TFLOP/s now; the two compare, in B's unit. Other units never mix.
func TestCompareConvertsFLOPRates(t *testing.T) {
	a := sampleReport(nil)
	a.Results = []Result{{Group: "attention", Name: "tiny fwd", Unit: "GFLOP/s", Value: 31.7}, {Group: "layernorm", Name: "tiny fwd", Unit: "GB/s", Value: 4}}
	b := sampleReport(nil)
	b.Results = []Result{{Group: "attention", Name: "tiny fwd", Unit: "TFLOP/s", Value: 0.0634}, {Group: "layernorm", Name: "tiny fwd", Unit: "GFLOP/s", Value: 4}}
	c := Compare(a, b)
	if len(c.Rows) != 1 || c.Rows[0].Unit != "TFLOP/s" || math.Abs(c.Rows[0].A-0.0317) > 1e-12 || math.Abs(c.Rows[0].Ratio-2) > 1e-12 {
		t.Errorf("rows %+v: want attention in TFLOP/s, A 0.0317, ratio 2", c.Rows)
	}
	if !reflect.DeepEqual(c.OnlyB, []string{"layernorm/tiny fwd"}) {
		t.Errorf("only in B %v: GB/s and GFLOP/s must not compare", c.OnlyB)
	}
}

func TestFormatValue(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 0.012345: "0.0123", 1.2345: "1.23", 12.345: "12.3", 123.45: "123", 12345.6: "12,346", -1234567: "-1,234,567"} {
		if got := formatValue(v); got != want {
			t.Errorf("formatValue(%v) = %q, want %q", v, got, want)
		}
	}
}

func TestCompare(t *testing.T) {
	a := sampleReport(map[string]float64{"ceiling/fma peak": 200, "matmul/square 512": 100, "step/tiny sft": 10000, "layernorm/tiny fwd": 10})
	b := sampleReport(map[string]float64{"ceiling/fma peak": 100, "matmul/square 512": 150, "step/tiny sft": 5000})
	b.Results = append(b.Results, Result{Group: "attention", Name: "new", Unit: "GFLOP/s", Value: 1})
	// The same key in another unit does not compare.
	b.Results = append(b.Results, Result{Group: "layernorm", Name: "tiny fwd", Unit: "GFLOP/s", Value: 1})
	c := Compare(a, b)
	ratios := map[string]float64{}
	for _, r := range c.Rows {
		ratios[r.Key] = r.Ratio
	}
	want := map[string]float64{"ceiling/fma peak": 0.5, "matmul/square 512": 1.5, "step/tiny sft": 0.5}
	if !reflect.DeepEqual(ratios, want) {
		t.Errorf("ratios = %v, want %v", ratios, want)
	}
	if !reflect.DeepEqual(c.OnlyA, []string{"layernorm/tiny fwd"}) || !reflect.DeepEqual(c.OnlyB, []string{"attention/new", "layernorm/tiny fwd"}) {
		t.Errorf("only in A %v, only in B %v", c.OnlyA, c.OnlyB)
	}
	if g := c.GeoMean["all"]; math.Abs(g-math.Sqrt(0.75)) > 1e-12 {
		t.Errorf("geometric mean %v, want sqrt(1.5·0.5) = %v (ceilings left out)", g, math.Sqrt(0.75))
	}
	var buf bytes.Buffer
	if err := c.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"matmul/square 512", "1.50x", "0.50x", "0.87x", "only in A: [layernorm/tiny fwd]"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("comparison lacks %q:\n%s", want, buf.String())
		}
	}
}

func TestLastLevelCache(t *testing.T) {
	dir := t.TempDir()
	for name, files := range map[string][3]string{
		"index0": {"1", "Data", "32K"}, "index1": {"1", "Instruction", "32K"},
		"index2": {"2", "Unified", "1024K"}, "index3": {"3", "Unified", "32768K"},
	} {
		d := filepath.Join(dir, name)
		os.MkdirAll(d, 0o755)
		for i, f := range []string{"level", "type", "size"} {
			os.WriteFile(filepath.Join(d, f), []byte(files[i]+"\n"), 0o644)
		}
	}
	if got := lastLevelCache(dir); got != 32<<20 {
		t.Errorf("lastLevelCache = %d, want 32 MiB", got)
	}
	if got := lastLevelCache(filepath.Join(dir, "none")); got != DefaultCacheBytes {
		t.Errorf("lastLevelCache of a missing dir = %d, want the default", got)
	}
	for s, want := range map[string]int64{"512": 512, "48K": 48 << 10, "2M": 2 << 20, "1G": 1 << 30, "x": 0, "-1K": 0} {
		if got := parseCacheSize(s); got != want {
			t.Errorf("parseCacheSize(%q) = %d, want %d", s, got, want)
		}
	}
}
