//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/instructgo/instructgo/gpu"
)

// State and helpers shared by the op wrappers (ops_*.go): the device error
// flag of the data checks, a reusable device scratch buffer, and launch
// shapes.
//
// # Data checks and the error flag
//
// Some argument rules depend on the contents of Int32 tensors (a token id
// below V, a valid length within [0,T]); package gpu's Checker returns them
// as gpu.IndexChecks. The cpu backend reads the ids and fails before
// writing anything. Here the ids are in device memory and reading them would
// synchronise every op, so each check runs as a kernel (check_index_range,
// kernels/check.cu) queued before the op: a failure stores the check's code
// and its lowest failing index with the value in a small device flag, and
// the op's kernels, which test the flag first, write nothing. The host reads
// the flag after the next completed synchronisation (Sync or Download, as a
// sync check of the backend) and records the check's error, with the
// message the cpu backend gives, as the backend's error: the failure of an
// op surfaces at the next Sync or Download instead of at the op, and the ops
// queued after it run on unchanged data (their results are discarded with
// the error). Kernels never read or write out of bounds whatever the ids:
// they skip or clamp an id outside its range as well.
//
// Sample reports a row without a finite maximum through the same flag.

// opState is the per-backend state of the op wrappers.
type opState struct {
	flag    *gpu.Tensor // Int32 [4], see kernels/common.cuh; nil until first used
	codes   map[string]int32
	errs    []func(i int, v int32) error // the error of code c is errs[c−1]
	scratch *gpu.Tensor                  // reused device memory, grown on demand
	acc     *gpu.Tensor                  // float32 products of bf16 fused linear layers (ops_linear.go)
}

// opStates maps a *Backend to its *opState. (The state would be a field of
// Backend; it is kept here so that the wrappers need nothing of the core.)
var opStates sync.Map

// maxCheckCodes bounds the distinct check messages of a backend; further
// checks share one generic code.
const maxCheckCodes = 1 << 12

// ops returns b's op state, creating it (and registering the flag's sync
// check) on first use.
func (b *Backend) ops() *opState {
	if s, ok := opStates.Load(b); ok {
		return s.(*opState)
	}
	s := &opState{codes: make(map[string]int32)}
	opStates.Store(b, s)
	b.addSyncCheck(func() error { return b.pollFlag(s) })
	return s
}

// flagPtr returns the device address of the error flag, allocating and
// resetting it on first use (0 after an error).
func (b *Backend) flagPtr() devicePtr {
	s := b.ops()
	if s.flag == nil {
		t, err := b.Alloc(gpu.Int32, 4)
		if b.fail(err) {
			return 0
		}
		s.flag = t
		b.launch("reset_error_flag", [3]int{1, 1, 1}, [3]int{32, 1, 1}, 0, b.ptr(t))
	}
	return b.ptr(s.flag)
}

// checkCode returns the flag code that reports errors through mk.
func (b *Backend) checkCode(mk func(i int, v int32) error) int32 {
	s := b.ops()
	key := mk(-1, 0).Error()
	if c, ok := s.codes[key]; ok {
		return c
	}
	if len(s.errs) >= maxCheckCodes {
		key = "\x00generic"
		if c, ok := s.codes[key]; ok {
			return c
		}
		mk = func(i int, v int32) error {
			return fmt.Errorf("cuda: a data check failed: value %d at index %d (too many distinct checks to name it)", v, i)
		}
	}
	s.errs = append(s.errs, mk)
	c := int32(len(s.errs))
	s.codes[key] = c
	return c
}

// runChecks queues the data checks of an op; false when the backend has an
// error (the op must then do nothing).
func (b *Backend) runChecks(checks []gpu.IndexCheck) bool {
	for _, c := range checks {
		n := c.T.Len()
		if n == 0 || b.err != nil {
			continue
		}
		code := b.checkCode(c.Err)
		flag := b.flagPtr()
		b.launch("check_index_range", ewGrid(n, 256), block1(256), 0,
			b.ptr(c.T), int64(n), c.Lo, c.Hi, code, flag)
	}
	return b.err == nil
}

// pollFlag reads the error flag after a completed synchronisation and
// returns the error of the check that failed, if any.
func (b *Backend) pollFlag(s *opState) error {
	if s.flag == nil || b.err != nil {
		return nil
	}
	var f [4]int32
	if err := b.readDevice(unsafe.Pointer(&f[0]), b.ptr(s.flag), int64(unsafe.Sizeof(f))); err != nil {
		return wrapCU("read the error flag", err)
	}
	code := f[0]
	if code == 0 {
		return nil
	}
	packed := uint64(uint32(f[2])) | uint64(uint32(f[3]))<<32
	idx, val := int(packed>>32), int32(uint32(packed))
	if code < 1 || int(code) > len(s.errs) {
		return fmt.Errorf("cuda: the error flag holds unknown code %d (index %d, value %d)", code, idx, val)
	}
	return s.errs[code-1](idx, val)
}

// scratch returns device memory of at least n bytes, 256-byte aligned,
// valid until the next op that asks for scratch (ops on the one stream run
// in order, so an op may reuse what the previous one used).
func (b *Backend) scratch(n int) devicePtr {
	s := b.ops()
	if n <= 0 {
		n = 4
	}
	words := (n + 3) / 4
	if s.scratch == nil || s.scratch.Len() < words {
		grow := words
		if s.scratch != nil {
			grow = max(words, s.scratch.Len()+s.scratch.Len()/2)
		}
		t, err := b.Alloc(gpu.Float32, grow)
		if b.fail(err) {
			return 0
		}
		s.scratch = t // the old buffer returns to the allocator when collected
	}
	return b.ptr(s.scratch)
}

// ---- launch shapes ----

// launchShape checks a launch's grid and block shapes against CUDA's
// limits: false with no error for an empty grid (nothing to launch).
func launchShape(kernel string, grid, block [3]int) (bool, error) {
	if grid[0] == 0 || grid[1] == 0 || grid[2] == 0 {
		return false, nil
	}
	for i := 0; i < 3; i++ {
		if grid[i] < 0 || block[i] <= 0 || grid[i] > math.MaxInt32 {
			return false, fmt.Errorf("cuda launch %s: bad grid %v or block %v", kernel, grid, block)
		}
	}
	if grid[1] > 65535 || grid[2] > 65535 {
		return false, fmt.Errorf("cuda launch %s: grid %v beyond the y/z limit 65535", kernel, grid)
	}
	if n := block[0] * block[1] * block[2]; n > 1024 {
		return false, fmt.Errorf("cuda launch %s: block %v has %d threads, more than 1024", kernel, block, n)
	}
	return true, nil
}

// block1 is a 1-D block of n threads.
func block1(n int) [3]int { return [3]int{n, 1, 1} }

// grid1 is a 1-D grid of n blocks.
func grid1(n int) [3]int { return [3]int{n, 1, 1} }

// ewGrid is the grid of a grid-stride kernel over n elements with blocks of
// threads threads, each taking about four elements: at least one block, at
// most 4096.
func ewGrid(n, threads int) [3]int {
	g := (n + 4*threads - 1) / (4 * threads)
	return grid1(min(max(g, 1), 4096))
}

// ewThreads is the block size of the elementwise kernels.
const ewThreads = 256

// fitsInt32 reports an error unless every value fits the kernels' 32-bit
// index arithmetic.
func fitsInt32(op string, vals ...int) error {
	for _, v := range vals {
		if v > math.MaxInt32 {
			return fmt.Errorf("%s: size %d exceeds the cuda kernels' 32-bit limit", op, v)
		}
	}
	return nil
}

// aligned16 reports whether every tensor's first element is 16-byte aligned
// in device memory (nil tensors are ignored), for kernels that take a vec4
// switch instead of testing pointers themselves.
func (b *Backend) aligned16(ts ...*gpu.Tensor) bool {
	for _, t := range ts {
		if t != nil && b.ptr(t)%16 != 0 {
			return false
		}
	}
	return true
}

// i32 converts a size already checked with fitsInt32.
func i32(v int) int32 { return int32(v) }

// bool32 is a kernel's int flag argument.
func bool32(v bool) int32 {
	if v {
		return 1
	}
	return 0
}
