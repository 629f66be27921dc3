package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// fmaLoop is one way to run float32 fused multiply-adds flat out: calling
// run(n) performs n iterations of flopsPerIter flops (an FMA counts two).
type fmaLoop struct {
	name         string
	flopsPerIter float64
	run          func(n int)
}

// PeakFMA measures the float32 multiply-add rate this machine sustains, in
// GFLOP/s (one FMA is two flops), with threads goroutines (0: all CPUs) each
// running a loop of independent FMA chains for about d. It is the ceiling
// that matrix-multiplication benchmarks report fractions of. Every vector
// width the CPU supports is timed (d is shared between them) and the best
// is returned.
func PeakFMA(threads int, d time.Duration) (gflops float64) {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	loops := fmaLoops()
	each := d / time.Duration(len(loops))
	for _, l := range loops {
		gflops = max(gflops, measureFMA(l, threads, each))
	}
	return gflops
}

// measureFMA runs l on threads locked goroutines for about d, in rounds
// that start together, and returns the best round's rate: other load on a
// shared machine only ever slows a round down.
func measureFMA(l fmaLoop, threads int, d time.Duration) float64 {
	// Calibrate a chunk of about 100µs so the clock is read rarely.
	chunk := 1 << 8
	for chunk < 1<<30 {
		t0 := time.Now()
		l.run(chunk)
		if time.Since(t0) > 100*time.Microsecond {
			break
		}
		chunk *= 2
	}
	rounds := max(1, min(20, int(d/(5*time.Millisecond))))
	round := d / time.Duration(rounds)
	best := 0.0
	for range rounds {
		var (
			iters   atomic.Int64
			maxSpan atomic.Int64
			ready   sync.WaitGroup
			done    sync.WaitGroup
			start   = make(chan struct{})
		)
		for range threads {
			ready.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				ready.Done()
				<-start
				t0 := time.Now()
				n := 0
				for time.Since(t0) < round {
					l.run(chunk)
					n += chunk
				}
				span := int64(time.Since(t0))
				iters.Add(int64(n))
				for {
					old := maxSpan.Load()
					if span <= old || maxSpan.CompareAndSwap(old, span) {
						break
					}
				}
			}()
		}
		ready.Wait()
		close(start)
		done.Wait()
		if secs := time.Duration(maxSpan.Load()).Seconds(); secs > 0 {
			best = max(best, float64(iters.Load())*l.flopsPerIter/secs/1e9)
		}
	}
	return best
}

// fmaLoopGo is the portable loop: 8 independent multiply-add chains.
func fmaLoopGo(n int) {
	a0, a1, a2, a3 := float32(0), float32(0), float32(0), float32(0)
	a4, a5, a6, a7 := float32(0), float32(0), float32(0), float32(0)
	x, y := fmaSink, fmaSink
	for i := 0; i < n; i++ {
		a0 = a0*x + y
		a1 = a1*x + y
		a2 = a2*x + y
		a3 = a3*x + y
		a4 = a4*x + y
		a5 = a5*x + y
		a6 = a6*x + y
		a7 = a7*x + y
	}
	fmaSink = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7
}

// fmaSink keeps fmaLoopGo's results alive; it stays 0 so no denormals or
// overflow slow the loop down.
var fmaSink float32

var fmaLoopPortable = fmaLoop{name: "go scalar", flopsPerIter: 16, run: fmaLoopGo}
