package bench

import (
	"context"
	"encoding/json"
	"math"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/instructgo/instructgo/gpu/cpu"
)

// quick is a timing for tests: one warm-up call and two samples, no
// minimum time.
var quick = Timing{Warmup: 1, MinReps: 2, MaxReps: 2}

// TestRunSmoke runs one benchmark of every kind at tiny sizes on the cpu
// backend and checks the figures are complete. It asserts nothing about
// speed.
func TestRunSmoke(t *testing.T) {
	match := regexp.MustCompile(`^(matmul/square 256|matmul/tiny decode qkv m=1|attention/tiny (fwd|bwd)|logsoftmax/tiny (fwd|bwd)|layernorm/tiny (fwd|bwd)|adamw/tiny|decode-attn/tiny|sample/tiny T=1|step/tiny (sft|rm)|ppo/tiny .*)$`)
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
		"logsoftmax/tiny fwd", "logsoftmax/tiny bwd", "layernorm/tiny fwd", "layernorm/tiny bwd", "adamw/tiny",
		"decode-attn/tiny", "sample/tiny T=1", "step/tiny sft", "step/tiny rm",
		"ppo/tiny generate", "ppo/tiny score", "ppo/tiny update", "ppo/tiny iteration",
	}
	var got []string
	for _, res := range r.Results {
		got = append(got, res.Key())
		if !(res.Value > 0) || math.IsInf(res.Value, 0) || !(res.Fraction > 0) || math.IsInf(res.Fraction, 0) {
			t.Errorf("%s: value %v, ceiling fraction %v; want both positive and finite", res.Key(), res.Value, res.Fraction)
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
		"ppo/tiny iteration": "episodes/s", "layernorm/tiny fwd": "GB/s", "attention/tiny bwd": "GFLOP/s"}
	for _, res := range r.Results {
		if u, ok := units[res.Key()]; ok && res.Unit != u {
			t.Errorf("%s: unit %q, want %q", res.Key(), res.Unit, u)
		}
	}
	m := r.Machine
	if m.Backend != "cpu (2 threads)" || m.Threads != 2 || m.CPUModel != "test cpu" || m.CacheBytes <= 0 {
		t.Errorf("machine = %+v", m)
	}
	if r.Ceilings.ComputeGFLOPs <= 0 || r.Ceilings.MemoryGBs <= 0 || r.Settings.Clock != "host clock" {
		t.Errorf("ceilings %+v, clock %q", r.Ceilings, r.Settings.Clock)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("report does not marshal: %v", err)
	}
}

func TestRunRejectsBadOptions(t *testing.T) {
	for _, opt := range []Options{
		{Configs: []string{"nope"}},
		{Only: "everything"},
		{Seq: 100000},
		{Seq: 2},
		{Batch: -1},
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
