//go:build cuda

package cuda

import (
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// The reference of a bf16 op, independent of any bf16 path of the cpu
// backend: its inputs rounded to bf16, the cpu backend's float32 op, and
// its outputs rounded to bf16 (a "+=" output: the old bf16 value widened,
// the float32 op's addition, one rounding). These are the contract's
// rounding points (docs/PRECISION.md), so what remains between the two
// backends is float32 arithmetic in a different order, bounded per op.

// bf16In puts vals on cuda as a bf16 view at element offset off of a larger
// allocation (rounded by the upload) and on cpu as a float32 tensor of
// vals rounded to bf16: the reference op's input.
func (p *opsPair) bf16In(off int, vals []float32, shape ...int) (g, ref *gpu.Tensor) {
	p.t.Helper()
	n := 1
	for _, d := range shape {
		n *= d
	}
	whole, err := p.g.Alloc(gpu.BF16, off+n+5)
	if err != nil {
		p.t.Fatal(err)
	}
	g = whole.MustView(off, shape...)
	if err := p.g.Upload(g, vals); err != nil {
		p.t.Fatal(err)
	}
	return g, p.refF32(roundBF16s(vals), shape...)
}

// refF32 is a cpu float32 tensor holding vals.
func (p *opsPair) refF32(vals []float32, shape ...int) *gpu.Tensor {
	p.t.Helper()
	h, err := p.h.Alloc(gpu.Float32, shape...)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.h.Upload(h, vals); err != nil {
		p.t.Fatal(err)
	}
	return h
}

// roundBF16s returns x rounded elementwise to bf16.
func roundBF16s(x []float32) []float32 {
	r := make([]float32, len(x))
	for i, v := range x {
		r[i] = gpu.RoundBF16(v)
	}
	return r
}

// refOut is the reference output of a cpu float32 tensor: its values
// rounded to bf16, as a bf16 store rounds them.
func (p *opsPair) refOut(h *gpu.Tensor) []float32 {
	p.t.Helper()
	return roundBF16s(p.getH(h))
}

// bf16ULP is the spacing of bf16 values at |w|: 2^(e−8) for |w| in
// [2^(e−1), 2^e) (8 significant bits), and that of the subnormals below
// 2^−126.
func bf16ULP(w float32) float64 {
	if w == 0 {
		return 0 // an exact zero has no rounding neighbour to allow
	}
	_, e := math.Frexp(math.Abs(float64(w)))
	return math.Ldexp(1, max(e, -125)-8)
}

// closeBF16 fails unless every |got[i] − want[i]| ≤ ulps·ulp(want[i]) +
// atol, where want is a reference rounded to bf16: two float32 values that
// differ by a float32 rounding (atol, the op's float32 tolerance times its
// scale) may round to neighbouring bf16 values when they straddle a
// rounding boundary (ulps = 1). Non-finite values must match exactly.
func closeBF16(t *testing.T, what string, got, want []float32, ulps, atol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		bad := false
		if math.IsNaN(w) || math.IsInf(w, 0) {
			bad = !(g == w || (math.IsNaN(g) && math.IsNaN(w)))
		} else {
			bad = !(math.Abs(g-w) <= ulps*bf16ULP(want[i])+atol)
		}
		if bad {
			t.Errorf("%s: element %d is %v, reference %v (allowed %g bf16 ulps + %.3g)", what, i, got[i], want[i], ulps, atol)
			return
		}
	}
}

// putAs puts vals on both backends for dtype dt: float32 as they are,
// bf16 rounded (on cuda as bf16, on cpu as the float32 reference input).
func (p *opsPair) putAs(dt gpu.DType, off int, vals []float32, shape ...int) (g, h *gpu.Tensor) {
	p.t.Helper()
	if dt == gpu.BF16 {
		return p.bf16In(off, vals, shape...)
	}
	return p.f32(off, vals, shape...)
}

// checkAs compares an activation-class output: float32 within tol of
// the cpu's, bf16 within one bf16 ulp plus tol·scale of the rounded
// reference.
func (p *opsPair) checkAs(dt gpu.DType, what string, g, h *gpu.Tensor, tol float64) {
	p.t.Helper()
	if dt == gpu.BF16 {
		want := p.refOut(h)
		closeBF16(p.t, what, p.get(g), want, 1, tol*maxAbs(want))
		return
	}
	closeTo(p.t, what, p.get(g), p.getH(h), tol)
}

// wantAs is the cpu result to compare with cuda's for dtype dt: the float32
// output, or for bf16 the reference output rounded to bf16.
func (p *opsPair) wantAs(dt gpu.DType, h *gpu.Tensor) []float32 {
	p.t.Helper()
	if dt == gpu.BF16 {
		return p.refOut(h)
	}
	return p.getH(h)
}

// sameAs fails unless cuda's g equals wantAs(dt, h) bit for bit.
func (p *opsPair) sameAs(dt gpu.DType, what string, g, h *gpu.Tensor) {
	p.t.Helper()
	sameBits(p.t, what, p.get(g), p.wantAs(dt, h))
}
