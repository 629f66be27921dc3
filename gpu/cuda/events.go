//go:build cuda && !cudaemu

package cuda

import (
	"time"

	"gorgonia.org/cu"
)

// The benchmark harness (bench.EventTimer) times a backend with device
// events when it offers them.
var _ interface {
	TimeOps(f func()) (time.Duration, error)
} = (*Backend)(nil)

// TimeOps returns the device time of the work f queues on the backend's
// stream, measured between two events recorded before and after it. Host
// time spent launching counts only where it keeps the GPU waiting, so the
// figure is the GPU's, not the Go loop's. f must only queue work (any
// backend op); TimeOps waits for the second event, then runs the checks
// that follow a synchronisation.
func (b *Backend) TimeOps(f func()) (time.Duration, error) {
	if !b.onOwnerThread("time ops") || b.err != nil {
		return 0, b.err
	}
	start, err := cu.MakeEvent(cu.DefaultEvent)
	if err != nil {
		return 0, wrapCU("time ops: create event", err)
	}
	defer cu.DestroyEvent(&start)
	stop, err := cu.MakeEvent(cu.DefaultEvent)
	if err != nil {
		return 0, wrapCU("time ops: create event", err)
	}
	defer cu.DestroyEvent(&stop)
	if b.fail(wrapCU("time ops: record start", start.Record(b.stream))) {
		return 0, b.err
	}
	f()
	if b.err != nil {
		return 0, b.err
	}
	if b.fail(wrapCU("time ops: record stop", stop.Record(b.stream))) || b.fail(wrapCU("time ops: wait", stop.Synchronize())) {
		return 0, b.err
	}
	b.runSyncChecks()
	if b.err != nil {
		return 0, b.err
	}
	ms, err := start.Elapsed(stop)
	if err != nil {
		return 0, wrapCU("time ops: elapsed", err)
	}
	return time.Duration(ms * float64(time.Millisecond)), nil
}
