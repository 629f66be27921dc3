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

func TestCheckerFusedLinear(t *testing.T) {
	// Accepted: a rank-3 activation by a rank-2 weight is one tall product.
	d, err := k.MatMulBias(f32(t, 2, 4, 5), f32(t, 2, 4, 3), f32(t, 3, 5), f32(t, 5))
	if want := (MatMulDims{Batch: 1, M: 8, N: 5, K: 3, LDA: 3, LDB: 5}); err != nil || d != want {
		t.Errorf("matmul bias: %+v, %v; want %+v", d, err, want)
	}
	d, err = k.MatMulDGELU(f32(t, 4, 5), f32(t, 4, 3), f32(t, 5, 3), f32(t, 4, 5))
	if want := (MatMulDims{Batch: 1, M: 4, N: 5, K: 3, LDA: 3, LDB: 3}); err != nil || d != want {
		t.Errorf("matmul dgelu: %+v, %v; want %+v", d, err, want)
	}
	noErr(t, "bias gelu", func() error {
		_, err := k.MatMulBiasGELU(f32(t, 4, 5), f32(t, 4, 5), f32(t, 4, 3), f32(t, 3, 5), f32(t, 5))
		return err
	}())

	shared := f32(t, 100)
	bf := newT(t, BF16, 5)
	cases := []struct {
		name string
		err  error
		want []string
	}{
		{"bias width", errOf(k.MatMulBias(f32(t, 4, 5), f32(t, 4, 3), f32(t, 3, 5), f32(t, 4))),
			[]string{"matmul bias: ", "bias", "want 5 elements"}},
		{"nil bias", errOf(k.MatMulBias(f32(t, 4, 5), f32(t, 4, 3), f32(t, 3, 5), nil)), []string{"bias is nil"}},
		{"bias dtype", errOf(k.MatMulBias(f32(t, 4, 5), f32(t, 4, 3), f32(t, 3, 5), bf)), []string{"bias is bf16, want float32"}},
		{"batched weight", errOf(k.MatMulBias(f32(t, 2, 4, 5), f32(t, 2, 4, 3), f32(t, 2, 3, 5), f32(t, 5))),
			[]string{"must be a rank-2 weight"}},
		{"float32 C of bf16 inputs", errOf(k.MatMulBias(f32(t, 4, 5), newT(t, BF16, 4, 3), newT(t, BF16, 3, 5), bf)),
			[]string{"must be of the activation dtype bf16"}},
		{"bias overlaps C", errOf(k.MatMulBias(shared.MustView(0, 4, 5), f32(t, 4, 3), f32(t, 3, 5), shared.MustView(15, 5))),
			[]string{"bias", "overlaps C"}},
		{"out overlaps pre", errOf(k.MatMulBiasGELU(shared.MustView(10, 4, 5), shared.MustView(0, 4, 5), f32(t, 4, 3), f32(t, 3, 5), f32(t, 5))),
			[]string{"matmul bias gelu: ", "out", "overlaps pre"}},
		{"out overlaps A", errOf(k.MatMulBiasGELU(shared.MustView(0, 4, 5), f32(t, 4, 5), shared.MustView(10, 4, 3), f32(t, 3, 5), f32(t, 5))),
			[]string{"out", "overlaps A"}},
		{"out length", errOf(k.MatMulBiasGELU(f32(t, 4, 4), f32(t, 4, 5), f32(t, 4, 3), f32(t, 3, 5), f32(t, 5))),
			[]string{"out", "want 20 elements"}},
		{"dgelu takes B transposed", errOf(k.MatMulDGELU(f32(t, 4, 5), f32(t, 4, 3), f32(t, 3, 5), f32(t, 4, 5))),
			[]string{"matmul dgelu: ", "inner dimensions 3 and 5 differ"}},
		{"pre is dpre", errOf(k.MatMulDGELU(shared.MustView(0, 4, 5), f32(t, 4, 3), f32(t, 5, 3), shared.MustView(0, 4, 5))),
			[]string{"pre", "overlaps dpre"}},
	}
	for _, tc := range cases {
		wantErr(t, tc.name, tc.err, tc.want...)
	}
}

func errOf(_ MatMulDims, err error) error { return err }
