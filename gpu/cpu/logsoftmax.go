package cpu

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// Fused log-softmax over the vocabulary: the log-probability of the target
// token, the row's log-sum-exp and entropy in one pass over the logits, and
// the gradient written over the logits in place. The N×V probabilities are
// never stored.
//
// Precision: exponentials and products are float32 (exp32). The forward
// pass walks a row once with an online maximum: terms are summed in float32
// within blocks of lsmBlock logits, and the block sums are accumulated in
// float64. That keeps the sums over V = 50257 accurate to float32 rounding
// at the cost of one float64 add per block. The entropy is accumulated as
// H = log s − w/s with s = Σ e^(z−m) and w = Σ e^(z−m)·(z−m), both terms
// non-negative, so logits of large magnitude do not cancel against the
// log-sum-exp. The target log-probability is (z_t − m) − log s, exact in its
// first term for the same reason.
//
// The row kernels belong to the vecKernel sets (gelu.go): on amd64 with
// AVX2+FMA they run in assembly (vecmath_amd64.s) with a vector exp at least
// as accurate as exp32, in two passes over the row (the maximum, then the
// sums: pairs of terms added in float32, the pair sums in float64).

// lsmBlock is the number of logits the forward pass sums in float32 before
// adding the partial sums into float64.
const lsmBlock = 16

// LogSoftmaxForward implements gpu.Backend.
func (b *Backend) LogSoftmaxForward(logp, entropy, lse, logits, targets *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, v, checks, err := checker.LogSoftmaxForward(logp, entropy, lse, logits, targets)
	if b.failChecked(err, checks) {
		return
	}
	defer b.actFlush()
	z, tg, lp, ls := b.actIn(logits), I32(targets), F32(logp), F32(lse)
	var ent []float32
	if entropy != nil {
		ent = F32(entropy)
	}
	b.parallelFor(n, max(1, 32768/v), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			var h float64
			ls[i], lp[i], h = lsmRow(z[i*v:(i+1)*v], tg[i])
			if ent != nil {
				ent[i] = float32(h)
			}
		}
	})
}

// lsmRow returns the log-sum-exp of the row z, the log-probability of
// target t (0 when t < 0: an ignored row) and the entropy.
func lsmRow(z []float32, t int32) (lse, logp float32, entropy float64) {
	m, logS, h := lsmRowStats(z)
	if t >= 0 {
		// (z_t − m) − log s is exact in its first term, so the
		// log-probability keeps its precision however large m is.
		logp = float32(float64(z[t]) - float64(m) - logS)
	}
	return float32(float64(m) + logS), logp, h
}

// lsmRowStats returns the maximum m of z, log Σ exp(z − m) (so the
// log-sum-exp is m + logS) and the entropy of the softmax of z, with the
// active kernel set (vecKernel).
func lsmRowStats(z []float32) (m float32, logS, entropy float64) {
	return activeVec.Load().lsmRowStats(z)
}

// lsmRowStatsGeneric is lsmRowStats in portable Go, in one pass with an
// online maximum.
func lsmRowStatsGeneric(z []float32) (m float32, logS, entropy float64) {
	// Starting from the lowest finite value rather than −Inf keeps z − m
	// defined (−Inf, not NaN) for −Inf logits.
	m = -math.MaxFloat32
	// s = Σ e^(z−m) and w = Σ e^(z−m)·(z−m) for the current m: float32
	// partial sums within a block (two of each, to keep the additions
	// independent), float64 across blocks.
	var s, w float64
	for len(z) > 0 {
		c := z[:min(lsmBlock, len(z))]
		z = z[len(c):]
		var s0, s1, w0, w1 float32
		for len(c) > 0 {
			v0, v1 := c[0], c[0]
			if len(c) > 1 {
				v1 = c[1]
			}
			if v0 > m || v1 > m {
				// A new maximum (rare after the first few logits): fold
				// the partial sums in and rebase on it,
				// e^(z−m') = e^(z−m)·e^(m−m').
				s += float64(s0 + s1)
				w += float64(w0 + w1)
				s0, s1, w0, w1 = 0, 0, 0, 0
				mm := v0
				if v1 > mm {
					mm = v1
				}
				if s > 0 {
					dm := float64(m) - float64(mm)
					f := math.Exp(dm)
					w = f * (w + dm*s)
					s *= f
				}
				m = mm
			}
			x0, x1 := v0-m, v1-m
			// Clamping at −80 (where exp32 saturates) keeps e·x finite,
			// not 0·−Inf, for −Inf logits.
			if x0 < -80 {
				x0 = -80
			}
			if x1 < -80 {
				x1 = -80
			}
			e0, e1 := exp32(x0), exp32(x1)
			if len(c) == 1 {
				e1 = 0
				c = c[1:]
			} else {
				c = c[2:]
			}
			s0, s1 = s0+e0, s1+e1
			w0, w1 = w0+e0*x0, w1+e1*x1
		}
		s += float64(s0 + s1)
		w += float64(w0 + w1)
	}
	logS = math.Log(s)
	return m, logS, logS - w/s
}

// LogSoftmaxBackward implements gpu.Backend.
func (b *Backend) LogSoftmaxBackward(logits, lse, entropy, targets, dlogp, dentropy *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, v, checks, err := checker.LogSoftmaxBackward(logits, lse, entropy, targets, dlogp, dentropy)
	if b.failChecked(err, checks) {
		return
	}
	defer b.actFlush()
	z, tg, ls, dl := b.actInOut(logits), I32(targets), F32(lse), F32(dlogp)
	var ent, dent []float32
	if dentropy != nil {
		ent, dent = F32(entropy), F32(dentropy)
	}
	b.parallelFor(n, max(1, 32768/v), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			var de, h float32
			if dent != nil {
				de, h = dent[i], ent[i]
			}
			lsmRowBackward(z[i*v:(i+1)*v], ls[i], tg[i], dl[i], de, h)
		}
	})
}

// lsmRowBackward overwrites the logits z of one row with the gradient of
// g·logp_t + de·H (g counts as 0 when t < 0: an ignored row), from the
// row's log-sum-exp lse and entropy h.
func lsmRowBackward(z []float32, lse float32, t int32, g, de, h float32) {
	if t < 0 {
		g = 0
	}
	lsmRowGrad(z, lse, g, de, h)
	if t >= 0 {
		z[t] += g
	}
}

// CrossEntropy implements gpu.Backend: per row, LogSoftmaxForward's
// statistics (the entropy among them when asked) and then
// LogSoftmaxBackward's gradient without the entropy term, with the same
// row kernels, so its results are those two ops' bit for bit. A row is read twice (the statistics, then the gradient written
// over it) while it is still in cache, instead of in two ops over all N·V
// logits.
func (b *Backend) CrossEntropy(logp, entropy, lse, logits, targets, dlogp *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, v, checks, err := checker.CrossEntropy(logp, entropy, lse, logits, targets, dlogp)
	if b.failChecked(err, checks) {
		return
	}
	defer b.actFlush()
	z, tg, lp, ls, dl := b.actInOut(logits), I32(targets), F32(logp), F32(lse), F32(dlogp)
	var ent []float32
	if entropy != nil {
		ent = F32(entropy)
	}
	b.parallelFor(n, max(1, 32768/v), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			zi := z[i*v : (i+1)*v]
			var h float64
			ls[i], lp[i], h = lsmRow(zi, tg[i])
			if ent != nil {
				ent[i] = float32(h)
			}
			lsmRowBackward(zi, ls[i], tg[i], dl[i], 0, 0)
		}
	})
}

// lsmRowGrad overwrites the logits z of one row with
// −p_j·(g + de·(log p_j + h)), p_j = exp(z_j − lse): the gradient of
// g·logp_t + de·H without the g·1[j=t] term, which the caller adds. It runs
// the active kernel set (vecKernel).
func lsmRowGrad(z []float32, lse, g, de, h float32) {
	activeVec.Load().lsmRowGrad(z, lse, g, de, h)
}

// lsmRowGradGeneric is lsmRowGrad in portable Go.
func lsmRowGradGeneric(z []float32, lse, g, de, h float32) {
	if de == 0 {
		for i, v := range z {
			z[i] = -exp32(v-lse) * g
		}
		return
	}
	// −p·(g + de·(x + h)) = −p·(c + de·x) with c = g + de·h, x = log p.
	c := g + de*h
	for i, v := range z {
		x := v - lse
		if x < -80 {
			x = -80 // keeps p·x finite for −Inf logits
		}
		z[i] = -exp32(x) * (c + de*x)
	}
}

// exp32 is e^x in float32 arithmetic for x ≤ 88, within 2e-7 relative
// error on [−80, 88]. It rounds x·64/ln 2 to an integer n, reduces x to
// r = x − n·ln2/64 (|r| ≤ ln2/128, with ln 2 in two parts so the product is
// exact) and returns 2^(n/64) = 2^⌊n/64⌋·exp32Table[n mod 64] times a cubic
// for e^r (truncation error r⁴/24 < 4e-11). Arguments below −80 give
// e^−80 ≈ 1.8e-35: softmax terms are relative to the largest, which is 1,
// so nothing that small matters, and it keeps results clear of subnormals.
// NaN propagates. It must stay within the compiler's inlining budget: a call
// in the hot loops would spill every live register.
func exp32(x float32) float32 {
	const (
		k     = 64 * 1.44269504088896341 // 64/ln 2
		l1    = 0.693359375 / 64         // ln2/64 = l1 + l2; l1 has 9 significant bits
		l2    = -2.12194440e-4 / 64
		round = 12582912 // 1.5·2^23: adding and subtracting it rounds to an integer
	)
	if x < -80 {
		x = -80
	}
	fn := (x*k + round) - round
	r := (x - fn*l1) - fn*l2
	n := int32(fn)
	p := ((0.16666667*r+0.5)*r+1)*r + 1
	return p * exp32Table[n&63] * math.Float32frombits(uint32((n>>6)+127)<<23)
}

// exp32Table holds 2^(i/64) for i in [0,64).
var exp32Table = func() (t [64]float32) {
	for i := range t {
		t[i] = float32(math.Exp2(float64(i) / 64))
	}
	return t
}()
