package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// groupLossRef is the group methods' loss in float64 (see group_loss.go):
// the clipped surrogate with per-token advantages w·A plus β·scale·Σ w·k3.
func groupLossRef(logp, old, ref, A, w, mask []float64, eps, beta, scale float64) (surrogate, total float64) {
	for i := range logp {
		if mask[i] == 0 {
			continue
		}
		r := math.Exp(logp[i] - old[i])
		a := w[i] * A[i]
		surr := math.Min(r*a, math.Max(1-eps, math.Min(1+eps, r))*a)
		surrogate -= scale * surr
		rho := math.Exp(ref[i] - logp[i])
		total += beta * scale * w[i] * ((rho - 1) - math.Log(rho))
	}
	return surrogate, surrogate + total
}

func TestGroupLossMatchesFloat64AndFiniteDifferences(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 7))
	const B, T = 6, 9
	n := B * T
	logp, old, ref, A, w, mask := make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n), make([]float64, n)
	for bi := range B {
		adv := rng.NormFloat64()
		length := 2 + rng.IntN(T-2)
		for t := range T {
			i := bi*T + t
			logp[i] = -0.2 - 2*rng.Float64()
			old[i] = logp[i] + 0.3*rng.NormFloat64() // some ratios outside 1±ε
			ref[i] = logp[i] + 0.5*rng.NormFloat64()
			if t >= 1 && t <= length {
				mask[i], A[i], w[i] = 1, adv, 1/float64(length)
			}
		}
	}
	const eps, beta, scale = 0.2, 0.3, 1.0 / B
	b := cpu.New(1)
	up := func(x []float64) *gpu.Tensor {
		tn, err := b.Alloc(gpu.Float32, n)
		if err != nil {
			t.Fatal(err)
		}
		f := make([]float32, n)
		for i, v := range x {
			f[i] = float32(v)
		}
		if err := b.Upload(tn, f); err != nil {
			t.Fatal(err)
		}
		return tn
	}
	// The float32 inputs are what the op sees: the reference reads them back.
	for _, x := range [][]float64{logp, old, ref, A, w} {
		for i := range x {
			x[i] = float64(float32(x[i]))
		}
	}
	adv := make([]float64, n)
	for i := range adv {
		adv[i] = w[i] * A[i]
	}
	in := groupLossInputs{logp: up(logp), oldLogp: up(old), refLogp: up(ref), adv: up(adv), weight: up(w), mask: up(mask)}
	dlogp, dkl := up(make([]float64, n)), up(make([]float64, n))
	stats, _ := b.Alloc(gpu.Float32, 4)
	klStats, _ := b.Alloc(gpu.Float32, 4)
	groupLoss(b, dlogp, stats, dkl, klStats, in, eps, beta, scale)
	got, st := make([]float32, n), make([]float32, 4)
	if err := b.Download(got, dlogp); err != nil {
		t.Fatal(err)
	}
	if err := b.Download(st, stats); err != nil {
		t.Fatal(err)
	}
	surr, _ := groupLossRef(logp, old, ref, A, w, mask, eps, beta, scale)
	if math.Abs(float64(st[0])-surr) > 1e-5*(1+math.Abs(surr)) {
		t.Errorf("surrogate loss %v, float64 reference %v", st[0], surr)
	}
	// The gradient against central differences of the float64 loss, at
	// tokens away from the clip's kinks.
	const h = 1e-6
	checked := 0
	for i := range n {
		x := append([]float64(nil), logp...)
		x[i] = logp[i] + h
		_, lp := groupLossRef(x, old, ref, A, w, mask, eps, beta, scale)
		x[i] = logp[i] - h
		_, lm := groupLossRef(x, old, ref, A, w, mask, eps, beta, scale)
		r := math.Exp(logp[i] - old[i])
		if math.Abs(r-(1-eps)) < 1e-3 || math.Abs(r-(1+eps)) < 1e-3 {
			continue
		}
		fd := (lp - lm) / (2 * h)
		if math.Abs(float64(got[i])-fd) > 1e-5+1e-4*math.Abs(fd) {
			t.Errorf("token %d (mask %v): dL/dlogp %v, finite difference %v", i, mask[i], got[i], fd)
		}
		if mask[i] != 0 {
			checked++
		}
	}
	if checked < n/3 {
		t.Fatalf("only %d masked tokens checked", checked)
	}
	// β = 0 leaves the surrogate's gradient alone (RLOO's case).
	groupLoss(b, dlogp, stats, dkl, klStats, in, eps, 0, scale)
	if err := b.Download(got, dlogp); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		x := append([]float64(nil), logp...)
		x[i] = logp[i] + h
		lp, _ := groupLossRef(x, old, ref, A, w, mask, eps, beta, scale)
		x[i] = logp[i] - h
		lm, _ := groupLossRef(x, old, ref, A, w, mask, eps, beta, scale)
		r := math.Exp(logp[i] - old[i])
		if math.Abs(r-(1-eps)) < 1e-3 || math.Abs(r-(1+eps)) < 1e-3 {
			continue
		}
		if fd := (lp - lm) / (2 * h); math.Abs(float64(got[i])-fd) > 1e-5+1e-4*math.Abs(fd) {
			t.Errorf("β = 0, token %d: dL/dlogp %v, finite difference %v", i, got[i], fd)
		}
	}
}
