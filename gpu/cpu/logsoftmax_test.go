package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// refLogSoftmax is the float64 reference: per row the log-sum-exp, the
// target log-probability (0 for a negative target) and the entropy.
func refLogSoftmax(z []float64, targets []int32, v int) (logp, lse, ent []float64) {
	n := len(targets)
	logp, lse, ent = make([]float64, n), make([]float64, n), make([]float64, n)
	for i := 0; i < n; i++ {
		row := z[i*v : (i+1)*v]
		m := math.Inf(-1)
		for _, x := range row {
			m = math.Max(m, x)
		}
		var s float64
		for _, x := range row {
			s += math.Exp(x - m)
		}
		l := m + math.Log(s)
		var h float64
		for _, x := range row {
			p := math.Exp(x - l)
			h -= p * (x - l)
		}
		lse[i], ent[i] = l, h
		if t := targets[i]; t >= 0 {
			logp[i] = row[t] - l
		}
	}
	return logp, lse, ent
}

// refLogSoftmaxGrad is the analytic float64 gradient of
// Σ dlogp·logp + Σ dentropy·entropy with respect to the logits.
func refLogSoftmaxGrad(z []float64, targets []int32, v int, dlogp, dent []float64) []float64 {
	_, lse, ent := refLogSoftmax(z, targets, v)
	dz := make([]float64, len(z))
	for i := range targets {
		g := dlogp[i]
		if targets[i] < 0 {
			g = 0
		}
		var de float64
		if dent != nil {
			de = dent[i]
		}
		for j := 0; j < v; j++ {
			lp := z[i*v+j] - lse[i]
			p := math.Exp(lp)
			d := -g*p - de*p*(lp+ent[i])
			if int(targets[i]) == j {
				d += g
			}
			dz[i*v+j] = d
		}
	}
	return dz
}

// lsmInputs draws logits with the given spread and targets, marking the rows
// in ignored with −1.
func lsmInputs(r *rand.Rand, n, v int, std float64, ignored ...int) ([]float32, []int32) {
	z := randn(r, n*v, std)
	tg := make([]int32, n)
	for i := range tg {
		tg[i] = int32(r.IntN(v))
	}
	for _, i := range ignored {
		tg[i] = -1
	}
	return z, tg
}

// runLogSoftmax runs the forward pass (and, when dlogp is given, the
// backward pass on a copy of the logits) and returns the results.
func runLogSoftmax(t *testing.T, b *Backend, z []float32, tg []int32, v int, withEntropy bool, dlogp, dent []float32) (logp, lse, ent, dz []float32) {
	t.Helper()
	n := len(tg)
	logits := tensorOf(t, b, z, n, v)
	targets := int32Of(t, b, tg, n)
	lp := tensorOf(t, b, randn(testRNG(91), n, 1), n)
	ls := tensorOf(t, b, randn(testRNG(92), n, 1), n)
	var en *gpu.Tensor
	if withEntropy {
		en = tensorOf(t, b, randn(testRNG(93), n, 1), n)
	}
	b.LogSoftmaxForward(lp, en, ls, logits, targets)
	assertNoErr(t, b)
	logp, lse = append([]float32(nil), F32(lp)...), append([]float32(nil), F32(ls)...)
	if withEntropy {
		ent = append([]float32(nil), F32(en)...)
	}
	if dlogp == nil {
		return logp, lse, ent, nil
	}
	var de *gpu.Tensor
	if dent != nil {
		de = tensorOf(t, b, dent, n)
	}
	b.LogSoftmaxBackward(logits, ls, en, targets, tensorOf(t, b, dlogp, n), de)
	assertNoErr(t, b)
	return logp, lse, ent, append([]float32(nil), F32(logits)...)
}

func TestLogSoftmaxForward(t *testing.T) {
	cases := []struct {
		name    string
		n, v    int
		std     float64
		ignored []int
		tol     float64
	}{
		{"V1", 3, 1, 1, nil, 1e-6},
		{"V2", 4, 2, 1, []int{1}, 1e-6},
		{"V11", 6, 11, 2, []int{0, 5}, 1e-6},
		{"V257-byte", 16, 257, 3, []int{3}, 1e-6},
		{"V257-large-magnitude", 8, 257, 40, []int{2}, 1e-6}, // logits around ±80
		{"V50257-gpt2", 3, 50257, 2, []int{1}, 2e-6},
		{"V50257-peaked", 2, 50257, 15, nil, 2e-6},
	}
	var worst [3]float64
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			z, tg := lsmInputs(testRNG(uint64(200+ci)), c.n, c.v, c.std, c.ignored...)
			for _, threads := range []int{1, 2} {
				b := New(threads)
				logp, lse, ent, _ := runLogSoftmax(t, b, z, tg, c.v, true, nil, nil)
				wl, ws, we := refLogSoftmax(to64(z), tg, c.v)
				for _, i := range c.ignored {
					if logp[i] != 0 {
						t.Errorf("ignored row %d: logp %v, want 0", i, logp[i])
					}
				}
				worst[0] = max(worst[0], relErr(logp, wl))
				worst[1] = max(worst[1], relErr(lse, ws))
				worst[2] = max(worst[2], relErr(ent, we))
				assertClose(t, "logp", logp, wl, c.tol)
				assertClose(t, "lse", lse, ws, c.tol)
				// The entropy is compared per row against its own size
				// (it can be tiny for peaked rows) with an absolute floor.
				for i := range we {
					if d := math.Abs(float64(ent[i]) - we[i]); d > c.tol*math.Max(we[i], 1e-2) {
						t.Errorf("entropy[%d] = %v, want %v", i, ent[i], we[i])
					}
				}
				// Without entropy the other outputs are the same.
				logp2, lse2, _, _ := runLogSoftmax(t, b, z, tg, c.v, false, nil, nil)
				for i := range logp {
					if logp[i] != logp2[i] || lse[i] != lse2[i] {
						t.Fatalf("row %d differs without entropy", i)
					}
				}
			}
		})
	}
	t.Logf("max relative errors: logp %.2g, lse %.2g, entropy %.2g", worst[0], worst[1], worst[2])
}

// TestLogSoftmaxExtremes covers logits of very large magnitude (no overflow),
// −Inf logits (masked tokens: probability 0, finite entropy and gradient)
// and a NaN logit (it must propagate, not vanish).
func TestLogSoftmaxExtremes(t *testing.T) {
	const v = 40
	z := randn(testRNG(11), 3*v, 1)
	for j := 0; j < v; j++ {
		z[j] = float32(1e30) * float32(1+j%3) // row 0: huge and tied
	}
	for j := 0; j < v; j += 3 {
		z[v+j] = float32(math.Inf(-1)) // row 1: a third masked
	}
	z[2*v+7] = float32(math.NaN()) // row 2
	tg := []int32{2, 4, 0}
	b := New(1)
	dlogp := []float32{0.7, -1.3, 0.5}
	dent := []float32{0.4, 0.9, -0.2}
	logp, lse, ent, dz := runLogSoftmax(t, b, z, tg, v, true, dlogp, dent)
	for i := 0; i < 2; i++ {
		for _, x := range []float32{logp[i], lse[i], ent[i]} {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("row %d: logp %v lse %v entropy %v", i, logp[i], lse[i], ent[i])
			}
		}
		for j := 0; j < v; j++ {
			if x := dz[i*v+j]; math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				t.Fatalf("row %d: gradient[%d] = %v", i, j, x)
			}
		}
	}
	// Row 0: a third of the entries share the maximum (j%3 == 2).
	wantH := math.Log(float64(len(rangeStep(2, v, 3))))
	if math.Abs(float64(ent[0])-wantH) > 1e-6 || logp[0] != float32(-wantH) {
		t.Errorf("row 0: entropy %v logp %v, want %v and %v", ent[0], logp[0], wantH, -wantH)
	}
	// Row 1: compare with the reference on the unmasked entries.
	var kept []float64
	for j := 0; j < v; j++ {
		if j%3 != 0 {
			kept = append(kept, float64(z[v+j]))
		}
	}
	_, wl, we := refLogSoftmax(kept, []int32{-1}, len(kept))
	if math.Abs(float64(lse[1])-wl[0]) > 1e-6*math.Abs(wl[0])+1e-6 || math.Abs(float64(ent[1])-we[0]) > 1e-5 {
		t.Errorf("masked row: lse %v entropy %v, want %v %v", lse[1], ent[1], wl[0], we[0])
	}
	for j := 0; j < v; j += 3 {
		if math.Abs(float64(dz[v+j])) > 1e-30 {
			t.Errorf("masked logit %d has gradient %v", j, dz[v+j])
		}
	}
	if !math.IsNaN(float64(lse[2])) || !math.IsNaN(float64(ent[2])) {
		t.Errorf("NaN logit: lse %v entropy %v, want NaN", lse[2], ent[2])
	}
}

func rangeStep(lo, hi, step int) []int {
	var r []int
	for i := lo; i < hi; i += step {
		r = append(r, i)
	}
	return r
}

func TestLogSoftmaxBackward(t *testing.T) {
	cases := []struct {
		name        string
		n, v        int
		std         float64
		ignored     []int
		withEntropy bool
		fd          bool
	}{
		{"V7-no-entropy", 4, 7, 1, []int{2}, false, true},
		{"V7-entropy", 4, 7, 1, []int{2}, true, true},
		{"V33-entropy", 5, 33, 2, []int{0, 4}, true, true},
		{"V257-entropy-ignored-all", 2, 257, 1, []int{0, 1}, true, true},
		{"V257-large-magnitude", 3, 257, 40, []int{1}, true, true},
		{"V50257-entropy", 2, 50257, 2, []int{1}, true, false},
		{"V50257-no-entropy", 2, 50257, 2, nil, false, false},
	}
	var worstRef, worstFD float64
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := testRNG(uint64(300 + ci))
			z, tg := lsmInputs(r, c.n, c.v, c.std, c.ignored...)
			dlogp := randn(r, c.n, 1)
			var dent []float32
			if c.withEntropy {
				dent = randn(r, c.n, 1)
			}
			b := New(2)
			_, _, _, dz := runLogSoftmax(t, b, z, tg, c.v, c.withEntropy, dlogp, dent)
			z64, dl64 := to64(z), to64(dlogp)
			var de64 []float64
			if dent != nil {
				de64 = to64(dent)
			}
			want := refLogSoftmaxGrad(z64, tg, c.v, dl64, de64)
			e := relErr(dz, want)
			worstRef = max(worstRef, e)
			tol := 1e-5
			if c.std > 10 {
				// p = exp(z − lse) with lse stored in float32: |lse| ~ 100
				// carries ~4e-6 absolute error into every probability.
				tol = 1e-4
			}
			assertClose(t, "dlogits vs analytic", dz, want, tol)
			if !c.fd {
				return
			}
			loss := func() float64 {
				lp, _, en := refLogSoftmax(z64, tg, c.v)
				var s float64
				for i := range lp {
					s += dl64[i] * lp[i]
					if de64 != nil {
						s += de64[i] * en[i]
					}
				}
				return s
			}
			fd := numGrad(z64, loss)
			worstFD = max(worstFD, relErr(dz, fd))
			assertClose(t, "dlogits vs finite differences", dz, fd, max(tol, 1e-4))
		})
	}
	t.Logf("max relative errors of the gradient: vs float64 analytic %.2g, vs finite differences %.2g", worstRef, worstFD)
}

// TestLogSoftmaxLeadingDims: logits [B,T,V] with targets [B,T] is the same
// as the flattened [B·T,V] call.
func TestLogSoftmaxLeadingDims(t *testing.T) {
	const B, T, V = 2, 3, 17
	z, tg := lsmInputs(testRNG(12), B*T, V, 1, 4)
	b := New(2)
	flatLp, flatLse, flatEnt, _ := runLogSoftmax(t, b, z, tg, V, true, nil, nil)
	logits := tensorOf(t, b, z, B, T, V)
	lp, ls, en := tensorOf(t, b, randn(testRNG(1), B*T, 1), B, T), tensorOf(t, b, randn(testRNG(2), B*T, 1), B, T), tensorOf(t, b, randn(testRNG(3), B*T, 1), B, T)
	b.LogSoftmaxForward(lp, en, ls, logits, int32Of(t, b, tg, B, T))
	assertNoErr(t, b)
	for i := 0; i < B*T; i++ {
		if F32(lp)[i] != flatLp[i] || F32(ls)[i] != flatLse[i] || F32(en)[i] != flatEnt[i] {
			t.Fatalf("row %d differs between [B,T,V] and [B·T,V]", i)
		}
	}
}

// TestLogSoftmaxExp32 bounds the error of the float32 exponential used by
// the softmax kernels.
func TestLogSoftmaxExp32(t *testing.T) {
	var worst float64
	for i := 0; i <= 2_000_000; i++ {
		x := float32(-80 + float64(i)*(88+80)/2_000_000)
		got, want := float64(exp32(x)), math.Exp(float64(x))
		worst = max(worst, math.Abs(got-want)/want)
	}
	if worst > 2e-7 {
		t.Errorf("max relative error %.3g", worst)
	}
	t.Logf("max relative error on [-80, 88]: %.3g", worst)
	floor := float32(math.Exp(-80))
	for _, x := range []float64{-80.5, -100, math.Inf(-1)} {
		if got := exp32(float32(x)); math.Abs(float64(got-floor)) > 1e-6*float64(floor) {
			t.Errorf("exp32(%v) = %v, want the floor e^-80 = %v", x, got, floor)
		}
	}
	if !math.IsNaN(float64(exp32(float32(math.NaN())))) {
		t.Error("NaN must propagate")
	}
	if exp32(0) != 1 {
		t.Errorf("exp(0) = %v", exp32(0))
	}
}
