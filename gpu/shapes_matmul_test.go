package gpu

import "testing"

func TestCheckerMatMulGeometry(t *testing.T) {
	cases := []struct {
		name           string
		c, a, b        *Tensor
		transA, transB bool
		want           MatMulDims
	}{
		{"plain", f32(t, 4, 5), f32(t, 4, 3), f32(t, 3, 5), false, false,
			MatMulDims{Batch: 1, M: 4, N: 5, K: 3, LDA: 3, LDB: 5}},
		{"transA", f32(t, 4, 5), f32(t, 3, 4), f32(t, 3, 5), true, false,
			MatMulDims{Batch: 1, M: 4, N: 5, K: 3, LDA: 4, LDB: 5}},
		{"transB", f32(t, 4, 5), f32(t, 4, 3), f32(t, 5, 3), false, true,
			MatMulDims{Batch: 1, M: 4, N: 5, K: 3, LDA: 3, LDB: 3}},
		{"both batched", f32(t, 2, 4, 5), f32(t, 2, 4, 3), f32(t, 2, 3, 5), false, false,
			MatMulDims{Batch: 2, M: 4, N: 5, K: 3, LDA: 3, LDB: 5, StrideA: 12, StrideB: 15}},
		{"shared B is one tall product", f32(t, 2, 4, 5), f32(t, 2, 4, 3), f32(t, 3, 5), false, false,
			MatMulDims{Batch: 1, M: 8, N: 5, K: 3, LDA: 3, LDB: 5}},
		{"shared B, transposed A stays batched", f32(t, 2, 4, 5), f32(t, 2, 3, 4), f32(t, 3, 5), true, false,
			MatMulDims{Batch: 2, M: 4, N: 5, K: 3, LDA: 4, LDB: 5, StrideA: 12}},
		{"shared A", f32(t, 2, 4, 5), f32(t, 4, 3), f32(t, 2, 5, 3), false, true,
			MatMulDims{Batch: 2, M: 4, N: 5, K: 3, LDA: 3, LDB: 3, StrideB: 15}},
		{"empty inner dimension", f32(t, 4, 5), f32(t, 4, 0), f32(t, 0, 5), false, false,
			MatMulDims{Batch: 1, M: 4, N: 5, LDB: 5}},
	}
	for _, tc := range cases {
		d, err := k.MatMul(tc.c, tc.a, tc.b, tc.transA, tc.transB)
		if err != nil || d != tc.want {
			t.Errorf("%s: %+v, %v; want %+v", tc.name, d, err, tc.want)
		}
	}
}

func TestCheckerMatMulRejects(t *testing.T) {
	shared := f32(t, 100)
	cases := []struct {
		name           string
		c, a, b        *Tensor
		transA, transB bool
		want           string
	}{
		{"inner mismatch", f32(t, 4, 5), f32(t, 4, 3), f32(t, 2, 5), false, false, "inner dimensions 3 and 2 differ"},
		{"inner mismatch transB", f32(t, 4, 5), f32(t, 4, 3), f32(t, 3, 5), false, true, "inner dimensions 3 and 5 differ"},
		{"C rows", f32(t, 3, 5), f32(t, 4, 3), f32(t, 3, 5), false, false, "C must be [4,5]"},
		{"C cols", f32(t, 4, 6), f32(t, 4, 3), f32(t, 3, 5), false, false, "C must be [4,5]"},
		{"transA shape", f32(t, 4, 5), f32(t, 4, 3), f32(t, 3, 5), true, false, "inner dimensions 4 and 3 differ"},
		{"rank 1", f32(t, 4), f32(t, 4, 3), f32(t, 3, 4), false, false, "C is float32[4], want rank 2 or 3"},
		{"rank 4", f32(t, 1, 1, 4, 5), f32(t, 4, 3), f32(t, 3, 5), false, false, "want rank 2 or 3"},
		{"batched A into rank-2 C", f32(t, 4, 5), f32(t, 2, 4, 3), f32(t, 3, 5), false, false, "needs a rank-3 C"},
		{"batch mismatch", f32(t, 2, 4, 5), f32(t, 3, 4, 3), f32(t, 3, 5), false, false, "batch sizes differ"},
		{"batch mismatch B", f32(t, 2, 4, 5), f32(t, 4, 3), f32(t, 3, 3, 5), false, false, "batch sizes differ"},
		{"int32 operand", f32(t, 4, 4), i32(t, 4, 4), f32(t, 4, 4), false, false, "A is int32, want float32"},
		{"nil C", nil, f32(t, 4, 3), f32(t, 3, 5), false, false, "C is nil"},
		{"C aliases A", shared.MustView(0, 4, 4), shared.MustView(8, 4, 4), f32(t, 4, 4), false, false, "C overlaps an input"},
		{"C aliases B", shared.MustView(0, 4, 4), f32(t, 4, 4), shared.MustView(12, 4, 4), false, false, "C overlaps an input"},
	}
	for _, tc := range cases {
		_, err := k.MatMul(tc.c, tc.a, tc.b, tc.transA, tc.transB)
		wantErr(t, tc.name, err, "matmul: ", tc.want)
	}
	noErr(t, "disjoint views", func() error {
		_, err := k.MatMul(shared.MustView(0, 4, 4), shared.MustView(16, 4, 4), shared.MustView(32, 4, 4), false, false)
		return err
	}())
}
