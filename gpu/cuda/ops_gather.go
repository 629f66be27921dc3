//go:build cuda

package cuda

import (
	"github.com/instructgo/instructgo/gpu"
)

// GatherRows and ScatterAddRows (kernels/gather.cu), one block per
// sequence. An index outside [0,T) is the op's error, found on the device
// before the kernel runs (see ops_state.go).

// GatherRows implements gpu.Backend.
func (b *Backend) GatherRows(out, inp, idx *gpu.Tensor) {
	const op = "gather rows"
	if b.err != nil {
		return
	}
	nb, nt, nc, checks, err := b.checker.GatherRows(out, inp, idx)
	if b.fail(err) || nb == 0 || nc == 0 || b.fail(fitsInt32(op, nb, nt, nc)) || !b.runChecks(checks) {
		return
	}
	b.launch(byAct(out.DType(), "gather_rows_f32", "gather_rows_bf16"), grid1(nb), block1(128), 0,
		b.ptr(out), b.ptr(inp), b.ptr(idx), i32(nb), i32(nt), i32(nc), b.flagPtr())
}

// ScatterAddRows implements gpu.Backend.
func (b *Backend) ScatterAddRows(dinp, dout, idx *gpu.Tensor) {
	const op = "scatter-add rows"
	if b.err != nil {
		return
	}
	nb, nt, nc, checks, err := b.checker.ScatterAddRows(dinp, dout, idx)
	if b.fail(err) || nb == 0 || nc == 0 || b.fail(fitsInt32(op, nb, nt, nc)) || !b.runChecks(checks) {
		return
	}
	b.launch(byAct(dinp.DType(), "scatter_add_rows_f32", "scatter_add_rows_bf16"), grid1(nb), block1(128), 0,
		b.ptr(dinp), b.ptr(dout), b.ptr(idx), i32(nb), i32(nt), i32(nc), b.flagPtr())
}
