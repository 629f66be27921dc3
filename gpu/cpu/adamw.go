package cpu

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// AdamW is one fused pass over params, grads and both moments: clip scale,
// moment updates, bias correction and decoupled weight decay per element.

// adamWGradScale returns s = GradScale·min(1, MaxNorm/‖GradScale·grad‖), the
// factor applied to every gradient element, with ‖grad‖² read from normSq
// (nil, or MaxNorm 0: no clipping; GradScale 0 means 1). A zero norm is
// never clipped; a NaN norm is not clipped either, so the NaN reaches the
// parameters instead of hiding.
func adamWGradScale(normSq []float32, h gpu.AdamW) float64 {
	s := float64(h.GradScale)
	if s == 0 {
		s = 1
	}
	if normSq == nil || h.MaxNorm <= 0 {
		return s
	}
	norm := math.Abs(s) * math.Sqrt(float64(normSq[0]))
	if maxNorm := float64(h.MaxNorm); norm > maxNorm {
		s *= maxNorm / norm
	}
	return s
}

// AdamW implements gpu.Backend. Step must be ≥ 1 and both betas in [0,1).
func (b *Backend) AdamW(params, lowp, grads, m, v, normSq *gpu.Tensor, h gpu.AdamW) {
	if b.err != nil {
		return
	}
	if _, err := checker.AdamW(params, lowp, grads, m, v, normSq, h); b.fail(err) {
		return
	}
	var ns []float32
	if normSq != nil {
		ns = F32(normSq)
	}
	k := adamWConsts{scale: float32(adamWGradScale(ns, h)), b1: h.Beta1, c1: 1 - h.Beta1, b2: h.Beta2, c2: 1 - h.Beta2,
		ibc1: float32(1 / (1 - math.Pow(float64(h.Beta1), float64(h.Step)))),
		ibc2: float32(1 / (1 - math.Pow(float64(h.Beta2), float64(h.Step)))),
		eps:  h.Eps, lr: h.LR, wd: h.WeightDecay}
	ps, gs, ms, vs := F32(params), F32(grads), F32(m), F32(v)
	vec := activeVec.Load()
	kern, round := vec.adamw, vec.roundBF16
	var lp []uint16
	if lowp != nil {
		lp = BF(lowp)
	}
	b.parallelFor(len(ps), ewMinChunk/2, func(lo, hi int) {
		kern(ps[lo:hi], gs[lo:hi], ms[lo:hi], vs[lo:hi], &k)
		if lp != nil {
			round(lp[lo:hi], ps[lo:hi])
		}
	})
}

// adamWConsts are one update's per-element constants, in the order the
// assembly kernel reads them: the gradient scale, β1, 1−β1, β2, 1−β2, the
// bias corrections 1/(1−β1^t) and 1/(1−β2^t), ε, the learning rate and
// the weight decay.
type adamWConsts struct {
	scale, b1, c1, b2, c2, ibc1, ibc2, eps, lr, wd float32
}

// adamWGeneric is the update of every element of p (g, m, v as long): the
// float32 operations of gpu.Backend.AdamW in a fixed order, each rounded,
// which the assembly kernel repeats 8 elements at a time (the square root
// is correctly rounded either way).
func adamWGeneric(p, g, m, v []float32, k *adamWConsts) {
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	for i, w := range p {
		gi := g[i] * k.scale
		mi := k.b1*m[i] + k.c1*gi
		vi := k.b2*v[i] + k.c2*gi*gi
		m[i], v[i] = mi, vi
		den := float32(math.Sqrt(float64(vi*k.ibc2))) + k.eps
		p[i] = w - k.lr*(mi*k.ibc1/den+k.wd*w)
	}
}
