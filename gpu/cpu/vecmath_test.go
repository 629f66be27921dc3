package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Tests of the elementwise kernel sets (vecKernels: the portable Go ones and,
// on amd64 with AVX2+FMA, the assembly) against float64 references.

// geluGrad64 is d/dx gelu64(x).
func geluGrad64(x float64) float64 {
	s := math.Sqrt(2 / math.Pi)
	th := math.Tanh(s * (x + 0.044715*x*x*x))
	return 0.5*(1+th) + 0.5*x*(1-th*th)*s*(1+3*0.044715*x*x)
}

// geluSweep returns a dense sweep of [−20, 20] (step 2^-12, so every
// representable neighbourhood of the clamp at ±9 and the region where the
// gradient crosses zero are covered) plus random float32 bit patterns of
// small and moderate magnitude.
func geluSweep() []float32 {
	var xs []float32
	for i := -20 << 12; i <= 20<<12; i++ {
		xs = append(xs, float32(i)/(1<<12))
	}
	r := testRNG(90)
	for range 1 << 14 {
		xs = append(xs, float32(r.NormFloat64()*3), float32(r.NormFloat64()*1e-3))
	}
	return xs
}

// geluSpecials are inputs with a defined expected behaviour beyond the
// float64 reference: extremes, infinities, NaN, denormals, signed zeros and
// the clamp boundary.
var geluSpecials = []float32{
	0, float32(math.Copysign(0, -1)), 1e-40, -1e-40, math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
	1e-30, -1e-30, 9, -9, 8.999999, -8.999999, 9.000001, -9.000001, 10.4, -10.4, 12, -12, 88, -88, 89, -89,
	1e4, -1e4, 1e13, -1e13, 1e20, -1e20, math.MaxFloat32, -math.MaxFloat32,
	float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
}

// geluErrTol is the accepted error of both kernel sets, relative to 1 + |x|
// (forward) or absolute (gradient, which is within [−0.17, 1.13]).
const (
	geluFwdTol = 2e-7
	geluBwdTol = 3e-7
)

// checkGeluKernel compares k's forward and gradient (dy = 1 and random dy)
// on xs against the float64 references and returns the largest errors.
func checkGeluKernel(t *testing.T, k *vecKernel, xs []float32) (fwdErr, bwdErr float64) {
	t.Helper()
	n := len(xs)
	ys, gs := make([]float32, n), make([]float32, n)
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	k.geluFwd(ys, xs)
	k.geluBwd(gs, xs, ones)
	bad := 0
	for i, v := range xs {
		x := float64(v)
		if math.IsNaN(x) || math.IsInf(x, 0) {
			continue // geluSpecialCases
		}
		ef := math.Abs(float64(ys[i])-gelu64(x)) / (1 + math.Abs(x))
		eb := math.Abs(float64(gs[i]) - geluGrad64(x))
		if !(ef <= geluFwdTol && eb <= geluBwdTol) && bad < 10 {
			bad++
			t.Errorf("%s: x=%v (%#x): gelu %v want %v, gelu' %v want %v",
				k.name, v, math.Float32bits(v), ys[i], gelu64(x), gs[i], geluGrad64(x))
		}
		fwdErr, bwdErr = math.Max(fwdErr, ef), math.Max(bwdErr, eb)
	}
	return fwdErr, bwdErr
}

func TestGeluKernelsAccuracy(t *testing.T) {
	xs := geluSweep()
	xs = append(xs, geluSpecials...)
	if len(xs)%8 == 0 {
		// Leave a tail for the vector kernels' padded path.
		xs = append(xs, 0.25)
	}
	for _, k := range vecKernels() {
		fe, be := checkGeluKernel(t, k, xs)
		t.Logf("%s: %d inputs in [−20, 20] and extremes: max forward error %.3g·(1+|x|), max gradient error %.3g",
			k.name, len(xs), fe, be)
	}
}

// TestGeluKernelsSpecial checks what the float64 reference cannot: ±Inf, NaN,
// the sign of zero and finiteness everywhere else.
func TestGeluKernelsSpecial(t *testing.T) {
	nan := float32(math.NaN())
	for _, k := range vecKernels() {
		xs := geluSpecials
		n := len(xs)
		dys := make([]float32, n)
		for i := range dys {
			dys[i] = 1.5
		}
		ys, gs := make([]float32, n), make([]float32, n)
		k.geluFwd(ys, xs)
		k.geluBwd(gs, xs, dys)
		for i, v := range xs {
			y, g := ys[i], gs[i]
			x := float64(v)
			switch {
			case v != v:
				if y == y || g == g {
					t.Errorf("%s: NaN gave gelu %v, gelu' %v; want NaN", k.name, y, g)
				}
			case math.IsInf(x, 1):
				if !math.IsInf(float64(y), 1) || g != 1.5 {
					t.Errorf("%s: +Inf gave gelu %v, gelu'·1.5 %v; want +Inf, 1.5", k.name, y, g)
				}
			case x < -9:
				// The true values underflow; the kernels give a tiny
				// negative number and a tiny gradient.
				if !(y <= 0 && y > -1e-20) || math.Abs(float64(g)) > 1e-20 {
					t.Errorf("%s: %v gave gelu %v, gelu' %v; want about 0", k.name, v, y, g)
				}
			case x > 9:
				if y != v || g != 1.5 {
					t.Errorf("%s: %v gave gelu %v, gelu'·1.5 %v; want x, 1.5", k.name, v, y, g)
				}
			case x == 0:
				if y != 0 || math.Signbit(float64(y)) != math.Signbit(x) || g != 0.75 {
					t.Errorf("%s: %v gave gelu %v, gelu'·1.5 %v; want %v, 0.75", k.name, v, y, g, v)
				}
			default:
				if math.IsInf(float64(y), 0) || y != y || math.IsInf(float64(g), 0) || g != g {
					t.Errorf("%s: %v gave gelu %v, gelu' %v", k.name, v, y, g)
				}
			}
		}
		// NaN in dy propagates too.
		k.geluBwd(gs[:1], []float32{0.5}, []float32{nan})
		if gs[0] == gs[0] {
			t.Errorf("%s: dy = NaN gave %v", k.name, gs[0])
		}
	}
}

// TestGeluKernelsTails checks every length from 0 to 40 at unaligned starts:
// results equal the same elements of a long call (each element is computed
// independently of its position), nothing outside the output is written, and
// in-place calls (o = x, dx = dy) agree.
func TestGeluKernelsTails(t *testing.T) {
	const pad = 9
	base := randn(testRNG(91), 64, 4)
	dys := randn(testRNG(92), 64, 1)
	for _, k := range vecKernels() {
		wantF, wantB := make([]float32, 64), make([]float32, 64)
		k.geluFwd(wantF, base)
		k.geluBwd(wantB, base, dys)
		for off := 0; off < 3; off++ {
			for n := 0; n <= 40; n++ {
				x, dy := base[off:off+n], dys[off:off+n]
				buf := make([]float32, n+2*pad)
				for i := range buf {
					buf[i] = -7
				}
				o := buf[pad : pad+n]
				k.geluFwd(o, x)
				for i := range o {
					if o[i] != wantF[off+i] {
						t.Fatalf("%s: n=%d off=%d: gelu[%d] %v, want %v", k.name, n, off, i, o[i], wantF[off+i])
					}
				}
				checkGuard(t, fmt.Sprintf("%s forward n=%d", k.name, n), buf, pad, n)
				k.geluBwd(o, x, dy)
				for i := range o {
					if o[i] != wantB[off+i] {
						t.Fatalf("%s: n=%d off=%d: gelu'[%d] %v, want %v", k.name, n, off, i, o[i], wantB[off+i])
					}
				}
				checkGuard(t, fmt.Sprintf("%s backward n=%d", k.name, n), buf, pad, n)
				// In place.
				copy(o, x)
				k.geluFwd(o, o)
				for i := range o {
					if o[i] != wantF[off+i] {
						t.Fatalf("%s: n=%d in place: gelu[%d] %v, want %v", k.name, n, i, o[i], wantF[off+i])
					}
				}
				copy(o, dy)
				k.geluBwd(o, x, o)
				for i := range o {
					if o[i] != wantB[off+i] {
						t.Fatalf("%s: n=%d in place: gelu'[%d] %v, want %v", k.name, n, i, o[i], wantB[off+i])
					}
				}
				checkGuard(t, fmt.Sprintf("%s in place n=%d", k.name, n), buf, pad, n)
			}
		}
	}
}

// checkGuard fails unless buf outside [pad, pad+n) still holds −7.
func checkGuard(t *testing.T, what string, buf []float32, pad, n int) {
	t.Helper()
	for i, v := range buf {
		if (i < pad || i >= pad+n) && v != -7 {
			t.Fatalf("%s: wrote outside the output at %d", what, i-pad)
		}
	}
}

// TestGeluKernelsBackend runs the Backend ops with every kernel set on an
// odd length over several workers against the float64 references.
func TestGeluKernelsBackend(t *testing.T) {
	const n = 3*ewMinChunk + 13
	r := testRNG(93)
	xs, douts := randn(r, n, 3), randn(r, n, 1)
	wantF, wantB := make([]float64, n), make([]float64, n)
	for i, v := range xs {
		wantF[i] = gelu64(float64(v))
		wantB[i] = geluGrad64(float64(v)) * float64(douts[i])
	}
	for _, k := range vecKernels() {
		func() {
			defer setVecKernel(k)()
			if VecKernel() != k.name {
				t.Fatalf("VecKernel() = %q, want %q", VecKernel(), k.name)
			}
			b := New(3)
			inp, dout := tensorOf(t, b, xs, n), tensorOf(t, b, douts, n)
			out, _ := b.Alloc(gpu.Float32, n)
			b.GeluForward(out, inp)
			b.GeluBackward(dout, inp, dout)
			assertNoErr(t, b)
			checkCloseLog(t, k.name+" gelu", F32(out), wantF, 1e-7)
			checkCloseLog(t, k.name+" gelu backward", F32(dout), wantB, 2e-7)
		}()
	}
}

// TestLsmRowKernels checks each kernel set's log-softmax row kernels against
// the float64 reference on row lengths around the vector widths (tails),
// GPT-2's vocabulary, large magnitudes and masked (−Inf) logits, and that a
// NaN logit propagates.
func TestLsmRowKernels(t *testing.T) {
	var rows [][]float32
	r := testRNG(94)
	for _, v := range []int{1, 2, 7, 8, 9, 15, 16, 17, 31, 33, 258, 50257} {
		rows = append(rows, randn(r, v, 2))
	}
	rows = append(rows, randn(r, 257, 40)) // around ±100: terms below e^-80
	masked := randn(r, 100, 1)
	for j := 0; j < len(masked); j += 3 {
		masked[j] = float32(math.Inf(-1))
	}
	rows = append(rows, masked)
	for _, k := range vecKernels() {
		var worstL, worstH, worstG float64
		for _, z := range rows {
			v := len(z)
			// The reference over the finite logits (masked ones have
			// probability 0 and gradient 0).
			var kept []float64
			for _, x := range z {
				if !math.IsInf(float64(x), -1) {
					kept = append(kept, float64(x))
				}
			}
			m, logS, h := k.lsmRowStats(z)
			_, ws, we := refLogSoftmax(kept, []int32{-1}, len(kept))
			lse := float64(m) + logS
			// The entropy against its own size, with an absolute floor.
			el, eh := math.Abs(lse-ws[0])/math.Max(1, math.Abs(ws[0])), math.Abs(h-we[0])/math.Max(we[0], 1e-2)
			worstL, worstH = max(worstL, el), max(worstH, eh)
			if el > 1e-6 || eh > 1e-5 {
				t.Errorf("%s: V=%d: lse %v entropy %v, want %v %v", k.name, v, lse, h, ws[0], we[0])
			}
			// Gradient with and without the entropy term.
			for _, de := range []float32{0, 0.7} {
				const g = -1.3
				dz := append([]float32(nil), z...)
				k.lsmRowGrad(dz, float32(lse), g, de, float32(h))
				wk := refLogSoftmaxGrad(kept, []int32{-1}, len(kept), []float64{0}, []float64{float64(de)})
				// refLogSoftmaxGrad ignores g for a negative target; add −g·p.
				want := make([]float64, v)
				for j, jk := 0, 0; j < v; j++ {
					if x := z[j]; !math.IsInf(float64(x), -1) {
						want[j] = wk[jk] - g*math.Exp(float64(x)-ws[0])
						jk++
					} else if math.Abs(float64(dz[j])) > 1e-30 {
						t.Errorf("%s: masked logit %d has gradient %v", k.name, j, dz[j])
					}
				}
				e := relErr(dz, want)
				worstG = max(worstG, e)
				if e > 1e-5 {
					t.Errorf("%s: V=%d de=%v: gradient relative error %.3g", k.name, v, de, e)
				}
			}
		}
		t.Logf("%s: max errors: lse %.3g, entropy %.3g, gradient %.3g", k.name, worstL, worstH, worstG)
		// NaN propagates through the statistics and the gradient.
		z := randn(r, 37, 1)
		z[20] = float32(math.NaN())
		m, logS, h := k.lsmRowStats(z)
		if lse := float64(m) + logS; !math.IsNaN(lse) || !math.IsNaN(h) {
			t.Errorf("%s: NaN logit gave lse %v entropy %v", k.name, lse, h)
		}
		k.lsmRowGrad(z, 0.5, 1, 0.3, 2)
		if !math.IsNaN(float64(z[20])) {
			t.Errorf("%s: NaN logit gave gradient %v", k.name, z[20])
		}
	}
}

// TestLsmKernelsAgree checks that the AVX2 row kernels match the portable
// ones closely on rows of many lengths.
func TestLsmKernelsAgree(t *testing.T) {
	ks := vecKernels()
	if len(ks) < 2 {
		t.Skip("only the portable kernels on this machine")
	}
	r := testRNG(95)
	for v := 1; v <= 70; v++ {
		z := randn(r, v, 3)
		for _, k := range ks[1:] {
			m0, l0, h0 := ks[0].lsmRowStats(z)
			m1, l1, h1 := k.lsmRowStats(z)
			if m0 != m1 || math.Abs(l0-l1) > 1e-6 || math.Abs(h0-h1) > 1e-6*math.Max(1, h0) {
				t.Errorf("V=%d: %s (%v %v %v) vs %s (%v %v %v)", v, ks[0].name, m0, l0, h0, k.name, m1, l1, h1)
			}
			a, b := append([]float32(nil), z...), append([]float32(nil), z...)
			lse := float32(float64(m0) + l0)
			ks[0].lsmRowGrad(a, lse, 0.4, -0.6, float32(h0))
			k.lsmRowGrad(b, lse, 0.4, -0.6, float32(h0))
			assertClose(t, fmt.Sprintf("V=%d gradient", v), b, to64(a), 1e-6)
		}
	}
}

// TestAttnRowKernels checks each kernel set's attention softmax rows
// against float64 on rows of every length from 1 to 70 (whole vectors and
// tails), scores spread to ±24 (terms down to e^-48) and beyond −80 below
// the maximum (clamped, as exp32 does), and that a NaN score makes the
// row's sum, and the gradient at it, NaN.
func TestAttnRowKernels(t *testing.T) {
	r := testRNG(96)
	for _, k := range vecKernels() {
		var worstE, worstS, worstG float64
		for n := 1; n <= 70; n++ {
			for _, std := range []float64{1, 8, 60} {
				s := randn(r, n, std)
				e := append([]float32(nil), s...)
				m, sum := k.attnSoftmax(e)
				want := make([]float64, n)
				var wsum float64
				wm := math.Inf(-1)
				for _, v := range s {
					wm = math.Max(wm, float64(v))
				}
				if float64(m) != wm {
					t.Fatalf("%s n=%d: max %v, want %v", k.name, n, m, wm)
				}
				for j, v := range s {
					want[j] = math.Exp(math.Max(float64(v)-wm, -80))
					wsum += want[j]
				}
				// exp's relative error, and the exponent's rounding in
				// float32 (|x|·2^-24).
				for j := range e {
					x := math.Abs(float64(s[j]) - wm)
					rel := math.Abs(float64(e[j])-want[j]) / want[j]
					worstE = max(worstE, rel/(1+x))
					if rel > 3e-7*(1+x) {
						t.Fatalf("%s n=%d std=%v: exp[%d] = %v, want %v", k.name, n, std, j, e[j], want[j])
					}
				}
				es := math.Abs(sum-wsum) / wsum
				worstS = max(worstS, es)
				if es > 1e-6 {
					t.Fatalf("%s n=%d: sum %v, want %v", k.name, n, sum, wsum)
				}
				// The gradient rows from lse = m + log Σ.
				lse := float32(float64(m) + math.Log(sum))
				const d, scale = 0.3, 0.17
				p := append([]float32(nil), s...)
				ds := randn(r, n, 1)
				ds0 := append([]float32(nil), ds...)
				k.attnGrad(p, ds, lse, d, scale)
				wp, wds := make([]float64, n), make([]float64, n)
				for j, v := range s {
					wp[j] = math.Exp(math.Max(float64(v)-float64(lse), -80))
					wds[j] = wp[j] * (float64(ds0[j]) - float64(float32(d))) * float64(float32(scale))
				}
				for j := range p {
					x := math.Abs(float64(s[j]) - float64(lse))
					if rel := math.Abs(float64(p[j])-wp[j]) / wp[j]; rel > 3e-7*(1+x) {
						t.Fatalf("%s n=%d: p[%d] = %v, want %v", k.name, n, j, p[j], wp[j])
					}
					eg := math.Abs(float64(ds[j])-wds[j]) / (math.Abs(wds[j]) + 1e-6*wp[j])
					worstG = max(worstG, eg/(1+x))
					if eg > 1e-6*(1+x) {
						t.Fatalf("%s n=%d: ds[%d] = %v, want %v", k.name, n, j, ds[j], wds[j])
					}
				}
			}
		}
		t.Logf("%s: max errors: exp %.3g·(1+|x|), sum %.3g, gradient %.3g·(1+|x|)", k.name, worstE, worstS, worstG)
		s := randn(r, 37, 1)
		s[20] = float32(math.NaN())
		if _, sum := k.attnSoftmax(append([]float32(nil), s...)); !math.IsNaN(sum) {
			t.Errorf("%s: NaN score gave sum %v", k.name, sum)
		}
		ds := randn(r, 37, 1)
		k.attnGrad(s, ds, 0.5, 0.1, 1)
		if !math.IsNaN(float64(ds[20])) {
			t.Errorf("%s: NaN score gave gradient %v", k.name, ds[20])
		}
	}
}

// TestColSumKernels: every kernel set's column sums (the bias gradient's)
// give the float64 loop's bits, over several rows of many widths (whole
// vectors and tails) from a random starting sum.
func TestColSumKernels(t *testing.T) {
	r := testRNG(97)
	for _, c := range []int{1, 3, 7, 8, 9, 15, 16, 17, 33, 131, 384} {
		rows := randn(r, 5*c, 3)
		start := to64(randn(r, c, 1))
		want := append([]float64(nil), start...)
		for i, v := range rows {
			want[i%c] += float64(v)
		}
		for _, k := range vecKernels() {
			acc := append([]float64(nil), start...)
			for i := 0; i < 5; i++ {
				k.colSum64(acc, rows[i*c:(i+1)*c])
			}
			for j := range acc {
				if math.Float64bits(acc[j]) != math.Float64bits(want[j]) {
					t.Fatalf("%s width %d: acc[%d] = %v, want %v", k.name, c, j, acc[j], want[j])
				}
			}
		}
	}
}

// TestLayerNormRowKernels: every kernel set's layernorm row kernels give
// the generic ones' bits (the same float64 operations and accumulators),
// on rows of many lengths (groups of 4 and tails) with an offset and a
// spread like activations'.
func TestLayerNormRowKernels(t *testing.T) {
	for _, k := range vecKernels() {
		for _, n := range []int{1, 3, 4, 5, 8, 31, 128, 771} {
			r := testRNG(uint64(500 + n))
			x, w, b := randn(r, n, 3), randn(r, n, 1), randn(r, n, 0.5)
			for i := range x {
				x[i] += 2.5 // a mean far from 0
			}
			s, sw := k.lnSum(x), rowSum64(x)
			m := s / float64(n)
			q, qw := k.lnSqDev(x, m), rowSqDev64(x, m)
			rstd := 1 / math.Sqrt(qw/float64(n)+1e-5)
			o, ow := make([]float32, n), make([]float32, n)
			k.lnNorm(o, x, w, b, m, rstd)
			lnNormGeneric(ow, x, w, b, m, rstd)
			if math.Float64bits(s) != math.Float64bits(sw) || math.Float64bits(q) != math.Float64bits(qw) {
				t.Fatalf("%s n=%d: sums %v %v, generic %v %v", k.name, n, s, q, sw, qw)
			}
			for i := range o {
				if math.Float32bits(o[i]) != math.Float32bits(ow[i]) {
					t.Fatalf("%s n=%d element %d: %v, generic %v", k.name, n, i, o[i], ow[i])
				}
			}
		}
	}
}

// TestLayerNormBackwardRowKernels: every kernel set's layernorm backward
// row kernels give the generic ones' bits, on rows of many lengths (odd,
// groups of 4 and tails), accumulating into non-zero partial sums and
// input gradients.
func TestLayerNormBackwardRowKernels(t *testing.T) {
	for _, k := range vecKernels() {
		for _, n := range []int{1, 2, 3, 4, 5, 9, 128, 771} {
			r := testRNG(uint64(700 + n))
			x, dy, w := randn(r, n, 3), randn(r, n, 1), randn(r, n, 1)
			m, rstd := 0.3, 0.7
			d, dn := k.lnBwdSums(x, dy, w, m, rstd)
			dw, dnw := lnBackwardSums(x, dy, w, m, rstd)
			if math.Float64bits(d) != math.Float64bits(dw) || math.Float64bits(dn) != math.Float64bits(dnw) {
				t.Fatalf("%s n=%d: sums %v %v, generic %v %v", k.name, n, d, dn, dw, dnw)
			}
			dx := randn(r, n, 1)
			pw, pb := make([]float64, n), make([]float64, n)
			for i := range pw {
				pw[i], pb[i] = float64(dx[i])*0.5, float64(dx[i])*-0.25
			}
			dxW, pwW, pbW := append([]float32(nil), dx...), append([]float64(nil), pw...), append([]float64(nil), pb...)
			k.lnBwdRow(dx, x, dy, w, pw, pb, m, rstd, d/float64(n), dn/float64(n))
			lnBwdRowGeneric(dxW, x, dy, w, pwW, pbW, m, rstd, d/float64(n), dn/float64(n))
			for i := range dx {
				if math.Float32bits(dx[i]) != math.Float32bits(dxW[i]) || math.Float64bits(pw[i]) != math.Float64bits(pwW[i]) ||
					math.Float64bits(pb[i]) != math.Float64bits(pbW[i]) {
					t.Fatalf("%s n=%d element %d: dx %v pw %v pb %v, generic %v %v %v", k.name, n, i, dx[i], pw[i], pb[i], dxW[i], pwW[i], pbW[i])
				}
			}
		}
	}
}
