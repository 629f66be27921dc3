package bench

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/instructgo/instructgo/gpu"
)

// Timing says how long and how often a benchmark runs.
type Timing struct {
	// Warmup is the number of untimed calls before the first sample (at
	// least 1: first touch of every buffer, lazily loaded kernels).
	Warmup int `json:"warmup"`
	// MinReps is the fewest timed samples; MaxReps the most.
	MinReps int `json:"min_reps"`
	MaxReps int `json:"max_reps"`
	// MinTime keeps a benchmark sampling until this much time has passed
	// (and MinReps are done), up to MaxReps samples.
	MinTime time.Duration `json:"min_time_ns"`
	// MinSample makes a sample batch consecutive calls until it lasts at
	// least this long (its time per call is the average); 0 times every
	// call on its own. Training steps use 0.
	MinSample time.Duration `json:"min_sample_ns"`
}

// DefaultTiming is the timing of the op benchmarks of a default run: a
// warm-up call, then at least 5 samples of at least 1 ms each over at
// least 0.4 s (at most 200 samples).
func DefaultTiming() Timing {
	return Timing{Warmup: 1, MinReps: 5, MaxReps: 200, MinTime: 400 * time.Millisecond, MinSample: time.Millisecond}
}

// withDefaults makes the counts usable: at least one warm-up call and one
// sample, and MaxReps no less than MinReps. MinTime and MinSample are used
// as they are (0 is meaningful for both).
func (t Timing) withDefaults() Timing {
	d := DefaultTiming()
	if t.Warmup < 1 {
		t.Warmup = d.Warmup
	}
	if t.MinReps < 1 {
		t.MinReps = d.MinReps
	}
	if t.MaxReps == 0 {
		t.MaxReps = d.MaxReps
	}
	t.MaxReps = max(t.MaxReps, t.MinReps)
	return t
}

// EventTimer is implemented by a backend that can time queued work with
// device events: TimeOps queues a start event, calls f (which queues ops),
// queues a stop event, waits for it and returns the device time between
// the two. The harness prefers it to the host clock around Sync. The cuda
// backend implements it; the cpu backend has no queue to time.
type EventTimer interface {
	TimeOps(f func()) (time.Duration, error)
}

// measured is what measure found: the per-call statistics, the calls made
// (warm-up and calibration included) and the calls per sample.
type measured struct {
	stats     Stats
	calls     int
	perSample int
	clock     string // "device events" or "host clock"
}

// measure times run, which queues one call of the benchmarked work on b;
// i counts the calls from 0 (warm-up included), so run can rotate inputs.
// It syncs b around every sample and fails on the backend's first error.
func measure(ctx context.Context, b gpu.Backend, t Timing, run func(i int) error) (measured, error) {
	t = t.withDefaults()
	m := measured{perSample: 1, clock: "host clock"}
	et, hasEvents := b.(EventTimer)
	if hasEvents {
		m.clock = "device events"
	}
	call := func() error {
		err := run(m.calls)
		m.calls++
		return err
	}
	for range t.Warmup {
		if err := call(); err != nil {
			return m, err
		}
	}
	if err := b.Sync(); err != nil {
		return m, err
	}
	// sample runs k calls and returns their total time.
	sample := func(k int) (time.Duration, error) {
		var runErr error
		body := func() {
			for range k {
				if runErr = call(); runErr != nil {
					return
				}
			}
		}
		if hasEvents {
			d, err := et.TimeOps(body)
			if runErr != nil {
				return 0, runErr
			}
			return d, err
		}
		t0 := time.Now()
		body()
		if runErr != nil {
			return 0, runErr
		}
		if err := b.Sync(); err != nil {
			return 0, err
		}
		return time.Since(t0), nil
	}
	if t.MinSample > 0 {
		// Calibrate: one timed call says how many make a sample.
		d, err := sample(1)
		if err != nil {
			return m, err
		}
		if d < t.MinSample {
			m.perSample = int(min(10000, math.Ceil(float64(t.MinSample)/float64(max(d, time.Nanosecond)))))
		}
	}
	var samples []float64
	start := time.Now()
	for len(samples) < t.MinReps || (len(samples) < t.MaxReps && time.Since(start) < t.MinTime) {
		if err := ctx.Err(); err != nil {
			return m, fmt.Errorf("interrupted: %w", context.Cause(ctx))
		}
		d, err := sample(m.perSample)
		if err != nil {
			return m, err
		}
		samples = append(samples, d.Seconds()/float64(m.perSample))
	}
	m.stats = Summarize(samples)
	return m, nil
}
