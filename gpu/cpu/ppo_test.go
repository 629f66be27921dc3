package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Tests of the PPO ops against float64 references written from the
// formulas (not from ppo.go's helpers), gradients against central finite
// differences of the float64 losses, GAE against a case computed by hand.

// ppoSizes are (B, T) pairs: a small one for finite differences and one
// spanning several chunks of ppoMinChunk with a ragged tail.
var ppoSizes = [][2]int{{4, 33}, {7, 3*ppoMinChunk/7 + 101}}

// raggedMask returns a [B,T] mask whose row b is 1 on one random run
// [start,end) (start < T/2, end > start), so responses start and end at
// different positions, plus the index of each run's last token.
func raggedMask(r *rand.Rand, nb, nt int) (mask []float32, last []int32) {
	mask = make([]float32, nb*nt)
	last = make([]int32, nb)
	for s := 0; s < nb; s++ {
		start := r.IntN(max(1, nt/2))
		end := start + 1 + r.IntN(nt-start)
		for t := start; t < end; t++ {
			mask[s*nt+t] = 1
		}
		last[s] = int32(end - 1)
	}
	return mask, last
}

// countMask is Σ mask.
func countMask(mask []float32) float64 {
	var n float64
	for _, m := range mask {
		if m != 0 {
			n++
		}
	}
	return n
}

// ---- policy loss ----

const ppoEps = 0.2

// policyInputs draws log-probs whose ratios straddle [1−ε, 1+ε] but stay at
// least 1e-3 away from both ends, and advantages of both signs at least
// 1e-2 away from 0.
func policyInputs(r *rand.Rand, n int) (logp, oldLogp, adv []float32) {
	logp, oldLogp, adv = make([]float32, n), make([]float32, n), make([]float32, n)
	for i := 0; i < n; i++ {
		oldLogp[i] = float32(-0.1 - 3*math.Abs(r.NormFloat64()))
		for {
			logp[i] = oldLogp[i] + float32(0.25*r.NormFloat64())
			ratio := math.Exp(float64(logp[i]) - float64(oldLogp[i]))
			if math.Abs(ratio-(1+ppoEps)) > 1e-3 && math.Abs(ratio-(1-ppoEps)) > 1e-3 {
				break
			}
		}
		for math.Abs(float64(adv[i])) < 1e-2 {
			adv[i] = float32(r.NormFloat64())
		}
	}
	return logp, oldLogp, adv
}

// policyLoss64 is −scale·Σ_masked min(r·A, clip(r, 1−ε, 1+ε)·A) in float64,
// eps ≤ 0 meaning no clipping.
func policyLoss64(logp, oldLogp, adv []float64, mask []float32, eps, scale float64) float64 {
	var s float64
	for i := range logp {
		if mask[i] == 0 {
			continue
		}
		r := math.Exp(logp[i] - oldLogp[i])
		surr := r * adv[i]
		if eps > 0 {
			surr = math.Min(surr, math.Min(math.Max(r, 1-eps), 1+eps)*adv[i])
		}
		s += surr
	}
	return -scale * s
}

// policyStats64 is the reference stats: the loss, the share of masked
// tokens where clip(r)·A < r·A, the mean of (r−1) − log r, Σmask.
func policyStats64(logp, oldLogp, adv []float64, mask []float32, eps, scale float64) [4]float64 {
	var clipped, kl, n float64
	for i := range logp {
		if mask[i] == 0 {
			continue
		}
		r := math.Exp(logp[i] - oldLogp[i])
		if eps > 0 && math.Min(math.Max(r, 1-eps), 1+eps)*adv[i] < r*adv[i] {
			clipped++
		}
		kl += (r - 1) - math.Log(r)
		n++
	}
	return [4]float64{policyLoss64(logp, oldLogp, adv, mask, eps, scale), clipped / n, kl / n, n}
}

// policyGrad64 is the analytic ∂loss/∂logp: −scale·A·r where the unclipped
// term is the minimum (ties included), 0 where the clipped one is.
func policyGrad64(logp, oldLogp, adv []float64, mask []float32, eps, scale float64) []float64 {
	g := make([]float64, len(logp))
	for i := range logp {
		if mask[i] == 0 {
			continue
		}
		r := math.Exp(logp[i] - oldLogp[i])
		if eps > 0 && math.Min(math.Max(r, 1-eps), 1+eps)*adv[i] < r*adv[i] {
			continue
		}
		g[i] = -scale * adv[i] * r
	}
	return g
}

func runPolicyLoss(t *testing.T, b *Backend, logp, oldLogp, adv, mask []float32, eps, scale float32) (dlogp, stats []float32) {
	t.Helper()
	n := len(logp)
	d := tensorOf(t, b, randn(testRNG(99), n, 1), n) // garbage: overwritten
	st := tensorOf(t, b, []float32{7, 7, 7, 7}, 4)
	b.PPOPolicyLoss(d, st, tensorOf(t, b, logp, n), tensorOf(t, b, oldLogp, n), tensorOf(t, b, adv, n), tensorOf(t, b, mask, n), eps, scale)
	assertNoErr(t, b)
	return F32(d), F32(st)
}

// assertStats compares stats with the reference: element 0 (the loss) and
// the means with a relative tolerance, counts and fractions to float32
// rounding.
func assertStats(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	for i := range want {
		e := math.Abs(float64(got[i])-want[i]) / math.Max(math.Abs(want[i]), 1e-30)
		if e > tol || math.IsNaN(float64(got[i])) {
			t.Errorf("%s stats[%d] = %v, want %v (relative error %.3g)", what, i, got[i], want[i], e)
		}
	}
	t.Logf("%s stats %v, reference %v", what, got, want)
}

func TestPPOPolicyLoss(t *testing.T) {
	for si, sz := range ppoSizes {
		nb, nt := sz[0], sz[1]
		n := nb * nt
		r := testRNG(uint64(100 + si))
		mask, _ := raggedMask(r, nb, nt)
		logp, oldLogp, adv := policyInputs(r, n)
		cnt := countMask(mask)
		scale := float32(1 / cnt)
		lp, olp, a := to64(logp), to64(oldLogp), to64(adv)
		for _, eps := range []float32{ppoEps, 0, -1} {
			wantStats := policyStats64(lp, olp, a, mask, float64(eps), float64(scale))
			if eps > 0 && (wantStats[1] < 0.1 || wantStats[1] > 0.9) {
				t.Fatalf("clip fraction %v: the inputs do not straddle the clip range", wantStats[1])
			}
			wantGrad := policyGrad64(lp, olp, a, mask, float64(eps), float64(scale))
			for _, threads := range []int{1, 3} {
				dlogp, stats := runPolicyLoss(t, New(threads), logp, oldLogp, adv, mask, eps, scale)
				what := "policy loss"
				checkCloseLog(t, what+" dlogp", dlogp, wantGrad, 1e-6)
				assertStats(t, what, stats, wantStats[:], 1e-6)
				for i, m := range mask {
					if m == 0 && dlogp[i] != 0 {
						t.Fatalf("dlogp[%d] = %v outside the mask", i, dlogp[i])
					}
				}
				if eps <= 0 && stats[1] != 0 {
					t.Errorf("eps %v: clip fraction %v, want 0", eps, stats[1])
				}
			}
			// The analytic gradient is the loss's: central differences in
			// float64, on the small case (the inputs avoid the kinks).
			if si == 0 {
				x := append([]float64(nil), lp...)
				fd := numGrad(x, func() float64 { return policyLoss64(x, olp, a, mask, float64(eps), float64(scale)) })
				dlogp, _ := runPolicyLoss(t, New(2), logp, oldLogp, adv, mask, eps, scale)
				checkCloseLog(t, "policy dlogp vs finite differences", dlogp, fd, 1e-6)
			}
		}
	}
}

// TestPPOPolicyLossTies: where the clipped and unclipped surrogates are
// equal (ratio inside the clip range, here exactly 1, or A = 0) the
// unclipped gradient flows; a ratio outside the range clips only in the
// direction that lowers the surrogate.
func TestPPOPolicyLossTies(t *testing.T) {
	e := float32(math.Log(2)) // ratio 2 and 1/2, far outside [0.8, 1.2]
	logp := []float32{-1, -1, -1 + e, -1 + e, -1 - e, -1 - e, -1 + e}
	old := []float32{-1, -1, -1, -1, -1, -1, -1}
	adv := []float32{0.5, -0.5, 0.5, -0.5, 0.5, -0.5, 0}
	mask := []float32{1, 1, 1, 1, 1, 1, 1}
	dlogp, stats := runPolicyLoss(t, New(1), logp, old, adv, mask, ppoEps, 1)
	r2 := math.Exp(float64(e))
	want := []float64{-0.5, 0.5, 0, 0.5 * r2, -0.5 / r2, 0, 0}
	assertClose(t, "tie gradients", dlogp, want, 1e-6)
	if stats[1] != float32(2.0/7) {
		t.Errorf("clip fraction %v, want 2/7", stats[1])
	}
}

// ---- value loss ----

// valueInputs draws values near the old ones, straddling the clip range by
// at least 1e-3, and returns whose clipped and unclipped errors differ by at
// least 1e-3.
func valueInputs(r *rand.Rand, n int) (values, oldValues, returns []float32) {
	values, oldValues, returns = make([]float32, n), make([]float32, n), make([]float32, n)
	for i := 0; i < n; i++ {
		oldValues[i] = float32(r.NormFloat64())
		for {
			values[i] = oldValues[i] + float32(0.3*r.NormFloat64())
			returns[i] = float32(r.NormFloat64())
			v, o, ret := float64(values[i]), float64(oldValues[i]), float64(returns[i])
			vc := o + math.Min(math.Max(v-o, -ppoEps), ppoEps)
			if math.Abs(math.Abs(v-o)-ppoEps) > 1e-3 && math.Abs(math.Abs(vc-ret)-math.Abs(v-ret)) > 1e-3 &&
				math.Abs(v-ret) > 1e-3 {
				break
			}
		}
	}
	return values, oldValues, returns
}

// valueLoss64 is scale·Σ_masked ½·max((v−R)², (vc−R)²), vc = oldV +
// clip(v−oldV, −ε, ε), eps ≤ 0 meaning vc = v.
func valueLoss64(v, oldV, ret []float64, mask []float32, eps, scale float64) float64 {
	var s float64
	for i := range v {
		if mask[i] == 0 {
			continue
		}
		l := (v[i] - ret[i]) * (v[i] - ret[i])
		if eps > 0 {
			vc := oldV[i] + math.Min(math.Max(v[i]-oldV[i], -eps), eps)
			l = math.Max(l, (vc-ret[i])*(vc-ret[i]))
		}
		s += 0.5 * l
	}
	return scale * s
}

func valueRef64(v, oldV, ret []float64, mask []float32, eps, scale float64) (grad []float64, stats [3]float64) {
	grad = make([]float64, len(v))
	var clipped, n float64
	for i := range v {
		if mask[i] == 0 {
			continue
		}
		n++
		vc := oldV[i] + math.Min(math.Max(v[i]-oldV[i], -eps), eps)
		if eps > 0 && (vc-ret[i])*(vc-ret[i]) > (v[i]-ret[i])*(v[i]-ret[i]) {
			clipped++
			continue
		}
		grad[i] = scale * (v[i] - ret[i])
	}
	return grad, [3]float64{valueLoss64(v, oldV, ret, mask, eps, scale), clipped / n, n}
}

func runValueLoss(t *testing.T, b *Backend, v, oldV, ret, mask []float32, eps, scale float32) (dv, stats []float32) {
	t.Helper()
	n := len(v)
	d := tensorOf(t, b, randn(testRNG(98), n, 1), n)
	st := tensorOf(t, b, []float32{7, 7, 7}, 3)
	b.PPOValueLoss(d, st, tensorOf(t, b, v, n), tensorOf(t, b, oldV, n), tensorOf(t, b, ret, n), tensorOf(t, b, mask, n), eps, scale)
	assertNoErr(t, b)
	return F32(d), F32(st)
}

func TestPPOValueLoss(t *testing.T) {
	for si, sz := range ppoSizes {
		nb, nt := sz[0], sz[1]
		n := nb * nt
		r := testRNG(uint64(200 + si))
		mask, _ := raggedMask(r, nb, nt)
		v, ov, ret := valueInputs(r, n)
		scale := float32(1 / countMask(mask))
		vd, od, rd := to64(v), to64(ov), to64(ret)
		for _, eps := range []float32{ppoEps, 0} {
			wantGrad, wantStats := valueRef64(vd, od, rd, mask, float64(eps), float64(scale))
			if eps > 0 && (wantStats[1] < 0.05 || wantStats[1] > 0.9) {
				t.Fatalf("value clip fraction %v: the inputs do not straddle the clip range", wantStats[1])
			}
			for _, threads := range []int{1, 3} {
				dv, stats := runValueLoss(t, New(threads), v, ov, ret, mask, eps, scale)
				checkCloseLog(t, "value loss dvalues", dv, wantGrad, 1e-6)
				assertStats(t, "value loss", stats, wantStats[:], 1e-6)
				for i, m := range mask {
					if m == 0 && dv[i] != 0 {
						t.Fatalf("dvalues[%d] = %v outside the mask", i, dv[i])
					}
				}
			}
			if si == 0 {
				x := append([]float64(nil), vd...)
				fd := numGrad(x, func() float64 { return valueLoss64(x, od, rd, mask, float64(eps), float64(scale)) })
				dv, _ := runValueLoss(t, New(2), v, ov, ret, mask, eps, scale)
				checkCloseLog(t, "dvalues vs finite differences", dv, fd, 1e-6)
			}
		}
	}
}

// ---- KL-penalised rewards ----

func TestKLPenalizedRewards(t *testing.T) {
	const beta = 0.05
	for si, sz := range ppoSizes {
		nb, nt := sz[0], sz[1]
		n := nb * nt
		r := testRNG(uint64(300 + si))
		mask, last := raggedMask(r, nb, nt)
		ref := make([]float32, n)
		logp := make([]float32, n)
		for i := range ref {
			ref[i] = float32(-0.1 - 3*math.Abs(r.NormFloat64()))
			logp[i] = ref[i] + float32(0.5*r.NormFloat64())
		}
		score := randn(r, nb, 2)
		for _, est := range []int{gpu.KLK1, gpu.KLK3} {
			wantKL, wantRw := make([]float64, n), make([]float64, n)
			for i := range mask {
				if mask[i] == 0 {
					continue
				}
				d := float64(logp[i]) - float64(ref[i])
				if est == gpu.KLK3 {
					rho := math.Exp(float64(ref[i]) - float64(logp[i]))
					d = (rho - 1) - math.Log(rho)
				}
				wantKL[i] = d
				wantRw[i] = -beta * d
				if s := i / nt; i%nt == int(last[s]) {
					wantRw[i] += float64(score[s])
				}
			}
			for _, threads := range []int{1, 3} {
				b := New(threads)
				rw := tensorOf(t, b, randn(r, n, 1), nb, nt)
				kl := tensorOf(t, b, randn(r, n, 1), nb, nt)
				b.KLPenalizedRewards(rw, kl, tensorOf(t, b, logp, nb, nt), tensorOf(t, b, ref, nb, nt), tensorOf(t, b, mask, nb, nt),
					tensorOf(t, b, score, nb), int32Of(t, b, last, nb), beta, est)
				assertNoErr(t, b)
				checkCloseLog(t, estName(est)+" kl", F32(kl), wantKL, 1e-6)
				checkCloseLog(t, estName(est)+" rewards", F32(rw), wantRw, 1e-6)
				for i, m := range mask {
					if m == 0 && (F32(rw)[i] != 0 || F32(kl)[i] != 0) {
						t.Fatalf("rewards/kl[%d] = %v/%v outside the mask", i, F32(rw)[i], F32(kl)[i])
					}
				}
				// kl is optional.
				rw2 := tensorOf(t, b, randn(r, n, 1), nb, nt)
				b.KLPenalizedRewards(rw2, nil, tensorOf(t, b, logp, nb, nt), tensorOf(t, b, ref, nb, nt), tensorOf(t, b, mask, nb, nt),
					tensorOf(t, b, score, nb), int32Of(t, b, last, nb), beta, est)
				assertNoErr(t, b)
				for i := range wantRw {
					if F32(rw2)[i] != F32(rw)[i] {
						t.Fatalf("rewards without kl differ at %d", i)
					}
				}
			}
		}
	}
}

// TestKLK3SmallDifferences: k3 ≈ d²/2 for a small log-ratio d stays
// accurate to float32 rounding (no cancellation).
func TestKLK3SmallDifferences(t *testing.T) {
	b := New(1)
	logp := []float32{-2, -2, -2, -2}
	ref := []float32{-2 + 1e-3, -2 - 1e-3, -2 + 1.0/64, -2 - 1.0/64}
	want := make([]float64, 4)
	for i := range want {
		d := float64(logp[i]) - float64(ref[i])
		want[i] = d*d/2 - d*d*d/6 + d*d*d*d/24 // (e^−d − 1) + d to O(d⁵)
	}
	kl := tensorOf(t, b, make([]float32, 4), 1, 4)
	rw := tensorOf(t, b, make([]float32, 4), 1, 4)
	b.KLPenalizedRewards(rw, kl, tensorOf(t, b, logp, 1, 4), tensorOf(t, b, ref, 1, 4), tensorOf(t, b, []float32{1, 1, 1, 1}, 1, 4),
		tensorOf(t, b, []float32{0.5}, 1), int32Of(t, b, []int32{3}, 1), 1, gpu.KLK3)
	assertNoErr(t, b)
	for i := range want {
		if e := math.Abs(float64(F32(kl)[i])-want[i]) / want[i]; e > 1e-6 {
			t.Errorf("k3[%d] = %v, want %v (relative error %.3g)", i, F32(kl)[i], want[i], e)
		}
	}
}

// estName names a KL estimator in messages.
func estName(est int) string {
	if est == gpu.KLK3 {
		return "k3"
	}
	return "k1"
}

// ---- GAE ----

// TestGAEHandComputed checks a case worked out by hand, γ = 1, λ = 0.95.
//
// Row 0, mask 1 1 1 1, r = (−0.1, 0.2, −0.3, 2), V = (0.5, 0.25, −0.5, 1):
//
//	t=3: δ = 2 + 0 − 1 = 1                 A = 1
//	t=2: δ = −0.3 + 1 − (−0.5) = 1.2       A = 1.2 + 0.95·1 = 2.15
//	t=1: δ = 0.2 + (−0.5) − 0.25 = −0.55   A = −0.55 + 0.95·2.15 = 1.4925
//	t=0: δ = −0.1 + 0.25 − 0.5 = −0.35     A = −0.35 + 0.95·1.4925 = 1.067875
//	returns A + V = (1.567875, 1.7425, 1.65, 2)
//
// Row 1, mask 0 1 1 0 (a prompt token, two response tokens, padding),
// r = (5, 0.4, 0.6, 7), V = (9, 0.2, 0.4, 9); the unmasked positions are
// ignored and terminal:
//
//	t=2: δ = 0.6 + 0 − 0.4 = 0.2           A = 0.2
//	t=1: δ = 0.4 + 0.4 − 0.2 = 0.6         A = 0.6 + 0.95·0.2 = 0.79
//	adv (0, 0.79, 0.2, 0), returns (0, 0.99, 0.6, 0)
//
// Row 2, mask 1 1 0 1 (a gap: two episodes), r = (1, 2, 3, 4),
// V = (0.5, −1, 8, 2):
//
//	t=3: δ = 4 − 2 = 2                     A = 2
//	t=1: δ = 2 + 0 − (−1) = 3              A = 3
//	t=0: δ = 1 + (−1) − 0.5 = −0.5         A = −0.5 + 0.95·3 = 2.35
//	adv (2.35, 3, 0, 2), returns (2.85, 2, 0, 4)
func TestGAEHandComputed(t *testing.T) {
	rewards := []float32{-0.1, 0.2, -0.3, 2, 5, 0.4, 0.6, 7, 1, 2, 3, 4}
	values := []float32{0.5, 0.25, -0.5, 1, 9, 0.2, 0.4, 9, 0.5, -1, 8, 2}
	mask := []float32{1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 0, 1}
	wantAdv := []float64{1.067875, 1.4925, 2.15, 1, 0, 0.79, 0.2, 0, 2.35, 3, 0, 2}
	wantRet := []float64{1.567875, 1.7425, 1.65, 2, 0, 0.99, 0.6, 0, 2.85, 2, 0, 4}
	b := New(2)
	adv := tensorOf(t, b, randn(testRNG(1), 12, 1), 3, 4)
	ret := tensorOf(t, b, randn(testRNG(2), 12, 1), 3, 4)
	b.GAE(adv, ret, tensorOf(t, b, rewards, 3, 4), tensorOf(t, b, values, 3, 4), tensorOf(t, b, mask, 3, 4), 1, 0.95)
	assertNoErr(t, b)
	for i := range wantAdv {
		if math.Abs(float64(F32(adv)[i])-wantAdv[i]) > 1e-6 || math.Abs(float64(F32(ret)[i])-wantRet[i]) > 1e-6 {
			t.Errorf("position %d: adv %v returns %v, want %v %v", i, F32(adv)[i], F32(ret)[i], wantAdv[i], wantRet[i])
		}
	}
}

// gae64 is GAE from its definition as a sum rather than a recursion:
// A_t = Σ_{l≥0} (γλ)^l δ_{t+l} over the masked run that holds t, with
// δ_u = r_u + γ·V_{u+1} − V_u and V after the run's end 0.
func gae64(rewards, values, mask []float32, nb, nt int, gamma, lambda float64) (adv, ret []float64) {
	adv, ret = make([]float64, nb*nt), make([]float64, nb*nt)
	in := func(s, t int) bool { return t < nt && mask[s*nt+t] != 0 }
	for s := 0; s < nb; s++ {
		for t := 0; t < nt; t++ {
			if !in(s, t) {
				continue
			}
			var a, w float64 = 0, 1
			for u := t; in(s, u); u++ {
				next := 0.0
				if in(s, u+1) {
					next = float64(values[s*nt+u+1])
				}
				a += w * (float64(rewards[s*nt+u]) + gamma*next - float64(values[s*nt+u]))
				w *= gamma * lambda
			}
			adv[s*nt+t] = a
			ret[s*nt+t] = a + float64(values[s*nt+t])
		}
	}
	return adv, ret
}

func TestGAEReference(t *testing.T) {
	for si, sz := range [][2]int{{5, 41}, {64, 300}} {
		nb, nt := sz[0], sz[1]
		n := nb * nt
		r := testRNG(uint64(400 + si))
		mask, _ := raggedMask(r, nb, nt)
		// Punch a gap into some rows: masked-out positions inside a run are
		// episode boundaries.
		for s := 0; s < nb; s += 3 {
			mask[s*nt+nt/2] = 0
		}
		rewards, values := randn(r, n, 0.5), randn(r, n, 1)
		for _, gl := range [][2]float32{{1, 0.95}, {0.99, 0.9}, {0.9, 1}} {
			wantAdv, wantRet := gae64(rewards, values, mask, nb, nt, float64(gl[0]), float64(gl[1]))
			for _, threads := range []int{1, 4} {
				b := New(threads)
				adv := tensorOf(t, b, randn(r, n, 1), nb, nt)
				ret := tensorOf(t, b, randn(r, n, 1), nb, nt)
				b.GAE(adv, ret, tensorOf(t, b, rewards, nb, nt), tensorOf(t, b, values, nb, nt), tensorOf(t, b, mask, nb, nt), gl[0], gl[1])
				assertNoErr(t, b)
				checkCloseLog(t, "gae adv", F32(adv), wantAdv, 1e-6)
				checkCloseLog(t, "gae returns", F32(ret), wantRet, 1e-6)
				for i, m := range mask {
					if m == 0 && (F32(adv)[i] != 0 || F32(ret)[i] != 0) {
						t.Fatalf("adv/returns[%d] = %v/%v outside the mask", i, F32(adv)[i], F32(ret)[i])
					}
				}
			}
		}
	}
}

// ---- whitening ----

func TestMaskedWhiten(t *testing.T) {
	for si, sz := range [][2]int{{4, 33}, {9, 2*ewMinReduce/9 + 77}} {
		nb, nt := sz[0], sz[1]
		n := nb * nt
		r := testRNG(uint64(500 + si))
		mask, _ := raggedMask(r, nb, nt)
		x0 := randn(r, n, 3)
		for i := range x0 {
			x0[i] += 2
		}
		// Reference: biased statistics over the masked elements.
		var mean, cnt float64
		for i, m := range mask {
			if m != 0 {
				mean += float64(x0[i])
				cnt++
			}
		}
		mean /= cnt
		var v float64
		for i, m := range mask {
			if m != 0 {
				v += (float64(x0[i]) - mean) * (float64(x0[i]) - mean)
			}
		}
		v /= cnt
		for _, shift := range []bool{true, false} {
			want := to64(x0)
			for i, m := range mask {
				if m != 0 {
					want[i] = (float64(x0[i]) - mean) / math.Sqrt(v+1e-8)
					if !shift {
						want[i] += mean
					}
				}
			}
			for _, threads := range []int{1, 3} {
				b := New(threads)
				x := tensorOf(t, b, x0, nb, nt)
				b.MaskedWhiten(x, tensorOf(t, b, mask, nb, nt), shift)
				assertNoErr(t, b)
				got := F32(x)
				checkCloseLog(t, "whiten", got, want, 1e-6)
				var m1, m2 float64
				for i, m := range mask {
					if m == 0 {
						if got[i] != x0[i] {
							t.Fatalf("unmasked x[%d] changed: %v -> %v", i, x0[i], got[i])
						}
						continue
					}
					m1 += float64(got[i])
				}
				m1 /= cnt
				for i, m := range mask {
					if m != 0 {
						m2 += (float64(got[i]) - m1) * (float64(got[i]) - m1)
					}
				}
				m2 /= cnt
				wantMean := 0.0
				if !shift {
					wantMean = mean
				}
				if math.Abs(m1-wantMean) > 1e-6 || math.Abs(m2-1) > 1e-5 {
					t.Errorf("shift %v: masked mean %v (want %v), variance %v (want 1)", shift, m1, wantMean, m2)
				}
			}
		}
	}
}

// TestMaskedWhitenEmptyMask: no masked element changes nothing.
func TestMaskedWhitenEmptyMask(t *testing.T) {
	b := New(2)
	x0 := randn(testRNG(7), 10, 1)
	x := tensorOf(t, b, x0, 2, 5)
	b.MaskedWhiten(x, tensorOf(t, b, make([]float32, 10), 2, 5), true)
	assertNoErr(t, b)
	for i := range x0 {
		if F32(x)[i] != x0[i] {
			t.Fatalf("x[%d] changed", i)
		}
	}
}

// ---- bad input (the argument rules are gpu.Checker's, tested there) ----

// TestKLPenalizedRewardsBadIndexWritesNothing: a lastIdx on a token outside
// the mask, the one rule the backend checks itself, is reported with
// gpu.KLLastIdxMaskError and leaves the outputs as they were.
func TestKLPenalizedRewardsBadIndexWritesNothing(t *testing.T) {
	b := New(1)
	r := testRNG(601)
	rw0, kl0 := randn(r, 6, 1), randn(r, 6, 1)
	rw, kl := tensorOf(t, b, rw0, 2, 3), tensorOf(t, b, kl0, 2, 3)
	mask := tensorOf(t, b, []float32{1, 1, 0, 1, 1, 1}, 2, 3)
	b.KLPenalizedRewards(rw, kl, tensorOf(t, b, randn(r, 6, 1), 2, 3), tensorOf(t, b, randn(r, 6, 1), 2, 3), mask,
		tensorOf(t, b, []float32{1, 2}, 2), int32Of(t, b, []int32{2, 2}, 2), 0.1, gpu.KLK1)
	if want := gpu.KLLastIdxMaskError(0, 2); b.Err() == nil || b.Err().Error() != want.Error() {
		t.Fatalf("lastIdx on a masked-out token: error %v, want %v", b.Err(), want)
	}
	for i := range rw0 {
		if F32(rw)[i] != rw0[i] || F32(kl)[i] != kl0[i] {
			t.Fatalf("output %d written after the error", i)
		}
	}
	t.Log(b.Err())
}
