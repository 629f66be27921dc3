//go:build !amd64

package cpu

// bestKernel picks the fastest micro-kernel available: on this architecture
// the portable Go one.
func bestKernel() *microKernel { return kernelGeneric }

// matmulKernels lists every micro-kernel usable on this machine.
func matmulKernels() []*microKernel { return []*microKernel{kernelGeneric} }
