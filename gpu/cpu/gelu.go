package cpu

import (
	"sync/atomic"

	"github.com/instructgo/instructgo/gpu"
)

// GELU (GPT-2's tanh approximation) and dropout, elementwise.

const (
	geluScale = 0.7978845608028654 // sqrt(2/π)
	geluCubic = 0.044715
	// geluClamp bounds the x the exponential sees. Beyond ±9, e^(−2u) (or
	// its inverse) is below 2e-29, so in float32 gelu(x) is x (x > 9) or
	// about −1e-28 (x < −9), and gelu'(x) is 1 or about 0, whatever x is:
	// clamping keeps exp and every product finite (no ∞·0) for huge
	// inputs.
	geluClamp = 9
	// t = −2u = x·(geluK + geluKC·x²); the gradient's 2u' = geluK2 +
	// geluK2C3·x².
	geluK    = -2 * geluScale
	geluKC   = -2 * geluScale * geluCubic
	geluK2   = 2 * geluScale
	geluK2C3 = 2 * geluScale * 3 * geluCubic
)

// vecKernel is a set of elementwise kernels over float32 slices: the
// portable Go ones or assembly for the CPU's vector unit.
type vecKernel struct {
	name string
	// geluFwd writes o[i] = gelu(x[i]); len(x) ≥ len(o), o may be x.
	geluFwd func(o, x []float32)
	// geluBwd writes dx[i] = gelu'(x[i])·dy[i]; len(x), len(dy) ≥ len(dx),
	// dx may be dy.
	geluBwd func(dx, x, dy []float32)
	// geluMinChunk is the smallest chunk of a GELU worth a worker of its
	// own (parallelFor's minChunk): about 10µs of work. SwiGLU's outputs
	// cost about as much (one exp and one divide each) and use it too.
	geluMinChunk int
	// swigluFwd writes o[i] = silu(gate[i])·up[i]; swigluBwd writes
	// dgate[i] = dy[i]·up[i]·silu'(gate[i]) and dup[i] = dy[i]·silu(gate[i])
	// (swiglu.go). The inputs are at least as long as o (dgate); outputs
	// may be inputs at the same index.
	swigluFwd func(o, gate, up []float32)
	swigluBwd func(dgate, dup, gate, up, dy []float32)
	// lsmRowStats and lsmRowGrad are the log-softmax row kernels
	// (logsoftmax.go).
	lsmRowStats func(z []float32) (m float32, logS, entropy float64)
	lsmRowGrad  func(z []float32, lse, g, de, h float32)
	// dropout writes d[i] = 0 where element lo+i of the call is dropped
	// (gpu.DropoutUniform(seed, lo+i) < p), else s[i]·scale; len(s) ≥
	// len(d), d may be s.
	dropout func(d, s []float32, lo int, p float32, seed uint64, scale float32)
	// adamw updates p, m, v from g (all of p's length) with the constants
	// k (adamw.go).
	adamw func(p, g, m, v []float32, k *adamWConsts)
	// The layernorm forward's row kernels (layernorm.go): Σ x and
	// Σ (x − m)² in float64 with four accumulators (element i goes to
	// accumulator i mod 4, summed (0+1)+(2+3)), and the normalisation.
	lnSum   func(x []float32) float64
	lnSqDev func(x []float32, m float64) float64
	lnNorm  func(o, x, w, b []float32, m, rstd float64)
	// The backward's: Σ w·dy and Σ w·dy·norm with two accumulators
	// (even and odd elements), and the per-element gradients.
	lnBwdSums func(x, dy, w []float32, m, rstd float64) (sumD, sumDN float64)
	lnBwdRow  func(dx, x, dy, w []float32, pw, pb []float64, m, rstd, meanD, meanDN float64)
	// The bf16 conversions (bf16.go): dst = src widened exactly, and
	// dst = src rounded with gpu.BF16Bits; len(dst) ≥ len(src).
	widenBF16 func(dst []float32, src []uint16)
	roundBF16 func(dst []uint16, src []float32)
	// attention's softmax row kernels (attention.go): attnSoftmax sets
	// s[j] = exp(s[j] − m), m = max s, and returns m and Σ s[j] in
	// float64; attnGrad sets p[j] = exp(p[j] − lse) and
	// ds[j] = p[j]·(ds[j] − d)·scale. Both clamp the exponent at −80, as
	// exp32 does.
	attnSoftmax func(s []float32) (m float32, sum float64)
	attnGrad    func(p, ds []float32, lse, d, scale float32)
	// colSum64 adds x[j] to acc[j] in float64 (a bias gradient's column
	// sums, elementwise.go); every kernel set gives the same bits.
	colSum64 func(acc []float64, x []float32)
}

// vecGeneric is the portable Go kernel set.
var vecGeneric = &vecKernel{
	name:    "generic",
	geluFwd: geluFwdGeneric, geluBwd: geluBwdGeneric, geluMinChunk: ewMinChunk / 4,
	swigluFwd: swigluFwdGeneric, swigluBwd: swigluBwdGeneric,
	lsmRowStats: lsmRowStatsGeneric, lsmRowGrad: lsmRowGradGeneric,
	dropout: dropoutGeneric, adamw: adamWGeneric,
	lnSum: rowSum64, lnSqDev: rowSqDev64, lnNorm: lnNormGeneric,
	lnBwdSums: lnBackwardSums, lnBwdRow: lnBwdRowGeneric,
	widenBF16: widenBF16, roundBF16: roundBF16,
	attnSoftmax: attnSoftmax, attnGrad: attnGradRow,
	colSum64: colSum64,
}

var activeVec atomic.Pointer[vecKernel]

func init() { activeVec.Store(bestVecKernel()) }

// setVecKernel switches the elementwise kernels (tests use it to cover
// every implementation) and returns a function restoring the previous ones.
func setVecKernel(k *vecKernel) (restore func()) {
	old := activeVec.Swap(k)
	return func() { activeVec.Store(old) }
}

// VecKernel names the elementwise kernels (GELU, log-softmax rows) this
// machine runs.
func VecKernel() string { return activeVec.Load().name }

// GeluForward implements gpu.Backend:
// out = 0.5·x·(1 + tanh(u)), u = sqrt(2/π)·(x + 0.044715·x³), computed in
// float32 as x·σ(2u) = x/(1 + exp(−2u)), the same function in one exp, by
// the active vecKernel (AVX2+FMA assembly, else portable Go with exp32).
// Both are within 1e-7·(1 + |x|) of the float64 function, and the gradient
// within 2.1e-7 (vecmath_test.go). +Inf gives +Inf, −Inf about −1e-28, NaN
// propagates.
// out may be exactly inp (elementwise, so in place is safe).
func (b *Backend) GeluForward(out, inp *gpu.Tensor) {
	if b.err != nil || b.fail(checker.GeluForward(out, inp)) {
		return
	}
	defer b.actFlush()
	b.gelu(b.actOut(out), b.actIn(inp))
}

// gelu writes os = gelu(xs) (os may be xs): GeluForward on float32 values,
// and the last step of MatMulBiasGELU.
func (b *Backend) gelu(os, xs []float32) {
	k := activeVec.Load()
	fwd := k.geluFwd
	b.parallelFor(len(os), k.geluMinChunk, func(lo, hi int) { fwd(os[lo:hi], xs[lo:hi]) })
}

// GeluBackward implements gpu.Backend. dinp may alias dout.
func (b *Backend) GeluBackward(dinp, inp, dout *gpu.Tensor) {
	if b.err != nil || b.fail(checker.GeluBackward(dinp, inp, dout)) {
		return
	}
	defer b.actFlush()
	b.geluGrad(b.actOut(dinp), b.actIn(inp), b.actIn(dout))
}

// geluGrad writes dxs = gelu'(xs)·dys (dxs may be dys): GeluBackward on
// float32 values, and the last step of MatMulDGELU.
func (b *Backend) geluGrad(dxs, xs, dys []float32) {
	k := activeVec.Load()
	bwd := k.geluBwd
	b.parallelFor(len(dxs), k.geluMinChunk, func(lo, hi int) { bwd(dxs[lo:hi], xs[lo:hi], dys[lo:hi]) })
}

// geluFwdGeneric is the portable GELU forward, in float32 with exp32:
// o = max(x, −9)/(1 + e), e = exp(xc·(geluK + geluKC·xc²)), xc = x clamped
// to ±geluClamp. NaN propagates (min and max keep it).
func geluFwdGeneric(o, x []float32) {
	x = x[:len(o)]
	for i, v := range x {
		xm := max(v, -geluClamp)
		xc := min(xm, geluClamp)
		e := exp32(xc * (geluK + geluKC*xc*xc))
		o[i] = xm / (1 + e)
	}
}

// geluBwdGeneric is the portable GELU backward. With σ = 1/(1 + e), the
// derivative of x·σ(2u) is σ + x·2u'·σ(1−σ), and 1−σ = e·σ (exact where σ
// is near 1).
func geluBwdGeneric(dx, x, dy []float32) {
	x, dy = x[:len(dx)], dy[:len(dx)]
	for i, v := range x {
		xc := min(max(v, -geluClamp), geluClamp)
		x2 := xc * xc
		e := exp32(xc * (geluK + geluKC*x2))
		sig := 1 / (1 + e)
		q := xc * (geluK2 + geluK2C3*x2)
		dx[i] = (sig + q*(e*sig)*sig) * dy[i]
	}
}

// dropout writes dst = src·keep/(1−p), element i dropped when
// gpu.DropoutUniform(seed, i) < p; p = 0 copies. len(dst) = len(src) > 0.
func (b *Backend) dropout(dst, src []float32, p float32, seed uint64) {
	if p == 0 {
		if &dst[0] != &src[0] {
			b.parallelFor(len(dst), ewMinChunk, func(lo, hi int) { copy(dst[lo:hi], src[lo:hi]) })
		}
		return
	}
	scale := 1 / (1 - p)
	k := activeVec.Load()
	b.parallelFor(len(dst), ewMinChunk/4, func(lo, hi int) {
		k.dropout(dst[lo:hi], src[lo:hi], lo, p, seed, scale)
	})
}

// dropoutGeneric is vecKernel.dropout in portable Go.
func dropoutGeneric(d, s []float32, lo int, p float32, seed uint64, scale float32) {
	s = s[:len(d)]
	for i, v := range s {
		if gpu.DropoutUniform(seed, lo+i) < p {
			d[i] = 0
		} else {
			d[i] = v * scale
		}
	}
}

// Dropout implements gpu.Backend. out may alias inp.
func (b *Backend) Dropout(out, inp *gpu.Tensor, p float32, seed uint64) {
	if b.err != nil || b.fail(checker.Dropout(out, inp, p)) || out.Len() == 0 {
		return
	}
	defer b.actFlush()
	b.dropout(b.actOut(out), b.actIn(inp), p, seed)
}

// DropoutBackward implements gpu.Backend. dinp may alias dout.
func (b *Backend) DropoutBackward(dinp, dout *gpu.Tensor, p float32, seed uint64) {
	if b.err != nil || b.fail(checker.DropoutBackward(dinp, dout, p)) || dinp.Len() == 0 {
		return
	}
	defer b.actFlush()
	b.dropout(b.actOut(dinp), b.actIn(dout), p, seed)
}
