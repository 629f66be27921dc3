package cpu

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/instructgo/instructgo/gpu"
)

// Backend is the pure-Go implementation of gpu.Backend. Ops run
// synchronously on the calling goroutine, fanning out to Threads() workers;
// a Backend is not safe for concurrent use.
type Backend struct {
	threads int
	err     error
	act     actStage // the float32 scratch of bf16 activations (bf16.go)
}

var _ gpu.Backend = (*Backend)(nil)

// New returns a cpu backend using threads workers (0: runtime.NumCPU()).
func New(threads int) *Backend {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	return &Backend{threads: threads}
}

// Threads is the number of workers ops fan out to.
func (b *Backend) Threads() int { return b.threads }

// Name implements gpu.Backend.
func (b *Backend) Name() string { return fmt.Sprintf("cpu (%d threads)", b.threads) }

// storage is host memory: exactly one of f32, i32 and bf (bf16 bits) is
// set (non-nil even when empty: it marks the dtype).
type storage struct {
	f32 []float32
	i32 []int32
	bf  []uint16
}

func (s *storage) Elems() int {
	switch {
	case s.i32 != nil:
		return len(s.i32)
	case s.bf != nil:
		return len(s.bf)
	}
	return len(s.f32)
}

func (s *storage) DType() gpu.DType {
	switch {
	case s.i32 != nil:
		return gpu.Int32
	case s.bf != nil:
		return gpu.BF16
	}
	return gpu.Float32
}

// checker validates op arguments with the rules every backend shares
// (gpu.Checker); it accepts only this backend's tensors. Every op runs
// with either activation dtype (bf16.go), so BF16Ops is nil.
var checker = gpu.Checker{
	Backend: "cpu",
	Owns: func(s gpu.Storage) bool {
		_, ok := s.(*storage)
		return ok
	},
}

// Alloc implements gpu.Backend.
func (b *Backend) Alloc(dtype gpu.DType, shape ...int) (*gpu.Tensor, error) {
	n, err := checker.Alloc(dtype, shape)
	if err != nil {
		return nil, err
	}
	s := &storage{}
	switch dtype {
	case gpu.Int32:
		s.i32 = make([]int32, n)
	case gpu.BF16:
		s.bf = make([]uint16, n)
	default:
		s.f32 = make([]float32, n)
	}
	return gpu.NewTensor(s, 0, shape...)
}

// F32 returns the host slice a float32 tensor views. It lets tests and host
// code on the cpu backend read and write tensors without copies.
func F32(t *gpu.Tensor) []float32 {
	s := t.Storage().(*storage)
	return s.f32[t.Offset() : t.Offset()+t.Len() : t.Offset()+t.Len()]
}

// BF returns the host slice of bf16 bits a BF16 tensor views.
func BF(t *gpu.Tensor) []uint16 {
	s := t.Storage().(*storage)
	return s.bf[t.Offset() : t.Offset()+t.Len() : t.Offset()+t.Len()]
}

// I32 returns the host slice an Int32 tensor views.
func I32(t *gpu.Tensor) []int32 {
	s := t.Storage().(*storage)
	return s.i32[t.Offset() : t.Offset()+t.Len() : t.Offset()+t.Len()]
}

// Upload implements gpu.Backend.
func (b *Backend) Upload(t *gpu.Tensor, src []float32) error {
	if err := checker.Upload(t, gpu.Float32, len(src)); err != nil {
		return err
	}
	if t.DType() == gpu.BF16 {
		b.round(BF(t), src)
		return nil
	}
	copy(F32(t), src)
	return nil
}

// UploadInt32 implements gpu.Backend.
func (b *Backend) UploadInt32(t *gpu.Tensor, src []int32) error {
	if err := checker.Upload(t, gpu.Int32, len(src)); err != nil {
		return err
	}
	copy(I32(t), src)
	return nil
}

// Download implements gpu.Backend.
func (b *Backend) Download(dst []float32, t *gpu.Tensor) error {
	if err := checker.Download(t, gpu.Float32, len(dst)); err != nil {
		return err
	}
	if t.DType() == gpu.BF16 {
		b.widen(dst, BF(t))
		return b.err
	}
	copy(dst, F32(t))
	return b.err
}

// DownloadInt32 implements gpu.Backend.
func (b *Backend) DownloadInt32(dst []int32, t *gpu.Tensor) error {
	if err := checker.Download(t, gpu.Int32, len(dst)); err != nil {
		return err
	}
	copy(dst, I32(t))
	return b.err
}

// Sync implements gpu.Backend; cpu ops are synchronous.
func (b *Backend) Sync() error { return b.err }

// Err implements gpu.Backend.
func (b *Backend) Err() error { return b.err }

// Close implements gpu.Backend; host memory is left to the garbage collector.
func (b *Backend) Close() error { return nil }

// fail records the first error; it returns true when the op must not run
// (this error or an earlier one).
func (b *Backend) fail(err error) bool {
	if err != nil && b.err == nil {
		b.err = err
	}
	return b.err != nil
}

// failChecked records err, or else the first failure of checks (the rules
// on Int32 contents a Checker method returns) run on the host data; it
// reports whether the op must not run, as fail does.
func (b *Backend) failChecked(err error, checks []gpu.IndexCheck) bool {
	return b.fail(err) || b.fail(gpu.HostAll(checks, I32))
}

// parallelFor runs body over [0, n) split into disjoint contiguous chunks
// that cover it, each of at least minChunk items (but the last), so small
// ops stay on one core. Up to Threads() goroutines, the caller's included,
// claim chunks as they come: waking an idle core takes tens of microseconds
// on a VM, so the caller starts on the first chunk at once and a worker that
// wakes late just takes fewer chunks (or none: the caller does not wait for
// a worker that never claimed one).
//
// Chunks shrink as the range runs out (guided scheduling: a claim takes
// 1/(2·workers) of what is left, but at least minChunk and at least
// 1/(parTailChunks·workers) of n), so the workers finish close together
// with few claims. The chunk boundaries depend only on n, minChunk and
// Threads(), never on timing; which goroutine runs which chunk does, so
// bodies that reduce must keep their partial results per chunk (or per
// item), not per goroutine, and combine them in order (see sumChunks).
func (b *Backend) parallelFor(n, minChunk int, body func(lo, hi int)) {
	if n <= 0 {
		return
	}
	if minChunk < 1 {
		minChunk = 1
	}
	workers := min(b.threads, (n+minChunk-1)/minChunk)
	if workers <= 1 {
		body(0, n)
		return
	}
	p := &parRange{
		n:     int64(n),
		least: int64(max(minChunk, (n+parTailChunks*workers-1)/(parTailChunks*workers))),
		div:   int64(2 * workers),
		body:  body,
	}
	for w := 1; w < workers; w++ {
		go p.run()
	}
	p.run()
	// Every chunk is claimed; wait for those still running elsewhere (at
	// most one chunk's time). Spinning beats parking for such waits; yield
	// now and then, and sleep if the other thread is clearly descheduled.
	for i := 0; p.done.Load() < p.n; i++ {
		switch {
		case i >= 1<<14:
			time.Sleep(20 * time.Microsecond)
		case i&63 == 63:
			runtime.Gosched()
		}
	}
}

// parRange is the shared state of one parallelFor call.
type parRange struct {
	n, least, div int64
	body          func(lo, hi int)
	next          atomic.Int64 // first unclaimed item
	done          atomic.Int64 // items finished
}

// run claims chunks and runs them until none is left.
func (p *parRange) run() {
	for {
		lo := p.next.Load()
		if lo >= p.n {
			return
		}
		hi := min(lo+max(p.least, (p.n-lo)/p.div), p.n)
		if !p.next.CompareAndSwap(lo, hi) {
			continue
		}
		p.body(int(lo), int(hi))
		p.done.Add(hi - lo)
	}
}

// parTailChunks sets parallelFor's smallest chunk: n/(parTailChunks·workers)
// (or minChunk if larger), which bounds how long the caller may wait at the
// end for a worker still busy.
const parTailChunks = 16
