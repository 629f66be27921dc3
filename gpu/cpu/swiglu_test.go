package cpu

import (
	"fmt"
	"math"
	"testing"
)

// silu64 is g·σ(g) in float64.
func silu64(g float64) float64 { return g / (1 + math.Exp(-g)) }

// swiglu64 is the float64 reference of SwiGLUForward: rows of x [N,2F]
// hold the gates, then the ups.
func swiglu64(x []float32, n, f int) []float64 {
	out := make([]float64, n*f)
	for r := 0; r < n; r++ {
		for j := 0; j < f; j++ {
			out[r*f+j] = silu64(float64(x[r*2*f+j])) * float64(x[r*2*f+f+j])
		}
	}
	return out
}

// swigluInputs draws gates and ups; spread scales the gates.
func swigluInputs(seed uint64, n, f int, spread float64) []float32 {
	r := testRNG(seed)
	x := randn(r, n*2*f, 1)
	for i := 0; i < n; i++ {
		for j := 0; j < f; j++ {
			x[i*2*f+j] *= float32(spread)
		}
	}
	return x
}

func TestSwiGLUForward(t *testing.T) {
	for _, c := range []struct {
		n, f   int
		spread float64
	}{{1, 1, 1}, {3, 5, 3}, {37, 96, 1}, {129, 1024, 2}, {4, 33, 60}} {
		t.Run(fmt.Sprintf("N%dF%d", c.n, c.f), func(t *testing.T) {
			x := swigluInputs(uint64(c.n*c.f), c.n, c.f, c.spread)
			want := swiglu64(x, c.n, c.f)
			for _, threads := range []int{1, 3} {
				b := New(threads)
				out := tensorOf(t, b, randn(testRNG(3), c.n*c.f, 1), c.n, c.f)
				b.SwiGLUForward(out, tensorOf(t, b, x, c.n, 2*c.f))
				assertNoErr(t, b)
				// exp32 and a few float32 roundings: a few ulps.
				checkCloseLog(t, "out", F32(out), want, 1e-6)
			}
		})
	}
}

// TestSwiGLUBackwardFiniteDiff checks d[gate, up] against central finite
// differences of L = Σ dout·swiglu(x) in float64, gates from small to
// saturated (|g| up to about 100, where exp32 saturates).
func TestSwiGLUBackwardFiniteDiff(t *testing.T) {
	for _, c := range []struct {
		n, f   int
		spread float64
	}{{3, 7, 1}, {5, 16, 4}, {2, 9, 40}} {
		t.Run(fmt.Sprintf("N%dF%d spread %g", c.n, c.f, c.spread), func(t *testing.T) {
			x := swigluInputs(uint64(10*c.n+c.f), c.n, c.f, c.spread)
			dout := randn(testRNG(4), c.n*c.f, 1)
			x64 := to64(x)
			loss := func() float64 {
				var l float64
				for r := 0; r < c.n; r++ {
					for j := 0; j < c.f; j++ {
						l += float64(dout[r*c.f+j]) * silu64(x64[r*2*c.f+j]) * x64[r*2*c.f+c.f+j]
					}
				}
				return l
			}
			want := numGrad(x64, loss)
			for _, threads := range []int{1, 2} {
				b := New(threads)
				dinp := tensorOf(t, b, randn(testRNG(5), c.n*2*c.f, 1), c.n, 2*c.f) // overwritten
				b.SwiGLUBackward(dinp, tensorOf(t, b, x, c.n, 2*c.f), tensorOf(t, b, dout, c.n, c.f))
				assertNoErr(t, b)
				checkCloseLog(t, "dinp vs finite differences", F32(dinp), want, 1e-5)
			}
		})
	}
}

// TestSwiGLULarge runs rows spread over several workers against the
// closed-form gradient in float64.
func TestSwiGLULarge(t *testing.T) {
	const n, f = 300, 700
	x := swigluInputs(8, n, f, 2)
	dout := randn(testRNG(9), n*f, 1)
	want := make([]float64, n*2*f)
	for r := 0; r < n; r++ {
		for j := 0; j < f; j++ {
			g, u, dy := float64(x[r*2*f+j]), float64(x[r*2*f+f+j]), float64(dout[r*f+j])
			s := 1 / (1 + math.Exp(-g))
			want[r*2*f+j] = dy * u * s * (1 + g*(1-s))
			want[r*2*f+f+j] = dy * g * s
		}
	}
	b := New(4)
	out := tensorOf(t, b, make([]float32, n*f), n, f)
	inp := tensorOf(t, b, x, n, 2*f)
	b.SwiGLUForward(out, inp)
	dinp := tensorOf(t, b, make([]float32, n*2*f), n, 2*f)
	b.SwiGLUBackward(dinp, inp, tensorOf(t, b, dout, n, f))
	assertNoErr(t, b)
	checkCloseLog(t, "out", F32(out), swiglu64(x, n, f), 1e-6)
	checkCloseLog(t, "dinp", F32(dinp), want, 1e-6)
}
