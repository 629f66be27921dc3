package gpu

import "fmt"

// Argument validation and geometry of Backend.MatMul, shared by the
// backends like the Checker methods of shapes.go.

// MatMulDims is the geometry of a MatMul call: Batch products of op(A)
// [M,K] and op(B) [K,N] into C [M,N] (row stride N). LDA and LDB are the
// row strides of A and B as stored; StrideA and StrideB are the offsets in
// elements from one batch element's A or B to the next (0: a rank-2
// operand shared by every batch element). In is the dtype of A and B, Out
// that of C.
type MatMulDims struct {
	Batch, M, N, K   int
	LDA, LDB         int
	StrideA, StrideB int
	In, Out          DType
}

// MatMul checks Backend.MatMul and returns its geometry. A batched product
// whose B is shared and whose A is not transposed is returned as one tall
// product: the rows of every batch element of A and C are contiguous, so it
// is [Batch·M, K]·op(B) with Batch 1.
func (k Checker) MatMul(c, a, b *Tensor, transA, transB bool) (MatMulDims, error) {
	const op = "matmul"
	var d MatMulDims
	var err error
	if d.In, err = k.Act(op, "A B", a, b); err != nil {
		return d, err
	}
	// C is of A's dtype, or float32 (bf16 products into a float32
	// parameter gradient or into values).
	if d.Out = d.In; c != nil && c.DType() == Float32 {
		d.Out = Float32
	}
	if err := k.Tensor(op, "C", c, d.Out); err != nil {
		return d, err
	}
	for _, x := range [...]struct {
		name string
		t    *Tensor
	}{{"C", c}, {"A", a}, {"B", b}} {
		if r := x.t.Rank(); r != 2 && r != 3 {
			return d, fmt.Errorf("%s: %s is %v, want rank 2 or 3", op, x.name, x.t)
		}
	}
	bad := func(why string) error {
		return fmt.Errorf("%s: C %v = A %v (transA=%v) · B %v (transB=%v): %s", op, c, a, transA, b, transB, why)
	}
	d.Batch = 1
	if c.Rank() == 3 {
		d.Batch = c.Dim(0)
	} else if a.Rank() == 3 || b.Rank() == 3 {
		return d, bad("a rank-3 operand needs a rank-3 C")
	}
	if (a.Rank() == 3 && a.Dim(0) != d.Batch) || (b.Rank() == 3 && b.Dim(0) != d.Batch) {
		return d, bad("batch sizes differ")
	}
	m, kk := a.Dim(-2), a.Dim(-1)
	if transA {
		m, kk = kk, m
	}
	kb, n := b.Dim(-2), b.Dim(-1)
	if transB {
		kb, n = n, kb
	}
	if kk != kb {
		return d, bad(fmt.Sprintf("inner dimensions %d and %d differ", kk, kb))
	}
	if c.Dim(-2) != m || c.Dim(-1) != n {
		return d, bad(fmt.Sprintf("C must be [%d,%d]", m, n))
	}
	if Overlap(c, a) || Overlap(c, b) {
		return d, bad("C overlaps an input")
	}
	d.M, d.N, d.K = m, n, kk
	d.LDA, d.LDB = a.Dim(-1), b.Dim(-1)
	if a.Rank() == 3 {
		d.StrideA = m * kk
	}
	if b.Rank() == 3 {
		d.StrideB = kk * n
	}
	if d.Batch > 1 && a.Rank() == 3 && b.Rank() == 2 && !transA {
		d.M *= d.Batch
		d.Batch, d.StrideA = 1, 0
	}
	return d, nil
}
