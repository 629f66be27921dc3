//go:build cuda

package cuda

import (
	"github.com/instructgo/instructgo/gpu"
)

// SwiGLU (kernels/swiglu.cu): grid-stride over the output elements, with
// the elementwise launch shape.

// SwiGLUForward implements gpu.Backend.
func (b *Backend) SwiGLUForward(out, inp *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, f, err := b.checker.SwiGLUForward(out, inp)
	if b.fail(err) || n == 0 || b.fail(fitsInt32("swiglu forward", 2*f)) {
		return
	}
	b.launch(byAct(out.DType(), "swiglu_forward_f32", "swiglu_forward_bf16"), ewGrid(n*f, ewThreads), block1(ewThreads), 0,
		b.ptr(out), b.ptr(inp), int64(n*f), i32(f))
}

// SwiGLUBackward implements gpu.Backend.
func (b *Backend) SwiGLUBackward(dinp, inp, dout *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, f, err := b.checker.SwiGLUBackward(dinp, inp, dout)
	if b.fail(err) || n == 0 || b.fail(fitsInt32("swiglu backward", 2*f)) {
		return
	}
	b.launch(byAct(dinp.DType(), "swiglu_backward_f32", "swiglu_backward_bf16"), ewGrid(n*f, ewThreads), block1(ewThreads), 0,
		b.ptr(dinp), b.ptr(inp), b.ptr(dout), int64(n*f), i32(f))
}
