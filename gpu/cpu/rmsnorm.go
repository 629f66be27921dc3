package cpu

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// RMS normalisation over the last dimension (the Llama family's norm):
// layer normalisation without the mean and the bias, so it runs on
// layernorm.go's row kernels with the mean 0 and a zero bias. Row sums are
// float64; dweight is summed over rows in float64 per chunk of rows and
// added once at the end.

// RMSNormForward implements gpu.Backend.
func (b *Backend) RMSNormForward(out, rstd, inp, weight *gpu.Tensor, eps float32) {
	if b.err != nil {
		return
	}
	n, c, err := checker.RMSNormForward(out, rstd, inp, weight, eps)
	if b.fail(err) || n == 0 || c == 0 {
		return
	}
	defer b.actFlush()
	os, xs, ws := b.actOut(out), b.actIn(inp), b.actIn(weight)
	var rs []float32
	if rstd != nil {
		rs = F32(rstd)
	}
	zero := make([]float32, c) // the bias of lnNorm
	k := activeVec.Load()
	b.parallelFor(n, max(1, ewMinChunk/c), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			x := xs[r*c : (r+1)*c]
			// rstd = 1/sqrt(Σx²/C + eps); out = x·rstd·w in float64,
			// rounded once.
			rsd := 1 / math.Sqrt(k.lnSqDev(x, 0)/float64(c)+float64(eps))
			k.lnNorm(os[r*c:(r+1)*c], x, ws, zero, 0, rsd)
			if rs != nil {
				rs[r] = float32(rsd)
			}
		}
	})
}

// RMSNormBackward implements gpu.Backend: per row, with norm = x·rstd,
// dx += rstd·(w·dy − norm·mean(w·dy·norm)) and dweight += dy·norm.
func (b *Backend) RMSNormBackward(dinp, dweight, dout, inp, weight, rstd *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, c, err := checker.RMSNormBackward(dinp, dweight, dout, inp, weight, rstd)
	if b.fail(err) || n == 0 || c == 0 {
		return
	}
	defer b.actFlush()
	dxs, dws := b.actInOut(dinp), F32(dweight)
	dys, xs, ws, rs := b.actIn(dout), b.actIn(inp), b.actIn(weight), F32(rstd)
	inv := 1 / float64(c)
	count, size := b.workChunks(n, max(1, ewMinChunk/c))
	kern := activeVec.Load()
	// partial holds, per chunk of rows, C sums for dweight, then the C sums
	// of dy that lnBwdRow also keeps (a layernorm's dbias; unused here).
	partial := make([]float64, count*2*c)
	b.parallelFor(count, 1, func(k0, k1 int) {
		for k := k0; k < k1; k++ {
			pw := partial[k*2*c : k*2*c+c]
			pb := partial[k*2*c+c : (k+1)*2*c]
			for r := k * size; r < min((k+1)*size, n); r++ {
				x := xs[r*c : (r+1)*c]
				dy := dys[r*c : (r+1)*c][:len(x)]
				dx := dxs[r*c : (r+1)*c][:len(x)]
				rsd := float64(rs[r])
				_, sumDN := kern.lnBwdSums(x, dy, ws, 0, rsd)
				kern.lnBwdRow(dx, x, dy, ws, pw, pb, 0, rsd, 0, sumDN*inv)
			}
		}
	})
	for j := 0; j < c; j++ {
		var sw float64
		for k := 0; k < count; k++ {
			sw += partial[k*2*c+j]
		}
		dws[j] += float32(sw)
	}
}
