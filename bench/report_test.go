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
			Value: v, Min: v * 0.9, Max: v * 1.1, Work: 1e9, Ceiling: CeilCompute, Fraction: v / 200,
			Time: Summarize([]float64{1e-3, 2e-3, 3e-3}), PerSample: 1,
			Extra: []Metric{{Name: "model", Value: 12.5, Unit: "GFLOP/s"}}})
	}
	return r
}

func TestReportJSONRoundTrip(t *testing.T) {
	r := sampleReport(map[string]float64{"ceiling/fma peak": 200, "matmul/square 512": 150, "step/tiny sft": 9000})
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
	// Every machine field is present, the GPU ones empty on the cpu.
	var raw struct {
		Machine map[string]any `json:"machine"`
	}
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"cpu_model", "logical_cores", "go_version", "commit", "backend", "gpu_name", "gpu_driver", "cuda_version", "load_start"} {
		if _, ok := raw.Machine[key]; !ok {
			t.Errorf("report JSON lacks machine.%s", key)
		}
	}
	if raw.Machine["gpu_name"] != "" {
		t.Errorf("gpu_name = %v on a cpu report, want empty", raw.Machine["gpu_name"])
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
	for _, want := range []string{"AMD EPYC", "0123456789ab", "go1.26.8", "ceilings: compute 200 GFLOP/s", "square 512", "150", "0.750 peak", "9,000", "45.000 MFU", "model 12.5 GFLOP/s", "2.00 ms"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
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
