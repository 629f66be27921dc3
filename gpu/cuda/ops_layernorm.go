//go:build cuda

package cuda

import (
	"github.com/instructgo/instructgo/gpu"
)

// Layer normalisation (kernels/layernorm.cu): one warp per row; the
// parameter gradients are summed deterministically through per-block
// partial rows.

// lnWarps is the number of rows (warps) per block of layernorm_forward.
const lnWarps = 8

// LayerNormForward implements gpu.Backend.
func (b *Backend) LayerNormForward(out, mean, rstd, inp, weight, bias *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, c, err := b.checker.LayerNormForward(out, mean, rstd, inp, weight, bias)
	if b.fail(err) || b.fail(fitsInt32("layernorm forward", n, c)) || n == 0 || c == 0 {
		return
	}
	act := inp.DType()
	vec := c%vecWidth(act) == 0 && b.aligned16(out, inp, weight, bias)
	b.launch(byAct(act, "layernorm_forward_f32", "layernorm_forward_bf16"), grid1((n+lnWarps-1)/lnWarps), block1(32*lnWarps), 0,
		b.ptr(out), b.ptr(mean), b.ptr(rstd), b.ptr(inp), b.ptr(weight), b.ptr(bias), i32(n), i32(c), bool32(vec))
}

// AddLayerNormForward implements gpu.Backend: one warp per row writes the
// sum and normalises it, with layernorm_forward's launch shape.
func (b *Backend) AddLayerNormForward(resOut, lnOut, mean, rstd, a, bb, weight, bias *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, c, err := b.checker.AddLayerNormForward(resOut, lnOut, mean, rstd, a, bb, weight, bias)
	if b.fail(err) || b.fail(fitsInt32("add layernorm forward", n, c)) || n == 0 || c == 0 {
		return
	}
	act := resOut.DType()
	vec := c%vecWidth(act) == 0 && b.aligned16(resOut, lnOut, a, bb, weight, bias)
	b.launch(byAct(act, "add_layernorm_forward_f32", "add_layernorm_forward_bf16"), grid1((n+lnWarps-1)/lnWarps), block1(32*lnWarps), 0,
		b.ptr(resOut), b.ptr(lnOut), b.ptr(mean), b.ptr(rstd), b.ptr(a), b.ptr(bb), b.ptr(weight), b.ptr(bias),
		i32(n), i32(c), bool32(vec))
}

// lnBackwardShape returns the warps per block (each needs 2C floats of
// shared memory, 48 KiB in all at most) and the number of blocks (a
// function of n and c only, so the parameter sums are reproducible).
func lnBackwardShape(n, c int) (warps, blocks int) {
	warps = min(8, (48<<10)/(8*c))
	if warps < 1 {
		return 0, 0
	}
	blocks = min((n+warps-1)/warps, 512)
	return warps, blocks
}

// LayerNormBackward implements gpu.Backend.
func (b *Backend) LayerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd *gpu.Tensor) {
	const op = "layernorm backward"
	if b.err != nil {
		return
	}
	n, c, err := b.checker.LayerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd)
	if b.fail(err) || b.fail(fitsInt32(op, n, c)) || n == 0 || c == 0 {
		return
	}
	warps, blocks := lnBackwardShape(n, c)
	if warps == 0 {
		b.failf("%s: row width %d exceeds the cuda kernel's limit of %d", op, c, (48<<10)/8)
		return
	}
	partial := b.scratch(4 * blocks * 2 * c)
	if b.err != nil {
		return
	}
	act := inp.DType()
	vec := c%vecWidth(act) == 0 && b.aligned16(dinp, dout, inp, weight)
	b.launch(byAct(act, "layernorm_backward_f32", "layernorm_backward_bf16"), grid1(blocks), block1(32*warps), warps*2*c*4,
		b.ptr(dinp), partial, b.ptr(dout), b.ptr(inp), b.ptr(weight), b.ptr(mean), b.ptr(rstd), i32(n), i32(c), bool32(vec))
	b.launch("layernorm_params_finish", grid1((2*c+255)/256), block1(256), 0,
		b.ptr(dweight), b.ptr(dbias), partial, i32(c), i32(blocks))
}
