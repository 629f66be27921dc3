//go:build cuda && !cudaemu

package cuda

import (
	"errors"
	"fmt"
	"strings"

	"github.com/instructgo/instructgo/gpu"
)

// gemmEngine is the GEMM paths of the GPU build: cuBLAS for float32
// products, cuBLASLt for bf16 ones, each when it loaded, else our kernels
// (kernels/gemm.cu, kernels/gemm_bf16.cu). gemmPathFor decides.
type gemmEngine struct {
	blas     *cublasLib   // nil: no cuBLAS
	why      string       // why cuBLAS is not used (when blas is nil)
	lt       *cublasLtLib // nil: no cuBLASLt
	whyLt    string       // why cuBLASLt is not used (when lt is nil)
	ltWS     *gpu.Tensor  // cuBLASLt's workspace, allocated at its first call
	tf32     bool         // cuBLAS math mode: TF32 tensor cores, else full FP32
	fallback bool         // route MatMul to our kernels although the libraries loaded
}

// openGEMM loads cuBLAS on b's stream in full FP32 mode (the fp32
// precision mode's math; SetTF32 switches it) and cuBLASLt of the same
// CUDA version, or records why not.
func openGEMM(b *Backend) gemmEngine {
	var g gemmEngine
	l, err := loadCublas(b.stream)
	if err == nil {
		if err = l.setTF32(false); err != nil {
			l.close()
			l = nil
		}
	}
	if err != nil {
		g.why = err.Error()
	}
	g.blas = l
	path, major := "", 0
	if l != nil {
		path, major = l.path, l.version/10000
	}
	if g.lt, err = loadCublasLt(path, major); err != nil {
		g.whyLt = err.Error()
	}
	return g
}

func (g *gemmEngine) close() {
	g.blas.close()
	g.blas = nil
	g.lt.close()
	g.lt = nil
}

// describe names the active paths, e.g. "cuBLAS 12.4.5 FP32, cuBLASLt
// 12.4.5 bf16".
func (g *gemmEngine) describe() string {
	if g.fallback {
		return "GEMM kernels (cuBLAS not used)"
	}
	var parts []string
	switch {
	case g.blas == nil:
		parts = append(parts, "fp32 GEMM kernel, no cuBLAS")
	case g.tf32:
		parts = append(parts, fmt.Sprintf("cuBLAS %s TF32", g.blas.versionString()))
	default:
		parts = append(parts, fmt.Sprintf("cuBLAS %s FP32", g.blas.versionString()))
	}
	if g.lt == nil {
		parts = append(parts, "bf16 tensor-core GEMM kernel, no cuBLASLt")
	} else {
		parts = append(parts, fmt.Sprintf("cuBLASLt %s bf16", g.lt.versionString()))
	}
	return strings.Join(parts, ", ")
}

// GEMM describes the active matrix-multiplication paths: which cuBLAS and
// cuBLASLt, from where, in which math mode, or why our kernels run.
func (b *Backend) GEMM() string {
	g := &b.gemm
	s := g.describe()
	if g.blas == nil {
		s += "; cuBLAS: " + g.why
	} else {
		s += "; cuBLAS from " + g.blas.path
	}
	if g.lt == nil {
		s += "; cuBLASLt: " + g.whyLt
	} else {
		s += "; cuBLASLt from " + g.lt.path
	}
	return s
}

// CuBLASLoaded reports whether cuBLAS is loaded.
func (b *Backend) CuBLASLoaded() bool { return b.gemm.blas != nil }

// CuBLASLtLoaded reports whether cuBLASLt is loaded (bf16 products use it).
func (b *Backend) CuBLASLtLoaded() bool { return b.gemm.lt != nil }

// SetTF32 selects cuBLAS's math mode for float32 products: TF32 tensor
// cores (on: the tf32 precision mode; inputs rounded to 10 mantissa bits,
// about 1e-3 relative error per product) or full FP32 (off, the default:
// cuBLAS's default math, IEEE single-precision products and sums, which
// uses TF32 only when asked). The fallback kernel is always FP32. It is an
// error without cuBLAS.
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

// UseGEMMKernel routes MatMul to our GEMM kernels even when cuBLAS and
// cuBLASLt are loaded (on = true), or back to them (tests and benchmarks
// use it).
func (b *Backend) UseGEMMKernel(on bool) { b.gemm.fallback = on }

// blasMatMul runs the product through cuBLAS or cuBLASLt and reports true,
// or reports false when MatMul must take our kernel (gemmPathFor, or no
// cuBLASLt plan for it).
func (b *Backend) blasMatMul(p gpu.MatMulDims, c, a, bm *gpu.Tensor, transA, transB bool, alpha, beta float32) bool {
	g := &b.gemm
	switch gemmPathFor(p.In, g.blas != nil, g.lt != nil, g.fallback, p.K) {
	case pathCublas:
		b.cublasMatMul(p, c, a, bm, transA, transB, alpha, beta)
		return true
	case pathCublasLt:
		// Without a plan nothing was queued: the kernel runs it.
		err := b.ltMatMul(p, c, a, bm, transA, transB, alpha, beta, epiNone, nil, nil)
		return !errors.Is(err, errNoLtPlan)
	}
	return false
}

// ltLinear runs a fused linear layer (ops_linear.go) as one cuBLASLt call
// with the epilogue epi and reports true, or reports false, having queued
// nothing, when the product does not take cuBLASLt (gemmPathFor: float32,
// no library, the kernels forced) or cuBLASLt has no plan for it (a GELU
// epilogue with N not a multiple of 8, no algorithm): the caller then runs
// its product and epilogue kernel. The checks of matMulFused were done by
// the caller's Checker method.
func (b *Backend) ltLinear(p gpu.MatMulDims, c, a, w *gpu.Tensor, transB bool, epi gemmEpilogue, bias, aux *gpu.Tensor) bool {
	g := &b.gemm
	if gemmPathFor(p.In, g.blas != nil, g.lt != nil, g.fallback, p.K) != pathCublasLt {
		return false
	}
	err := b.ltMatMul(p, c, a, w, false, transB, 1, 0, epi, bias, aux)
	return !errors.Is(err, errNoLtPlan)
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

// matMulFused computes C = epilogue(alpha·op(A)·op(B) + beta·C) in one
// cuBLASLt call (gemmEpilogue says what each epilogue does; aux is the
// GELU pre-activation, bias the bias or the bias gradient). It returns an
// error, and queues nothing, when the fused form cannot run here (no
// cuBLASLt, float32 inputs, a shape cuBLASLt's epilogue does not take, no
// algorithm; the error wraps errNoLtPlan): the caller then runs the
// separate ops. The GELU epilogues take beta = 0. Bad arguments are
// returned too, not recorded; a cuBLASLt call that fails once queued is
// recorded (Err).
//
// The fused linear layers reach the same call through ltLinear. It runs
// only on a GPU with cuBLASLt, so it is untested until a GPU run
// (cublaslt_test.go checks each epilogue against a float64 reference
// there).
func (b *Backend) matMulFused(c, a, bm *gpu.Tensor, transA, transB bool, alpha, beta float32,
	epi gemmEpilogue, bias, aux *gpu.Tensor) error {
	if b.err != nil {
		return b.err
	}
	p, err := b.checker.MatMul(c, a, bm, transA, transB)
	if err != nil {
		return err
	}
	if err := fitsInt32("matmul", p.M, p.N, p.K, p.LDA, p.LDB); err != nil {
		return err
	}
	if err := checkEpilogueArgs(p, epi, beta, c, bias, aux); err != nil {
		return err
	}
	if b.gemm.fallback {
		return errors.New("fused GEMM: UseGEMMKernel is on")
	}
	if p.M == 0 || p.N == 0 || p.Batch == 0 || p.K == 0 {
		return errors.New("fused GEMM: empty product")
	}
	return b.ltMatMul(p, c, a, bm, transA, transB, alpha, beta, epi, bias, aux)
}
