package cpu

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// geluFwdAVX2 writes dst[i] = gelu(src[i]) for i < n (vecmath_amd64.s); n
// must be a multiple of 8, and dst may be src.
//
//go:noescape
func geluFwdAVX2(dst, src *float32, n int)

// geluBwdAVX2 writes dx[i] = gelu'(x[i])·dy[i] for i < n; n must be a
// multiple of 8, and dx may be dy.
//
//go:noescape
func geluBwdAVX2(dx, x, dy *float32, n int)

// vecAVX2 runs the elementwise kernels in AVX2+FMA assembly.
var vecAVX2 = &vecKernel{
	name:    "avx2+fma",
	geluFwd: geluFwdVecAVX2, geluBwd: geluBwdVecAVX2, geluMinChunk: ewMinChunk,
	swigluFwd: swigluFwdVecAVX2, swigluBwd: swigluBwdVecAVX2,
	lsmRowStats: lsmRowStatsAVX2, lsmRowGrad: lsmRowGradAVX2,
	dropout: dropoutVecAVX2, adamw: adamWVecAVX2,
	lnSum: rowSum64AVX2, lnSqDev: rowSqDev64AVX2, lnNorm: lnNormVecAVX2,
	lnBwdSums: lnBackwardSumsAVX2, lnBwdRow: lnBwdRowVecAVX2,
	widenBF16: widenBF16VecAVX2, roundBF16: roundBF16VecAVX2,
	attnSoftmax: attnSoftmaxAVX2, attnGrad: attnGradVecAVX2,
	colSum64: colSum64VecAVX2,
}

// geluFwdVecAVX2 is geluFwdGeneric on AVX2+FMA: the assembly takes whole
// groups of 8, and a tail of fewer goes through a zero-padded buffer.
func geluFwdVecAVX2(o, x []float32) {
	x = x[:len(o)]
	n8 := len(o) &^ 7
	if n8 > 0 {
		geluFwdAVX2(&o[0], &x[0], n8)
	}
	if n8 < len(o) {
		var buf [8]float32
		copy(buf[:], x[n8:])
		geluFwdAVX2(&buf[0], &buf[0], 8)
		copy(o[n8:], buf[:])
	}
}

// geluBwdVecAVX2 is geluBwdGeneric on AVX2+FMA.
func geluBwdVecAVX2(dx, x, dy []float32) {
	x, dy = x[:len(dx)], dy[:len(dx)]
	n8 := len(dx) &^ 7
	if n8 > 0 {
		geluBwdAVX2(&dx[0], &x[0], &dy[0], n8)
	}
	if n8 < len(dx) {
		var bx, bdy [8]float32
		copy(bx[:], x[n8:])
		copy(bdy[:], dy[n8:])
		geluBwdAVX2(&bdy[0], &bx[0], &bdy[0], 8)
		copy(dx[n8:], bdy[:])
	}
}

// swigluFwdAVX2 writes o[i] = silu(gate[i])·up[i] for i < n
// (vecmath_amd64.s); n must be a multiple of 8.
//
//go:noescape
func swigluFwdAVX2(o, gate, up *float32, n int)

// swigluBwdAVX2 writes dgate[i] = dy[i]·up[i]·silu'(gate[i]) and
// dup[i] = dy[i]·silu(gate[i]) for i < n; n must be a multiple of 8.
//
//go:noescape
func swigluBwdAVX2(dgate, dup, gate, up, dy *float32, n int)

// swigluFwdVecAVX2 is swigluFwdGeneric on AVX2+FMA: whole groups of 8 in
// assembly, a tail of fewer through zero-padded buffers (so an element's
// result does not depend on its position).
func swigluFwdVecAVX2(o, gate, up []float32) {
	gate, up = gate[:len(o)], up[:len(o)]
	n8 := len(o) &^ 7
	if n8 > 0 {
		swigluFwdAVX2(&o[0], &gate[0], &up[0], n8)
	}
	if n8 < len(o) {
		var bg, bu [8]float32
		copy(bg[:], gate[n8:])
		copy(bu[:], up[n8:])
		swigluFwdAVX2(&bg[0], &bg[0], &bu[0], 8)
		copy(o[n8:], bg[:])
	}
}

// swigluBwdVecAVX2 is swigluBwdGeneric on AVX2+FMA.
func swigluBwdVecAVX2(dgate, dup, gate, up, dy []float32) {
	dup, gate, up, dy = dup[:len(dgate)], gate[:len(dgate)], up[:len(dgate)], dy[:len(dgate)]
	n8 := len(dgate) &^ 7
	if n8 > 0 {
		swigluBwdAVX2(&dgate[0], &dup[0], &gate[0], &up[0], &dy[0], n8)
	}
	if n8 < len(dgate) {
		var bg, bu, bdy [8]float32
		copy(bg[:], gate[n8:])
		copy(bu[:], up[n8:])
		copy(bdy[:], dy[n8:])
		swigluBwdAVX2(&bg[0], &bu[0], &bg[0], &bu[0], &bdy[0], 8)
		copy(dgate[n8:], bg[:])
		copy(dup[n8:], bu[:])
	}
}

// bestVecKernel picks the fastest elementwise kernels the CPU supports.
func bestVecKernel() *vecKernel {
	if hasAVX2FMA {
		return vecAVX2
	}
	return vecGeneric
}

// vecKernels lists every elementwise kernel set usable on this machine
// (tests check each).
func vecKernels() []*vecKernel {
	ks := []*vecKernel{vecGeneric}
	if hasAVX2FMA {
		ks = append(ks, vecAVX2)
	}
	return ks
}

// lsmExpSumsAVX2 returns Σ e and Σ e·x over i < n (a multiple of 16), with
// x = max(z[i] − m, −80) and e = exp(x).
//
//go:noescape
func lsmExpSumsAVX2(z *float32, n int, m float32) (s, w float64)

// lsmGradAVX2 sets z[i] = e·(nc + nde·x), x = max(z[i] − lse, −80),
// e = exp(x), for i < n (a multiple of 8).
//
//go:noescape
func lsmGradAVX2(z *float32, n int, lse, nc, nde float32)

// rowMaxAVX2 returns the largest of m and z[i], i < n (a multiple of 8),
// skipping NaNs.
//
//go:noescape
func rowMaxAVX2(z *float32, n int, m float32) float32

// lsmRowStatsAVX2 is lsmRowStats (logsoftmax.go) in two passes over the
// row, the maximum then the sums, on AVX2+FMA.
func lsmRowStatsAVX2(z []float32) (m float32, logS, entropy float64) {
	m = -math.MaxFloat32 // as lsmRowStats: −Inf logits give −Inf − m, not NaN
	n8 := len(z) &^ 7
	if n8 > 0 {
		m = rowMaxAVX2(&z[0], n8, m)
	}
	for _, v := range z[n8:] {
		if v > m {
			m = v
		}
	}
	var s, w float64
	n16 := len(z) &^ 15
	if n16 > 0 {
		s, w = lsmExpSumsAVX2(&z[0], n16, m)
	}
	var s32, w32 float32
	for _, v := range z[n16:] {
		x := v - m
		if x < -80 {
			x = -80
		}
		e := exp32(x)
		s32 += e
		w32 += e * x
	}
	s += float64(s32)
	w += float64(w32)
	logS = math.Log(s)
	return m, logS, logS - w/s
}

// lsmRowGradAVX2 is lsmRowGrad (logsoftmax.go) on AVX2+FMA.
func lsmRowGradAVX2(z []float32, lse, g, de, h float32) {
	// −p·(g + de·(x + h)) = p·(nc + nde·x), nc = −(g + de·h), nde = −de.
	nc, nde := -(g + de*h), -de
	n8 := len(z) &^ 7
	if n8 > 0 {
		lsmGradAVX2(&z[0], n8, lse, nc, nde)
	}
	for i, v := range z[n8:] {
		x := v - lse
		if x < -80 {
			x = -80
		}
		z[n8+i] = exp32(x) * (nc + nde*x)
	}
}

// dropoutAVX2 is the vector dropout loop (vecmath_amd64.s).
//
//go:noescape
func dropoutAVX2(dst, src *float32, n int, lanes *[8]uint64, step uint64, threshold int64, scale float32)

// golden is gpu.Mix64's counter increment φ.
const golden = 0x9E3779B97F4A7C15

// dropoutVecAVX2 is the dropout loop of elements lo.. of a call (d and s
// their slices) on AVX2: element lo+i is dropped when the top 24 bits k of
// gpu.Mix64(seed, lo+i) satisfy k < ⌈p·2²⁴⌉, which is exactly
// gpu.DropoutUniform(seed, lo+i) < p (k·2⁻²⁴ and p·2²⁴ are exact).
func dropoutVecAVX2(d, s []float32, lo int, p float32, seed uint64, scale float32) {
	s = s[:len(d)]
	threshold := int64(math.Ceil(float64(p) * (1 << 24)))
	n8 := len(d) &^ 7
	if n8 > 0 {
		var lanes [8]uint64
		for j := range lanes {
			lanes[j] = seed + uint64(lo+j+1)*uint64(golden)
		}
		step := uint64(golden)
		dropoutAVX2(&d[0], &s[0], n8, &lanes, 8*step, threshold, scale) // 8φ mod 2⁶⁴
	}
	for i := n8; i < len(d); i++ {
		if int64(gpu.Mix64(seed, uint64(lo+i))>>40) < threshold {
			d[i] = 0
		} else {
			d[i] = s[i] * scale
		}
	}
}

// adamWAVX2 is adamWGeneric on i < n (a multiple of 8), 8 elements per
// step, with the same float32 operations in the same order (no FMA), so
// the results are the same bits.
//
//go:noescape
func adamWAVX2(pp, gg, mm, vv *float32, n int, k *adamWConsts)

// adamWVecAVX2 runs whole groups of 8 in assembly and the tail in Go.
func adamWVecAVX2(p, g, m, v []float32, k *adamWConsts) {
	n8 := len(p) &^ 7
	if n8 > 0 {
		g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
		adamWAVX2(&p[0], &g[0], &m[0], &v[0], n8, k)
	}
	adamWGeneric(p[n8:], g[n8:len(p)], m[n8:len(p)], v[n8:len(p)], k)
}

// lnSumsAVX2 adds x[i], or (x[i] − m)² with sq, for i < n (a multiple of 4)
// into acc[i mod 4], in float64, in order: rowSum64's and rowSqDev64's
// accumulators.
//
//go:noescape
func lnSumsAVX2(x *float32, n int, m float64, sq bool, acc *[4]float64)

// lnNormAVX2 is lnNormGeneric on i < n (a multiple of 4), with the same
// float64 operations in the same order.
//
//go:noescape
func lnNormAVX2(o, x, w, b *float32, n int, m, rstd float64)

// rowSum64AVX2 is rowSum64: the same four accumulators, the same bits.
func rowSum64AVX2(x []float32) float64 {
	var acc [4]float64
	n4 := len(x) &^ 3
	if n4 > 0 {
		lnSumsAVX2(&x[0], n4, 0, false, &acc)
	}
	for _, v := range x[n4:] {
		acc[0] += float64(v)
	}
	return (acc[0] + acc[1]) + (acc[2] + acc[3])
}

// rowSqDev64AVX2 is rowSqDev64: the same four accumulators, the same bits.
func rowSqDev64AVX2(x []float32, m float64) float64 {
	var acc [4]float64
	n4 := len(x) &^ 3
	if n4 > 0 {
		lnSumsAVX2(&x[0], n4, m, true, &acc)
	}
	for _, v := range x[n4:] {
		d := float64(v) - m
		acc[0] += d * d
	}
	return (acc[0] + acc[1]) + (acc[2] + acc[3])
}

// lnNormVecAVX2 runs whole groups of 4 in assembly and the tail in Go.
func lnNormVecAVX2(o, x, w, b []float32, m, rstd float64) {
	n4 := len(x) &^ 3
	if n4 > 0 {
		o, w, b = o[:len(x)], w[:len(x)], b[:len(x)]
		lnNormAVX2(&o[0], &x[0], &w[0], &b[0], n4, m, rstd)
	}
	lnNormGeneric(o[n4:], x[n4:], w[n4:], b[n4:], m, rstd)
}

// lnBwdSumsAVX2 accumulates, for i < n (even), a = w[i]·dy[i] into
// acc[i mod 2] and a·((x[i] − m)·rstd) into acc[2 + i mod 2], in float64,
// in order: lnBackwardSums's accumulators, two lanes of an XMM register.
//
//go:noescape
func lnBwdSumsAVX2(x, dy, w *float32, n int, m, rstd float64, acc *[4]float64)

// lnBwdRowAVX2 is lnBwdRowGeneric on i < n (a multiple of 4), with the
// same float64 operations in the same order and the float32 add of dx.
//
//go:noescape
func lnBwdRowAVX2(dx, x, dy, w *float32, pw, pb *float64, n int, m, rstd, meanD, meanDN float64)

// lnBackwardSumsAVX2 is lnBackwardSums: the same accumulators, the same
// bits.
func lnBackwardSumsAVX2(x, dy, w []float32, m, rstd float64) (sumD, sumDN float64) {
	var acc [4]float64
	n2 := len(x) &^ 1
	if n2 > 0 {
		dy, w = dy[:len(x)], w[:len(x)]
		lnBwdSumsAVX2(&x[0], &dy[0], &w[0], n2, m, rstd, &acc)
	}
	if n2 < len(x) {
		i := n2
		a := float64(w[i]) * float64(dy[i])
		acc[0] += a
		acc[2] += a * ((float64(x[i]) - m) * rstd)
	}
	return acc[0] + acc[1], acc[2] + acc[3]
}

// lnBwdRowVecAVX2 runs whole groups of 4 in assembly and the tail in Go.
func lnBwdRowVecAVX2(dx, x, dy, w []float32, pw, pb []float64, m, rstd, meanD, meanDN float64) {
	n4 := len(x) &^ 3
	if n4 > 0 {
		dx, dy, w, pw, pb = dx[:len(x)], dy[:len(x)], w[:len(x)], pw[:len(x)], pb[:len(x)]
		lnBwdRowAVX2(&dx[0], &x[0], &dy[0], &w[0], &pw[0], &pb[0], n4, m, rstd, meanD, meanDN)
	}
	lnBwdRowGeneric(dx[n4:], x[n4:], dy[n4:], w[n4:], pw[n4:], pb[n4:], m, rstd, meanD, meanDN)
}

// attnExpAVX2 sets s[i] = exp(max(s[i] − m, −80)) for i < n (a multiple of
// 8) and returns their sum in float64.
//
//go:noescape
func attnExpAVX2(s *float32, n int, m float32) float64

// attnGradAVX2 sets p[i] = exp(max(p[i] − lse, −80)) and
// ds[i] = p[i]·(ds[i] − d)·scale for i < n (a multiple of 8).
//
//go:noescape
func attnGradAVX2(p, ds *float32, n int, lse, d, scale float32)

// attnSoftmaxAVX2 is attnSoftmax (attention.go) on AVX2+FMA; a tail of
// fewer than 8 goes through Go and exp32. Its maximum skips NaN scores,
// but their exponentials still make the sum, and so the row, NaN.
func attnSoftmaxAVX2(s []float32) (m float32, sum float64) {
	m = s[0]
	n8 := len(s) &^ 7
	if n8 > 0 {
		m = rowMaxAVX2(&s[0], n8, m)
	}
	for _, v := range s[n8:] {
		m = max(m, v)
	}
	if n8 > 0 {
		sum = attnExpAVX2(&s[0], n8, m)
	}
	return m, sum + attnExpShift(s[n8:], m)
}

// attnGradVecAVX2 is attnGradRow (attention.go) on AVX2+FMA; a tail of
// fewer than 8 goes through exp32.
func attnGradVecAVX2(p, ds []float32, lse, d, scale float32) {
	ds = ds[:len(p)]
	n8 := len(p) &^ 7
	if n8 > 0 {
		attnGradAVX2(&p[0], &ds[0], n8, lse, d, scale)
	}
	attnGradRow(p[n8:], ds[n8:], lse, d, scale)
}

// colSum64AVX2 adds float64(x[i]) to acc[i] for i < n (a multiple of 8).
//
//go:noescape
func colSum64AVX2(acc *float64, x *float32, n int)

// colSum64VecAVX2 is colSum64 on AVX2: the same float64 additions, so the
// same bits.
func colSum64VecAVX2(acc []float64, x []float32) {
	acc = acc[:len(x)]
	n8 := len(x) &^ 7
	if n8 > 0 {
		colSum64AVX2(&acc[0], &x[0], n8)
	}
	colSum64(acc[n8:], x[n8:])
}
