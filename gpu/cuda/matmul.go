//go:build cuda && !cudaemu

package cuda

import (
	"fmt"

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

// blasMatMul runs the product through cuBLAS (TF32 tensor cores by
// default, see SetTF32) and reports true, or reports false when MatMul must
// take the tiled GEMM kernel: no cuBLAS, UseGEMMKernel, or an empty inner
// dimension.
func (b *Backend) blasMatMul(p gpu.MatMulDims, c, a, bm *gpu.Tensor, transA, transB bool, alpha, beta float32) bool {
	if b.gemm.blas == nil || b.gemm.fallback || p.K == 0 {
		return false
	}
	b.cublasMatMul(p, c, a, bm, transA, transB, alpha, beta)
	return true
}

// cublasMatMul runs the row-major product as the column-major one cuBLAS
// computes: a row-major X [r,c] is the column-major Xᵀ [c,r] with the same
// leading dimension, so C = op(A)·op(B) becomes Cᵀ = op(B)ᵀ·op(A)ᵀ, i.e.
// cuBLAS's C' (n×m, ldc n) = op'(B) · op'(A) with the operands swapped and
// each one's transpose flag kept.
func (b *Backend) cublasMatMul(p gpu.MatMulDims, c, a, bm *gpu.Tensor, transA, transB bool, alpha, beta float32) {
	opA, opB := cublasOpN, cublasOpN
	if transA {
		opA = cublasOpT
	}
	if transB {
		opB = cublasOpT
	}
	strideC := int64(p.M) * int64(p.N)
	err := b.gemm.blas.sgemm(opB, opA, p.N, p.M, p.K, alpha,
		b.ptr(bm), p.LDB, int64(p.StrideB),
		b.ptr(a), p.LDA, int64(p.StrideA),
		beta, b.ptr(c), p.N, strideC, p.Batch)
	if err != nil {
		b.failf("matmul C %v = A %v · B %v: %w", c, a, bm, err)
	}
}
