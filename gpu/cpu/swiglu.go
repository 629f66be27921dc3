package cpu

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// SwiGLU, the gated activation of the Llama family's MLP, row by row over
// [N,2F] inputs (gate columns, then up columns) and [N,F] outputs, by the
// active vecKernel (AVX2+FMA assembly, else portable Go with exp32).
//
// Both evaluate silu(g) = g·σ(g) in float32 from e = e^−|gc| ≤ 1, which
// never overflows: σ = 1/(1+e) for gc ≥ 0, e/(1+e) below, with the gate
// clamped twice as GELU's is (gm = max(g, −swigluClamp), gc = min(gm,
// swigluClamp)): silu = gm·σ, silu' = σ·(1 + gc·(1−σ)). Beyond the clamp
// the true σ is within 2e-35 of 0 or 1, so for g < −80 the kernels give a
// tiny negative silu and silu' (|·| < 1.5e-33 instead of the true values,
// smaller still), and for g > 80 silu = g and silu' = 1 exactly; clamping
// keeps every product finite (no ∞·0). So +Inf gives silu +Inf and silu'
// 1, −Inf gives about −1e-33 and about 0, and NaN propagates.

// swigluClamp bounds the gate the sigmoid sees (see above).
const swigluClamp = 80

// SwiGLUForward implements gpu.Backend.
func (b *Backend) SwiGLUForward(out, inp *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, f, err := checker.SwiGLUForward(out, inp)
	if b.fail(err) || n == 0 {
		return
	}
	defer b.actFlush()
	os, xs := b.actOut(out), b.actIn(inp)
	k := activeVec.Load()
	b.parallelFor(n, max(1, k.geluMinChunk/f), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			x := xs[r*2*f : (r+1)*2*f]
			k.swigluFwd(os[r*f:(r+1)*f], x[:f], x[f:])
		}
	})
}

// SwiGLUBackward implements gpu.Backend.
func (b *Backend) SwiGLUBackward(dinp, inp, dout *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, f, err := checker.SwiGLUBackward(dinp, inp, dout)
	if b.fail(err) || n == 0 {
		return
	}
	defer b.actFlush()
	dxs, xs, dys := b.actOut(dinp), b.actIn(inp), b.actIn(dout)
	k := activeVec.Load()
	b.parallelFor(n, max(1, k.geluMinChunk/f), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			x, dx := xs[r*2*f:(r+1)*2*f], dxs[r*2*f:(r+1)*2*f]
			k.swigluBwd(dx[:f], dx[f:], x[:f], x[f:], dys[r*f:(r+1)*f])
		}
	})
}

// swigluFwdGeneric is the portable vecKernel.swigluFwd:
// o = max(g, −80)·σ(g)·up, in float32 with exp32.
func swigluFwdGeneric(o, gate, up []float32) {
	gate, up = gate[:len(o)], up[:len(o)]
	for j, g := range gate {
		gm := max(g, -swigluClamp)
		o[j] = gm * sigmoid32(min(gm, swigluClamp)) * up[j]
	}
}

// swigluBwdGeneric is the portable vecKernel.swigluBwd:
// dgate = dy·up·σ·(1 + gc·(1−σ)), dup = dy·gm·σ.
func swigluBwdGeneric(dgate, dup, gate, up, dy []float32) {
	dup, gate, up, dy = dup[:len(dgate)], gate[:len(dgate)], up[:len(dgate)], dy[:len(dgate)]
	for j, g := range gate {
		gm := max(g, -swigluClamp)
		gc := min(gm, swigluClamp)
		s, c := sigmoids32(gc)
		dgate[j] = dy[j] * up[j] * (s * (1 + gc*c))
		dup[j] = dy[j] * (gm * s)
	}
}

// sigmoid32 is 1/(1 + e^−g) from e = e^−|g| ≤ 1: 1/(1+e) for g ≥ 0,
// e/(1+e) below. exp32 saturates at e^−80.
func sigmoid32(g float32) float32 {
	e := exp32(-abs32(g))
	if g >= 0 {
		return 1 / (1 + e)
	}
	return e / (1 + e)
}

// sigmoids32 returns σ(g) and 1−σ(g) from e = e^−|g| and r = 1/(1+e):
// (r, e·r) for g ≥ 0, (e·r, r) below, so neither cancels (1 − σ computed
// as a difference loses all its digits once σ rounds to 1).
func sigmoids32(g float32) (s, c float32) {
	e := exp32(-abs32(g))
	r := 1 / (1 + e)
	if g >= 0 {
		return r, e * r
	}
	return e * r, r
}

// abs32 is |g| (NaN stays NaN).
func abs32(g float32) float32 { return math.Float32frombits(math.Float32bits(g) &^ (1 << 31)) }
