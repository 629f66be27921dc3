//go:build !amd64

package cpu

// bestVecKernel picks the fastest elementwise kernels available: on this
// architecture the portable Go ones.
func bestVecKernel() *vecKernel { return vecGeneric }

// vecKernels lists every elementwise kernel set usable on this machine.
func vecKernels() []*vecKernel { return []*vecKernel{vecGeneric} }
