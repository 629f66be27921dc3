//go:build cuda && !cudaemu

package cuda

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// The cuBLASLt path on a GPU: the fused epilogues against float64
// references, and the heuristic cache. They skip where cuBLASLt did not
// load; nothing here runs in the emulator, so until a GPU run passes them
// the cuBLASLt path is untested. (Plain bf16 products through cuBLASLt are
// in TestMatMulBF16Parity.)
//
// Tolerances: the product part as in matmul_bf16_parity_test.go, (K+4)·2⁻²³
// times Σ|a·b| (+|bias|), plus one bf16 ulp of the result for a bf16
// output; the GELU forms add 2⁻¹⁰ relative for cuBLASLt's tanh, whose
// accuracy the documentation does not state (the approximate tanh of the
// hardware is good to about 2⁻¹¹), and GELU's slope (below 1.2) times the
// product's bound.

// geluRef is GPT-2's tanh GELU and its derivative, in float64.
func geluRef(x float64) (y, dy float64) {
	s := math.Sqrt(2 / math.Pi)
	u := s * (x + 0.044715*x*x*x)
	th := math.Tanh(u)
	return 0.5 * x * (1 + th), 0.5*(1+th) + 0.5*x*(1-th*th)*s*(1+3*0.044715*x*x)
}

func TestCuBLASLtEpilogues(t *testing.T) {
	g := openTestBackend(t)
	if !g.CuBLASLtLoaded() {
		t.Skipf("cuBLASLt not loaded: %s", g.GEMM())
	}
	t.Logf("%s; GEMM: %s", g.Name(), g.GEMM())
	rng := newRNG(1401)
	const m, n, k = 96, 64, 80
	for _, epi := range []gemmEpilogue{epiBias, epiGELU, epiBiasGELU, epiDGELU, epiBiasGradB, epiBiasGradA} {
		for _, transB := range []bool{false, true} {
			name := fmt.Sprintf("%v transB=%v", epi, transB)
			av, bv := randVals(rng, m*k), randVals(rng, k*n)
			ar, br := roundBF16s(av), roundBF16s(bv)
			bShape := []int{k, n}
			if transB {
				bShape = []int{n, k}
			}
			a, bm := bf16Upload(t, g, 0, av, m, k), bf16Upload(t, g, 0, bv, bShape...)
			outDT := gpu.BF16
			if epi == epiBiasGradA || epi == epiBiasGradB {
				outDT = gpu.Float32
			}
			c, err := g.Alloc(outDT, m, n)
			if err != nil {
				t.Fatal(err)
			}
			var bias, aux *gpu.Tensor
			var biasV, auxV []float32
			switch epi {
			case epiBias, epiBiasGELU:
				biasV = roundBF16s(randVals(rng, n))
				bias = bf16Upload(t, g, 0, biasV, n)
			case epiBiasGradB:
				bias, _ = g.Alloc(gpu.Float32, n)
			case epiBiasGradA:
				bias, _ = g.Alloc(gpu.Float32, m)
			}
			if epi == epiGELU || epi == epiBiasGELU || epi == epiDGELU {
				auxV = make([]float32, m*n)
				if epi == epiDGELU { // the forward's pre-activation, an input
					auxV = roundBF16s(randn(rng, m*n, 1.5))
				}
				aux = bf16Upload(t, g, 0, auxV, m, n)
			}
			if err := g.matMulFused(c, a, bm, false, transB, 1, 0, epi, bias, aux); err != nil {
				t.Logf("%s: not fused here: %v", name, err)
				continue
			}
			got := download(t, g, c)
			var gotAux, gotBias []float32
			if aux != nil {
				gotAux = download(t, g, aux)
			}
			if bias != nil {
				gotBias = download(t, g, bias)
			}

			opB := func(q, j int) float64 {
				if transB {
					return float64(br[j*k+q])
				}
				return float64(br[q*n+j])
			}
			bad := 0
			check := func(what string, idx int, gotV float32, want, tol float64) {
				if d := math.Abs(float64(gotV) - want); !(d <= tol) && bad < 5 {
					bad++
					t.Errorf("%s: %s[%d] = %v, want %v ± %.3g", name, what, idx, gotV, want, tol)
				}
			}
			for i := 0; i < m; i++ {
				for j := 0; j < n; j++ {
					pre, s := 0.0, 0.0
					for q := 0; q < k; q++ {
						x := float64(ar[i*k+q]) * opB(q, j)
						pre += x
						s += math.Abs(x)
					}
					if biasV != nil {
						pre += float64(biasV[j])
						s += math.Abs(float64(biasV[j]))
					}
					tol := float64(k+4) * 0x1p-23 * s
					idx := i*n + j
					ulp := func(v float64) float64 { return bf16ULP(float32(math.Abs(v))) }
					switch epi {
					case epiBias:
						check("D", idx, got[idx], pre, tol+ulp(pre))
					case epiGELU, epiBiasGELU:
						y, _ := geluRef(pre)
						check("aux", idx, gotAux[idx], pre, tol+ulp(pre))
						check("D", idx, got[idx], y, 1.2*tol+0x1p-10*math.Abs(y)+ulp(y))
					case epiDGELU:
						_, dy := geluRef(float64(auxV[idx]))
						want := pre * dy
						check("D", idx, got[idx], want, 1.2*tol+0x1p-10*math.Abs(want)+ulp(want))
					case epiBiasGradA, epiBiasGradB:
						check("D", idx, got[idx], pre, tol)
					}
				}
			}
			switch epi {
			case epiBiasGradB:
				for j := 0; j < n; j++ {
					sum, s := 0.0, 0.0
					for q := 0; q < k; q++ {
						sum += opB(q, j)
						s += math.Abs(opB(q, j))
					}
					check("dbias", j, gotBias[j], sum, float64(k+2)*0x1p-23*s)
				}
			case epiBiasGradA:
				for i := 0; i < m; i++ {
					sum, s := 0.0, 0.0
					for q := 0; q < k; q++ {
						sum += float64(ar[i*k+q])
						s += math.Abs(float64(ar[i*k+q]))
					}
					check("dbias", i, gotBias[i], sum, float64(k+2)*0x1p-23*s)
				}
			}
			if err := g.Err(); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
		}
	}
}

// TestCuBLASLtPlanCache: a shape is planned once, another alignment or
// shape gets a plan of its own, and the workspace is allocated once.
func TestCuBLASLtPlanCache(t *testing.T) {
	g := openTestBackend(t)
	if !g.CuBLASLtLoaded() {
		t.Skipf("cuBLASLt not loaded: %s", g.GEMM())
	}
	rng := newRNG(1402)
	mk := func(off int, shape ...int) *gpu.Tensor {
		return bf16Upload(t, g, off, randVals(rng, numel(shape)), shape...)
	}
	a, bm, c := mk(0, 64, 32), mk(0, 32, 48), mk(0, 64, 48)
	lt := g.gemm.lt
	before := len(lt.plans)
	g.MatMul(c, a, bm, false, false, 1, 0)
	g.MatMul(c, a, bm, false, false, 1, 0)
	ws := g.gemm.ltWS
	if len(lt.plans) != before+1 || ws == nil {
		t.Fatalf("plans %d → %d, workspace %v: want one new plan and a workspace", before, len(lt.plans), ws)
	}
	g.MatMul(c, mk(1, 64, 32), bm, false, false, 1, 0) // A at 2 bytes past 256: another alignment
	g.MatMul(mk(0, 32, 48), mk(0, 32, 32), bm, false, false, 1, 0)
	if len(lt.plans) != before+3 || g.gemm.ltWS != ws {
		t.Fatalf("plans %d → %d (want 3 new), workspace reallocated: %v", before, len(lt.plans), g.gemm.ltWS != ws)
	}
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
}
