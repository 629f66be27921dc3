//go:build cuda

package cuda

import (
	"errors"
	"fmt"
	"math/bits"

	"github.com/instructgo/instructgo/gpu"
)

// The decisions of the GEMM paths, as plain functions of shapes, dtypes
// and addresses, shared by the GPU build and the emulated one so that they
// are tested without a GPU: which path MatMul takes (gemmPathFor), which
// of our kernels it launches (gemmKernelFor), and how a row-major product
// becomes a cuBLASLt call (newLtPlan). The libraries themselves are
// cublas.go and cublaslt.go; the search for them is cudalib.go.

// gemmPath is where a product runs.
type gemmPath int

const (
	pathKernel   gemmPath = iota // kernels/gemm.cu (float32) or kernels/gemm_bf16.cu (bf16)
	pathCublas                   // cublasSgemmStridedBatched: float32 A, B, C
	pathCublasLt                 // cublasLtMatmul: bf16 A, B; C bf16 or float32
)

func (p gemmPath) String() string {
	switch p {
	case pathCublas:
		return "cuBLAS"
	case pathCublasLt:
		return "cuBLASLt"
	}
	return "kernel"
}

// gemmPathFor picks the path of one product: float32 products go to cuBLAS
// and bf16 ones to cuBLASLt when the library is loaded, everything else
// (no library, an empty inner dimension, or the kernel forced by
// UseGEMMKernel) to our kernels.
func gemmPathFor(in gpu.DType, haveCublas, haveLt, forceKernel bool, k int) gemmPath {
	switch {
	case forceKernel || k == 0:
		return pathKernel
	case in == gpu.Float32 && haveCublas:
		return pathCublas
	case in == gpu.BF16 && haveLt:
		return pathCublasLt
	}
	return pathKernel
}

// gemmKernel is one launch configuration of our GEMM kernels.
type gemmKernel struct {
	name         string
	tileM, tileN int    // the block's tile of C
	block        [3]int // threads per block
	in, out      int    // element sizes of A, B and of C, in bytes
}

// gemmKernelFor chooses the kernel for a product whose A and B start at
// device addresses pa and pb. float32: gemm_fallback_XY (64×64 tiles,
// 16×16 threads). bf16: gemm_bf16_XY_cT (128×128 tiles, 256 threads), the
// cp.async form when A and B are 16-byte aligned and every row and batch
// stride of them is a whole number of 16-byte chunks, else the _ua form.
func gemmKernelFor(p gpu.MatMulDims, transA, transB bool, pa, pb uint64) gemmKernel {
	form := map[bool]string{false: "n", true: "t"}
	xy := form[transA] + form[transB]
	if p.In != gpu.BF16 {
		return gemmKernel{name: "gemm_fallback_" + xy, tileM: 64, tileN: 64, block: [3]int{16, 16, 1}, in: 4, out: 4}
	}
	k := gemmKernel{name: "gemm_bf16_" + xy, tileM: 128, tileN: 128, block: [3]int{256, 1, 1}, in: 2, out: p.Out.Size()}
	if p.Out == gpu.BF16 {
		k.name += "_cbf16"
	} else {
		k.name += "_cf32"
	}
	const chunk = 8 // bf16 elements in 16 bytes
	aligned := pa%16 == 0 && pb%16 == 0 &&
		p.LDA%chunk == 0 && p.LDB%chunk == 0 && p.StrideA%chunk == 0 && p.StrideB%chunk == 0
	if !aligned {
		k.name += "_ua"
	}
	return k
}

// cuBLAS and cuBLASLt enum values used here (cublas_api.h, cublasLt.h,
// library_types.h); the libraries are loaded at run time, so their headers
// are not needed to build, and these values are part of their stable ABI.
const (
	cudaR32F  = 0  // CUDA_R_32F
	cudaR16BF = 14 // CUDA_R_16BF

	cublasCompute32F = 68 // CUBLAS_COMPUTE_32F

	ltEpilogueDefault  = 1   // CUBLASLT_EPILOGUE_DEFAULT
	ltEpilogueBias     = 4   // CUBLASLT_EPILOGUE_BIAS
	ltEpilogueGeluAux  = 160 // CUBLASLT_EPILOGUE_GELU_AUX
	ltEpilogueGeluAuxB = 164 // CUBLASLT_EPILOGUE_GELU_AUX_BIAS
	ltEpilogueDGelu    = 192 // CUBLASLT_EPILOGUE_DGELU
	ltEpilogueBGradA   = 256 // CUBLASLT_EPILOGUE_BGRADA
	ltEpilogueBGradB   = 512 // CUBLASLT_EPILOGUE_BGRADB
)

// gemmEpilogue is what a fused GEMM does after D = alpha·op(A)·op(B) +
// beta·C, in our row-major terms (C is [M,N]).
type gemmEpilogue int

const (
	epiNone gemmEpilogue = iota
	// epiBias: D[i,j] += bias[j]; bias [N] of C's dtype (AddBias).
	epiBias
	// epiGELU: aux = D, then D = GELU(aux), GPT-2's tanh form; aux [M,N]
	// of C's dtype keeps the pre-activation for the backward pass (MatMul,
	// then GeluForward).
	epiGELU
	// epiBiasGELU: aux = D + bias[j], then D = GELU(aux) (MatMul, AddBias,
	// GeluForward).
	epiBiasGELU
	// epiDGELU: D = D ⊙ GELU'(aux), aux the forward's pre-activation
	// [M,N] of C's dtype (MatMul, then GeluBackward).
	epiDGELU
	// epiBiasGradB: dbias[j] = Σ_k op(B)[k,j], dbias [N] float32, written
	// (not accumulated): the bias gradient of a linear layer y = x·W + b
	// whose weight gradient is this product xᵀ·dy (BiasBackward of dy).
	epiBiasGradB
	// epiBiasGradA: dbias[i] = Σ_k op(A)[i,k], dbias [M] float32, written:
	// the same for a product dyᵀ·x.
	epiBiasGradA
)

func (e gemmEpilogue) String() string {
	return [...]string{"none", "bias", "gelu", "bias+gelu", "dgelu", "bias-grad-B", "bias-grad-A"}[e]
}

// ltLayout is one matrix of a cuBLASLt call, column-major.
type ltLayout struct {
	dtype      int   // cudaDataType
	rows, cols int   // as stored (before the op)
	ld         int   // leading dimension, elements
	stride     int64 // batch stride, elements (0: shared)
}

// ltPlan is a row-major product C = op(A)·op(B) as the column-major
// product cuBLASLt computes. A row-major X [r,c] is the column-major Xᵀ
// [c,r] with the same leading dimension, so Cᵀ = op(B)ᵀ·op(A)ᵀ: cuBLASLt's
// first operand is our B, its second our A, each with its own transpose
// flag, and D is Cᵀ, N rows by M columns with leading dimension N.
type ltPlan struct {
	transA, transB bool     // cuBLASLt's op of its A (our B) and its B (our A)
	a, b, c        ltLayout // cuBLASLt's A (our B), B (our A), C = D (our C)
	batch          int
	epilogue       int   // cublasLtEpilogue_t
	auxLD          int64 // leading dimension of the GELU aux matrix (0: none)
	auxStride      int64 // its batch stride
	biasF32        bool  // bias / dbias is float32 although D is bf16
}

// ltKey identifies a cached heuristic: everything the algorithm choice
// depends on. align* are the log2 of the addresses' alignments (capped at
// 256 bytes), which the heuristic needs to know.
type ltKey struct {
	batch, m, n, k, lda, ldb, strideA, strideB int
	transA, transB                             bool
	in, out                                    gpu.DType
	epi                                        gemmEpilogue
	alignA, alignB, alignC, alignX             uint8
}

// alignLog2 is the log2 of the largest power of two, at most 256, that
// divides addr.
func alignLog2(addr uint64) uint8 {
	if addr == 0 {
		return 8
	}
	return uint8(min(8, bits.TrailingZeros64(addr)))
}

func newLtKey(p gpu.MatMulDims, transA, transB bool, epi gemmEpilogue, pa, pb, pc, px uint64) ltKey {
	return ltKey{
		batch: p.Batch, m: p.M, n: p.N, k: p.K, lda: p.LDA, ldb: p.LDB, strideA: p.StrideA, strideB: p.StrideB,
		transA: transA, transB: transB, in: p.In, out: p.Out, epi: epi,
		alignA: alignLog2(pa), alignB: alignLog2(pb), alignC: alignLog2(pc), alignX: alignLog2(px),
	}
}

func ltDataType(d gpu.DType) int {
	if d == gpu.BF16 {
		return cudaR16BF
	}
	return cudaR32F
}

// newLtPlan maps a product (its geometry p, as gpu.Checker.MatMul gives
// it) and an epilogue onto cuBLASLt's terms, or says why cuBLASLt cannot
// run it: A and B must be bf16, and a GELU aux matrix needs a leading
// dimension (N) that is a multiple of 8 (cuBLASLt's rule).
func newLtPlan(p gpu.MatMulDims, transA, transB bool, epi gemmEpilogue) (ltPlan, error) {
	if p.In != gpu.BF16 {
		return ltPlan{}, fmt.Errorf("cuBLASLt path takes bf16 A and B, not %v", p.In)
	}
	in, out := ltDataType(p.In), ltDataType(p.Out)
	pl := ltPlan{transA: transB, transB: transA, batch: p.Batch, epilogue: ltEpilogueDefault}
	// Our B, stored [K,N] (or [N,K] when transB), is column-major [N,K]
	// (or [K,N]).
	pl.a = ltLayout{dtype: in, rows: p.N, cols: p.K, ld: p.LDB, stride: int64(p.StrideB)}
	if transB {
		pl.a.rows, pl.a.cols = p.K, p.N
	}
	// Our A, stored [M,K] (or [K,M] when transA), is column-major [K,M]
	// (or [M,K]).
	pl.b = ltLayout{dtype: in, rows: p.K, cols: p.M, ld: p.LDA, stride: int64(p.StrideA)}
	if transA {
		pl.b.rows, pl.b.cols = p.M, p.K
	}
	strideC := int64(p.M) * int64(p.N)
	pl.c = ltLayout{dtype: out, rows: p.N, cols: p.M, ld: p.N, stride: strideC}
	if p.Batch == 1 {
		pl.a.stride, pl.b.stride, pl.c.stride = 0, 0, 0
	}
	switch epi {
	case epiNone:
	case epiBias:
		// D's rows are our columns: a bias per row of D is our bias[j].
		pl.epilogue = ltEpilogueBias
	case epiGELU, epiBiasGELU, epiDGELU:
		if p.N%8 != 0 {
			return ltPlan{}, fmt.Errorf("cuBLASLt GELU epilogues need N (%d) to be a multiple of 8", p.N)
		}
		pl.epilogue = map[gemmEpilogue]int{epiGELU: ltEpilogueGeluAux, epiBiasGELU: ltEpilogueGeluAuxB, epiDGELU: ltEpilogueDGelu}[epi]
		pl.auxLD = int64(p.N)
		if p.Batch > 1 {
			pl.auxStride = strideC
		}
	case epiBiasGradB:
		// Σ_k op(B)[k,j] is the reduction of cuBLASLt's A over k: a
		// vector along D's rows (our N).
		pl.epilogue, pl.biasF32 = ltEpilogueBGradA, p.Out == gpu.BF16
	case epiBiasGradA:
		// Σ_k op(A)[i,k] reduces cuBLASLt's B: along D's columns (our M).
		pl.epilogue, pl.biasF32 = ltEpilogueBGradB, p.Out == gpu.BF16
	default:
		return ltPlan{}, fmt.Errorf("unknown GEMM epilogue %d", epi)
	}
	if (epi == epiBiasGradA || epi == epiBiasGradB) && p.Batch > 1 {
		return ltPlan{}, fmt.Errorf("cuBLASLt bias-gradient epilogues take one product, not a batch of %d", p.Batch)
	}
	return pl, nil
}

// checkEpilogueArgs checks the extra operands of an epilogue: bias [N] of
// C's dtype (epiBias, epiBiasGELU); dbias float32 [N] (epiBiasGradB) or [M]
// (epiBiasGradA); aux of C's dtype and shape [Batch·M, N] elements
// (epiGELU, epiBiasGELU, epiDGELU), which take beta = 0; neither may
// overlap C.
func checkEpilogueArgs(p gpu.MatMulDims, epi gemmEpilogue, beta float32, c, bias, aux *gpu.Tensor) error {
	vec := func(t *gpu.Tensor, n int, d gpu.DType, what string) error {
		if t == nil || t.Len() != n || t.DType() != d {
			return fmt.Errorf("fused GEMM (%v): %s must be %v of %d elements, got %v", epi, what, d, n, t)
		}
		return nil
	}
	none := func(t *gpu.Tensor, what string) error {
		if t != nil {
			return fmt.Errorf("fused GEMM (%v) takes no %s", epi, what)
		}
		return nil
	}
	gelu := epi == epiGELU || epi == epiBiasGELU || epi == epiDGELU
	if gelu && beta != 0 {
		return fmt.Errorf("fused GEMM (%v) takes beta = 0, got %g", epi, beta)
	}
	for _, x := range []*gpu.Tensor{bias, aux} {
		if x != nil && c != nil && gpu.Overlap(x, c) {
			return fmt.Errorf("fused GEMM (%v): %v overlaps C %v", epi, x, c)
		}
	}
	var err error
	switch epi {
	case epiNone:
		err = errors.Join(none(bias, "bias"), none(aux, "aux"))
	case epiBias:
		err = errors.Join(vec(bias, p.N, p.Out, "bias"), none(aux, "aux"))
	case epiGELU, epiDGELU:
		err = errors.Join(none(bias, "bias"), vec(aux, p.Batch*p.M*p.N, p.Out, "aux"))
	case epiBiasGELU:
		err = errors.Join(vec(bias, p.N, p.Out, "bias"), vec(aux, p.Batch*p.M*p.N, p.Out, "aux"))
	case epiBiasGradB:
		err = errors.Join(vec(bias, p.N, gpu.Float32, "dbias"), none(aux, "aux"))
	case epiBiasGradA:
		err = errors.Join(vec(bias, p.M, gpu.Float32, "dbias"), none(aux, "aux"))
	default:
		err = fmt.Errorf("unknown GEMM epilogue %d", epi)
	}
	return err
}
