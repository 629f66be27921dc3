//go:build cuda && cudaemu

package cuda

/*
#include <stdlib.h>
*/
import "C"

import "unsafe"

// perCallMarshal copies n marshalled argument values the way
// gorgonia.org/cu's Function.Launch does at every call: two C arrays
// malloc'd, filled (the values, and pointers to them) and freed. It exists
// as the baseline of BenchmarkLaunchArgs only (the GPU build times cu's own
// Function.Launch instead), so only the emulated build has it.
var perCallMarshal = func(vals []uint64) {
	n := len(vals)
	argv := C.malloc(C.size_t(8 * n))
	argp := C.malloc(C.size_t(8 * n))
	for i := 0; i < n; i++ {
		*(*unsafe.Pointer)(unsafe.Add(argp, 8*i)) = unsafe.Add(argv, 8*i)
		*(*uint64)(unsafe.Add(argv, 8*i)) = vals[i]
	}
	C.free(argv)
	C.free(argp)
}
