package cpu

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// The PPO math (gpu.Backend.PPOPolicyLoss, PPOValueLoss, KLPenalizedRewards,
// GAE, MaskedWhiten). Per-token math is float64, as on cuda (kernels/ppo.cu),
// so the two backends differ only by the order of float64 additions and
// last-bit differences of exp/expm1; sums keep one float64 partial per chunk
// of workChunks, added in chunk order.

// ppoMinChunk is the smallest chunk of a per-token PPO op worth a goroutine
// (each token costs an exp or two in float64).
const ppoMinChunk = 1 << 13

// sumChunksN is sumChunks for k sums at once: f adds its chunk's
// contributions into acc (k zeros on entry); the chunks' sums are added in
// chunk order.
func (b *Backend) sumChunksN(n, minChunk, k int, f func(lo, hi int, acc []float64)) []float64 {
	count, size := b.workChunks(n, minChunk)
	partial := make([]float64, count*k)
	b.parallelFor(count, 1, func(c0, c1 int) {
		for c := c0; c < c1; c++ {
			lo := min(c*size, n)
			f(lo, min(lo+size, n), partial[c*k:(c+1)*k])
		}
	})
	sum := make([]float64, k)
	for c := 0; c < count; c++ {
		for j := range sum {
			sum[j] += partial[c*k+j]
		}
	}
	return sum
}

// meanOver returns s/n, or 0 when n is 0.
func meanOver(s, n float64) float64 {
	if n == 0 {
		return 0
	}
	return s / n
}

// ppoPolicyToken is the clipped surrogate of one token: surr = min(r·A,
// clip(r, lo, hi)·A) with r = exp(logp − oldLogp), whether the clipped branch
// is active (strictly smaller), r and the k3 estimate (r−1) − log r.
// clip false disables clipping.
func ppoPolicyToken(logp, oldLogp, adv float32, lo, hi float64, clip bool) (surr float64, clipped bool, r, k3 float64) {
	d := float64(logp) - float64(oldLogp)
	r = math.Exp(d)
	a := float64(adv)
	surr = r * a
	if clip {
		if a > 0 && r > hi {
			surr, clipped = hi*a, true
		} else if a < 0 && r < lo {
			surr, clipped = lo*a, true
		}
	}
	return surr, clipped, r, math.Expm1(d) - d
}

// PPOPolicyLoss implements gpu.Backend.
func (b *Backend) PPOPolicyLoss(dlogp, stats, logp, oldLogp, adv, mask *gpu.Tensor, clipEps, scale float32) {
	if b.err != nil {
		return
	}
	n, err := checker.PPOPolicyLoss(dlogp, stats, logp, oldLogp, adv, mask, clipEps, scale)
	if b.fail(err) {
		return
	}
	g, lp, olp, a, m := F32(dlogp), F32(logp), F32(oldLogp), F32(adv), F32(mask)
	eps, sc := float64(clipEps), float64(scale)
	clip := eps > 0
	lo, hi := 1-eps, 1+eps
	// sums: −Σ surr, clipped tokens, Σ k3, masked tokens.
	s := b.sumChunksN(n, ppoMinChunk, 4, func(i0, i1 int, acc []float64) {
		for i := i0; i < i1; i++ {
			if m[i] == 0 {
				g[i] = 0
				continue
			}
			surr, clipped, r, k3 := ppoPolicyToken(lp[i], olp[i], a[i], lo, hi, clip)
			if clipped {
				g[i] = 0
				acc[1]++
			} else {
				g[i] = float32(-sc * float64(a[i]) * r)
			}
			acc[0] -= surr
			acc[2] += k3
			acc[3]++
		}
	})
	st := F32(stats)
	st[0] = float32(sc * s[0])
	st[1] = float32(meanOver(s[1], s[3]))
	st[2] = float32(meanOver(s[2], s[3]))
	st[3] = float32(s[3])
}

// ppoValueToken is the clipped value loss of one token: ½·max((v−R)²,
// (vc−R)²) with vc = oldV + clip(v − oldV, −eps, eps) (vc = v when eps ≤ 0),
// whether the clipped term is active (strictly larger) and v − R.
func ppoValueToken(v, oldV, ret float32, eps float64) (loss float64, clipped bool, e1 float64) {
	vd, od, rd := float64(v), float64(oldV), float64(ret)
	vc := vd
	if eps > 0 {
		vc = od + math.Min(math.Max(vd-od, -eps), eps)
	}
	e1, e2 := vd-rd, vc-rd
	l1, l2 := e1*e1, e2*e2
	if l2 > l1 {
		return 0.5 * l2, true, e1
	}
	return 0.5 * l1, false, e1
}

// PPOValueLoss implements gpu.Backend.
func (b *Backend) PPOValueLoss(dvalues, stats, values, oldValues, returns, mask *gpu.Tensor, clipEps, scale float32) {
	if b.err != nil {
		return
	}
	n, err := checker.PPOValueLoss(dvalues, stats, values, oldValues, returns, mask, clipEps, scale)
	if b.fail(err) {
		return
	}
	g, v, ov, ret, m := F32(dvalues), F32(values), F32(oldValues), F32(returns), F32(mask)
	eps, sc := float64(clipEps), float64(scale)
	// sums: Σ loss, clipped tokens, masked tokens.
	s := b.sumChunksN(n, ppoMinChunk, 3, func(i0, i1 int, acc []float64) {
		for i := i0; i < i1; i++ {
			if m[i] == 0 {
				g[i] = 0
				continue
			}
			loss, clipped, e1 := ppoValueToken(v[i], ov[i], ret[i], eps)
			if clipped {
				g[i] = 0
				acc[1]++
			} else {
				g[i] = float32(sc * e1)
			}
			acc[0] += loss
			acc[2]++
		}
	})
	st := F32(stats)
	st[0] = float32(sc * s[0])
	st[1] = float32(meanOver(s[1], s[2]))
	st[2] = float32(s[2])
}

// klToken is the per-token KL estimate of logp and refLogp.
func klToken(logp, refLogp float32, est int) float64 {
	d := float64(logp) - float64(refLogp)
	if est == gpu.KLK3 {
		// (ρ−1) − log ρ with ρ = exp(−d); expm1 keeps small d accurate.
		return math.Expm1(-d) + d
	}
	return d
}

// KLPenalizedRewards implements gpu.Backend.
func (b *Backend) KLPenalizedRewards(rewards, kl, logp, refLogp, mask, score, lastIdx *gpu.Tensor, beta float32, estimator int) {
	if b.err != nil {
		return
	}
	nb, nt, checks, err := checker.KLPenalizedRewards(rewards, kl, logp, refLogp, mask, score, lastIdx, beta, estimator)
	if b.fail(err) || b.fail(gpu.HostAll(checks, I32)) {
		return
	}
	m, last := F32(mask), I32(lastIdx)
	for s := 0; s < nb; s++ {
		if m[s*nt+int(last[s])] == 0 {
			b.fail(gpu.KLLastIdxMaskError(s, last[s]))
			return
		}
	}
	rw, lp, ref, sc := F32(rewards), F32(logp), F32(refLogp), F32(score)
	var kls []float32
	if kl != nil {
		kls = F32(kl)
	}
	nbeta := -float64(beta)
	b.parallelFor(nb*nt, ppoMinChunk, func(i0, i1 int) {
		for i := i0; i < i1; i++ {
			if m[i] == 0 {
				rw[i] = 0
				if kls != nil {
					kls[i] = 0
				}
				continue
			}
			k := klToken(lp[i], ref[i], estimator)
			r := nbeta * k
			if s := i / nt; i-s*nt == int(last[s]) {
				r += float64(sc[s])
			}
			rw[i] = float32(r)
			if kls != nil {
				kls[i] = float32(k)
			}
		}
	})
}

// GAE implements gpu.Backend: one reverse scan per row, rows in parallel.
func (b *Backend) GAE(adv, returns, rewards, values, mask *gpu.Tensor, gamma, lambda float32) {
	if b.err != nil {
		return
	}
	nb, nt, err := checker.GAE(adv, returns, rewards, values, mask, gamma, lambda)
	if b.fail(err) || nt == 0 {
		return
	}
	a, ret, rw, v, m := F32(adv), F32(returns), F32(rewards), F32(values), F32(mask)
	g, gl := float64(gamma), float64(gamma)*float64(lambda)
	b.parallelFor(nb, max(1, ppoMinChunk/nt), func(s0, s1 int) {
		for s := s0; s < s1; s++ {
			gaeRow(a[s*nt:(s+1)*nt], ret[s*nt:(s+1)*nt], rw[s*nt:(s+1)*nt], v[s*nt:(s+1)*nt], m[s*nt:(s+1)*nt], g, gl)
		}
	})
}

// gaeRow is the reverse scan of one row; a position outside the mask is
// terminal (next value and advantage 0).
func gaeRow(a, ret, rw, v, m []float32, gamma, gl float64) {
	var nextV, nextA float64
	for t := len(m) - 1; t >= 0; t-- {
		if m[t] == 0 {
			a[t], ret[t] = 0, 0
			nextV, nextA = 0, 0
			continue
		}
		vt := float64(v[t])
		delta := float64(rw[t]) + gamma*nextV - vt
		at := delta + gl*nextA
		a[t], ret[t] = float32(at), float32(at+vt)
		nextV, nextA = vt, at
	}
}

// whitenEps is added to the variance before the square root.
const whitenEps = 1e-8

// MaskedWhiten implements gpu.Backend: two float64 reductions (the mean,
// then the squared deviations from it) and an elementwise pass.
func (b *Backend) MaskedWhiten(x, mask *gpu.Tensor, shiftMean bool) {
	if b.err != nil {
		return
	}
	n, err := checker.MaskedWhiten(x, mask)
	if b.fail(err) {
		return
	}
	xs, m := F32(x), F32(mask)
	s := b.sumChunksN(n, ewMinReduce, 2, func(i0, i1 int, acc []float64) {
		for i := i0; i < i1; i++ {
			if m[i] != 0 {
				acc[0] += float64(xs[i])
				acc[1]++
			}
		}
	})
	if s[1] == 0 {
		return
	}
	mean := s[0] / s[1]
	sq := b.sumChunksN(n, ewMinReduce, 1, func(i0, i1 int, acc []float64) {
		for i := i0; i < i1; i++ {
			if m[i] != 0 {
				d := float64(xs[i]) - mean
				acc[0] += d * d
			}
		}
	})
	inv := 1 / math.Sqrt(sq[0]/s[1]+whitenEps)
	add := 0.0
	if !shiftMean {
		add = mean
	}
	b.parallelFor(n, ewMinChunk, func(i0, i1 int) {
		for i := i0; i < i1; i++ {
			if m[i] != 0 {
				xs[i] = float32((float64(xs[i])-mean)*inv + add)
			}
		}
	})
}
