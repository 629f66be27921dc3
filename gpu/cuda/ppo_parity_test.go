//go:build cuda

package cuda

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// Parity of the PPO ops (ops_ppo.go, kernels/ppo.cu) with the cpu backend.
// Both evaluate every per-token formula in double from the same float32
// inputs, so outputs differ by at most an ulp or so of float32 (FMA
// contraction, exp/expm1 ulps, the order of double sums): tolerance 1e-6
// relative to the largest cpu output, and the counts in the stats exact.
// The sizes cover one block, many blocks, the 512-block cap of the
// reductions (more than 512·1024 tokens, so threads loop) and rows longer
// than GAE's 1024-position tile; masks are ragged runs with gaps. Like
// every cuda test, these run only where a GPU is present.

// ppoParitySizes are (B, T) pairs.
var ppoParitySizes = [][2]int{{3, 17}, {7, 3611}, {512, 1100}, {4, 2500}}

// ppoMask returns a ragged [B,T] mask (one run per row at a random start
// and end, a hole in every third row) and each row's last masked position.
func ppoMask(rng *rand.Rand, nb, nt int) (mask []float32, last []int32) {
	mask = make([]float32, nb*nt)
	last = make([]int32, nb)
	for s := 0; s < nb; s++ {
		start := rng.IntN(max(1, nt/2))
		end := start + 1 + rng.IntN(nt-start)
		for t := start; t < end; t++ {
			mask[s*nt+t] = 1
		}
		if s%3 == 0 && end-start > 2 {
			mask[s*nt+(start+end)/2] = 0
		}
		last[s] = int32(end - 1)
	}
	return mask, last
}

// near returns base + std·N(0,1) elementwise.
func near(rng *rand.Rand, base []float32, std float64) []float32 {
	x := make([]float32, len(base))
	for i, v := range base {
		x[i] = v + float32(std*rng.NormFloat64())
	}
	return x
}

// statsClose compares stats element by element (relative 1e-6; the last
// element, a count, exactly).
func statsClose(t *testing.T, what string, got, want []float32) {
	t.Helper()
	for i := range want {
		tol := 1e-6
		if i == len(want)-1 {
			tol = 0
		}
		closeTo(t, fmt.Sprintf("%s stats[%d]", what, i), got[i:i+1], want[i:i+1], tol)
	}
}

func TestPPOPolicyLossParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(71)
	for _, sz := range ppoParitySizes {
		nb, nt := sz[0], sz[1]
		n := nb * nt
		mask, _ := ppoMask(rng, nb, nt)
		old := randn(rng, n, 1)
		gl, hl := p.f32(1, near(rng, old, 0.25), n)
		gOld, hOld := p.f32(0, old, n)
		ga, ha := p.f32(1, randn(rng, n, 1), n)
		gm, hm := p.f32(0, mask, n)
		for _, eps := range []float32{0.2, 0} {
			name := fmt.Sprintf("[%d,%d] eps=%g", nb, nt, eps)
			gd, hd := p.f32(1, randn(rng, n, 1), n)
			gs, hs := p.f32(0, randn(rng, 4, 1), 4)
			scale := 1 / float32(n)
			p.h.PPOPolicyLoss(hd, hs, hl, hOld, ha, hm, eps, scale)
			p.g.PPOPolicyLoss(gd, gs, gl, gOld, ga, gm, eps, scale)
			p.noErr()
			d1, s1 := p.get(gd), p.get(gs)
			closeTo(t, name+" dlogp", d1, cpu.F32(hd), 1e-6)
			statsClose(t, name+" policy", s1, cpu.F32(hs))
			// Deterministic: a second run gives the same bits.
			p.g.PPOPolicyLoss(gd, gs, gl, gOld, ga, gm, eps, scale)
			sameBits(t, name+" dlogp rerun", p.get(gd), d1)
			sameBits(t, name+" stats rerun", p.get(gs), s1)
		}
	}
}

func TestPPOValueLossParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(72)
	for _, sz := range ppoParitySizes {
		nb, nt := sz[0], sz[1]
		n := nb * nt
		mask, _ := ppoMask(rng, nb, nt)
		old := randn(rng, n, 1)
		gv, hv := p.f32(1, near(rng, old, 0.3), n)
		gOld, hOld := p.f32(0, old, n)
		gr, hr := p.f32(1, randn(rng, n, 1), n)
		gm, hm := p.f32(0, mask, n)
		for _, eps := range []float32{0.2, -1} {
			name := fmt.Sprintf("[%d,%d] eps=%g", nb, nt, eps)
			gd, hd := p.f32(0, randn(rng, n, 1), n)
			gs, hs := p.f32(1, randn(rng, 3, 1), 3)
			p.h.PPOValueLoss(hd, hs, hv, hOld, hr, hm, eps, 0.5)
			p.g.PPOValueLoss(gd, gs, gv, gOld, gr, gm, eps, 0.5)
			p.noErr()
			d1, s1 := p.get(gd), p.get(gs)
			closeTo(t, name+" dvalues", d1, cpu.F32(hd), 1e-6)
			statsClose(t, name+" value", s1, cpu.F32(hs))
			p.g.PPOValueLoss(gd, gs, gv, gOld, gr, gm, eps, 0.5)
			sameBits(t, name+" dvalues rerun", p.get(gd), d1)
			sameBits(t, name+" stats rerun", p.get(gs), s1)
		}
	}
}

// TestPPOLossEmpty: no tokens at all still writes the stats (zeros).
func TestPPOLossEmpty(t *testing.T) {
	p := newOpsPair(t)
	ge, _ := p.f32(0, nil, 0)
	gs, _ := p.f32(0, []float32{7, 7, 7, 7}, 4)
	p.g.PPOPolicyLoss(ge, gs, ge, ge, ge, ge, 0.2, 1)
	p.noErr()
	sameBits(t, "empty policy stats", p.get(gs), []float32{0, 0, 0, 0})
}

func TestKLPenalizedRewardsParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(73)
	for _, sz := range ppoParitySizes {
		nb, nt := sz[0], sz[1]
		n := nb * nt
		mask, last := ppoMask(rng, nb, nt)
		ref := randn(rng, n, 1)
		glp, hlp := p.f32(1, near(rng, ref, 0.5), nb, nt)
		gref, href := p.f32(0, ref, nb, nt)
		gm, hm := p.f32(1, mask, nb, nt)
		gsc, hsc := p.f32(0, randn(rng, nb, 2), nb)
		gli, hli := p.i32(last, nb)
		for _, est := range []int{gpu.KLK1, gpu.KLK3} {
			name := fmt.Sprintf("[%d,%d] estimator %d", nb, nt, est)
			grw, hrw := p.f32(0, randn(rng, n, 1), nb, nt)
			gkl, hkl := p.f32(1, randn(rng, n, 1), nb, nt)
			p.h.KLPenalizedRewards(hrw, hkl, hlp, href, hm, hsc, hli, 0.05, est)
			p.g.KLPenalizedRewards(grw, gkl, glp, gref, gm, gsc, gli, 0.05, est)
			p.noErr()
			closeTo(t, name+" rewards", p.get(grw), cpu.F32(hrw), 1e-6)
			closeTo(t, name+" kl", p.get(gkl), cpu.F32(hkl), 1e-6)
			// Without kl, the same rewards.
			grw2, _ := p.f32(1, randn(rng, n, 1), nb, nt)
			p.g.KLPenalizedRewards(grw2, nil, glp, gref, gm, gsc, gli, 0.05, est)
			p.noErr()
			sameBits(t, name+" rewards without kl", p.get(grw2), p.get(grw))
		}
	}
}

// klBadLastIdx runs KLPenalizedRewards with lastIdx on both backends and
// checks that cuda reports the cpu's error at the next Sync.
func klBadLastIdx(t *testing.T, mask []float32, last []int32, frag string) {
	p := newOpsPair(t)
	nb := len(last)
	nt := len(mask) / nb
	rng := newRNG(74)
	gm, hm := p.f32(0, mask, nb, nt)
	glp, hlp := p.f32(0, randn(rng, nb*nt, 1), nb, nt)
	gref, href := p.f32(0, randn(rng, nb*nt, 1), nb, nt)
	gsc, hsc := p.f32(0, randn(rng, nb, 1), nb)
	gli, hli := p.i32(last, nb)
	grw, hrw := p.f32(0, make([]float32, nb*nt), nb, nt)
	p.h.KLPenalizedRewards(hrw, nil, hlp, href, hm, hsc, hli, 0.1, gpu.KLK3)
	p.g.KLPenalizedRewards(grw, nil, glp, gref, gm, gsc, gli, 0.1, gpu.KLK3)
	if p.h.Err() == nil {
		t.Fatalf("cpu accepted lastIdx %v", last)
	}
	wantErrContains(t, frag, p.g.Sync(), p.h.Err().Error())
}

func TestKLPenalizedRewardsLastIdxOutOfRange(t *testing.T) {
	klBadLastIdx(t, []float32{1, 1, 1, 1, 1, 1, 1, 1}, []int32{3, 4}, "lastIdx[1] = 4")
}

func TestKLPenalizedRewardsLastIdxUnmasked(t *testing.T) {
	klBadLastIdx(t, []float32{1, 1, 1, 1, 1, 1, 0, 0}, []int32{3, 3}, "lastIdx[1] = 3 is not a response token")
}

func TestGAEParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(75)
	for _, sz := range append(ppoParitySizes, [2]int{64, 300}) {
		nb, nt := sz[0], sz[1]
		n := nb * nt
		mask, _ := ppoMask(rng, nb, nt)
		grw, hrw := p.f32(1, randn(rng, n, 0.5), nb, nt)
		gv, hv := p.f32(0, randn(rng, n, 1), nb, nt)
		gm, hm := p.f32(1, mask, nb, nt)
		for _, gl := range [][2]float32{{1, 0.95}, {0.99, 0.9}} {
			name := fmt.Sprintf("[%d,%d] γ=%g λ=%g", nb, nt, gl[0], gl[1])
			ga, ha := p.f32(0, randn(rng, n, 1), nb, nt)
			gr, hr := p.f32(1, randn(rng, n, 1), nb, nt)
			p.h.GAE(ha, hr, hrw, hv, hm, gl[0], gl[1])
			p.g.GAE(ga, gr, grw, gv, gm, gl[0], gl[1])
			p.noErr()
			closeTo(t, name+" adv", p.get(ga), cpu.F32(ha), 1e-6)
			closeTo(t, name+" returns", p.get(gr), cpu.F32(hr), 1e-6)
		}
	}
}

func TestMaskedWhitenParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(76)
	for _, sz := range append(ppoParitySizes, [2]int{2, 5}) {
		nb, nt := sz[0], sz[1]
		n := nb * nt
		mask, _ := ppoMask(rng, nb, nt)
		if nb == 2 {
			mask = make([]float32, n) // nothing masked: nothing changes
		}
		x0 := near(rng, make([]float32, n), 3)
		gm, hm := p.f32(1, mask, nb, nt)
		for _, shift := range []bool{true, false} {
			name := fmt.Sprintf("[%d,%d] shift=%v", nb, nt, shift)
			gx, hx := p.f32(0, x0, nb, nt)
			p.h.MaskedWhiten(hx, hm, shift)
			p.g.MaskedWhiten(gx, gm, shift)
			p.noErr()
			got := p.get(gx)
			closeTo(t, name, got, cpu.F32(hx), 1e-6)
			for i, m := range mask {
				if m == 0 && got[i] != x0[i] {
					t.Fatalf("%s: unmasked x[%d] changed: %v -> %v", name, i, x0[i], got[i])
				}
			}
		}
	}
}

// TestPPOShapeErrors: argument errors are the cpu's (the shared checker).
func TestPPOShapeErrors(t *testing.T) {
	p := newOpsPair(t)
	gx, hx := p.f32(0, make([]float32, 10), 2, 5)
	gs, hs := p.f32(0, make([]float32, 3), 3)
	p.h.PPOPolicyLoss(hx, hs, hx, hx, hx, hx, 0.2, 1)
	p.g.PPOPolicyLoss(gx, gs, gx, gx, gx, gx, 0.2, 1)
	if p.h.Err() == nil {
		t.Fatal("cpu accepted stats [3]")
	}
	wantErrContains(t, "policy stats [3]", p.g.Err(), p.h.Err().Error())
}
