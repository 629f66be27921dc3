package cpu

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// Layer normalisation over the last dimension. Row statistics and the
// backward pass's row reductions are computed in float64; dweight and dbias
// are summed over rows in float64 per worker and added once at the end.

const layerNormEps = 1e-5

// LayerNormForward implements gpu.Backend. inp may have any rank ≥ 1; its
// last dimension C must equal the length of weight and bias, and out must
// have inp's length.
func (b *Backend) LayerNormForward(out, mean, rstd, inp, weight, bias *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, c, err := checker.LayerNormForward(out, mean, rstd, inp, weight, bias)
	if b.fail(err) || n == 0 || c == 0 {
		return
	}
	defer b.actFlush()
	os, xs, ws, bs := b.actOut(out), b.actIn(inp), b.actIn(weight), b.actIn(bias)
	var ms, rs []float32
	if mean != nil {
		ms = F32(mean)
	}
	if rstd != nil {
		rs = F32(rstd)
	}
	k := activeVec.Load()
	b.parallelFor(n, max(1, ewMinChunk/c), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			m, rsd := lnForwardRow(k, os[r*c:(r+1)*c], xs[r*c:(r+1)*c], ws, bs)
			if ms != nil {
				ms[r] = float32(m)
			}
			if rs != nil {
				rs[r] = float32(rsd)
			}
		}
	})
}

// AddLayerNormForward implements gpu.Backend: per row, the sum, stored
// (rounded once in bf16) and then normalised by LayerNormForward's row
// kernels from the stored values, so its results are Add's and
// LayerNormForward's bit for bit, in either dtype.
func (b *Backend) AddLayerNormForward(resOut, lnOut, mean, rstd, a, bb, weight, bias *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, c, err := checker.AddLayerNormForward(resOut, lnOut, mean, rstd, a, bb, weight, bias)
	if b.fail(err) || n == 0 || c == 0 {
		return
	}
	defer b.actFlush()
	rs, os := b.actOut(resOut), b.actOut(lnOut)
	as, bs, ws, bis := b.actIn(a), b.actIn(bb), b.actIn(weight), b.actIn(bias)
	var ms, rds []float32
	if mean != nil {
		ms = F32(mean)
	}
	if rstd != nil {
		rds = F32(rstd)
	}
	roundSum := resOut.DType() == gpu.BF16
	k := activeVec.Load()
	b.parallelFor(n, max(1, ewMinChunk/c), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			x := rs[r*c : (r+1)*c]
			// x = a + b (outputs never overlap inputs): the vector add
			// rounds once per element, as the sum does.
			copy(x, as[r*c:(r+1)*c])
			addRow(x, bs[r*c:(r+1)*c])
			if roundSum {
				// The normalisation reads the sum as stored.
				for j, v := range x {
					x[j] = gpu.RoundBF16(v)
				}
			}
			m, rsd := lnForwardRow(k, os[r*c:(r+1)*c], x, ws, bis)
			if ms != nil {
				ms[r] = float32(m)
			}
			if rds != nil {
				rds[r] = float32(rsd)
			}
		}
	})
}

// lnForwardRow normalises one row x into o with the kernel set k and
// returns its mean and rstd: the arithmetic of both forward ops.
func lnForwardRow(k *vecKernel, o, x, w, b []float32) (m, rstd float64) {
	inv := 1 / float64(len(x))
	m = k.lnSum(x) * inv
	rstd = 1 / math.Sqrt(k.lnSqDev(x, m)*inv+layerNormEps)
	k.lnNorm(o, x, w, b, m, rstd)
	return m, rstd
}

// LayerNormBackward implements gpu.Backend. mean and rstd are required.
func (b *Backend) LayerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, c, err := checker.LayerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd)
	if b.fail(err) || n == 0 || c == 0 {
		return
	}
	defer b.actFlush()
	dxs, dws, dbs := b.actInOut(dinp), F32(dweight), F32(dbias)
	dys, xs, ws, ms, rs := b.actIn(dout), b.actIn(inp), b.actIn(weight), F32(mean), F32(rstd)
	inv := 1 / float64(c)
	count, size := b.workChunks(n, max(1, ewMinChunk/c))
	kern := activeVec.Load()
	// partial holds, per chunk of rows, C sums for dweight then C for dbias.
	partial := make([]float64, count*2*c)
	b.parallelFor(count, 1, func(k0, k1 int) {
		for k := k0; k < k1; k++ {
			pw := partial[k*2*c : k*2*c+c]
			pb := partial[k*2*c+c : (k+1)*2*c]
			for r := k * size; r < min((k+1)*size, n); r++ {
				x := xs[r*c : (r+1)*c]
				dy := dys[r*c : (r+1)*c][:len(x)]
				dx := dxs[r*c : (r+1)*c][:len(x)]
				w := ws[:len(x)]
				m, rsd := float64(ms[r]), float64(rs[r])
				// dnorm = w·dy; dx = rstd·(dnorm − mean(dnorm) − norm·mean(dnorm·norm)).
				sumD, sumDN := kern.lnBwdSums(x, dy, w, m, rsd)
				kern.lnBwdRow(dx, x, dy, w, pw, pb, m, rsd, sumD*inv, sumDN*inv)
			}
		}
	})
	for j := 0; j < c; j++ {
		var sw, sb float64
		for k := 0; k < count; k++ {
			sw += partial[k*2*c+j]
			sb += partial[k*2*c+c+j]
		}
		dws[j] += float32(sw)
		dbs[j] += float32(sb)
	}
}

// rowSum64 is Σ x in float64 with four independent accumulators.
func rowSum64(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += float64(x[i])
		s1 += float64(x[i+1])
		s2 += float64(x[i+2])
		s3 += float64(x[i+3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// lnNormGeneric writes o[j] = ((x[j] − m)·rstd)·w[j] + b[j], computed in
// float64 and rounded once; len(o), len(w), len(b) ≥ len(x).
func lnNormGeneric(o, x, w, b []float32, m, rstd float64) {
	o, w, b = o[:len(x)], w[:len(x)], b[:len(x)]
	for j, v := range x {
		o[j] = float32((float64(v)-m)*rstd*float64(w[j]) + float64(b[j]))
	}
}

// rowSqDev64 is Σ (x − m)² in float64 with four independent accumulators.
func rowSqDev64(x []float32, m float64) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		d0, d1, d2, d3 := float64(x[i])-m, float64(x[i+1])-m, float64(x[i+2])-m, float64(x[i+3])-m
		s0 += d0 * d0
		s1 += d1 * d1
		s2 += d2 * d2
		s3 += d3 * d3
	}
	for ; i < len(x); i++ {
		d := float64(x[i]) - m
		s0 += d * d
	}
	return (s0 + s1) + (s2 + s3)
}

// lnBwdRowGeneric accumulates a row's dweight and dbias terms into pw and
// pb (float64) and adds its input gradient to dx:
// dx += rstd·(w·dy − meanD − norm·meanDN), norm = (x − m)·rstd; every slice
// at least as long as x.
func lnBwdRowGeneric(dx, x, dy, w []float32, pw, pb []float64, m, rstd, meanD, meanDN float64) {
	dx, dy, w, pw, pb = dx[:len(x)], dy[:len(x)], w[:len(x)], pw[:len(x)], pb[:len(x)]
	for j, v := range x {
		nrm := (float64(v) - m) * rstd
		g := float64(dy[j])
		pw[j] += nrm * g
		pb[j] += g
		dx[j] += float32((float64(w[j])*g - meanD - nrm*meanDN) * rstd)
	}
}

// lnBackwardSums returns Σ dnorm and Σ dnorm·norm over a row, with
// dnorm = w·dy and norm = (x − m)·rstd; len(dy), len(w) ≥ len(x).
func lnBackwardSums(x, dy, w []float32, m, rstd float64) (sumD, sumDN float64) {
	dy, w = dy[:len(x)], w[:len(x)]
	var d0, d1, n0, n1 float64
	i := 0
	for ; i+2 <= len(x); i += 2 {
		a := float64(w[i]) * float64(dy[i])
		c := float64(w[i+1]) * float64(dy[i+1])
		d0 += a
		d1 += c
		n0 += a * ((float64(x[i]) - m) * rstd)
		n1 += c * ((float64(x[i+1]) - m) * rstd)
	}
	for ; i < len(x); i++ {
		a := float64(w[i]) * float64(dy[i])
		d0 += a
		n0 += a * ((float64(x[i]) - m) * rstd)
	}
	return d0 + d1, n0 + n1
}
