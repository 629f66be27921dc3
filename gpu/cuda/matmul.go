//go:build cuda && !cudaemu

package cuda

import (
	"fmt"
	"math"

	"gorgonia.org/cu"

	"github.com/instructgo/instructgo/gpu"
)

// gemmEngine is the GEMM path: cuBLAS when it loaded, else the tiled kernel
// of kernels/gemm.cu.
type gemmEngine struct {
	blas     *cublasLib // nil: the kernel
	why      string     // why cuBLAS is not used (when blas is nil)
	tf32     bool       // cuBLAS math mode: TF32 tensor cores, else FP32 pedantic
	fallback bool       // route MatMul to the kernel although cuBLAS loaded
}

// openGEMM loads cuBLAS on b's stream in TF32 mode, or records why not.
func openGEMM(b *Backend) gemmEngine {
	l, err := loadCublas(b.stream)
	if err != nil {
		return gemmEngine{why: err.Error()}
	}
	if err := l.setTF32(true); err != nil {
		l.close()
		return gemmEngine{why: err.Error()}
	}
	return gemmEngine{blas: l, tf32: true}
}

func (g *gemmEngine) close() {
	g.blas.close()
	g.blas = nil
}

// describe names the active path, e.g. "cuBLAS 12.4.5 TF32".
func (g *gemmEngine) describe() string {
	switch {
	case g.blas == nil:
		return "tiled GEMM kernel, no cuBLAS"
	case g.fallback:
		return fmt.Sprintf("tiled GEMM kernel (cuBLAS %s loaded from %s, not used)", g.blas.versionString(), g.blas.path)
	case g.tf32:
		return fmt.Sprintf("cuBLAS %s TF32", g.blas.versionString())
	default:
		return fmt.Sprintf("cuBLAS %s FP32", g.blas.versionString())
	}
}

// GEMM describes the active matrix-multiplication path: which cuBLAS, from
// where, in which math mode, or why the fallback kernel runs.
func (b *Backend) GEMM() string {
	switch {
	case b.gemm.blas == nil:
		return b.gemm.describe() + ": " + b.gemm.why
	case !b.gemm.fallback:
		return b.gemm.describe() + " from " + b.gemm.blas.path
	}
	return b.gemm.describe()
}

// CuBLASLoaded reports whether cuBLAS is loaded.
func (b *Backend) CuBLASLoaded() bool { return b.gemm.blas != nil }

// SetTF32 selects cuBLAS's math mode: TF32 tensor cores (the default; inputs
// rounded to 10 mantissa bits, about 1e-3 relative error per product) or
// FP32 pedantic (IEEE single precision throughout). The fallback kernel is
// always FP32. It is an error without cuBLAS.
func (b *Backend) SetTF32(on bool) error {
	if b.gemm.blas == nil {
		return fmt.Errorf("cuda: no cuBLAS (%s)", b.gemm.why)
	}
	if err := b.gemm.blas.setTF32(on); err != nil {
		return err
	}
	b.gemm.tf32 = on
	return nil
}

// UseGEMMKernel routes MatMul to the tiled GEMM kernel even when cuBLAS is
// loaded (on = true), or back to cuBLAS (tests and benchmarks use it).
func (b *Backend) UseGEMMKernel(on bool) { b.gemm.fallback = on }

// matmulPlan is the validated geometry of a MatMul call.
type matmulPlan struct {
	batch, m, n, k   int
	lda, ldb         int   // row strides of A and B as stored
	strideA, strideB int64 // per-batch offsets in elements (0: shared)
}

// planMatMul validates the operands as the contract states (and as the cpu
// backend does) and works out the geometry. A batched product whose B is
// shared and whose A is not transposed is one tall product.
func (b *Backend) planMatMul(c, a, bm *gpu.Tensor, transA, transB bool) (matmulPlan, error) {
	var p matmulPlan
	if err := b.checker.F32("matmul", "C A B", c, a, bm); err != nil {
		return p, err
	}
	for _, x := range []struct {
		name string
		t    *gpu.Tensor
	}{{"C", c}, {"A", a}, {"B", bm}} {
		if r := x.t.Rank(); r != 2 && r != 3 {
			return p, fmt.Errorf("matmul: %s is %v, want rank 2 or 3", x.name, x.t)
		}
	}
	bad := func(why string) error {
		return fmt.Errorf("matmul: C %v = A %v (transA=%v) · B %v (transB=%v): %s", c, a, transA, bm, transB, why)
	}
	p.batch = 1
	if c.Rank() == 3 {
		p.batch = c.Dim(0)
	} else if a.Rank() == 3 || bm.Rank() == 3 {
		return p, bad("a rank-3 operand needs a rank-3 C")
	}
	if (a.Rank() == 3 && a.Dim(0) != p.batch) || (bm.Rank() == 3 && bm.Dim(0) != p.batch) {
		return p, bad("batch sizes differ")
	}
	m, k := a.Dim(-2), a.Dim(-1)
	if transA {
		m, k = k, m
	}
	kb, n := bm.Dim(-2), bm.Dim(-1)
	if transB {
		kb, n = n, kb
	}
	if k != kb {
		return p, bad(fmt.Sprintf("inner dimensions %d and %d differ", k, kb))
	}
	if c.Dim(-2) != m || c.Dim(-1) != n {
		return p, bad(fmt.Sprintf("C must be [%d,%d]", m, n))
	}
	if gpu.Overlap(c, a) || gpu.Overlap(c, bm) {
		return p, bad("C overlaps an input")
	}
	p.m, p.n, p.k = m, n, k
	p.lda, p.ldb = a.Dim(-1), bm.Dim(-1)
	if a.Rank() == 3 {
		p.strideA = int64(m) * int64(k)
	}
	if bm.Rank() == 3 {
		p.strideB = int64(k) * int64(n)
	}
	if p.batch > 1 && a.Rank() == 3 && bm.Rank() == 2 && !transA {
		// [batch·m, k]·B: the rows of all batch elements are contiguous.
		p.m *= p.batch
		p.batch = 1
		p.strideA = 0
	}
	for _, d := range []int{p.m, p.n, p.k, p.lda, p.ldb} {
		if d > math.MaxInt32 {
			return p, bad("a dimension exceeds 2³¹−1")
		}
	}
	return p, nil
}

// MatMul implements gpu.Backend through cuBLAS (TF32 tensor cores by
// default, see SetTF32) or the tiled GEMM kernel.
func (b *Backend) MatMul(c, a, bm *gpu.Tensor, transA, transB bool, alpha, beta float32) {
	if b.err != nil {
		return
	}
	p, err := b.planMatMul(c, a, bm, transA, transB)
	if b.fail(err) || p.m == 0 || p.n == 0 || p.batch == 0 {
		return
	}
	if b.gemm.blas != nil && !b.gemm.fallback && p.k > 0 {
		b.cublasMatMul(p, c, a, bm, transA, transB, alpha, beta)
		return
	}
	b.kernelMatMul(p, c, a, bm, transA, transB, alpha, beta)
}

// cublasMatMul runs the row-major product as the column-major one cuBLAS
// computes: a row-major X [r,c] is the column-major Xᵀ [c,r] with the same
// leading dimension, so C = op(A)·op(B) becomes Cᵀ = op(B)ᵀ·op(A)ᵀ, i.e.
// cuBLAS's C' (n×m, ldc n) = op'(B) · op'(A) with the operands swapped and
// each one's transpose flag kept.
func (b *Backend) cublasMatMul(p matmulPlan, c, a, bm *gpu.Tensor, transA, transB bool, alpha, beta float32) {
	opA, opB := cublasOpN, cublasOpN
	if transA {
		opA = cublasOpT
	}
	if transB {
		opB = cublasOpT
	}
	strideC := int64(p.m) * int64(p.n)
	err := b.gemm.blas.sgemm(opB, opA, p.n, p.m, p.k, alpha,
		b.ptr(bm), p.ldb, p.strideB,
		b.ptr(a), p.lda, p.strideA,
		beta, b.ptr(c), p.n, strideC, p.batch)
	if err != nil {
		b.failf("matmul C %v = A %v · B %v: %w", c, a, bm, err)
	}
}

// gemmMaxGridZ is the largest gridDim.z; bigger batches launch in parts.
// gemmMaxGridY bounds gridDim.y, the 64-row tiles of C.
const (
	gemmMaxGridZ = 65535
	gemmMaxGridY = 65535
)

// kernelMatMul launches gemm_fallback_{n,t}{n,t} (kernels/gemm.cu).
func (b *Backend) kernelMatMul(p matmulPlan, c, a, bm *gpu.Tensor, transA, transB bool, alpha, beta float32) {
	name := "gemm_fallback_" + map[bool]string{false: "n", true: "t"}[transA] + map[bool]string{false: "n", true: "t"}[transB]
	strideC := int64(p.m) * int64(p.n)
	if (p.m+63)/64 > gemmMaxGridY {
		b.failf("matmul C %v = A %v · B %v: %d rows exceed the GEMM kernel's grid (at most %d)", c, a, bm, p.m, gemmMaxGridY*64)
		return
	}
	pa, pb, pc := b.ptr(a), b.ptr(bm), b.ptr(c)
	for z0 := 0; z0 < p.batch; z0 += gemmMaxGridZ {
		nz := min(gemmMaxGridZ, p.batch-z0)
		off := func(stride int64) int64 { return int64(z0) * stride * 4 }
		b.launch(name,
			[3]int{(p.n + 63) / 64, (p.m + 63) / 64, nz}, [3]int{16, 16, 1}, 0,
			pc+cu.DevicePtr(off(strideC)), pa+cu.DevicePtr(off(p.strideA)), pb+cu.DevicePtr(off(p.strideB)),
			int32(p.m), int32(p.n), int32(p.k), int32(p.lda), int32(p.ldb), int32(p.n),
			p.strideA, p.strideB, strideC, alpha, beta)
	}
}
