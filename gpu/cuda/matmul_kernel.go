//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// The part of MatMul both builds share: the operands' validation and
// geometry, and the tiled GEMM kernel (kernels/gemm.cu), which the GPU build
// falls back to without cuBLAS and the emulated build always uses.

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

// MatMul implements gpu.Backend: through cuBLAS where the build has it
// (blasMatMul), else with the tiled GEMM kernel.
func (b *Backend) MatMul(c, a, bm *gpu.Tensor, transA, transB bool, alpha, beta float32) {
	if b.err != nil {
		return
	}
	p, err := b.planMatMul(c, a, bm, transA, transB)
	if b.fail(err) || p.m == 0 || p.n == 0 || p.batch == 0 {
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
			pc+devicePtr(off(strideC)), pa+devicePtr(off(p.strideA)), pb+devicePtr(off(p.strideB)),
			int32(p.m), int32(p.n), int32(p.k), int32(p.lda), int32(p.ldb), int32(p.n),
			p.strideA, p.strideB, strideC, alpha, beta)
	}
}
