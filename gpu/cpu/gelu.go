package cpu

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// GELU (GPT-2's tanh approximation) and dropout, elementwise.

const (
	geluScale = 0.7978845608028654 // sqrt(2/π)
	geluCubic = 0.044715
	// geluMaxArg caps −2u so exp stays finite: for x below about −9.3 the
	// output and gradient are below 1e-33 either way, and the backward's
	// x·e·σ² never becomes ∞·0.
	geluMaxArg = 80
)

// GeluForward implements gpu.Backend:
// out = 0.5·x·(1 + tanh(u)), u = sqrt(2/π)·(x + 0.044715·x³), computed in
// float64 as x·σ(2u) = x/(1 + exp(−2u)), the same function in one exp (about
// twice as fast as math.Tanh).
// out may be exactly inp (elementwise, so in place is safe).
func (b *Backend) GeluForward(out, inp *gpu.Tensor) {
	const op = "gelu forward"
	if !b.okF32(op, "out inp", out, inp) || !b.okLen(op, inp.Len(), "out", out) ||
		!b.okInPlace(op, "out", out, "inp", inp) {
		return
	}
	os, xs := F32(out), F32(inp)
	b.parallelFor(len(os), ewMinChunk/4, func(lo, hi int) {
		o, x := os[lo:hi], xs[lo:hi]
		for i, v := range x[:len(o)] {
			x := float64(v)
			e := math.Exp(min(-2*geluScale*(x+geluCubic*x*x*x), geluMaxArg))
			o[i] = float32(x / (1 + e))
		}
	})
}

// GeluBackward implements gpu.Backend. dinp may alias dout.
func (b *Backend) GeluBackward(dinp, inp, dout *gpu.Tensor) {
	const op = "gelu backward"
	if !b.okF32(op, "dinp inp dout", dinp, inp, dout) || !b.okLen(op, inp.Len(), "dinp dout", dinp, dout) ||
		!b.okDisjoint(op, "dinp", dinp, "inp", inp) || !b.okInPlace(op, "dinp", dinp, "dout", dout) {
		return
	}
	dxs, xs, dys := F32(dinp), F32(inp), F32(dout)
	b.parallelFor(len(dxs), ewMinChunk/4, func(lo, hi int) {
		dx, x, dy := dxs[lo:hi], xs[lo:hi], dys[lo:hi]
		x, dy = x[:len(dx)], dy[:len(dx)]
		for i, v := range x {
			x := float64(v)
			e := math.Exp(min(-2*geluScale*(x+geluCubic*x*x*x), geluMaxArg))
			sig := 1 / (1 + e)
			// d/dx [x·σ(2u)] = σ + x·2σ(1−σ)·u', with σ(1−σ) = e/(1+e)².
			du := geluScale * (1 + 3*geluCubic*x*x)
			grad := sig + 2*x*e*sig*sig*du
			dx[i] = float32(grad * float64(dy[i]))
		}
	})
}

// okDropoutP records an error unless 0 ≤ p < 1.
func (b *Backend) okDropoutP(op string, p float32) bool {
	if !(p >= 0 && p < 1) {
		b.failf("%s: probability %v outside [0,1)", op, p)
		return false
	}
	return true
}

// dropout writes dst = src·keep/(1−p), element i dropped when
// gpu.DropoutUniform(seed, i) < p; p = 0 copies. len(dst) = len(src) > 0.
func (b *Backend) dropout(dst, src []float32, p float32, seed uint64) {
	if p == 0 {
		if &dst[0] != &src[0] {
			b.parallelFor(len(dst), ewMinChunk, func(lo, hi int) { copy(dst[lo:hi], src[lo:hi]) })
		}
		return
	}
	scale := 1 / (1 - p)
	b.parallelFor(len(dst), ewMinChunk/4, func(lo, hi int) {
		d, s := dst[lo:hi], src[lo:hi]
		s = s[:len(d)]
		for i, v := range s {
			if gpu.DropoutUniform(seed, lo+i) < p {
				d[i] = 0
			} else {
				d[i] = v * scale
			}
		}
	})
}

// Dropout implements gpu.Backend. out may alias inp.
func (b *Backend) Dropout(out, inp *gpu.Tensor, p float32, seed uint64) {
	const op = "dropout"
	if !b.okF32(op, "out inp", out, inp) || !b.okLen(op, inp.Len(), "out", out) ||
		!b.okInPlace(op, "out", out, "inp", inp) || !b.okDropoutP(op, p) || out.Len() == 0 {
		return
	}
	b.dropout(F32(out), F32(inp), p, seed)
}

// DropoutBackward implements gpu.Backend. dinp may alias dout.
func (b *Backend) DropoutBackward(dinp, dout *gpu.Tensor, p float32, seed uint64) {
	const op = "dropout backward"
	if !b.okF32(op, "dinp dout", dinp, dout) || !b.okLen(op, dout.Len(), "dinp", dinp) ||
		!b.okInPlace(op, "dinp", dinp, "dout", dout) || !b.okDropoutP(op, p) || dinp.Len() == 0 {
		return
	}
	b.dropout(F32(dinp), F32(dout), p, seed)
}
