//go:build cuda && !cudaemu

package cuda

/*
#cgo linux CFLAGS: -I/usr/local/cuda/include
#cgo LDFLAGS: -lcuda
#include <cuda.h>

// igo_set_max_dynamic_smem lets f use more than the default 48 KiB of
// dynamic shared memory.
static CUresult igo_set_max_dynamic_smem(void *f, int bytes) {
	return cuFuncSetAttribute((CUfunction)f, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, bytes);
}

// igo_launch queues f on stream with the argument array params (see
// launchArgs): cuLaunchKernel, with the values unpacked from Go's ints.
static CUresult igo_launch(void *f, unsigned gx, unsigned gy, unsigned gz,
		unsigned bx, unsigned by, unsigned bz, unsigned smem, void *stream, void **params) {
	return cuLaunchKernel((CUfunction)f, gx, gy, gz, bx, by, bz, smem, (CUstream)stream, params, NULL);
}
*/
import "C"

import (
	_ "embed" // the kernels' fatbin
	"errors"
	"fmt"
	"unsafe"

	"gorgonia.org/cu"
)

// kernelsFatbin is kernels/*.cu compiled by `make kernels` into one fatbin
// (SASS for sm_80, sm_86, sm_89, sm_90 and compute_80 PTX). The file is a
// build output, not in git: `go build -tags cuda` without it fails here.
//
//go:embed kernels.fatbin
var kernelsFatbin string

// defaultDynamicSmem is the dynamic shared memory a kernel may use without
// opting in through cuFuncSetAttribute.
const defaultDynamicSmem = 48 << 10

// FatbinSize is the size in bytes of the embedded kernel module.
func FatbinSize() int { return len(kernelsFatbin) }

// loadModule loads the embedded fatbin into the current context.
func (b *Backend) loadModule() error {
	if len(kernelsFatbin) == 0 {
		return errors.New("the embedded kernels.fatbin is empty: run `make kernels` before building with -tags cuda")
	}
	mod, err := cu.LoadData(kernelsFatbin)
	if err != nil {
		return fmt.Errorf("load the embedded kernels (%d-byte fatbin) on sm_%d%d: %w", len(kernelsFatbin), b.ccMajor, b.ccMinor, err)
	}
	b.mod = mod
	return nil
}

// kernelFunc is a looked-up kernel and the dynamic shared memory it has been
// allowed.
type kernelFunc struct {
	fn       cu.Function
	handle   unsafe.Pointer // the CUfunction inside fn
	smemOK   int
	notFound error
}

// function returns the kernel named name, looked up once and cached.
func (b *Backend) function(name string) (*kernelFunc, error) {
	if k, ok := b.fns[name]; ok {
		return k, k.notFound
	}
	k := &kernelFunc{smemOK: defaultDynamicSmem}
	fn, err := b.mod.Function(name)
	if err != nil {
		k.notFound = fmt.Errorf("cuda: kernel %q is not in the embedded fatbin (%v): rebuild with `make kernels`", name, err)
	}
	k.fn, k.handle = fn, funcHandle(fn)
	b.fns[name] = k
	return k, k.notFound
}

// HasKernel reports whether the embedded module has a kernel of that name.
func (b *Backend) HasKernel(name string) bool {
	_, err := b.function(name)
	return err == nil
}

// launch queues kernel on the stream with the given grid and block shapes
// and dynamic shared memory in bytes. The arguments are written into the
// backend's launch storage (launchArgs.set says which Go types map to which
// C types) and handed to cuLaunchKernel; nothing is allocated. A grid with
// a zero dimension launches nothing (an empty op). Errors are recorded
// (see fail); after one, launch does nothing. Launches with more than
// 48 KiB of dynamic shared memory opt the kernel in once
// (cuFuncSetAttribute).
func (b *Backend) launch(kernel string, grid, block [3]int, sharedMem int, args ...any) {
	if b.err != nil {
		return
	}
	if ok, err := launchShape(kernel, grid, block); !ok {
		b.fail(err)
		return
	}
	k, err := b.function(kernel)
	if b.fail(err) {
		return
	}
	if err := b.largs.set(args); err != nil {
		b.failf("cuda launch %s: %w", kernel, err)
		return
	}
	if sharedMem > k.smemOK {
		if b.fail(wrapCU("launch "+kernel+": allow dynamic shared memory", result(C.igo_set_max_dynamic_smem(k.handle, C.int(sharedMem))))) {
			return
		}
		k.smemOK = sharedMem
	}
	r := C.igo_launch(k.handle, C.uint(grid[0]), C.uint(grid[1]), C.uint(grid[2]), C.uint(block[0]), C.uint(block[1]), C.uint(block[2]),
		C.uint(sharedMem), b.streamC, b.largs.params())
	if r != C.CUDA_SUCCESS {
		b.failf("cuda launch %s (grid %v, block %v, %d B shared): %w", kernel, grid, block, sharedMem, result(r))
	}
}

// funcHandle is the CUfunction inside a cu.Function (a struct of that one
// pointer; cu does not export it). The index below fails to compile if
// cu.Function ever stops being exactly one pointer.
var _ = [1]struct{}{}[unsafe.Sizeof(cu.Function{})-unsafe.Sizeof(unsafe.Pointer(nil))]

func funcHandle(f cu.Function) unsafe.Pointer {
	return *(*unsafe.Pointer)(unsafe.Pointer(&f))
}

// result turns a CUresult of our own cgo calls into an error.
func result(r C.CUresult) error {
	if r == C.CUDA_SUCCESS {
		return nil
	}
	var name, desc *C.char
	C.cuGetErrorName(r, &name)
	C.cuGetErrorString(r, &desc)
	msg := fmt.Sprintf("CUresult %d", int(r))
	if name != nil {
		msg = C.GoString(name)
	}
	if desc != nil {
		msg += ": " + C.GoString(desc)
	}
	return errors.New(msg)
}
