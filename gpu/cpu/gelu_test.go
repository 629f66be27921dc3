package cpu

import (
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

func gelu64(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

func TestGeluForward(t *testing.T) {
	for _, n := range []int{ewSmall, ewBig} {
		b := New(3)
		xs := randn(testRNG(70), n, 3)
		want := make([]float64, n)
		for i, v := range xs {
			want[i] = gelu64(float64(v))
		}
		inp := tensorOf(t, b, xs, n)
		out := tensorOf(t, b, randn(testRNG(71), n, 1), n)
		b.GeluForward(out, inp)
		assertNoErr(t, b)
		checkCloseLog(t, "gelu", F32(out), want, 1e-7)
		// Elementwise, so in place is safe.
		b.GeluForward(inp, inp)
		assertNoErr(t, b)
		checkCloseLog(t, "gelu in place", F32(inp), want, 1e-7)
	}
}

// TestGeluBackwardFiniteDiff checks dinp against central finite differences
// of L = Σ dout·gelu(x) in float64.
func TestGeluBackwardFiniteDiff(t *testing.T) {
	const n = 301
	r := testRNG(72)
	xs, douts := randn(r, n, 3), randn(r, n, 1)
	x64 := to64(xs)
	want := numGrad(x64, func() float64 {
		var l float64
		for i, v := range x64 {
			l += float64(douts[i]) * gelu64(v)
		}
		return l
	})
	b := New(2)
	inp, dout := tensorOf(t, b, xs, n), tensorOf(t, b, douts, n)
	dinp := tensorOf(t, b, randn(r, n, 1), n) // overwritten, not accumulated
	b.GeluBackward(dinp, inp, dout)
	assertNoErr(t, b)
	checkCloseLog(t, "gelu backward vs finite differences", F32(dinp), want, 1e-6)
	b.GeluBackward(dout, inp, dout) // dinp may alias dout
	assertNoErr(t, b)
	checkCloseLog(t, "gelu backward in place", F32(dout), want, 1e-6)
}

func TestGeluBackwardLarge(t *testing.T) {
	n := ewBig
	r := testRNG(73)
	xs, douts := randn(r, n, 3), randn(r, n, 1)
	want := make([]float64, n)
	s := math.Sqrt(2 / math.Pi)
	for i, v := range xs {
		x := float64(v)
		th := math.Tanh(s * (x + 0.044715*x*x*x))
		want[i] = (0.5*(1+th) + 0.5*x*(1-th*th)*s*(1+3*0.044715*x*x)) * float64(douts[i])
	}
	b := New(3)
	dinp, _ := b.Alloc(gpu.Float32, n)
	b.GeluBackward(dinp, tensorOf(t, b, xs, n), tensorOf(t, b, douts, n))
	assertNoErr(t, b)
	checkCloseLog(t, "gelu backward (large)", F32(dinp), want, 1e-6)
}

func TestDropout(t *testing.T) {
	const n = 1 << 18
	r := testRNG(80)
	xs := randn(r, n, 1)
	for i := range xs {
		if xs[i] == 0 { // a kept zero would look dropped
			xs[i] = 1
		}
	}
	for _, p := range []float32{0.1, 0.2, 1.0 / 3, 0.5, 0.9} {
		b := New(3)
		inp := tensorOf(t, b, xs, n)
		out, _ := b.Alloc(gpu.Float32, n)
		const seed = 1234
		b.Dropout(out, inp, p, seed)
		assertNoErr(t, b)
		got := F32(out)
		scale := float64(1 / (1 - p))
		dropped := 0
		for i, v := range got {
			drop := gpu.DropoutUniform(seed, i) < p
			switch {
			case drop && v != 0:
				t.Fatalf("p=%v: element %d should be dropped, got %v", p, i, v)
			case !drop && math.Abs(float64(v)-float64(xs[i])*scale) > 1e-6*math.Abs(float64(xs[i])*scale):
				t.Fatalf("p=%v: element %d = %v, want %v", p, i, v, float64(xs[i])*scale)
			}
			if v == 0 {
				dropped++
			}
		}
		frac := float64(dropped) / n
		// Binomial standard deviation is sqrt(p(1−p)/n) < 0.001; allow 5σ.
		if math.Abs(frac-float64(p)) > 0.005 {
			t.Errorf("p=%v: dropped fraction %.4f", p, frac)
		}
		t.Logf("p=%v: dropped fraction %.4f", p, frac)

		// Same seed: identical, in place too. Different seed: a different mask.
		again := tensorOf(t, b, xs, n)
		b.Dropout(again, again, p, seed)
		other := tensorOf(t, b, xs, n)
		b.Dropout(other, other, p, seed+1)
		assertNoErr(t, b)
		same, differ := true, 0
		for i := range got {
			same = same && F32(again)[i] == got[i]
			if (F32(other)[i] == 0) != (got[i] == 0) {
				differ++
			}
		}
		if !same {
			t.Errorf("p=%v: same seed gave a different result", p)
		}
		if differ < n/100 {
			t.Errorf("p=%v: seeds %d and %d differ in only %d elements", p, seed, seed+1, differ)
		}

		// Backward: same mask and scale, in place allowed.
		douts := randn(r, n, 1)
		dout := tensorOf(t, b, douts, n)
		b.DropoutBackward(dout, dout, p, seed)
		assertNoErr(t, b)
		for i, g := range F32(dout) {
			want := 0.0
			if got[i] != 0 {
				want = float64(douts[i]) * scale
			}
			if math.Abs(float64(g)-want) > 1e-6*math.Abs(want) {
				t.Fatalf("p=%v: dinp[%d] = %v, want %v", p, i, g, want)
			}
		}
	}
}

func TestDropoutZeroCopies(t *testing.T) {
	b := New(2)
	xs := randn(testRNG(81), ewSmall, 1)
	inp := tensorOf(t, b, xs, ewSmall)
	out := tensorOf(t, b, randn(testRNG(82), ewSmall, 1), ewSmall)
	b.Dropout(out, inp, 0, 7)
	checkCloseLog(t, "dropout p=0", F32(out), to64(xs), 0)
	b.Dropout(inp, inp, 0, 7)
	b.DropoutBackward(out, inp, 0, 7)
	assertNoErr(t, b)
	checkCloseLog(t, "dropout backward p=0", F32(out), to64(xs), 0)
}

// TestGeluExtremes checks large-magnitude inputs: finite results that match
// the float64 reference (the backward must not form ∞·0).
func TestGeluExtremes(t *testing.T) {
	xs := []float32{-1e4, -300, -50, -12, -9.5, -6, -3, -0.5, 1e-3, 0.5, 3, 6, 12, 50, 300, 1e4}
	n := len(xs)
	douts := randn(testRNG(74), n, 1)
	s := math.Sqrt(2 / math.Pi)
	wantF, wantB := make([]float64, n), make([]float64, n)
	for i, v := range xs {
		x := float64(v)
		th := math.Tanh(s * (x + 0.044715*x*x*x))
		wantF[i] = gelu64(x)
		wantB[i] = (0.5*(1+th) + 0.5*x*(1-th*th)*s*(1+3*0.044715*x*x)) * float64(douts[i])
	}
	b := New(1)
	inp := tensorOf(t, b, xs, n)
	out, _ := b.Alloc(gpu.Float32, n)
	dinp, _ := b.Alloc(gpu.Float32, n)
	b.GeluForward(out, inp)
	b.GeluBackward(dinp, inp, tensorOf(t, b, douts, n))
	assertNoErr(t, b)
	for i := range xs {
		f, g := float64(F32(out)[i]), float64(F32(dinp)[i])
		if math.Abs(f-wantF[i]) > 1e-6*math.Max(1, math.Abs(wantF[i])) ||
			math.Abs(g-wantB[i]) > 1e-6*math.Max(1, math.Abs(wantB[i])) {
			t.Errorf("x=%v: gelu %v want %v, backward %v want %v", xs[i], f, wantF[i], g, wantB[i])
		}
	}
}
