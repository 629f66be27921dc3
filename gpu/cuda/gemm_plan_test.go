//go:build cuda

package cuda

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Tests of gemm_plan.go's decisions, which need no GPU (they run in the
// emulated build too): the path MatMul takes, the kernel it launches, and
// the cuBLASLt plan, checked by computing what cuBLASLt would compute from
// the plan (column-major, with its epilogue vectors) and comparing with the
// row-major product on integer data, exactly.

// planStorage is a storage for tensors that only carry shapes.
type planStorage struct {
	n int
	d gpu.DType
}

func (s *planStorage) Elems() int       { return s.n }
func (s *planStorage) DType() gpu.DType { return s.d }

// planTensor is a tensor of dtype d and shape, its own storage.
func planTensor(t *testing.T, d gpu.DType, shape ...int) *gpu.Tensor {
	t.Helper()
	x, err := gpu.NewTensor(&planStorage{numel(shape), d}, 0, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

var planChecker = gpu.Checker{Backend: "test"}

func TestGEMMPathFor(t *testing.T) {
	for _, c := range []struct {
		in              gpu.DType
		blas, lt, force bool
		k               int
		want            gemmPath
	}{
		{gpu.Float32, true, true, false, 8, pathCublas},
		{gpu.Float32, false, true, false, 8, pathKernel},
		{gpu.BF16, true, true, false, 8, pathCublasLt},
		{gpu.BF16, true, false, false, 8, pathKernel},
		{gpu.BF16, false, true, false, 8, pathCublasLt},
		{gpu.BF16, true, true, true, 8, pathKernel},
		{gpu.Float32, true, true, true, 8, pathKernel},
		{gpu.BF16, true, true, false, 0, pathKernel},
		{gpu.Float32, true, true, false, 0, pathKernel},
	} {
		if got := gemmPathFor(c.in, c.blas, c.lt, c.force, c.k); got != c.want {
			t.Errorf("gemmPathFor(%v, cublas=%v, lt=%v, force=%v, k=%d) = %v, want %v", c.in, c.blas, c.lt, c.force, c.k, got, c.want)
		}
	}
}

func TestGEMMKernelFor(t *testing.T) {
	d := func(in, out gpu.DType, lda, ldb, sa, sb int) gpu.MatMulDims {
		return gpu.MatMulDims{Batch: 2, M: 16, N: 16, K: 16, LDA: lda, LDB: ldb, StrideA: sa, StrideB: sb, In: in, Out: out}
	}
	for _, c := range []struct {
		p              gpu.MatMulDims
		transA, transB bool
		pa, pb         uint64
		want           string
	}{
		{d(gpu.Float32, gpu.Float32, 16, 16, 256, 256), false, true, 256, 512, "gemm_fallback_nt"},
		{d(gpu.BF16, gpu.BF16, 16, 16, 256, 256), false, false, 256, 512, "gemm_bf16_nn_cbf16"},
		{d(gpu.BF16, gpu.Float32, 16, 16, 256, 0), true, false, 256, 512, "gemm_bf16_tn_cf32"},
		{d(gpu.BF16, gpu.Float32, 16, 16, 256, 256), true, true, 258, 512, "gemm_bf16_tt_cf32_ua"},     // A misaligned
		{d(gpu.BF16, gpu.BF16, 16, 16, 256, 256), false, true, 256, 520, "gemm_bf16_nt_cbf16_ua"},      // B misaligned
		{d(gpu.BF16, gpu.BF16, 12, 16, 256, 256), false, false, 256, 512, "gemm_bf16_nn_cbf16_ua"},     // row stride
		{d(gpu.BF16, gpu.BF16, 16, 16, 256, 252), false, false, 256, 512, "gemm_bf16_nn_cbf16_ua"},     // batch stride
		{d(gpu.BF16, gpu.Float32, 16, 16, 256, 256), false, false, 256, 512 + 16, "gemm_bf16_nn_cf32"}, // 16 B is enough
	} {
		k := gemmKernelFor(c.p, c.transA, c.transB, c.pa, c.pb)
		if k.name != c.want {
			t.Errorf("%+v transA=%v transB=%v at %d, %d: %s, want %s", c.p, c.transA, c.transB, c.pa, c.pb, k.name, c.want)
		}
		wantIn, wantOut := c.p.In.Size(), c.p.Out.Size()
		if k.in != wantIn || k.out != wantOut {
			t.Errorf("%s: element sizes %d, %d, want %d, %d", k.name, k.in, k.out, wantIn, wantOut)
		}
	}
}

// ltEval is what cuBLASLt computes for plan pl from the buffers of its A
// (our B) and its B (our A), by the column-major definitions: D[z] =
// op(A[z])·op(B[z]) stored with D's leading dimension and batch stride,
// and the bias gradients BGRADA (Σ_k op(A)[r,k] over D's rows) and BGRADB
// (Σ_k op(B)[k,c] over D's columns) of batch element 0.
func ltEval(pl ltPlan, ltA, ltB []float64) (d, gradA, gradB []float64) {
	at := func(l ltLayout, buf []float64, z, r, c int) float64 {
		return buf[int64(z)*l.stride+int64(c)*int64(l.ld)+int64(r)]
	}
	op := func(l ltLayout, trans bool, buf []float64, z, r, c int) float64 {
		if trans {
			return at(l, buf, z, c, r)
		}
		return at(l, buf, z, r, c)
	}
	k := pl.a.cols
	if pl.transA {
		k = pl.a.rows
	}
	rows, cols := pl.c.rows, pl.c.cols
	d = make([]float64, int64(pl.batch-1)*pl.c.stride+int64(cols)*int64(pl.c.ld))
	for z := 0; z < pl.batch; z++ {
		for r := 0; r < rows; r++ {
			for c := 0; c < cols; c++ {
				s := 0.0
				for q := 0; q < k; q++ {
					s += op(pl.a, pl.transA, ltA, z, r, q) * op(pl.b, pl.transB, ltB, z, q, c)
				}
				d[int64(z)*pl.c.stride+int64(c)*int64(pl.c.ld)+int64(r)] = s
			}
		}
	}
	gradA, gradB = make([]float64, rows), make([]float64, cols)
	for q := 0; q < k; q++ {
		for r := 0; r < rows; r++ {
			gradA[r] += op(pl.a, pl.transA, ltA, 0, r, q)
		}
		for c := 0; c < cols; c++ {
			gradB[c] += op(pl.b, pl.transB, ltB, 0, q, c)
		}
	}
	return d, gradA, gradB
}

// TestLtPlanComputesTheRowMajorProduct: for every transpose pair, ranks 2
// and 3 and shared operands, the column-major product cuBLASLt computes
// from the plan, on our buffers as they are, is the row-major C =
// op(A)·op(B), and its BGRADA / BGRADB vectors are our bias gradients of
// op(B) / op(A): small integers, so every sum is exact.
func TestLtPlanComputesTheRowMajorProduct(t *testing.T) {
	rng := rand.New(rand.NewPCG(14, 7))
	ints := func(n int) []float64 {
		v := make([]float64, n)
		for i := range v {
			v[i] = float64(rng.IntN(7) - 3)
		}
		return v
	}
	dims := func(rows, cols int, trans bool) []int {
		if trans {
			return []int{cols, rows}
		}
		return []int{rows, cols}
	}
	for _, s := range []struct{ m, n, k int }{{1, 1, 1}, {3, 5, 4}, {6, 2, 7}} {
		for tr := 0; tr < 4; tr++ {
			ta, tb := tr&1 == 1, tr&2 == 2
			a2, b2 := dims(s.m, s.k, ta), dims(s.k, s.n, tb)
			a3, b3 := append([]int{2}, a2...), append([]int{2}, b2...)
			c2, c3 := []int{s.m, s.n}, []int{2, s.m, s.n}
			for _, sh := range [][3][]int{{a2, b2, c2}, {a3, b3, c3}, {a3, b2, c3}, {a2, b3, c3}} {
				for _, out := range []gpu.DType{gpu.BF16, gpu.Float32} {
					at, bt, ct := planTensor(t, gpu.BF16, sh[0]...), planTensor(t, gpu.BF16, sh[1]...), planTensor(t, out, sh[2]...)
					p, err := planChecker.MatMul(ct, at, bt, ta, tb)
					if err != nil {
						t.Fatal(err)
					}
					pl, err := newLtPlan(p, ta, tb, epiNone)
					if err != nil {
						t.Fatal(err)
					}
					if pl.c.dtype != ltDataType(out) || pl.a.dtype != cudaR16BF || pl.b.dtype != cudaR16BF {
						t.Errorf("%v: dtypes %d, %d, %d", sh, pl.a.dtype, pl.b.dtype, pl.c.dtype)
					}
					av, bv := ints(numel(sh[0])), ints(numel(sh[1]))
					d, gradA, gradB := ltEval(pl, bv, av) // cuBLASLt's A is our B
					want, biasOfB, biasOfA := rowMajorProduct(sh, ta, tb, av, bv)
					for i := range want {
						if d[i] != want[i] {
							t.Fatalf("C%v = A%v(T=%v)·B%v(T=%v): element %d is %v from the plan, want %v",
								sh[2], sh[0], ta, sh[1], tb, i, d[i], want[i])
						}
					}
					if len(d) != len(want) {
						t.Fatalf("%v: plan's D has %d elements, C %d", sh, len(d), len(want))
					}
					if p.Batch > 1 {
						continue
					}
					// One product (perhaps the tall form): the vector
					// cuBLASLt writes for each bias-gradient epilogue.
					written := func(epi gemmEpilogue) []float64 {
						pl, err := newLtPlan(p, ta, tb, epi)
						if err != nil {
							t.Fatal(err)
						}
						switch pl.epilogue {
						case ltEpilogueBGradA:
							return gradA
						case ltEpilogueBGradB:
							return gradB
						}
						t.Fatalf("%v: epilogue %d is not a bias gradient", epi, pl.epilogue)
						return nil
					}
					sameFloats(t, "bias gradient of op(B)", written(epiBiasGradB), biasOfB)
					sameFloats(t, "bias gradient of op(A)", written(epiBiasGradA), biasOfA)
				}
			}
		}
	}
}

// rowMajorProduct is C = op(A)·op(B) for the shapes sh (A, B, C as passed
// to MatMul), Σ_k op(B)[k,j] of batch element 0, and Σ_k op(A)[i,k] of
// every batch element, one after another (the rows of the tall form).
func rowMajorProduct(sh [3][]int, ta, tb bool, av, bv []float64) (c, biasOfB, biasOfA []float64) {
	cs := sh[2]
	batch, m, n := 1, cs[len(cs)-2], cs[len(cs)-1]
	if len(cs) == 3 {
		batch = cs[0]
	}
	k := sh[0][len(sh[0])-1]
	if ta {
		k = sh[0][len(sh[0])-2]
	}
	opA := func(z, i, q int) float64 {
		base := 0
		if len(sh[0]) == 3 {
			base = z * m * k
		}
		if ta {
			return av[base+q*m+i]
		}
		return av[base+i*k+q]
	}
	opB := func(z, q, j int) float64 {
		base := 0
		if len(sh[1]) == 3 {
			base = z * k * n
		}
		if tb {
			return bv[base+j*k+q]
		}
		return bv[base+q*n+j]
	}
	c = make([]float64, batch*m*n)
	for z := 0; z < batch; z++ {
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				for q := 0; q < k; q++ {
					c[(z*m+i)*n+j] += opA(z, i, q) * opB(z, q, j)
				}
			}
		}
	}
	biasOfB, biasOfA = make([]float64, n), make([]float64, batch*m)
	for q := 0; q < k; q++ {
		for j := 0; j < n; j++ {
			biasOfB[j] += opB(0, q, j)
		}
		for z := 0; z < batch; z++ {
			for i := 0; i < m; i++ {
				biasOfA[z*m+i] += opA(z, i, q)
			}
		}
	}
	return c, biasOfB, biasOfA
}

func sameFloats(t *testing.T, what string, got, want []float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d elements, want %d", what, len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: element %d is %v, want %v", what, i, got[i], want[i])
		}
	}
}

// TestLtPlanEpilogues: each epilogue maps to its cuBLASLt value, with the
// aux matrix's leading dimension and batch stride for GELU, and the
// shapes cuBLASLt does not take are refused.
func TestLtPlanEpilogues(t *testing.T) {
	geom := func(batch, m, n, k int, out gpu.DType) gpu.MatMulDims {
		return gpu.MatMulDims{Batch: batch, M: m, N: n, K: k, LDA: k, LDB: n, In: gpu.BF16, Out: out,
			StrideA: map[bool]int{true: m * k}[batch > 1], StrideB: map[bool]int{true: k * n}[batch > 1]}
	}
	for _, c := range []struct {
		p        gpu.MatMulDims
		epi      gemmEpilogue
		want     int
		auxLD    int64
		auxSt    int64
		biasF32  bool
		errMatch string
	}{
		{geom(1, 4, 16, 8, gpu.BF16), epiNone, ltEpilogueDefault, 0, 0, false, ""},
		{geom(1, 4, 16, 8, gpu.BF16), epiBias, ltEpilogueBias, 0, 0, false, ""},
		{geom(1, 4, 16, 8, gpu.BF16), epiGELU, ltEpilogueGeluAux, 16, 0, false, ""},
		{geom(3, 4, 16, 8, gpu.BF16), epiBiasGELU, ltEpilogueGeluAuxB, 16, 64, false, ""},
		{geom(1, 4, 16, 8, gpu.BF16), epiDGELU, ltEpilogueDGelu, 16, 0, false, ""},
		{geom(1, 4, 16, 8, gpu.Float32), epiBiasGradB, ltEpilogueBGradA, 0, 0, false, ""},
		{geom(1, 4, 16, 8, gpu.BF16), epiBiasGradB, ltEpilogueBGradA, 0, 0, true, ""},
		{geom(1, 4, 16, 8, gpu.Float32), epiBiasGradA, ltEpilogueBGradB, 0, 0, false, ""},
		{geom(1, 4, 12, 8, gpu.BF16), epiGELU, 0, 0, 0, false, "multiple of 8"},
		{geom(1, 4, 12, 8, gpu.BF16), epiDGELU, 0, 0, 0, false, "multiple of 8"},
		{geom(2, 4, 16, 8, gpu.Float32), epiBiasGradB, 0, 0, 0, false, "batch"},
		{gpu.MatMulDims{Batch: 1, M: 4, N: 16, K: 8, LDA: 8, LDB: 16, In: gpu.Float32, Out: gpu.Float32}, epiNone, 0, 0, 0, false, "bf16"},
	} {
		pl, err := newLtPlan(c.p, false, false, c.epi)
		if c.errMatch != "" {
			if err == nil || !strings.Contains(err.Error(), c.errMatch) {
				t.Errorf("%v %+v: error %v, want one about %q", c.epi, c.p, err, c.errMatch)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%v %+v: %v", c.epi, c.p, err)
		}
		if pl.epilogue != c.want || pl.auxLD != c.auxLD || pl.auxStride != c.auxSt || pl.biasF32 != c.biasF32 {
			t.Errorf("%v %+v: epilogue %d aux ld %d stride %d bias f32 %v, want %d %d %d %v",
				c.epi, c.p, pl.epilogue, pl.auxLD, pl.auxStride, pl.biasF32, c.want, c.auxLD, c.auxSt, c.biasF32)
		}
	}
}

// TestLtKey: the heuristic cache tells apart what the algorithm choice
// depends on, alignments included.
func TestLtKey(t *testing.T) {
	p := gpu.MatMulDims{Batch: 1, M: 64, N: 64, K: 64, LDA: 64, LDB: 64, In: gpu.BF16, Out: gpu.BF16}
	base := newLtKey(p, false, true, epiNone, 256, 512, 1024, 0)
	if base != newLtKey(p, false, true, epiNone, 4096, 256, 768, 0) {
		t.Error("keys of equally aligned (≥ 256 B) operands differ")
	}
	q := p
	q.Out = gpu.Float32
	for what, k := range map[string]ltKey{
		"transB":      newLtKey(p, false, false, epiNone, 256, 512, 1024, 0),
		"epilogue":    newLtKey(p, false, true, epiBias, 256, 512, 1024, 0),
		"C dtype":     newLtKey(q, false, true, epiNone, 256, 512, 1024, 0),
		"A alignment": newLtKey(p, false, true, epiNone, 258, 512, 1024, 0),
		"C alignment": newLtKey(p, false, true, epiNone, 256, 512, 1040, 0),
		"bias align":  newLtKey(p, false, true, epiNone, 256, 512, 1024, 8),
	} {
		if k == base {
			t.Errorf("a different %s gives the same key", what)
		}
	}
	for addr, want := range map[uint64]uint8{0: 8, 1: 0, 2: 1, 48: 4, 256: 8, 1 << 20: 8, 1<<20 + 8: 3} {
		if got := alignLog2(addr); got != want {
			t.Errorf("alignLog2(%d) = %d, want %d", addr, got, want)
		}
	}
}

// TestCheckEpilogueArgs: the extra operands of each epilogue are checked
// for presence, length, dtype and overlap with C, and the GELU epilogues
// refuse beta ≠ 0.
func TestCheckEpilogueArgs(t *testing.T) {
	p := gpu.MatMulDims{Batch: 1, M: 4, N: 16, K: 8, LDA: 8, LDB: 16, In: gpu.BF16, Out: gpu.BF16}
	c := planTensor(t, gpu.BF16, 4, 16)
	bias := planTensor(t, gpu.BF16, 16)
	aux := planTensor(t, gpu.BF16, 4, 16)
	dbN, dbM := planTensor(t, gpu.Float32, 16), planTensor(t, gpu.Float32, 4)
	shared := planTensor(t, gpu.BF16, 128)
	for _, x := range []struct {
		epi       gemmEpilogue
		beta      float32
		c         *gpu.Tensor
		bias, aux *gpu.Tensor
		ok        bool
	}{
		{epiNone, 1, c, nil, nil, true},
		{epiNone, 1, c, bias, nil, false},
		{epiBias, 1, c, bias, nil, true},
		{epiBias, 1, c, dbN, nil, false}, // dtype
		{epiBias, 1, c, nil, nil, false},
		{epiGELU, 0, c, nil, aux, true},
		{epiGELU, 1, c, nil, aux, false}, // beta
		{epiBiasGELU, 0, c, bias, aux, true},
		{epiBiasGELU, 0, c, bias, nil, false},
		{epiDGELU, 0, c, nil, aux, true},
		{epiDGELU, 0, c, nil, planTensor(t, gpu.BF16, 4, 15), false},
		{epiBiasGradB, 1, c, dbN, nil, true},
		{epiBiasGradB, 1, c, dbM, nil, false},
		{epiBiasGradA, 1, c, dbM, nil, true},
		{epiBiasGradA, 1, c, bias, nil, false},
		{epiGELU, 0, shared.MustView(0, 4, 16), nil, shared.MustView(60, 4, 16), false}, // overlap
	} {
		err := checkEpilogueArgs(p, x.epi, x.beta, x.c, x.bias, x.aux)
		if (err == nil) != x.ok {
			t.Errorf("%v beta=%g bias=%v aux=%v: error %v, want ok=%v", x.epi, x.beta, x.bias, x.aux, err, x.ok)
		}
	}
}
