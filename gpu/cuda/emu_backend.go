//go:build cuda && cudaemu

package cuda

// The emulated backend (build tags cuda and cudaemu): the op wrappers of
// ops_*.go, unchanged, against host memory, with every kernel launch run by
// the CPU emulator of CUDA in emu/ (blocks one after another, each thread a
// fiber, so barriers and warp shuffles keep their semantics and misuse is
// caught). Allocations are fenced by canary words that every launch
// checks. MatMul always takes our GEMM kernels (tiled fp32, bf16 tensor
// cores), the GPU build's fallback when cuBLAS or cuBLASLt is missing. It
// lets the parity tests check every kernel against the CPU backend on a
// machine without a GPU (make cuda-emu-test);
// it says nothing about speed, and nothing about what only hardware shows
// (memory-model races across blocks, occupancy, the driver).

/*
#cgo LDFLAGS: ${SRCDIR}/../../build/cudaemu/libemu.a -lstdc++ -lm
#include <stdlib.h>
#include <string.h>
const char* emu_launch(const char* name, int gx, int gy, int gz, int bx, int by, int bz, int smem,
                       void** args, const int* sizes, int nargs);
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/instructgo/instructgo/gpu"
)

const guardWords = 1024 // canary words on each side of an allocation

const canary = 0x7fc0dead

// devicePtr is a host address here, of memory from C.aligned_alloc (so the
// Go collector never moves it). The Go side reaches that memory through
// the storage's base pointer, never by turning a devicePtr back into a
// pointer; only the emulated kernels take the addresses.
type devicePtr uintptr

// readDevice copies n bytes at src to dst; src must lie in one allocation.
func (b *Backend) readDevice(dst unsafe.Pointer, src devicePtr, n int64) error {
	for _, s := range b.allocs {
		if src >= s.ptr && src+devicePtr(n) <= s.ptr+devicePtr(s.bytes()) {
			from := unsafe.Add(s.base, 4*guardWords+int(src-s.ptr))
			copy(unsafe.Slice((*byte)(dst), n), unsafe.Slice((*byte)(from), n))
			return nil
		}
	}
	return fmt.Errorf("emulator: read of %d bytes at %#x outside every allocation", n, uintptr(src))
}

// Backend is the emulated cuda backend; see the file comment.
type Backend struct {
	err        error
	closed     bool
	syncs      int64 // Sync and Download calls, the host synchronisations of the GPU build
	capturing  bool  // between BeginCapture and EndCapture (graph_emu.go)
	recorded   []emuLaunch
	checker    gpu.Checker
	syncChecks []func() error
	allocs     []*storage
	largs      *launchArgs        // every launch's argument storage, made once
	cnames     map[string]*C.char // kernelCName's C strings
}

type storage struct {
	b     *Backend
	base  unsafe.Pointer // with guards
	ptr   devicePtr
	elems int
	dtype gpu.DType
}

// bytes is the storage's size in bytes; dataWords the 4-byte words that
// hold it (the last one padded with zeros for an odd count of bf16).
func (s *storage) bytes() int     { return s.elems * s.dtype.Size() }
func (s *storage) dataWords() int { return (s.bytes() + 3) / 4 }

func (s *storage) Elems() int       { return s.elems }
func (s *storage) DType() gpu.DType { return s.dtype }

var errClosed = errors.New("cuda: backend is closed")

// New opens the emulated backend; there is one emulated device, so ordinal
// is ignored.
func New(ordinal int) (*Backend, error) {
	b := &Backend{largs: newLaunchArgs(), cnames: map[string]*C.char{}}
	b.checker = newChecker(b.owns)
	return b, nil
}

func (b *Backend) owns(s gpu.Storage) bool {
	st, ok := s.(*storage)
	return ok && st.b == b
}

func (b *Backend) Name() string { return "cuda (CPU emulator)" }

func (b *Backend) fail(err error) bool {
	if err != nil && b.err == nil {
		b.err = err
	}
	return b.err != nil
}

func (b *Backend) failf(format string, args ...any) bool { return b.fail(fmt.Errorf(format, args...)) }

func (b *Backend) addSyncCheck(f func() error) { b.syncChecks = append(b.syncChecks, f) }

func (b *Backend) runSyncChecks() {
	for _, f := range b.syncChecks {
		if b.fail(f()) {
			return
		}
	}
}

func (b *Backend) Sync() error {
	b.syncs++
	if b.capturing {
		b.fail(errCapturing("sync"))
		return b.err
	}
	if b.err == nil {
		b.runSyncChecks()
	}
	return b.err
}

func (b *Backend) Err() error { return b.err }

// Close frees every allocation; as on the GPU, the sticky error is not
// returned again (Err has it), and the backend then reports errClosed.
func (b *Backend) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	for _, s := range b.allocs {
		C.free(s.base)
	}
	b.allocs = nil
	b.largs.free()
	for _, c := range b.cnames {
		C.free(unsafe.Pointer(c))
	}
	b.cnames = nil
	b.fail(errClosed)
	opStates.Delete(b)
	return nil
}

// SetTF32 does nothing: the emulated GEMM kernel is FP32 either way.
func (b *Backend) SetTF32(on bool) error { return nil }

func (b *Backend) Alloc(dtype gpu.DType, shape ...int) (*gpu.Tensor, error) {
	n, err := b.checker.Alloc(dtype, shape)
	if err != nil {
		return nil, err
	}
	s := &storage{b: b, elems: n, dtype: dtype}
	words := s.dataWords() + 2*guardWords
	base := C.aligned_alloc(256, C.size_t((4*words+511)/256*256))
	w := unsafe.Slice((*uint32)(base), words)
	for i := range w {
		w[i] = canary
	}
	for i := guardWords; i < guardWords+s.dataWords(); i++ {
		w[i] = 0
	}
	s.base, s.ptr = base, devicePtr(uintptr(base)+4*guardWords)
	b.allocs = append(b.allocs, s)
	return gpu.NewTensor(s, 0, shape...)
}

// checkGuards reports an allocation whose canaries a kernel overwrote.
func (b *Backend) checkGuards(kernel string) {
	for _, s := range b.allocs {
		w := unsafe.Slice((*uint32)(s.base), s.dataWords()+2*guardWords)
		for i := 0; i < guardWords; i++ {
			if w[i] != canary || w[guardWords+s.dataWords()+i] != canary {
				b.failf("emulator: %s wrote outside an allocation of %d elements", kernel, s.elems)
				return
			}
		}
	}
}

func (b *Backend) ptr(t *gpu.Tensor) devicePtr {
	if t == nil {
		return 0
	}
	s, ok := t.Storage().(*storage)
	if !ok || s.b != b {
		b.failf("cuda: %v is not a tensor of this cuda backend", t)
		return 0
	}
	return s.ptr + devicePtr(t.Offset()*t.DType().Size())
}

// hostAddr is the Go pointer to t's first element (nil after an error).
func (b *Backend) hostAddr(t *gpu.Tensor) unsafe.Pointer {
	if b.ptr(t) == 0 {
		return nil
	}
	s := t.Storage().(*storage)
	return unsafe.Add(s.base, 4*guardWords+t.Offset()*t.DType().Size())
}

// upload copies n elements at src into t.
func (b *Backend) upload(op string, t *gpu.Tensor, d gpu.DType, src unsafe.Pointer, n int) error {
	copy(unsafe.Slice((*byte)(b.hostAddr(t)), n*d.Size()), unsafe.Slice((*byte)(src), n*d.Size()))
	return nil
}

// download copies t into n elements at dst, then runs the checks a GPU
// build runs at a synchronisation.
func (b *Backend) download(op string, t *gpu.Tensor, d gpu.DType, dst unsafe.Pointer, n int) error {
	b.syncs++
	copy(unsafe.Slice((*byte)(dst), n*d.Size()), unsafe.Slice((*byte)(b.hostAddr(t)), n*d.Size()))
	b.runSyncChecks()
	return b.err
}

// launch runs kernel in the emulator at once (the emulated stream is
// synchronous) after the same shape checks as the GPU build, then checks
// every allocation's canaries. The arguments go through the same launch
// storage as on the GPU (launchArgs), with their sizes, which the emulator
// checks against the kernel's signature.
func (b *Backend) launch(kernel string, grid, block [3]int, sharedMem int, args ...any) {
	if b.err != nil {
		return
	}
	if ok, err := launchShape(kernel, grid, block); !ok {
		b.fail(err)
		return
	}
	if err := b.largs.set(args); err != nil {
		b.failf("cuda launch %s: %w", kernel, err)
		return
	}
	if b.capturing {
		b.recorded = append(b.recorded, emuLaunch{kernel, grid, block, sharedMem, b.largs.snapshot(len(args))})
		return
	}
	b.run(kernel, grid, block, sharedMem, len(args))
}

// run runs one launch in the emulator with the n arguments in the launch
// storage (launch's work, and a graph replay's).
func (b *Backend) run(kernel string, grid, block [3]int, sharedMem, n int) {
	msg := C.emu_launch(b.kernelCName(kernel), C.int(grid[0]), C.int(grid[1]), C.int(grid[2]), C.int(block[0]), C.int(block[1]), C.int(block[2]),
		C.int(sharedMem), b.largs.params(), b.largs.sizesPtr(), C.int(n))
	if msg != nil {
		b.failf("emulator: %s", C.GoString(msg))
		return
	}
	b.checkGuards(kernel)
}

// kernelCName is kernel's name as a C string, made once per name (the
// emulator finds a kernel by name at every launch).
func (b *Backend) kernelCName(kernel string) *C.char {
	c, ok := b.cnames[kernel]
	if !ok {
		c = C.CString(kernel)
		b.cnames[kernel] = c
	}
	return c
}

// GEMM says which GEMM path MatMul takes.
func (b *Backend) GEMM() string {
	return "GEMM kernels (emulated): tiled fp32, bf16 tensor cores"
}

// CuBLASLoaded is false: the emulated build has no cuBLAS.
func (b *Backend) CuBLASLoaded() bool { return false }

// CuBLASLtLoaded is false: the emulated build has no cuBLASLt.
func (b *Backend) CuBLASLtLoaded() bool { return false }

// UseGEMMKernel does nothing: the kernels are the only path here.
func (b *Backend) UseGEMMKernel(on bool) {}

// blasMatMul reports false: there is no cuBLAS here, so MatMul always
// takes our GEMM kernels.
func (b *Backend) blasMatMul(p gpu.MatMulDims, c, a, bm *gpu.Tensor, transA, transB bool, alpha, beta float32) bool {
	return false
}

// ltLinear reports false: without cuBLASLt the fused linear layers run
// their product and epilogue kernels.
func (b *Backend) ltLinear(p gpu.MatMulDims, c, a, w *gpu.Tensor, transB bool, epi gemmEpilogue, bias, aux *gpu.Tensor) bool {
	return false
}

func wrapCU(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("cuda %s: %w", what, err)
}
