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

// siluGrad64 is d/dg silu64(g).
func siluGrad64(g float64) float64 {
	s := 1 / (1 + math.Exp(-g))
	return s * (1 + g*(1-s))
}

// swigluSweep returns gates densely over [−100, 100] (step 2^-8: the
// sigmoid's whole range, the saturation of exp and the clamp at ±80),
// random gates of several scales down to denormal products, and the
// specials with a stated behaviour (swiglu.go).
func swigluSweep() []float32 {
	var gs []float32
	for i := -100 << 8; i <= 100<<8; i++ {
		gs = append(gs, float32(i)/(1<<8))
	}
	r := testRNG(96)
	for range 1 << 13 {
		gs = append(gs, float32(r.NormFloat64()*3), float32(r.NormFloat64()*1e-3), float32(r.NormFloat64()*1e-38))
	}
	return append(gs, geluSpecials...)
}

// Accepted errors of both kernel sets: forward and dup relative to their
// float64 values, dgate relative to |dy·up| (silu' crosses zero near
// g = −1.28, where a relative bound means nothing), each plus a floor
// for the clamp below −80 (|silu| < 1.5e-33 there) and denormal results.
const (
	swigluFwdTol = 3e-7
	swigluBwdTol = 3e-7
	swigluFloor  = 2e-33
)

// TestSwiGLUKernelsAccuracy checks every kernel set's forward and backward
// on the sweep, with random ups and output gradients, against float64.
func TestSwiGLUKernelsAccuracy(t *testing.T) {
	gs := swigluSweep()
	if len(gs)%8 == 0 {
		gs = append(gs, 0.25) // a tail for the vector kernels' padded path
	}
	n := len(gs)
	r := testRNG(97)
	ups, dys := randn(r, n, 1), randn(r, n, 1)
	for _, k := range vecKernels() {
		o, dg, du := make([]float32, n), make([]float32, n), make([]float32, n)
		k.swigluFwd(o, gs, ups)
		k.swigluBwd(dg, du, gs, ups, dys)
		var ef, eg, eu float64
		bad := 0
		for i, v := range gs {
			g, u, dy := float64(v), float64(ups[i]), float64(dys[i])
			if math.IsNaN(g) || math.IsInf(g, 0) {
				continue // TestSwiGLUKernelsSpecial
			}
			wf, wg, wu := silu64(g)*u, dy*u*siluGrad64(g), dy*silu64(g)
			if math.IsInf(wf, 0) || math.IsInf(wu, 0) || math.Abs(wf) > math.MaxFloat32 || math.Abs(wu) > math.MaxFloat32 {
				continue // overflows float32 (g near MaxFloat32)
			}
			// Error beyond the floor, relative to the value (or scale).
			rel := func(got float32, want, scale, floor float64) float64 {
				return math.Max(0, math.Abs(float64(got)-want)-floor-1e-44) / (scale + 1e-44)
			}
			e1 := rel(o[i], wf, math.Abs(wf), swigluFloor*math.Abs(u))
			e2 := rel(dg[i], wg, math.Abs(dy*u), swigluFloor*math.Abs(dy*u))
			e3 := rel(du[i], wu, math.Abs(wu), swigluFloor*math.Abs(dy))
			if !(e1 <= swigluFwdTol && e2 <= swigluBwdTol && e3 <= swigluFwdTol) && bad < 10 {
				bad++
				t.Errorf("%s: g=%v up=%v dy=%v: out %v want %v, dgate %v want %v, dup %v want %v",
					k.name, v, u, dy, o[i], wf, dg[i], wg, du[i], wu)
			}
			ef, eg, eu = math.Max(ef, e1), math.Max(eg, e2), math.Max(eu, e3)
		}
		t.Logf("%s: %d gates: max error forward %.3g, dgate %.3g·|dy·up|, dup %.3g", k.name, n, ef, eg, eu)
	}
}

// TestSwiGLUKernelsSpecial checks what the float64 reference cannot: NaN
// propagates, +Inf gives silu +Inf and silu' 1, −Inf and gates below the
// clamp give tiny values, and everything finite stays finite.
func TestSwiGLUKernelsSpecial(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	gs := []float32{nan, inf, -inf, -81, -1e4, -math.MaxFloat32, 81, 1e4, 0, float32(math.Copysign(0, -1))}
	n := len(gs)
	ups, dys := make([]float32, n), make([]float32, n)
	for i := range ups {
		ups[i], dys[i] = 2, 1.5
	}
	for _, k := range vecKernels() {
		o, dg, du := make([]float32, n), make([]float32, n), make([]float32, n)
		k.swigluFwd(o, gs, ups)
		k.swigluBwd(dg, du, gs, ups, dys)
		for i, g := range gs {
			tiny := func(v float32) bool { return math.Abs(float64(v)) < 1e-32 }
			var ok bool
			switch {
			case g != g:
				ok = o[i] != o[i] && dg[i] != dg[i] && du[i] != du[i]
			case g > 80:
				ok = o[i] == 2*g && dg[i] == 3 && du[i] == 1.5*g
			case g < -80:
				ok = o[i] <= 0 && tiny(o[i]) && tiny(dg[i]) && du[i] <= 0 && tiny(du[i])
			default: // ±0: silu 0, silu' 1/2
				ok = o[i] == 0 && dg[i] == 1.5 && du[i] == 0
			}
			if !ok {
				t.Errorf("%s: g=%v (up 2, dy 1.5) gave out %v, dgate %v, dup %v", k.name, g, o[i], dg[i], du[i])
			}
		}
	}
}

// TestSwiGLUKernelsTails checks lengths 0 to 40 at unaligned starts: each
// element equals the same element of a long call, nothing outside the
// outputs is written, and in-place calls (o = gate; dgate, dup = gate, up)
// agree.
func TestSwiGLUKernelsTails(t *testing.T) {
	const pad = 9
	r := testRNG(98)
	gate, up, dy := randn(r, 64, 4), randn(r, 64, 1), randn(r, 64, 1)
	for _, k := range vecKernels() {
		wantF, wantG, wantU := make([]float32, 64), make([]float32, 64), make([]float32, 64)
		k.swigluFwd(wantF, gate, up)
		k.swigluBwd(wantG, wantU, gate, up, dy)
		same := func(what string, n, off int, got, want []float32) {
			t.Helper()
			for i := range got {
				if math.Float32bits(got[i]) != math.Float32bits(want[off+i]) {
					t.Fatalf("%s: %s n=%d off=%d [%d]: %v, want %v", k.name, what, n, off, i, got[i], want[off+i])
				}
			}
		}
		for off := 0; off < 3; off++ {
			for n := 0; n <= 40; n++ {
				g, u, d := gate[off:off+n], up[off:off+n], dy[off:off+n]
				buf1, buf2 := make([]float32, n+2*pad), make([]float32, n+2*pad)
				for i := range buf1 {
					buf1[i], buf2[i] = -7, -7
				}
				o1, o2 := buf1[pad:pad+n], buf2[pad:pad+n]
				k.swigluFwd(o1, g, u)
				same("forward", n, off, o1, wantF)
				k.swigluBwd(o1, o2, g, u, d)
				same("dgate", n, off, o1, wantG)
				same("dup", n, off, o2, wantU)
				copy(o1, g)
				k.swigluFwd(o1, o1, u)
				same("forward in place", n, off, o1, wantF)
				copy(o1, g)
				copy(o2, u)
				k.swigluBwd(o1, o2, o1, o2, d)
				same("dgate in place", n, off, o1, wantG)
				same("dup in place", n, off, o2, wantU)
				checkGuard(t, fmt.Sprintf("%s n=%d", k.name, n), buf1, pad, n)
				checkGuard(t, fmt.Sprintf("%s n=%d", k.name, n), buf2, pad, n)
			}
		}
	}
}

// TestSwiGLUKernelsBackend runs the Backend ops with every kernel set, rows
// of an odd width over several workers, against the float64 references.
func TestSwiGLUKernelsBackend(t *testing.T) {
	const n, f = 200, 345
	x := swigluInputs(99, n, f, 3)
	dout := randn(testRNG(100), n*f, 1)
	want := make([]float64, n*2*f)
	for r := 0; r < n; r++ {
		for j := 0; j < f; j++ {
			g, u, dy := float64(x[r*2*f+j]), float64(x[r*2*f+f+j]), float64(dout[r*f+j])
			want[r*2*f+j] = dy * u * siluGrad64(g)
			want[r*2*f+f+j] = dy * silu64(g)
		}
	}
	for _, k := range vecKernels() {
		func() {
			defer setVecKernel(k)()
			b := New(3)
			inp := tensorOf(t, b, x, n, 2*f)
			out := tensorOf(t, b, randn(testRNG(101), n*f, 1), n, f)
			dinp := tensorOf(t, b, randn(testRNG(102), n*2*f, 1), n, 2*f)
			b.SwiGLUForward(out, inp)
			b.SwiGLUBackward(dinp, inp, tensorOf(t, b, dout, n, f))
			assertNoErr(t, b)
			checkCloseLog(t, k.name+" out", F32(out), swiglu64(x, n, f), 3e-7)
			checkCloseLog(t, k.name+" dinp", F32(dinp), want, 3e-7)
		}()
	}
}
