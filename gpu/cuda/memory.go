//go:build cuda && !cudaemu

package cuda

/*
#include <cuda.h>

static CUresult igo_host_alloc(void **p, size_t n) { return cuMemHostAlloc(p, n, 0); }
static CUresult igo_host_free(void *p) { return cuMemFreeHost(p); }
*/
import "C"

import (
	"errors"
	"fmt"
	"math/bits"
	"runtime"
	"sync"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/instructgo/instructgo/gpu"
)

// storage is one device allocation; tensors are views into it.
type storage struct {
	b     *Backend
	ptr   cu.DevicePtr // 0 for an empty storage
	elems int
	dtype gpu.DType
}

// Elems implements gpu.Storage.
func (s *storage) Elems() int { return s.elems }

// DType implements gpu.Storage.
func (s *storage) DType() gpu.DType { return s.dtype }

// devicePtr is a device address as the kernels take it; the emulated
// backend (build tag cudaemu) has a host address of its own instead.
type devicePtr = cu.DevicePtr

// readDevice copies n bytes at src to dst, after the work queued before it.
func (b *Backend) readDevice(dst unsafe.Pointer, src devicePtr, n int64) error {
	return cu.MemcpyDtoH(dst, src, n)
}

// ptr is the device address of t's first element; 0 for a nil tensor (a
// kernel's optional operand). A tensor of another backend records an error
// and gives 0; validate operands with b.checker first.
func (b *Backend) ptr(t *gpu.Tensor) cu.DevicePtr {
	if t == nil {
		return 0
	}
	s, ok := t.Storage().(*storage)
	if !ok || s.b != b {
		b.failf("cuda: %v is not a tensor of this cuda backend", t)
		return 0
	}
	return s.ptr + cu.DevicePtr(t.Offset()*t.DType().Size())
}

// Alloc implements gpu.Backend: a zero-filled tensor in device memory, from
// the caching allocator. The zero fill is queued on the stream.
func (b *Backend) Alloc(dtype gpu.DType, shape ...int) (*gpu.Tensor, error) {
	n, err := b.checker.Alloc(dtype, shape)
	if err != nil {
		return nil, err
	}
	if !b.onOwnerThread("alloc") {
		return nil, b.err
	}
	if b.err != nil {
		return nil, fmt.Errorf("cuda alloc: the backend failed earlier: %w", b.err)
	}
	s := &storage{b: b, elems: n, dtype: dtype}
	if n > 0 {
		bytes := int64(n) * int64(dtype.Size())
		p, class, err := b.mem.alloc(bytes)
		if err != nil {
			return nil, fmt.Errorf("cuda alloc %v %v (%d bytes): %w", dtype, shape, bytes, err)
		}
		s.ptr = p
		b.mem.track(s, p, class)
		if err := cu.MemsetD32Async(p, 0, int64(n), b.stream); err != nil {
			b.fail(wrapCU("alloc: zero fill", err))
			return nil, b.err
		}
	}
	return gpu.NewTensor(s, 0, shape...)
}

// upload copies n elements at src into t through the pinned staging ring:
// each chunk is copied into a free pinned slot on the host and then copied
// to the device asynchronously on the stream, so src may be reused as soon
// as upload returns.
func (b *Backend) upload(op string, t *gpu.Tensor, d gpu.DType, src unsafe.Pointer, n int) error {
	if !b.onOwnerThread(op) {
		return b.err
	}
	dst := b.ptr(t)
	total := n * d.Size()
	for off := 0; off < total; off += stagingSlotBytes {
		m := min(stagingSlotBytes, total-off)
		slot, err := b.staging.acquire()
		if err != nil {
			b.fail(err)
			return b.err
		}
		copy(unsafe.Slice((*byte)(slot.host), m), unsafe.Slice((*byte)(unsafe.Add(src, off)), m))
		if err := cu.MemcpyHtoDAsync(dst+cu.DevicePtr(off), slot.host, int64(m), b.stream); err != nil {
			b.fail(wrapCU(op+": copy to device", err))
			return b.err
		}
		if err := slot.record(b.stream); err != nil {
			b.fail(err)
			return b.err
		}
	}
	return nil
}

// download waits for the queued ops and copies t into n elements at dst,
// chunk by chunk through the staging ring: while one chunk is copied out on
// the host, the next ones are in flight.
func (b *Backend) download(op string, t *gpu.Tensor, d gpu.DType, dst unsafe.Pointer, n int) error {
	if !b.onOwnerThread(op) {
		return b.err
	}
	if n == 0 {
		return b.Sync()
	}
	b.syncs++
	src := b.ptr(t)
	total := n * d.Size()
	type chunk struct {
		slot    *stagingSlot
		off, m  int
		drained bool
	}
	chunks := make([]chunk, 0, (total+stagingSlotBytes-1)/stagingSlotBytes)
	drain := func(c *chunk) error {
		if err := c.slot.wait(); err != nil {
			return err
		}
		copy(unsafe.Slice((*byte)(unsafe.Add(dst, c.off)), c.m), unsafe.Slice((*byte)(c.slot.host), c.m))
		c.drained = true
		return nil
	}
	nslots := len(b.staging.slots)
	for off := 0; off < total; off += stagingSlotBytes {
		i := len(chunks)
		if i >= nslots {
			// The next slot is the one chunk i−nslots used: empty it first.
			if err := drain(&chunks[i-nslots]); err != nil {
				b.fail(wrapCU(op, err))
				return b.err
			}
		}
		m := min(stagingSlotBytes, total-off)
		slot, err := b.staging.acquire()
		if err != nil {
			b.fail(err)
			return b.err
		}
		if err := cu.MemcpyDtoHAsync(slot.host, src+cu.DevicePtr(off), int64(m), b.stream); err != nil {
			b.fail(wrapCU(op+": copy to host", err))
			return b.err
		}
		if err := slot.record(b.stream); err != nil {
			b.fail(err)
			return b.err
		}
		chunks = append(chunks, chunk{slot: slot, off: off, m: m})
	}
	for i := range chunks {
		if !chunks[i].drained {
			if err := drain(&chunks[i]); err != nil {
				b.fail(wrapCU(op, err))
				return b.err
			}
		}
	}
	// The last chunk's event covered every op queued before the download.
	b.runSyncChecks()
	return b.err
}

// --- the caching device allocator ------------------------------------------

// allocator hands out device memory by size class. A block whose storage the
// garbage collector found unreachable goes back to its class's free list and
// is reused by a later Alloc of the same class: all work is on one stream, so
// a kernel queued after the reuse runs after every kernel that used the
// block before. Device memory is freed only when an allocation fails for
// lack of memory (then every cached block is freed and the allocation
// retried) and in Close.
type allocator struct {
	free  map[int64][]cu.DevicePtr // cached blocks by class size
	sizes map[cu.DevicePtr]int64   // every block owned, live or cached
	stats MemStats

	mu      sync.Mutex // guards pending and closed: cleanups run elsewhere
	pending []block
	closed  bool
}

type block struct {
	ptr  cu.DevicePtr
	size int64
}

// MemStats describes the allocator's device memory.
type MemStats struct {
	MemAllocs     int   // cuMemAlloc calls
	MemFrees      int   // cuMemFree calls
	Reuses        int   // allocations served from a free list
	ReservedBytes int64 // device memory held (live + cached)
	CachedBytes   int64 // device memory in free lists
}

func newAllocator() *allocator {
	return &allocator{free: make(map[int64][]cu.DevicePtr), sizes: make(map[cu.DevicePtr]int64)}
}

// sizeClass rounds a request up to its class: multiples of 512 bytes up to
// 1 MiB; above, eight classes per power of two (at most 12.5% slack).
func sizeClass(n int64) int64 {
	const small = 1 << 20
	if n <= small {
		return (n + 511) &^ 511
	}
	step := int64(1) << (63 - bits.LeadingZeros64(uint64(n)) - 3)
	return (n + step - 1) / step * step
}

// alloc returns a block of at least n bytes and its class size.
func (a *allocator) alloc(n int64) (cu.DevicePtr, int64, error) {
	a.drainPending()
	class := sizeClass(n)
	if list := a.free[class]; len(list) > 0 {
		p := list[len(list)-1]
		a.free[class] = list[:len(list)-1]
		a.stats.CachedBytes -= class
		a.stats.Reuses++
		return p, class, nil
	}
	p, err := cu.MemAlloc(class)
	if err != nil && errors.Is(err, cu.OutOfMemory) {
		// Give the cache back to the driver and try once more.
		if ferr := a.releaseCached(); ferr != nil {
			return 0, 0, fmt.Errorf("%w (freeing the cache: %v)", err, ferr)
		}
		p, err = cu.MemAlloc(class)
	}
	if err != nil {
		return 0, 0, err
	}
	a.stats.MemAllocs++
	a.stats.ReservedBytes += class
	a.sizes[p] = class
	return p, class, nil
}

// track arranges for s's block to return to the free lists when s becomes
// unreachable.
func (a *allocator) track(s *storage, p cu.DevicePtr, class int64) {
	runtime.AddCleanup(s, a.release, block{ptr: p, size: class})
}

// release is the cleanup of a storage: it runs on a runtime goroutine, so it
// only queues the block; the owner goroutine files it at its next alloc.
func (a *allocator) release(blk block) {
	a.mu.Lock()
	if !a.closed {
		a.pending = append(a.pending, blk)
	}
	a.mu.Unlock()
}

func (a *allocator) drainPending() {
	a.mu.Lock()
	pending := a.pending
	a.pending = nil
	a.mu.Unlock()
	for _, blk := range pending {
		a.free[blk.size] = append(a.free[blk.size], blk.ptr)
		a.stats.CachedBytes += blk.size
	}
}

// releaseCached frees every cached block (cuMemFree). The caller has made
// sure no queued work uses them: cached blocks belong to unreachable
// storage, and the driver's cuMemFree waits for the device to stop using
// the memory.
func (a *allocator) releaseCached() error {
	var errs []error
	for class, list := range a.free {
		for _, p := range list {
			if err := cu.MemFree(p); err != nil {
				errs = append(errs, err)
			}
			a.stats.MemFrees++
			a.stats.ReservedBytes -= class
			a.stats.CachedBytes -= class
			delete(a.sizes, p)
		}
		delete(a.free, class)
	}
	return errors.Join(errs...)
}

// releaseAll frees every block, live or cached (Close).
func (a *allocator) releaseAll() error {
	a.mu.Lock()
	a.closed = true
	a.pending = nil
	a.mu.Unlock()
	var errs []error
	for p, class := range a.sizes {
		if err := cu.MemFree(p); err != nil {
			errs = append(errs, err)
		}
		a.stats.MemFrees++
		a.stats.ReservedBytes -= class
	}
	a.sizes = map[cu.DevicePtr]int64{}
	a.free = map[int64][]cu.DevicePtr{}
	a.stats.CachedBytes = 0
	return errors.Join(errs...)
}

// MemStats reports the allocator's counters, after filing the blocks the
// garbage collector has returned so far.
func (b *Backend) MemStats() MemStats {
	b.mem.drainPending()
	return b.mem.stats
}

// --- pinned host staging ----------------------------------------------------

const (
	stagingSlots     = 4
	stagingSlotBytes = 8 << 20
)

// stagingRing is a few pinned host buffers used in turn for host↔device
// copies. Each slot's event marks when the last copy through it is done.
type stagingRing struct {
	slots []stagingSlot
	next  int
}

type stagingSlot struct {
	host  unsafe.Pointer // pinned, stagingSlotBytes long
	ev    cu.Event
	inUse bool // a copy through the slot may still be running
}

func newStagingRing() (*stagingRing, error) {
	r := &stagingRing{slots: make([]stagingSlot, stagingSlots)}
	for i := range r.slots {
		s := &r.slots[i]
		var p unsafe.Pointer
		if err := result(C.igo_host_alloc(&p, C.size_t(stagingSlotBytes))); err != nil {
			r.free()
			return nil, fmt.Errorf("allocate %d bytes of pinned host memory: %w", stagingSlotBytes, err)
		}
		s.host = p
		ev, err := cu.MakeEvent(cu.DisableTiming)
		if err != nil {
			r.free()
			return nil, fmt.Errorf("create event: %w", err)
		}
		s.ev = ev
	}
	return r, nil
}

// acquire returns the next slot, once the last copy through it has finished.
func (r *stagingRing) acquire() (*stagingSlot, error) {
	s := &r.slots[r.next]
	r.next = (r.next + 1) % len(r.slots)
	if err := s.wait(); err != nil {
		return nil, wrapCU("staging", err)
	}
	return s, nil
}

// record marks the slot busy until the work queued so far on stream is done.
func (s *stagingSlot) record(stream cu.Stream) error {
	if err := s.ev.Record(stream); err != nil {
		return wrapCU("record staging event", err)
	}
	s.inUse = true
	return nil
}

// wait blocks until the last copy through the slot has finished.
func (s *stagingSlot) wait() error {
	if !s.inUse {
		return nil
	}
	s.inUse = false
	return s.ev.Synchronize()
}

func (r *stagingRing) free() error {
	var errs []error
	for i := range r.slots {
		s := &r.slots[i]
		if s.inUse {
			if err := s.ev.Synchronize(); err != nil {
				errs = append(errs, err)
			}
		}
		if s.ev != (cu.Event{}) {
			if err := cu.DestroyEvent(&s.ev); err != nil {
				errs = append(errs, err)
			}
		}
		if s.host != nil {
			if err := result(C.igo_host_free(s.host)); err != nil {
				errs = append(errs, err)
			}
			s.host = nil
		}
	}
	return errors.Join(errs...)
}
