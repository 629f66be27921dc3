//go:build cuda

package cuda

import (
	"github.com/instructgo/instructgo/gpu"
)

// The part of MatMul both builds share: the entry point, which validates
// with the shared Checker (gpu.Checker.MatMul, which also works out the
// geometry and the dtypes), and the launch of our GEMM kernels: the tiled
// float32 one (kernels/gemm.cu) and the bf16 tensor-core one
// (kernels/gemm_bf16.cu), which the GPU build falls back to without cuBLAS
// or cuBLASLt and the emulated build always uses.

// MatMul implements gpu.Backend: through cuBLAS (float32) or cuBLASLt
// (bf16) where the build has them (blasMatMul), else with our kernels.
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
// gemmMaxGridY bounds gridDim.y, the row tiles of C.
const (
	gemmMaxGridZ = 65535
	gemmMaxGridY = 65535
)

// kernelMatMul launches our GEMM kernel for the product (gemmKernelFor):
// gemm_fallback_XY (kernels/gemm.cu) for float32, gemm_bf16_XY_cT[_ua]
// (kernels/gemm_bf16.cu) for bf16 A and B.
func (b *Backend) kernelMatMul(p gpu.MatMulDims, c, a, bm *gpu.Tensor, transA, transB bool, alpha, beta float32) {
	pa, pb, pc := b.ptr(a), b.ptr(bm), b.ptr(c)
	k := gemmKernelFor(p, transA, transB, uint64(pa), uint64(pb))
	rowTiles := (p.M + k.tileM - 1) / k.tileM
	if rowTiles > gemmMaxGridY {
		b.failf("matmul C %v = A %v · B %v: %d rows exceed the GEMM kernel's grid (at most %d)", c, a, bm, p.M, gemmMaxGridY*k.tileM)
		return
	}
	strideA, strideB, strideC := int64(p.StrideA), int64(p.StrideB), int64(p.M)*int64(p.N)
	for z0 := 0; z0 < p.Batch; z0 += gemmMaxGridZ {
		nz := min(gemmMaxGridZ, p.Batch-z0)
		off := func(stride int64, size int) devicePtr { return devicePtr(int64(z0) * stride * int64(size)) }
		b.launch(k.name,
			[3]int{(p.N + k.tileN - 1) / k.tileN, rowTiles, nz}, k.block, 0,
			pc+off(strideC, k.out), pa+off(strideA, k.in), pb+off(strideB, k.in),
			int32(p.M), int32(p.N), int32(p.K), int32(p.LDA), int32(p.LDB), int32(p.N),
			strideA, strideB, strideC, alpha, beta)
	}
}
