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
	return k.matMul("matmul", c, a, b, transA, transB)
}

// matMul is MatMul's checks under the name of the op that runs them.
func (k Checker) matMul(op string, c, a, b *Tensor, transA, transB bool) (MatMulDims, error) {
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

// The fused linear layers (Backend.MatMulBias, MatMulBiasGELU, MatMulDGELU)
// are one product of an activation [M,K] (rank 2, or rank 3 with the rows
// of every batch element read as one matrix) by a rank-2 weight, into an
// output of the activation dtype; their extra operands are one row of bias
// [N] or one more matrix of C's length, all of that dtype. No output may
// overlap an input or another output.

// linear checks the product of a fused linear layer: C = A·op(B) with B a
// rank-2 weight, C of the activation dtype, the geometry Batch 1.
func (k Checker) linear(op string, c, a, b *Tensor, transB bool) (MatMulDims, error) {
	d, err := k.matMul(op, c, a, b, false, transB)
	if err != nil {
		return d, err
	}
	if c.DType() != d.In {
		return d, fmt.Errorf("%s: C %v must be of the activation dtype %v", op, c, d.In)
	}
	if b.Rank() != 2 || d.Batch != 1 {
		return d, fmt.Errorf("%s: B %v must be a rank-2 weight shared by every row of A %v", op, b, a)
	}
	return d, nil
}

// linearOperand checks one extra operand of a fused linear layer: t of the
// activation dtype d and n elements, overlapping none of the others.
func (k Checker) linearOperand(op, name string, t *Tensor, d DType, n int, names string, others ...*Tensor) error {
	if err := k.Tensor(op, name, t, d); err != nil {
		return err
	}
	return first(CheckLen(op, n, name, t), CheckDisjoint(op, name, t, names, others...))
}

// MatMulBias checks Backend.MatMulBias and returns the product's geometry.
func (k Checker) MatMulBias(c, a, b, bias *Tensor) (MatMulDims, error) {
	const op = "matmul bias"
	d, err := k.linear(op, c, a, b, false)
	if err != nil {
		return d, err
	}
	return d, k.linearOperand(op, "bias", bias, d.In, d.N, "C", c)
}

// MatMulBiasGELU checks Backend.MatMulBiasGELU (the product goes into pre)
// and returns its geometry.
func (k Checker) MatMulBiasGELU(out, pre, a, b, bias *Tensor) (MatMulDims, error) {
	const op = "matmul bias gelu"
	d, err := k.linear(op, pre, a, b, false)
	if err != nil {
		return d, err
	}
	return d, first(k.linearOperand(op, "bias", bias, d.In, d.N, "pre", pre),
		k.linearOperand(op, "out", out, d.In, d.M*d.N, "pre A B bias", pre, a, b, bias))
}

// MatMulDGELU checks Backend.MatMulDGELU (the product dout·bᵀ goes into
// dpre) and returns its geometry.
func (k Checker) MatMulDGELU(dpre, dout, b, pre *Tensor) (MatMulDims, error) {
	const op = "matmul dgelu"
	d, err := k.linear(op, dpre, dout, b, true)
	if err != nil {
		return d, err
	}
	return d, k.linearOperand(op, "pre", pre, d.In, d.M*d.N, "dpre", dpre)
}
