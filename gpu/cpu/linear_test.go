package cpu

import (
	"fmt"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Tests of the fused linear layers (linear.go). In float32 each gives the
// bits of the ops the model ran before (MatMul, AddBias, GeluForward;
// MatMul, GeluBackward), with every kernel set and thread count; their bf16
// definition and float64 references are linearCases in the bf16 tests;
// MatMulDGELU is checked by finite differences here.

// linearShape is one fused linear layer: rows of an activation [M,K] by a
// weight [K,N]; rank3 reads the activation as [2, M/2, K].
type linearShape struct {
	name    string
	m, k, n int
	rank3   bool
}

var linearShapes = []linearShape{
	{"small triple loop", 3, 5, 7, false},
	{"odd", 37, 29, 61, false},
	{"gpt qkv-like", 96, 64, 192, true},
	{"large: parallel", 260, 128, 512, false},
}

func (s linearShape) act(dims ...int) []int {
	if s.rank3 {
		return append([]int{2, s.m / 2}, dims...)
	}
	return append([]int{s.m}, dims...)
}

func TestLinearFusedIsUnfusedFloat32(t *testing.T) {
	for si, s := range linearShapes {
		r := testRNG(uint64(900 + si))
		av, wv, bias := randn(r, s.m*s.k, 1), randn(r, s.k*s.n, 0.3), randn(r, s.n, 0.5)
		dout := randn(r, s.m*s.k, 1)
		for _, kern := range vecKernels() {
			for _, threads := range []int{1, 2} {
				t.Run(fmt.Sprintf("%s/%s/threads=%d", s.name, kern.name, threads), func(t *testing.T) {
					defer setVecKernel(kern)()
					b := New(threads)
					a := tensorOf(t, b, av, s.act(s.k)...)
					w := tensorOf(t, b, wv, s.k, s.n)
					bs := tensorOf(t, b, bias, s.n)
					stale := func() *gpu.Tensor { return tensorOf(t, b, randn(r, s.m*s.n, 1), s.act(s.n)...) }

					// MatMulBias against MatMul, AddBias.
					c1, c2 := stale(), stale()
					b.MatMul(c1, a, w, false, false, 1, 0)
					b.AddBias(c1, bs)
					b.MatMulBias(c2, a, w, bs)
					assertNoErr(t, b)
					sameBits(t, "matmul bias", download(t, b, c2), download(t, b, c1))

					// MatMulBiasGELU against MatMul, AddBias, GeluForward.
					pre1, out1, pre2, out2 := stale(), stale(), stale(), stale()
					b.MatMul(pre1, a, w, false, false, 1, 0)
					b.AddBias(pre1, bs)
					b.GeluForward(out1, pre1)
					b.MatMulBiasGELU(out2, pre2, a, w, bs)
					assertNoErr(t, b)
					sameBits(t, "pre", download(t, b, pre2), download(t, b, pre1))
					sameBits(t, "gelu", download(t, b, out2), download(t, b, out1))

					// MatMulDGELU against MatMul (transB), GeluBackward in
					// place, as the model's backward ran them. dout [M,K]
					// multiplies wᵀ: the weight of a layer from N to K.
					d := tensorOf(t, b, dout, s.act(s.k)...)
					wT := tensorOf(t, b, wv, s.n, s.k)
					dp1, dp2 := stale(), stale()
					b.MatMul(dp1, d, wT, false, true, 1, 0)
					b.GeluBackward(dp1, pre1, dp1)
					b.MatMulDGELU(dp2, d, wT, pre1)
					assertNoErr(t, b)
					sameBits(t, "dgelu", download(t, b, dp2), download(t, b, dp1))
				})
			}
		}
	}
}

// TestMatMulDGELUFiniteDiff: dpre from MatMulDGELU is the gradient of
// L(pre) = Σ dout ⊙ (gelu(pre)·w), the loss through the layer that follows
// the GELU, by central differences in float64.
func TestMatMulDGELUFiniteDiff(t *testing.T) {
	const m, n, k = 6, 10, 7 // pre [M,N]; the next layer maps N to K
	r := testRNG(950)
	pre, wv, dout := randn(r, m*n, 1.5), randn(r, n*k, 0.5), randn(r, m*k, 1)
	b := New(2)
	dp := tensorOf(t, b, randn(r, m*n, 1), m, n)
	b.MatMulDGELU(dp, tensorOf(t, b, dout, m, k), tensorOf(t, b, wv, n, k), tensorOf(t, b, pre, m, n))
	assertNoErr(t, b)
	got := download(t, b, dp)

	x := to64(pre)
	loss := func() float64 {
		var l float64
		for i := 0; i < m; i++ {
			for q := 0; q < k; q++ {
				var y float64
				for j := 0; j < n; j++ {
					y += gelu64(x[i*n+j]) * float64(wv[j*k+q])
				}
				l += float64(dout[i*k+q]) * y
			}
		}
		return l
	}
	// Finite differences are good to about 1e-8 here; the float32 op to a
	// few float32 roundings of its K-term sums.
	assertClose(t, "dpre", got, numGrad(x, loss), 1e-5)
}
