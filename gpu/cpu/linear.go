package cpu

import "github.com/instructgo/instructgo/gpu"

// The fused linear layers: the product, then its epilogue, on the float32
// values of the outputs (a bf16 output's scratch, rounded once by
// actFlush). Each step is the very code of the op it replaces (MatMul,
// AddBias, GeluForward, GeluBackward) with the same parallel split, so in
// float32 the results are those ops' bit for bit; in bf16 they differ
// only by the roundings the fusion drops.

// MatMulBias implements gpu.Backend.
func (b *Backend) MatMulBias(c, a, w, bias *gpu.Tensor) {
	if b.err != nil {
		return
	}
	p, err := checker.MatMulBias(c, a, w, bias)
	if b.fail(err) {
		return
	}
	defer b.actFlush()
	cs := b.actOut(c)
	b.matMul(p, cs, b.actIn(a), b.actIn(w), false, false, 1, 0)
	if p.M > 0 && p.N > 0 {
		b.addBias(cs, b.actIn(bias), p.M, p.N)
	}
}

// MatMulBiasGELU implements gpu.Backend: gelu reads pre's float32 values,
// before a bf16 pre is rounded.
func (b *Backend) MatMulBiasGELU(out, pre, a, w, bias *gpu.Tensor) {
	if b.err != nil {
		return
	}
	p, err := checker.MatMulBiasGELU(out, pre, a, w, bias)
	if b.fail(err) {
		return
	}
	defer b.actFlush()
	ps := b.actOut(pre)
	b.matMul(p, ps, b.actIn(a), b.actIn(w), false, false, 1, 0)
	if p.M > 0 && p.N > 0 {
		b.addBias(ps, b.actIn(bias), p.M, p.N)
		b.gelu(b.actOut(out), ps)
	}
}

// MatMulDGELU implements gpu.Backend: the product stays in float32 until
// the derivative has multiplied it.
func (b *Backend) MatMulDGELU(dpre, dout, w, pre *gpu.Tensor) {
	if b.err != nil {
		return
	}
	p, err := checker.MatMulDGELU(dpre, dout, w, pre)
	if b.fail(err) {
		return
	}
	defer b.actFlush()
	ds := b.actOut(dpre)
	b.matMul(p, ds, b.actIn(dout), b.actIn(w), false, true, 1, 0)
	if p.M > 0 && p.N > 0 {
		b.geluGrad(ds, b.actIn(pre), ds)
	}
}
