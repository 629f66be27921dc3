package bench

import (
	"context"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
)

// quick is a timing for tests: one warm-up call and two samples, no
// minimum time.
var quick = Timing{Warmup: 1, MinReps: 2, MaxReps: 2}

// TestRunSmoke runs one benchmark of every kind at tiny sizes on the cpu
// backend and checks the figures are complete. It asserts nothing about
// speed.
func TestRunSmoke(t *testing.T) {
	match := regexp.MustCompile(`^(matmul/square 256|matmul/tiny decode qkv m=1|attention/tiny (fwd|bwd)|logsoftmax/tiny (fwd|bwd)|crossentropy/tiny|layernorm/tiny (fwd|bwd)|adamw/tiny|decode-attn/tiny|sample/tiny T=1|step/tiny (sft|rm)|ppo/tiny .*)$`)
	opt := Options{
		Configs: []string{"tiny"}, Batch: 4, Seq: 16, Match: match,
		Timing: quick, StepTiming: quick, CeilingTime: 20 * time.Millisecond,
		MemBytes: 4 << 20, RotateBytes: 1 << 20, Seed: 3,
		Machine: Machine{CPUModel: "test cpu", GoVersion: "go-test"},
	}
	r, err := Run(context.Background(), cpu.New(2), opt)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ceiling/fma peak", "ceiling/memory copy", "ceiling/memory read",
		"matmul/square 256", "matmul/tiny decode qkv m=1", "attention/tiny fwd", "attention/tiny bwd",
		"logsoftmax/tiny fwd", "logsoftmax/tiny bwd", "crossentropy/tiny", "layernorm/tiny fwd", "layernorm/tiny bwd", "adamw/tiny",
		"decode-attn/tiny", "sample/tiny T=1", "step/tiny sft", "step/tiny rm",
		"ppo/tiny generate", "ppo/tiny score", "ppo/tiny update", "ppo/tiny iteration",
	}
	var got []string
	for _, res := range r.Results {
		got = append(got, res.Key())
		if !(res.Value > 0) || math.IsInf(res.Value, 0) || !(res.OfMeasured > 0) || math.IsInf(res.OfMeasured, 0) {
			t.Errorf("%s: value %v, ceiling fraction %v; want both positive and finite", res.Key(), res.Value, res.OfMeasured)
		}
		if res.OfPublished != 0 {
			t.Errorf("%s: a fraction %v of a published peak on the cpu, which has none", res.Key(), res.OfPublished)
		}
		if res.Ceiling != CeilCompute && res.Ceiling != CeilMemory {
			t.Errorf("%s: ceiling %q", res.Key(), res.Ceiling)
		}
		if res.Group != "ceiling" && (res.Time.N < 2 || !(res.Min <= res.Value && res.Value <= res.Max)) {
			t.Errorf("%s: %d samples, rates %v ≤ %v ≤ %v", res.Key(), res.Time.N, res.Min, res.Value, res.Max)
		}
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	units := map[string]string{"step/tiny sft": "tokens/s", "step/tiny rm": "comparisons/s", "ppo/tiny generate": "tokens/s",
		"ppo/tiny iteration": "episodes/s", "layernorm/tiny fwd": "GB/s", "attention/tiny bwd": "TFLOP/s", "crossentropy/tiny": "GB/s",
		"matmul/square 256": "GFLOP/s"}
	for _, res := range r.Results {
		if u, ok := units[res.Key()]; ok && res.Unit != u {
			t.Errorf("%s: unit %q, want %q", res.Key(), res.Unit, u)
		}
	}
	m := r.Machine
	if m.Backend != "cpu (2 threads)" || m.Threads != 2 || m.CPUModel != "test cpu" || m.CacheBytes <= 0 {
		t.Errorf("machine = %+v", m)
	}
	if r.Ceilings.ComputeGFLOPs <= 0 || r.Ceilings.MemoryGBs <= 0 || r.Ceilings.PublishedGFLOPs != 0 || r.Settings.Clock != "host clock" || r.Settings.Precision != model.FP32 {
		t.Errorf("ceilings %+v, clock %q, precision %v", r.Ceilings, r.Settings.Clock, r.Settings.Precision)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("report does not marshal: %v", err)
	}
}

// TestRunBF16Smoke runs a step, attention and the cross-entropy in bf16 on
// the cpu backend: the report says bf16, the figures are complete, and the
// memory-bound figure counts 2-byte logits.
func TestRunBF16Smoke(t *testing.T) {
	opt := Options{
		Configs: []string{"tiny"}, Batch: 4, Seq: 16, Precision: model.BF16,
		Match:  regexp.MustCompile(`^(attention/tiny fwd|crossentropy/tiny|step/tiny sft|ppo/tiny iteration)$`),
		Timing: quick, StepTiming: quick, CeilingTime: 20 * time.Millisecond, MemBytes: 4 << 20, RotateBytes: 1 << 20, Seed: 3,
	}
	r, err := Run(context.Background(), cpu.New(2), opt)
	if err != nil {
		t.Fatal(err)
	}
	if r.Settings.Precision != model.BF16 {
		t.Errorf("precision %v, want bf16", r.Settings.Precision)
	}
	got := map[string]Result{}
	for _, res := range r.Results {
		got[res.Key()] = res
		if !(res.Value > 0) || !(res.OfMeasured > 0) || math.IsInf(res.OfMeasured, 0) {
			t.Errorf("%s: value %v, of measured %v", res.Key(), res.Value, res.OfMeasured)
		}
	}
	for _, key := range []string{"attention/tiny fwd", "crossentropy/tiny", "step/tiny sft", "ppo/tiny iteration"} {
		if _, ok := got[key]; !ok {
			t.Errorf("no %s in %v", key, got)
		}
	}
	// 64 rows of the tiny vocabulary (258): 64·258·2 bytes read and as
	// many written.
	if ce := got["crossentropy/tiny"]; ce.Work != 2*64*258*2 || !strings.Contains(ce.Shape, "bf16") {
		t.Errorf("cross-entropy work %v bytes (%s), want %d", ce.Work, ce.Shape, 2*64*258*2)
	}
}

// allocRecorder is a cpu backend that counts the tensors allocated by
// dtype.
type allocRecorder struct {
	*cpu.Backend
	n map[gpu.DType]int
}

func (r *allocRecorder) Alloc(dt gpu.DType, shape ...int) (*gpu.Tensor, error) {
	r.n[dt]++
	return r.Backend.Alloc(dt, shape...)
}

// TestOpsAllocateInActivationDType sets up and runs op cases in fp32 and
// bf16 and counts their tensors by dtype: in bf16 the activation-class
// tensors are bf16 and the float32-class ones stay float32 (the backend's
// checker refuses any other mix), in fp32 nothing is bf16.
func TestOpsAllocateInActivationDType(t *testing.T) {
	type counts struct{ f32, bf16 int }
	// Per case: the float32 and bf16 tensors of a bf16 run.
	want := map[string]counts{
		"matmul/square 256":      {0, 3}, // A, B, C
		"matmul/tiny fc dweight": {1, 2}, // the float32 gradient C
		"attention/tiny fwd":     {1, 2}, // lse; qkv, out
		"attention/tiny bwd":     {1, 4}, // lse; qkv, out, dout, dqkv
		"logsoftmax/tiny fwd":    {3, 1}, // logp, entropy, lse; logits
		"crossentropy/tiny":      {3, 1}, // logp, lse, dlogp; logits
		"layernorm/tiny bwd":     {4, 6}, // dweight, dbias, mean, rstd; inp, dout, dinp, weight, bias, out
		"adamw/tiny":             {5, 1}, // params, grads, m, v, normSq; the bf16 copy
		"decode-attn/tiny":       {0, 4}, // qkv, k and v caches, out
		"sample/tiny T=1":        {0, 1}, // logits
	}
	for _, prec := range []model.Precision{model.FP32, model.BF16} {
		rec := &allocRecorder{Backend: cpu.New(1), n: map[gpu.DType]int{}}
		e := newEnv(context.Background(), rec, Options{Configs: []string{"tiny"}, Batch: 2, Seq: 32, Precision: prec, RotateBytes: 1, Seed: 5})
		e.isCPU = true
		seen := 0
		for _, c := range e.opCases() {
			w, ok := want[c.group+"/"+c.name]
			if !ok {
				continue
			}
			seen++
			clear(rec.n)
			run, err := c.setup()
			if err == nil {
				err = run(0)
			}
			if err == nil {
				err = rec.Sync()
			}
			if err != nil {
				t.Fatalf("%s %s/%s: %v", prec, c.group, c.name, err)
			}
			got := counts{rec.n[gpu.Float32], rec.n[gpu.BF16]}
			if prec == model.FP32 {
				w = counts{w.f32 + w.bf16, 0}
				if c.group == "adamw" {
					w = counts{5, 0} // no bf16 copy
				}
			}
			if got != w {
				t.Errorf("%s %s/%s: %d float32 and %d bf16 tensors, want %d and %d", prec, c.group, c.name, got.f32, got.bf16, w.f32, w.bf16)
			}
		}
		if seen != len(want) {
			t.Errorf("%s: %d of the %d cases found", prec, seen, len(want))
		}
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	for _, opt := range []Options{
		{Configs: []string{"nope"}},
		{Only: "everything"},
		{Seq: 100000},
		{Seq: 2},
		{Batch: -1},
		{Precision: model.BF16 + 1},
	} {
		if _, err := Run(context.Background(), cpu.New(1), opt); err == nil {
			t.Errorf("Run(%+v) ran", opt)
		}
	}
}

func TestRunStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Run(ctx, cpu.New(1), Options{Timing: quick, StepTiming: quick, CeilingTime: time.Millisecond, MemBytes: 1 << 20})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Errorf("cancelled run: err = %v, want an interruption", err)
	}
}

// eventBackend is a cpu backend with device-event timing that reports
// 2 ms per sample.
type eventBackend struct {
	*cpu.Backend
	timed int
}

func (b *eventBackend) TimeOps(f func()) (time.Duration, error) {
	f()
	b.timed++
	return 2 * time.Millisecond, nil
}

func TestMeasurePrefersDeviceEvents(t *testing.T) {
	b := &eventBackend{Backend: cpu.New(1)}
	calls := 0
	m, err := measure(context.Background(), b, Timing{Warmup: 2, MinReps: 3, MaxReps: 3}, func(i int) error {
		if i != calls {
			t.Errorf("call index %d, want %d", i, calls)
		}
		calls++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.clock != "device events" || b.timed != 3 || m.stats.N != 3 || m.stats.Median != 0.002 || calls != 5 || m.calls != 5 {
		t.Errorf("clock %q, %d event timings, stats %+v, %d calls; want device events, 3, median 2 ms, 5 calls", m.clock, b.timed, m.stats, calls)
	}
}

// perCallBackend is a cpu backend with device-event timing that charges
// 100 µs for every call a sample makes.
type perCallBackend struct {
	*cpu.Backend
	calls *int
}

func (b perCallBackend) TimeOps(f func()) (time.Duration, error) {
	before := *b.calls
	f()
	return time.Duration(*b.calls-before) * 100 * time.Microsecond, nil
}

func TestMeasureBatchesShortCalls(t *testing.T) {
	calls := 0
	b := perCallBackend{Backend: cpu.New(1), calls: &calls}
	m, err := measure(context.Background(), b, Timing{Warmup: 1, MinReps: 2, MaxReps: 2, MinSample: 2 * time.Millisecond}, func(int) error {
		calls++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// One warm-up call, one calibration call (100 µs: 20 make 2 ms), then
	// two samples of 20 calls, each 100 µs a call.
	if m.perSample != 20 || m.calls != 42 || calls != 42 || m.stats.N != 2 || math.Abs(m.stats.Median-100e-6) > 1e-12 {
		t.Errorf("%d calls per sample, %d calls (%d counted), stats %+v; want 20, 42, median 100 µs", m.perSample, m.calls, calls, m.stats)
	}
}
