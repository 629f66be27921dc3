//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Parity of the fused linear layers (ops_linear.go) against the cpu
// backend, float32 and bf16. The reference is the cpu backend's float32
// op on the inputs as cuda holds them (rounded to bf16 for bf16), its
// outputs rounded to bf16 for bf16: the contract's one rounding per
// output. The emulated build runs the product kernels and linear.cu's
// epilogues; a GPU run also runs cuBLAS (float32) and the cuBLASLt
// epilogues (bf16; N = 61 has no GELU epilogue there and takes the
// kernels).
//
// Tolerance of element (i, j), with S = Σ_p |a_ip·w_pj| (+ |bias_j|) from
// the inputs in float64: the product's, (K+4)·2⁻²³·S, as in
// matmul_bf16_parity_test.go (sums of K products in two orders, plus the
// bias add); GELU and its derivative multiply it by their slope (below
// 1.2) and add 2e-6 of the output's largest magnitude (the kernels' expf
// against Go's exp32, as in the GELU parity tests; cuBLASLt's tanh form is
// allowed 2⁻¹⁰ relative more, as TestCuBLASLtEpilogues allows it); a bf16
// output adds one bf16 ulp of the larger value (two float32 values that
// close may round to neighbouring bf16 values).

type linearCase struct {
	m, k, n int
	rank3   bool
	off     int
}

func (c linearCase) act(dims ...int) []int {
	if c.rank3 {
		return append([]int{2, c.m / 2}, dims...)
	}
	return append([]int{c.m}, dims...)
}

var linearCases = []linearCase{
	{m: 7, k: 5, n: 13},
	{m: 64, k: 72, n: 48, rank3: true},
	{m: 130, k: 40, n: 61, off: 1},
	{m: 136, k: 33, n: 264},
}

func TestLinearParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(1451)
	for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
		for _, c := range linearCases {
			name := fmt.Sprintf("%v M=%d K=%d N=%d rank3=%v off=%d", dt, c.m, c.k, c.n, c.rank3, c.off)
			in := func(vals []float32, shape ...int) (g, h *gpu.Tensor, used []float32) {
				if dt == gpu.BF16 {
					g, h = p.bf16In(c.off, vals, shape...)
					return g, h, roundBF16s(vals)
				}
				g, h = p.f32(c.off, vals, shape...)
				return g, h, vals
			}
			want := func(h *gpu.Tensor) []float32 {
				if dt == gpu.BF16 {
					return p.refOut(h)
				}
				return p.getH(h)
			}
			mn := c.m * c.n
			ltTanh := 0.0 // cuBLASLt's GELU epilogues: their tanh's accuracy
			if dt == gpu.BF16 && p.g.CuBLASLtLoaded() {
				ltTanh = 0x1p-10
			}
			ga, ha, av := in(randn(rng, c.m*c.k, 1), c.act(c.k)...)
			gw, hw, wv := in(randn(rng, c.k*c.n, 0.5), c.k, c.n)
			gb, hb, bv := in(randn(rng, c.n, 1), c.n)
			s := linearScale(c.m, c.k, c.n, av, wv, bv, false)
			tolP := make([]float64, mn)
			for i := range tolP {
				tolP[i] = float64(c.k+4) * 0x1p-23 * s[i]
			}

			gc, hc, _ := in(randn(rng, mn, 1), c.act(c.n)...)
			p.g.MatMulBias(gc, ga, gw, gb)
			p.h.MatMulBias(hc, ha, hw, hb)
			closeLinear(t, name+" bias", p.get(gc), want(hc), tolP, 0, 0, dt)

			gout, hout, _ := in(randn(rng, mn, 1), c.act(c.n)...)
			gpre, hpre, _ := in(randn(rng, mn, 1), c.act(c.n)...)
			p.g.MatMulBiasGELU(gout, gpre, ga, gw, gb)
			p.h.MatMulBiasGELU(hout, hpre, ha, hw, hb)
			closeLinear(t, name+" pre", p.get(gpre), want(hpre), tolP, 0, 0, dt)
			wantOut := want(hout)
			closeLinear(t, name+" gelu", p.get(gout), wantOut, tolP, 2e-6*maxAbs(wantOut), ltTanh, dt)

			// The backward: dout [M,K] by the weight of a layer from N to
			// K, wT [N,K], with the pre-activation just computed.
			gd, hd, dv := in(randn(rng, c.m*c.k, 1), c.act(c.k)...)
			gwT, hwT, wTv := in(randn(rng, c.n*c.k, 0.5), c.n, c.k)
			sd := linearScale(c.m, c.k, c.n, dv, wTv, nil, true)
			tolD := make([]float64, mn)
			for i := range tolD {
				tolD[i] = 1.2 * float64(c.k+4) * 0x1p-23 * sd[i]
			}
			gdp, hdp, _ := in(randn(rng, mn, 1), c.act(c.n)...)
			p.g.MatMulDGELU(gdp, gd, gwT, gpre)
			// The cpu reads the pre-activation as cuda stored it.
			p.h.MatMulDGELU(hdp, hd, hwT, p.refF32(want(hpre), c.act(c.n)...))
			wantD := want(hdp)
			closeLinear(t, name+" dgelu", p.get(gdp), wantD, tolD, 2e-6*maxAbs(wantD), ltTanh, dt)
			p.noErr()
		}
	}
}

// linearScale is S of each output element: Σ_p |a_ip·w_pj| (+ |bias_j|),
// w [K,N], or [N,K] read transposed.
func linearScale(m, k, n int, a, w, bias []float32, transW bool) []float64 {
	s := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var v float64
			for q := 0; q < k; q++ {
				x := w[q*n+j]
				if transW {
					x = w[j*k+q]
				}
				v += math.Abs(float64(a[i*k+q]) * float64(x))
			}
			if bias != nil {
				v += math.Abs(float64(bias[j]))
			}
			s[i*n+j] = v
		}
	}
	return s
}

// closeLinear fails unless |got[i] − want[i]| ≤ tol[i] + atol +
// rel·|want[i]|, plus one
// bf16 ulp of the larger magnitude for a bf16 output.
func closeLinear(t *testing.T, what string, got, want []float32, tol []float64, atol, rel float64, dt gpu.DType) {
	t.Helper()
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		bound := tol[i] + atol + rel*math.Abs(w)
		if dt == gpu.BF16 {
			bound += bf16ULP(float32(math.Max(math.Abs(g), math.Abs(w))))
		}
		if !(math.Abs(g-w) <= bound) {
			t.Errorf("%s: element %d is %v, cpu %v (bound %.3g)", what, i, got[i], want[i], bound)
			return
		}
	}
}
