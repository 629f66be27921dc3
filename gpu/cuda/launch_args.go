//go:build cuda

package cuda

/*
#include <stdlib.h>
*/
import "C"

import (
	"fmt"
	"math"
	"reflect"
	"unsafe"
)

// maxKernelArgs bounds the parameters of one launch.
const maxKernelArgs = 32

// launchArgs is the argument storage of kernel launches, in the layout
// cuLaunchKernel's kernelParams takes: an array of pointers, the i-th to
// the value of the kernel's i-th parameter. It is C memory allocated once
// per backend, its pointer array aimed at the value slots once; a launch
// writes its values into the slots and passes the array. One set of slots
// serves every launch because cuLaunchKernel copies the values before it
// returns (as stream capture into a graph does), and all launches come
// from the backend's one goroutine. (gorgonia.org/cu's Function.Launch
// mallocs and frees two such arrays per call; launch_bench_test.go
// measures the difference.)
//
// The emulator takes the same arrays, plus the size of each value, which
// it checks against the kernel's signature.
type launchArgs struct {
	mem   unsafe.Pointer   // the one C allocation: ptrs, then vals, then sizes
	ptrs  []unsafe.Pointer // over mem; ptrs[i] = &vals[i]
	vals  []uint64         // over mem; a value in the low bytes (little-endian)
	sizes []C.int          // over mem; 4 or 8 bytes
}

// newLaunchArgs allocates the storage for maxKernelArgs arguments.
func newLaunchArgs() *launchArgs {
	const n = maxKernelArgs
	mem := C.calloc(1, C.size_t(n*(8+8+4)))
	a := &launchArgs{
		mem:   mem,
		ptrs:  unsafe.Slice((*unsafe.Pointer)(mem), n),
		vals:  unsafe.Slice((*uint64)(unsafe.Add(mem, 8*n)), n),
		sizes: unsafe.Slice((*C.int)(unsafe.Add(mem, 16*n)), n),
	}
	for i := range a.ptrs {
		a.ptrs[i] = unsafe.Pointer(&a.vals[i])
	}
	return a
}

// params is the kernelParams array to pass to the driver or the emulator.
func (a *launchArgs) params() *unsafe.Pointer { return (*unsafe.Pointer)(a.mem) }

// sizesPtr is the array of the values' sizes in bytes.
func (a *launchArgs) sizesPtr() *C.int { return &a.sizes[0] }

// free releases the storage; a is unusable afterwards.
func (a *launchArgs) free() {
	if a != nil && a.mem != nil {
		C.free(a.mem)
		*a = launchArgs{}
	}
}

// set writes args into the slots. Each must have the exact C type of the
// kernel's parameter: devicePtr (any pointer), int32 (int), uint32,
// int64 (long long), uint64, float32 or float64; a Go int is rejected, since
// its width would have to match by luck. set keeps no reference to args
// (its error names the type through reflect, which does not retain the
// value), so the compiler keeps the boxed values of a launch's variadic
// arguments on the caller's stack: a launch allocates nothing.
func (a *launchArgs) set(args []any) error {
	if len(args) > len(a.vals) {
		return fmt.Errorf("%d arguments, at most %d", len(args), len(a.vals))
	}
	for i, x := range args {
		var v uint64
		size := C.int(8)
		switch x := x.(type) {
		case devicePtr:
			v = uint64(x)
		case int32:
			v, size = uint64(uint32(x)), 4
		case uint32:
			v, size = uint64(x), 4
		case int64:
			v = uint64(x)
		case uint64:
			v = x
		case float32:
			v, size = uint64(math.Float32bits(x)), 4
		case float64:
			v = math.Float64bits(x)
		default:
			return fmt.Errorf("argument %d has type %v; use devicePtr, int32, uint32, int64, uint64, float32 or float64", i, reflect.TypeOf(x))
		}
		a.vals[i], a.sizes[i] = v, size
	}
	return nil
}

// argSnapshot is a copy of the first arguments in the storage, for a
// launch recorded into a graph (the emulated build's; the driver copies
// the values itself).
type argSnapshot struct {
	vals  []uint64
	sizes []C.int
}

// snapshot copies the first n arguments.
func (a *launchArgs) snapshot(n int) argSnapshot {
	return argSnapshot{vals: append([]uint64(nil), a.vals[:n]...), sizes: append([]C.int(nil), a.sizes[:n]...)}
}

// restore writes s back into the storage and returns its count.
func (a *launchArgs) restore(s argSnapshot) int {
	copy(a.vals, s.vals)
	copy(a.sizes, s.sizes)
	return len(s.vals)
}
