//go:build cuda

package cuda

import (
	"github.com/instructgo/instructgo/gpu"
)

// Elementwise ops, reductions and the bias ops (kernels/elementwise.cu,
// kernels/reduce.cu). Each wrapper validates with the shared Checker, then
// launches; an empty tensor launches nothing.

// Fill implements gpu.Backend.
func (b *Backend) Fill(t *gpu.Tensor, v float32) {
	if b.err != nil || b.fail(b.checker.Fill(t)) || t.Len() == 0 {
		return
	}
	n := t.Len()
	if t.DType() == gpu.BF16 {
		b.launch("fill_bf16", ewGrid(n, ewThreads), block1(ewThreads), 0, b.ptr(t), int64(n), uint32(gpu.BF16Bits(v)))
		return
	}
	b.launch("fill_f32", ewGrid(n, ewThreads), block1(ewThreads), 0, b.ptr(t), int64(n), v)
}

// Copy implements gpu.Backend.
func (b *Backend) Copy(dst, src *gpu.Tensor) {
	if b.err != nil || b.fail(b.checker.Copy(dst, src)) || dst.Len() == 0 {
		return
	}
	n := dst.Len()
	if dst.DType() == gpu.BF16 {
		b.launch("copy_bf16", ewGrid(n, ewThreads), block1(ewThreads), 0, b.ptr(dst), b.ptr(src), int64(n))
		return
	}
	b.launch("copy_f32", ewGrid(n, ewThreads), block1(ewThreads), 0, b.ptr(dst), b.ptr(src), int64(n))
}

// Convert implements gpu.Backend.
func (b *Backend) Convert(dst, src *gpu.Tensor) {
	if b.err != nil || b.fail(b.checker.Convert(dst, src)) || dst.Len() == 0 {
		return
	}
	n := dst.Len()
	switch {
	case dst.DType() == src.DType():
		b.Copy(dst, src)
	case dst.DType() == gpu.BF16:
		b.launch("convert_f32_bf16", ewGrid(n, ewThreads), block1(ewThreads), 0, b.ptr(dst), b.ptr(src), int64(n))
	default:
		b.launch("convert_bf16_f32", ewGrid(n, ewThreads), block1(ewThreads), 0, b.ptr(dst), b.ptr(src), int64(n))
	}
}

// Scale implements gpu.Backend.
func (b *Backend) Scale(t *gpu.Tensor, alpha float32) {
	if b.err != nil || b.fail(b.checker.Scale(t)) || t.Len() == 0 {
		return
	}
	n := t.Len()
	b.launch("scale_f32", ewGrid(n, ewThreads), block1(ewThreads), 0, b.ptr(t), int64(n), alpha)
}

// Axpy implements gpu.Backend.
func (b *Backend) Axpy(y *gpu.Tensor, alpha float32, x *gpu.Tensor) {
	if b.err != nil || b.fail(b.checker.Axpy(y, x)) || y.Len() == 0 {
		return
	}
	n := y.Len()
	b.launch("axpy_f32", ewGrid(n, ewThreads), block1(ewThreads), 0, b.ptr(y), b.ptr(x), int64(n), alpha)
}

// Add implements gpu.Backend; out may be exactly a or c.
func (b *Backend) Add(out, a, c *gpu.Tensor) {
	if b.err != nil || b.fail(b.checker.Add(out, a, c)) || out.Len() == 0 {
		return
	}
	n := out.Len()
	b.launch(byAct(out.DType(), "add_f32", "add_bf16"), ewGrid(n, ewThreads), block1(ewThreads), 0,
		b.ptr(out), b.ptr(a), b.ptr(c), int64(n))
}

// Lerp implements gpu.Backend.
func (b *Backend) Lerp(avg, x *gpu.Tensor, t float32) {
	if b.err != nil || b.fail(b.checker.Lerp(avg, x)) || avg.Len() == 0 {
		return
	}
	n := avg.Len()
	b.launch("lerp_f32", ewGrid(n, ewThreads), block1(ewThreads), 0, b.ptr(avg), b.ptr(x), int64(n), t)
}

// reduceBlocks is the stage-1 grid of SumSquares and Dot: a function of n
// only, so the result is reproducible.
func reduceBlocks(n int) int {
	return min(max((n+8*1024-1)/(8*1024), 1), 1024)
}

// reduce runs the two stages of a sum into out[0]: stage 1 is kernel over
// the inputs, writing one double per block into scratch.
func (b *Backend) reduce(kernel string, out *gpu.Tensor, n int, inputs ...*gpu.Tensor) {
	g := reduceBlocks(n)
	partial := b.scratch(8 * g)
	if b.err != nil {
		return
	}
	args := make([]any, 0, len(inputs)+2)
	for _, t := range inputs {
		args = append(args, b.ptr(t))
	}
	args = append(args, int64(n), partial)
	b.launch(kernel, grid1(g), block1(256), 0, args...)
	b.launch("reduce_finish_f64", grid1(1), block1(256), 0, partial, int32(g), b.ptr(out))
}

// SumSquares implements gpu.Backend: float products summed in fours, then
// in double (see kernels/reduce.cu); deterministic.
func (b *Backend) SumSquares(out, x *gpu.Tensor) {
	if b.err != nil || b.fail(b.checker.SumSquares(out, x)) {
		return
	}
	b.reduce("sum_squares_partial", out, x.Len(), x)
}

// Dot implements gpu.Backend, like SumSquares.
func (b *Backend) Dot(out, x, y *gpu.Tensor) {
	if b.err != nil || b.fail(b.checker.Dot(out, x, y)) {
		return
	}
	b.reduce("dot_partial", out, x.Len(), x, y)
}

// AddBias implements gpu.Backend.
func (b *Backend) AddBias(out, bias *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, c, err := b.checker.AddBias(out, bias)
	if b.fail(err) || b.fail(fitsInt32("add bias", c)) || n == 0 || c == 0 {
		return
	}
	b.launch(byAct(out.DType(), "add_bias_f32", "add_bias_bf16"), ewGrid(n*c, ewThreads), block1(ewThreads), 0,
		b.ptr(out), b.ptr(bias), int64(n), i32(c))
}

// biasChunks splits n rows into the row chunks of bias_backward_partial:
// chunks of at least 64 rows (a multiple of 8, one per warp of the block),
// at most 512 chunks. A function of n only, so the sums are reproducible.
func biasChunks(n int) (chunks, rowsPerChunk int) {
	chunks = min((n+63)/64, 512)
	rowsPerChunk = (n + chunks - 1) / chunks
	rowsPerChunk = (rowsPerChunk + 7) / 8 * 8
	return (n + rowsPerChunk - 1) / rowsPerChunk, rowsPerChunk
}

// BiasBackward implements gpu.Backend: column sums per chunk of rows
// (float, from dout of either activation dtype), then the chunks in order
// in double; deterministic, no atomics.
func (b *Backend) BiasBackward(dbias, dout *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, c, err := b.checker.BiasBackward(dbias, dout)
	if b.fail(err) || b.fail(fitsInt32("bias backward", n, c, 512*c)) || n == 0 || c == 0 {
		return
	}
	act := dout.DType()
	vw := vecWidth(act)
	vec := c%vw == 0 && b.aligned16(dout)
	if !vec {
		vw = 1
	}
	chunks, rows := biasChunks(n)
	partial := b.scratch(4 * chunks * c)
	if b.err != nil {
		return
	}
	tiles := (c + 32*vw - 1) / (32 * vw)
	b.launch(byAct(act, "bias_backward_partial_f32", "bias_backward_partial_bf16"), [3]int{tiles, chunks, 1}, [3]int{32, 8, 1}, 0,
		b.ptr(dout), partial, i32(n), i32(c), i32(rows), bool32(vec))
	b.launch("bias_backward_finish", grid1((c+255)/256), block1(256), 0, b.ptr(dbias), partial, i32(c), i32(chunks))
}

// GeluForward implements gpu.Backend; out may be exactly inp.
func (b *Backend) GeluForward(out, inp *gpu.Tensor) {
	if b.err != nil || b.fail(b.checker.GeluForward(out, inp)) || out.Len() == 0 {
		return
	}
	n := out.Len()
	b.launch(byAct(out.DType(), "gelu_forward_f32", "gelu_forward_bf16"), ewGrid(n, ewThreads), block1(ewThreads), 0,
		b.ptr(out), b.ptr(inp), int64(n))
}

// GeluBackward implements gpu.Backend; dinp may be exactly dout.
func (b *Backend) GeluBackward(dinp, inp, dout *gpu.Tensor) {
	if b.err != nil || b.fail(b.checker.GeluBackward(dinp, inp, dout)) || dinp.Len() == 0 {
		return
	}
	n := dinp.Len()
	b.launch(byAct(dinp.DType(), "gelu_backward_f32", "gelu_backward_bf16"), ewGrid(n, ewThreads), block1(ewThreads), 0,
		b.ptr(dinp), b.ptr(inp), b.ptr(dout), int64(n))
}

// dropout runs Dropout and DropoutBackward: out = inp·keep/(1−p) with the
// mask of gpu.DropoutUniform(seed, i), bit for bit the cpu backend's (the
// float32 scale is computed here exactly as the cpu does; in bf16 the
// product is rounded once). p = 0 copies (nothing when out is inp).
func (b *Backend) dropout(out, inp *gpu.Tensor, p float32, seed uint64) {
	n := out.Len()
	if n == 0 {
		return
	}
	act := out.DType()
	if p == 0 {
		if !gpu.SameElems(out, inp) {
			b.launch(byAct(act, "copy_f32", "copy_bf16"), ewGrid(n, ewThreads), block1(ewThreads), 0,
				b.ptr(out), b.ptr(inp), int64(n))
		}
		return
	}
	scale := 1 / (1 - p)
	b.launch(byAct(act, "dropout_f32", "dropout_bf16"), ewGrid(n, ewThreads), block1(ewThreads), 0,
		b.ptr(out), b.ptr(inp), int64(n), p, scale, seed)
}

// Dropout implements gpu.Backend; out may be exactly inp.
func (b *Backend) Dropout(out, inp *gpu.Tensor, p float32, seed uint64) {
	if b.err != nil || b.fail(b.checker.Dropout(out, inp, p)) {
		return
	}
	b.dropout(out, inp, p, seed)
}

// DropoutBackward implements gpu.Backend; dinp may be exactly dout.
func (b *Backend) DropoutBackward(dinp, dout *gpu.Tensor, p float32, seed uint64) {
	if b.err != nil || b.fail(b.checker.DropoutBackward(dinp, dout, p)) {
		return
	}
	b.dropout(dinp, dout, p, seed)
}
