package cpu

import (
	"github.com/instructgo/instructgo/gpu"
)

// SwiGLU, the gated activation of the Llama family's MLP, row by row over
// [N,2F] inputs (gate columns, then up columns) and [N,F] outputs, in
// float32 with exp32 (the sigmoid from e^−|g|, which never overflows).

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
	b.parallelFor(n, max(1, ewMinChunk/(4*f)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			x := xs[r*2*f : (r+1)*2*f]
			o := os[r*f : (r+1)*f]
			gate, up := x[:len(o)], x[f:][:len(o)]
			for j, g := range gate {
				o[j] = g * sigmoid32(g) * up[j]
			}
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
	b.parallelFor(n, max(1, ewMinChunk/(4*f)), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			x, dx := xs[r*2*f:(r+1)*2*f], dxs[r*2*f:(r+1)*2*f]
			dy := dys[r*f : (r+1)*f]
			gate, up := x[:len(dy)], x[f:][:len(dy)]
			dgate, dup := dx[:len(dy)], dx[f:][:len(dy)]
			for j, g := range gate {
				s := sigmoid32(g)
				silu := g * s
				dgate[j] = dy[j] * up[j] * (s * (1 + g*(1-s)))
				dup[j] = dy[j] * silu
			}
		}
	})
}

// sigmoid32 is 1/(1 + e^−g) from e = e^−|g| ≤ 1: 1/(1+e) for g ≥ 0,
// e/(1+e) below. exp32 saturates at e^−80, so |g| > 80 gives a sigmoid
// within 2e-35 of 0 or 1.
func sigmoid32(g float32) float32 {
	a := g
	if a > 0 {
		a = -a
	}
	e := exp32(a)
	if g >= 0 {
		return 1 / (1 + e)
	}
	return e / (1 + e)
}
