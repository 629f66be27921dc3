package cpu

import (
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// layerNorm64 is the float64 reference forward pass; it returns out, mean
// and rstd.
func layerNorm64(x, w, bias []float64, n, c int) (out, mean, rstd []float64) {
	out, mean, rstd = make([]float64, n*c), make([]float64, n), make([]float64, n)
	for r := 0; r < n; r++ {
		row := x[r*c : (r+1)*c]
		var m, v float64
		for _, a := range row {
			m += a
		}
		m /= float64(c)
		for _, a := range row {
			v += (a - m) * (a - m)
		}
		v /= float64(c)
		rs := 1 / math.Sqrt(v+1e-5)
		for j, a := range row {
			out[r*c+j] = (a-m)*rs*w[j] + bias[j]
		}
		mean[r], rstd[r] = m, rs
	}
	return out, mean, rstd
}

// layerNormBackward64 adds the closed-form gradients of rows of n×c
// inputs x, normalised with the given mean and rstd and scaled by w, to dx,
// dw and db, from the output gradient dy, in float64.
func layerNormBackward64(dx, dw, db, dy, x, w, mean, rstd []float64, n, c int) {
	for i := 0; i < n; i++ {
		var sumD, sumDN float64
		for j := 0; j < c; j++ {
			nrm := (x[i*c+j] - mean[i]) * rstd[i]
			dn := w[j] * dy[i*c+j]
			sumD += dn
			sumDN += dn * nrm
		}
		for j := 0; j < c; j++ {
			nrm := (x[i*c+j] - mean[i]) * rstd[i]
			g := dy[i*c+j]
			dw[j] += nrm * g
			db[j] += g
			dx[i*c+j] += (w[j]*g - sumD/float64(c) - nrm*sumDN/float64(c)) * rstd[i]
		}
	}
}

// lnInputs draws inputs with a per-row offset and scale, as activations
// after a residual stream have.
func lnInputs(seed uint64, n, c int, offset float64) (x, w, bias []float32) {
	r := testRNG(seed)
	x = randn(r, n*c, 1)
	for i := 0; i < n; i++ {
		shift, scale := float32(offset*r.NormFloat64()), float32(0.5+r.Float64()*3)
		for j := 0; j < c; j++ {
			x[i*c+j] = x[i*c+j]*scale + shift
		}
	}
	w = randn(r, c, 1)
	bias = randn(r, c, 1)
	return x, w, bias
}

func TestLayerNormForward(t *testing.T) {
	for _, tc := range []struct {
		n, c   int
		offset float64
	}{{3, 5, 1}, {37, 96, 3}, {300, 768, 1}, {64, 256, 1000}} {
		b := New(3)
		xs, ws, bs := lnInputs(uint64(tc.n), tc.n, tc.c, tc.offset)
		want, wantMean, wantRstd := layerNorm64(to64(xs), to64(ws), to64(bs), tc.n, tc.c)
		inp := tensorOf(t, b, xs, tc.n, tc.c)
		w, bias := tensorOf(t, b, ws, tc.c), tensorOf(t, b, bs, tc.c)
		out := tensorOf(t, b, randn(testRNG(9), tc.n*tc.c, 1), tc.n, tc.c)
		mean := tensorOf(t, b, randn(testRNG(9), tc.n, 1), tc.n)
		rstd := tensorOf(t, b, randn(testRNG(9), tc.n, 1), tc.n)
		b.LayerNormForward(out, mean, rstd, inp, w, bias)
		assertNoErr(t, b)
		checkCloseLog(t, "layernorm out", F32(out), want, 1e-6)
		checkCloseLog(t, "layernorm mean", F32(mean), wantMean, 1e-7)
		checkCloseLog(t, "layernorm rstd", F32(rstd), wantRstd, 1e-7)

		// Without statistics, and with a rank-3 input.
		out3 := tensorOf(t, b, randn(testRNG(9), tc.n*tc.c, 1), 1, tc.n, tc.c)
		b.LayerNormForward(out3, nil, nil, inp.MustReshape(1, tc.n, tc.c), w, bias)
		assertNoErr(t, b)
		checkCloseLog(t, "layernorm out, nil stats", F32(out3), want, 1e-6)
	}
}

// TestLayerNormBackwardFiniteDiff checks dinp, dweight and dbias against
// central finite differences of L = Σ dout·out, all in float64, with the
// gradients pre-filled to check that they accumulate.
func TestLayerNormBackwardFiniteDiff(t *testing.T) {
	const n, c = 5, 24
	xs, ws, bs := lnInputs(50, n, c, 2)
	r := testRNG(51)
	douts := randn(r, n*c, 1)
	preX, preW, preB := randn(r, n*c, 1), randn(r, c, 1), randn(r, c, 1)

	x64, w64, b64 := to64(xs), to64(ws), to64(bs)
	loss := func() float64 {
		out, _, _ := layerNorm64(x64, w64, b64, n, c)
		var l float64
		for i, o := range out {
			l += float64(douts[i]) * o
		}
		return l
	}
	wantX, wantW, wantB := numGrad(x64, loss), numGrad(w64, loss), numGrad(b64, loss)
	for i := range wantX {
		wantX[i] += float64(preX[i])
	}
	for j := 0; j < c; j++ {
		wantW[j] += float64(preW[j])
		wantB[j] += float64(preB[j])
	}

	for _, threads := range []int{1, 3} {
		b := New(threads)
		inp := tensorOf(t, b, xs, n, c)
		w, bias := tensorOf(t, b, ws, c), tensorOf(t, b, bs, c)
		out, _ := b.Alloc(gpu.Float32, n, c)
		mean, _ := b.Alloc(gpu.Float32, n)
		rstd, _ := b.Alloc(gpu.Float32, n)
		b.LayerNormForward(out, mean, rstd, inp, w, bias)
		dout := tensorOf(t, b, douts, n, c)
		dinp := tensorOf(t, b, preX, n, c)
		dw, db := tensorOf(t, b, preW, c), tensorOf(t, b, preB, c)
		b.LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd)
		assertNoErr(t, b)
		checkCloseLog(t, "dinp vs finite differences", F32(dinp), wantX, 1e-5)
		checkCloseLog(t, "dweight vs finite differences", F32(dw), wantW, 1e-5)
		checkCloseLog(t, "dbias vs finite differences", F32(db), wantB, 1e-5)
	}
}

// TestLayerNormBackwardLarge checks the parallel backward (many row chunks,
// per-worker partial sums) against the closed-form gradient in float64.
func TestLayerNormBackwardLarge(t *testing.T) {
	const n, c = 700, 200
	xs, ws, bs := lnInputs(60, n, c, 5)
	r := testRNG(61)
	douts := randn(r, n*c, 1)
	preX, preW, preB := randn(r, n*c, 1), randn(r, c, 1), randn(r, c, 1)

	_, m64, rs64 := layerNorm64(to64(xs), to64(ws), to64(bs), n, c)
	wantX, wantW, wantB := to64(preX), to64(preW), to64(preB)
	layerNormBackward64(wantX, wantW, wantB, to64(douts), to64(xs), to64(ws), m64, rs64, n, c)
	b := New(4)
	inp := tensorOf(t, b, xs, 7, n/7, c)
	w, bias := tensorOf(t, b, ws, c), tensorOf(t, b, bs, c)
	out, _ := b.Alloc(gpu.Float32, 7, n/7, c)
	mean, _ := b.Alloc(gpu.Float32, n)
	rstd, _ := b.Alloc(gpu.Float32, n)
	b.LayerNormForward(out, mean, rstd, inp, w, bias)
	dout := tensorOf(t, b, douts, 7, n/7, c)
	dinp := tensorOf(t, b, preX, 7, n/7, c)
	dw, db := tensorOf(t, b, preW, c), tensorOf(t, b, preB, c)
	b.LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd)
	assertNoErr(t, b)
	checkCloseLog(t, "dinp (large)", F32(dinp), wantX, 1e-5)
	checkCloseLog(t, "dweight (large)", F32(dw), wantW, 1e-5)
	checkCloseLog(t, "dbias (large)", F32(db), wantB, 1e-6)
}
