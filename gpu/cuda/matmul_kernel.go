//go:build cuda

package cuda

import (
	"github.com/instructgo/instructgo/gpu"
)

// The part of MatMul both builds share: the entry point, which validates
// with the shared Checker (gpu.Checker.MatMul, which also works out the
// geometry), and the tiled GEMM kernel (kernels/gemm.cu), which the GPU
// build falls back to without cuBLAS and the emulated build always uses.

// MatMul implements gpu.Backend: through cuBLAS where the build has it
// (blasMatMul), else with the tiled GEMM kernel.
func (b *Backend) MatMul(c, a, bm *gpu.Tensor, transA, transB bool, alpha, beta float32) {
	if b.err != nil {
		return
	}
	p, err := b.checker.MatMul(c, a, bm, transA, transB)
	if b.fail(err) || b.fail(fitsInt32("matmul", p.M, p.N, p.K, p.LDA, p.LDB)) || p.M == 0 || p.N == 0 || p.Batch == 0 {
		return
	}
	if !b.blasMatMul(p, c, a, bm, transA, transB, alpha, beta) {
		b.kernelMatMul(p, c, a, bm, transA, transB, alpha, beta)
	}
}

// gemmMaxGridZ is the largest gridDim.z; bigger batches launch in parts.
// gemmMaxGridY bounds gridDim.y, the 64-row tiles of C.
const (
	gemmMaxGridZ = 65535
	gemmMaxGridY = 65535
)

// kernelMatMul launches gemm_fallback_{n,t}{n,t} (kernels/gemm.cu).
func (b *Backend) kernelMatMul(p gpu.MatMulDims, c, a, bm *gpu.Tensor, transA, transB bool, alpha, beta float32) {
	name := "gemm_fallback_" + map[bool]string{false: "n", true: "t"}[transA] + map[bool]string{false: "n", true: "t"}[transB]
	strideA, strideB, strideC := int64(p.StrideA), int64(p.StrideB), int64(p.M)*int64(p.N)
	if (p.M+63)/64 > gemmMaxGridY {
		b.failf("matmul C %v = A %v · B %v: %d rows exceed the GEMM kernel's grid (at most %d)", c, a, bm, p.M, gemmMaxGridY*64)
		return
	}
	pa, pb, pc := b.ptr(a), b.ptr(bm), b.ptr(c)
	for z0 := 0; z0 < p.Batch; z0 += gemmMaxGridZ {
		nz := min(gemmMaxGridZ, p.Batch-z0)
		off := func(stride int64) int64 { return int64(z0) * stride * 4 }
		b.launch(name,
			[3]int{(p.N + 63) / 64, (p.M + 63) / 64, nz}, [3]int{16, 16, 1}, 0,
			pc+devicePtr(off(strideC)), pa+devicePtr(off(strideA)), pb+devicePtr(off(strideB)),
			int32(p.M), int32(p.N), int32(p.K), int32(p.LDA), int32(p.LDB), int32(p.N),
			strideA, strideB, strideC, alpha, beta)
	}
}
