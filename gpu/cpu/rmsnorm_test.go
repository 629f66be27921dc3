package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// rmsNorm64 is the float64 reference forward pass; it returns out and rstd.
func rmsNorm64(x, w []float64, n, c int, eps float64) (out, rstd []float64) {
	out, rstd = make([]float64, n*c), make([]float64, n)
	for r := 0; r < n; r++ {
		row := x[r*c : (r+1)*c]
		var ms float64
		for _, a := range row {
			ms += a * a
		}
		rs := 1 / math.Sqrt(ms/float64(c)+eps)
		for j, a := range row {
			out[r*c+j] = a * rs * w[j]
		}
		rstd[r] = rs
	}
	return out, rstd
}

// rmsNormBackward64 adds the closed-form gradients to dx and dw, in
// float64: with norm = x·rstd, dx = rstd·(w·dy − norm·mean(w·dy·norm)),
// dw = Σ_rows dy·norm.
func rmsNormBackward64(dx, dw, dy, x, w, rstd []float64, n, c int) {
	for i := 0; i < n; i++ {
		var sumDN float64
		for j := 0; j < c; j++ {
			sumDN += w[j] * dy[i*c+j] * x[i*c+j] * rstd[i]
		}
		for j := 0; j < c; j++ {
			nrm := x[i*c+j] * rstd[i]
			dw[j] += dy[i*c+j] * nrm
			dx[i*c+j] += rstd[i] * (w[j]*dy[i*c+j] - nrm*sumDN/float64(c))
		}
	}
}

func TestRMSNormForward(t *testing.T) {
	for _, kern := range vecKernels() {
		for _, tc := range []struct {
			n, c   int
			offset float64
			eps    float32
		}{{3, 5, 1, 1e-5}, {37, 96, 3, 1e-6}, {300, 769, 1, 1e-5}, {64, 256, 1000, 1e-6}, {4, 7, 0, 1e-2}} {
			t.Run(fmt.Sprintf("%s/N%dC%d", kern.name, tc.n, tc.c), func(t *testing.T) {
				defer setVecKernel(kern)()
				b := New(3)
				xs, ws, _ := lnInputs(uint64(tc.n+tc.c), tc.n, tc.c, tc.offset)
				want, wantRstd := rmsNorm64(to64(xs), to64(ws), tc.n, tc.c, float64(tc.eps))
				inp, w := tensorOf(t, b, xs, tc.n, tc.c), tensorOf(t, b, ws, tc.c)
				out := tensorOf(t, b, randn(testRNG(9), tc.n*tc.c, 1), tc.n, tc.c)
				rstd := tensorOf(t, b, randn(testRNG(9), tc.n, 1), tc.n)
				b.RMSNormForward(out, rstd, inp, w, tc.eps)
				assertNoErr(t, b)
				// One rounding of a float64 product, and of rstd.
				checkCloseLog(t, "out", F32(out), want, 1e-7)
				checkCloseLog(t, "rstd", F32(rstd), wantRstd, 1e-7)
				// Without the statistic, and with a rank-3 input.
				out3 := tensorOf(t, b, randn(testRNG(9), tc.n*tc.c, 1), 1, tc.n, tc.c)
				b.RMSNormForward(out3, nil, inp.MustReshape(1, tc.n, tc.c), w, tc.eps)
				assertNoErr(t, b)
				for i, v := range F32(out3) {
					if v != F32(out)[i] {
						t.Fatalf("out[%d] = %v without rstd, %v with", i, v, F32(out)[i])
					}
				}
			})
		}
	}
}

// TestRMSNormBackwardFiniteDiff checks dinp and dweight against central
// finite differences of L = Σ dout·out, all in float64, with the gradients
// pre-filled to check that they accumulate.
func TestRMSNormBackwardFiniteDiff(t *testing.T) {
	const n, c, eps = 5, 27, 1e-5
	xs, ws, _ := lnInputs(70, n, c, 2)
	r := testRNG(71)
	douts := randn(r, n*c, 1)
	preX, preW := randn(r, n*c, 1), randn(r, c, 1)
	x64, w64 := to64(xs), to64(ws)
	loss := func() float64 {
		out, _ := rmsNorm64(x64, w64, n, c, eps)
		var l float64
		for i, o := range out {
			l += float64(douts[i]) * o
		}
		return l
	}
	wantX, wantW := numGrad(x64, loss), numGrad(w64, loss)
	// The closed form agrees with the differences.
	_, rs64 := rmsNorm64(x64, w64, n, c, eps)
	cfX, cfW := make([]float64, n*c), make([]float64, c)
	rmsNormBackward64(cfX, cfW, to64(douts), x64, w64, rs64, n, c)
	for i := range wantX {
		if math.Abs(cfX[i]-wantX[i]) > 1e-7*(1+math.Abs(wantX[i])) {
			t.Fatalf("closed-form dx[%d] = %g, finite differences %g", i, cfX[i], wantX[i])
		}
		wantX[i] += float64(preX[i])
	}
	for j := range wantW {
		wantW[j] += float64(preW[j])
	}
	for _, kern := range vecKernels() {
		for _, threads := range []int{1, 3} {
			restore := setVecKernel(kern)
			b := New(threads)
			inp, w := tensorOf(t, b, xs, n, c), tensorOf(t, b, ws, c)
			out, _ := b.Alloc(gpu.Float32, n, c)
			rstd, _ := b.Alloc(gpu.Float32, n)
			b.RMSNormForward(out, rstd, inp, w, eps)
			dinp, dw := tensorOf(t, b, preX, n, c), tensorOf(t, b, preW, c)
			b.RMSNormBackward(dinp, dw, tensorOf(t, b, douts, n, c), inp, w, rstd)
			assertNoErr(t, b)
			checkCloseLog(t, kern.name+" dinp vs finite differences", F32(dinp), wantX, 1e-5)
			checkCloseLog(t, kern.name+" dweight vs finite differences", F32(dw), wantW, 1e-5)
			restore()
		}
	}
}

// TestRMSNormBackwardLarge checks the parallel backward (many row chunks,
// partial dweight sums) against the closed form in float64.
func TestRMSNormBackwardLarge(t *testing.T) {
	const n, c, eps = 700, 201, 1e-6
	xs, ws, _ := lnInputs(80, n, c, 5)
	r := testRNG(81)
	douts := randn(r, n*c, 1)
	preX, preW := randn(r, n*c, 1), randn(r, c, 1)
	_, rs64 := rmsNorm64(to64(xs), to64(ws), n, c, eps)
	wantX, wantW := to64(preX), to64(preW)
	rmsNormBackward64(wantX, wantW, to64(douts), to64(xs), to64(ws), rs64, n, c)
	b := New(4)
	inp, w := tensorOf(t, b, xs, 7, n/7, c), tensorOf(t, b, ws, c)
	out, _ := b.Alloc(gpu.Float32, 7, n/7, c)
	rstd, _ := b.Alloc(gpu.Float32, n)
	b.RMSNormForward(out, rstd, inp, w, eps)
	dinp, dw := tensorOf(t, b, preX, 7, n/7, c), tensorOf(t, b, preW, c)
	b.RMSNormBackward(dinp, dw, tensorOf(t, b, douts, 7, n/7, c), inp, w, rstd)
	assertNoErr(t, b)
	checkCloseLog(t, "dinp (large)", F32(dinp), wantX, 1e-5)
	checkCloseLog(t, "dweight (large)", F32(dw), wantW, 1e-5)
}
