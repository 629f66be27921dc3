//go:build cuda

package cuda

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// AdamW implements gpu.Backend: one fused pass (kernels/adamw.cu). The
// gradient-clip scale is computed on the device from normSq[0], so a step
// needs no host round-trip; the bias corrections are computed here as the
// cpu backend computes them.
func (b *Backend) AdamW(params, lowp, grads, m, v, normSq *gpu.Tensor, h gpu.AdamW) {
	if b.err != nil {
		return
	}
	n, err := b.checker.AdamW(params, lowp, grads, m, v, normSq, h)
	if b.fail(err) || n == 0 {
		return
	}
	ibc1 := float32(1 / (1 - math.Pow(float64(h.Beta1), float64(h.Step))))
	ibc2 := float32(1 / (1 - math.Pow(float64(h.Beta2), float64(h.Step))))
	b.launch("adamw_f32", ewGrid(n, ewThreads), block1(ewThreads), 0,
		b.ptr(params), b.ptr(lowp), b.ptr(grads), b.ptr(m), b.ptr(v), b.ptr(normSq), int64(n),
		h.LR, h.Beta1, h.Beta2, h.Eps, h.WeightDecay, ibc1, ibc2, h.GradScale, h.MaxNorm)
}
