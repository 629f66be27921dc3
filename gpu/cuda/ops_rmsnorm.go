//go:build cuda

package cuda

import (
	"github.com/instructgo/instructgo/gpu"
)

// RMS normalisation (kernels/rmsnorm.cu): layernorm's launch shapes, one
// warp per row; dweight is summed deterministically through per-block
// partial rows.

// RMSNormForward implements gpu.Backend.
func (b *Backend) RMSNormForward(out, rstd, inp, weight *gpu.Tensor, eps float32) {
	if b.err != nil {
		return
	}
	n, c, err := b.checker.RMSNormForward(out, rstd, inp, weight, eps)
	if b.fail(err) || b.fail(fitsInt32("rmsnorm forward", n, c)) || n == 0 || c == 0 {
		return
	}
	act := inp.DType()
	vec := c%vecWidth(act) == 0 && b.aligned16(out, inp, weight)
	b.launch(byAct(act, "rmsnorm_forward_f32", "rmsnorm_forward_bf16"), grid1((n+lnWarps-1)/lnWarps), block1(32*lnWarps), 0,
		b.ptr(out), b.ptr(rstd), b.ptr(inp), b.ptr(weight), i32(n), i32(c), eps, bool32(vec))
}

// rmsBackwardShape returns the warps per block (each needs C floats of
// shared memory, 48 KiB in all at most) and the number of blocks (a
// function of n and c only, so the weight sums are reproducible).
func rmsBackwardShape(n, c int) (warps, blocks int) {
	warps = min(8, (48<<10)/(4*c))
	if warps < 1 {
		return 0, 0
	}
	blocks = min((n+warps-1)/warps, 512)
	return warps, blocks
}

// RMSNormBackward implements gpu.Backend.
func (b *Backend) RMSNormBackward(dinp, dweight, dout, inp, weight, rstd *gpu.Tensor) {
	const op = "rmsnorm backward"
	if b.err != nil {
		return
	}
	n, c, err := b.checker.RMSNormBackward(dinp, dweight, dout, inp, weight, rstd)
	if b.fail(err) || b.fail(fitsInt32(op, n, c)) || n == 0 || c == 0 {
		return
	}
	warps, blocks := rmsBackwardShape(n, c)
	if warps == 0 {
		b.failf("%s: row width %d exceeds the cuda kernel's limit of %d", op, c, (48<<10)/4)
		return
	}
	partial := b.scratch(4 * blocks * c)
	if b.err != nil {
		return
	}
	act := inp.DType()
	vec := c%vecWidth(act) == 0 && b.aligned16(dinp, dout, inp, weight)
	b.launch(byAct(act, "rmsnorm_backward_f32", "rmsnorm_backward_bf16"), grid1(blocks), block1(32*warps), warps*c*4,
		b.ptr(dinp), partial, b.ptr(dout), b.ptr(inp), b.ptr(weight), b.ptr(rstd), i32(n), i32(c), bool32(vec))
	b.launch("rmsnorm_weight_finish", grid1((c+255)/256), block1(256), 0, b.ptr(dweight), partial, i32(c), i32(blocks))
}
