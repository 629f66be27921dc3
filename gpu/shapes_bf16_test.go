package gpu

import "testing"

// TestCheckerActivationClasses checks the dtype classes of
// docs/PRECISION.md: an op's activation-class arguments share one float
// dtype, its float32-class arguments are float32 whatever that dtype,
// MatMul's C may be float32 under bf16 inputs, and a backend may refuse
// bf16 op by op.
func TestCheckerActivationClasses(t *testing.T) {
	var k Checker
	bf := func(shape ...int) *Tensor { return newT(t, BF16, shape...) }
	f := func(shape ...int) *Tensor { return newT(t, Float32, shape...) }

	// LayerNorm: activations bf16, statistics and parameter gradients float32.
	if _, _, err := k.LayerNormForward(bf(4, 8), f(4), f(4), bf(4, 8), bf(8), bf(8)); err != nil {
		t.Errorf("bf16 layernorm forward: %v", err)
	}
	_, _, err := k.LayerNormForward(bf(4, 8), nil, nil, bf(4, 8), f(8), bf(8))
	wantErr(t, "mixed activation dtypes", err, "weight is float32, want bf16")
	_, _, err = k.LayerNormForward(bf(4, 8), bf(4), nil, bf(4, 8), bf(8), bf(8))
	wantErr(t, "bf16 statistics", err, "mean is bf16, want float32")
	if _, _, err := k.LayerNormBackward(bf(4, 8), f(8), f(8), bf(4, 8), bf(4, 8), bf(8), f(4), f(4)); err != nil {
		t.Errorf("bf16 layernorm backward: %v", err)
	}
	_, _, err = k.LayerNormBackward(bf(4, 8), bf(8), f(8), bf(4, 8), bf(4, 8), bf(8), f(4), f(4))
	wantErr(t, "bf16 parameter gradient", err, "dweight is bf16, want float32")

	// MatMul: C float32 or the inputs' dtype.
	for _, c := range []*Tensor{f(2, 3), bf(2, 3)} {
		d, err := k.MatMul(c, bf(2, 4), bf(4, 3), false, false)
		if err != nil || d.In != BF16 || d.Out != c.DType() {
			t.Errorf("matmul into %v: %+v, %v", c, d, err)
		}
	}
	_, err = k.MatMul(bf(2, 3), f(2, 4), f(4, 3), false, false)
	wantErr(t, "bf16 C of float32 inputs", err, "C is bf16, want float32")
	_, err = k.MatMul(f(2, 3), bf(2, 4), f(4, 3), false, false)
	wantErr(t, "mixed inputs", err, "B is float32, want bf16")

	// Embedding: bf16 tables forward, float32 gradients backward.
	toks := newT(t, Int32, 2, 3)
	if _, _, err := k.EmbeddingForward(bf(2, 3, 8), toks, nil, bf(10, 8), bf(5, 8)); err != nil {
		t.Errorf("bf16 embedding forward: %v", err)
	}
	if _, _, _, err := k.EmbeddingBackward(f(10, 8), f(5, 8), bf(2, 3, 8), toks, nil); err != nil {
		t.Errorf("bf16 embedding backward: %v", err)
	}
	_, _, _, err = k.EmbeddingBackward(bf(10, 8), nil, bf(2, 3, 8), toks, nil)
	wantErr(t, "bf16 embedding gradient", err, "wte is bf16, want float32")

	// Attention: lse float32.
	_, _, err = k.AttentionForward(bf(2, 3, 8), bf(2, 2, 3), bf(2, 3, 24), nil, 2, 2)
	wantErr(t, "bf16 lse", err, "lse is bf16, want float32")

	// Float32-class ops stay float32; the conversions take either.
	wantErr(t, "bf16 axpy", k.Axpy(bf(4), bf(4)), "want float32")
	if err := k.Convert(bf(4), f(4)); err != nil {
		t.Errorf("convert: %v", err)
	}
	wantErr(t, "convert lengths", k.Convert(bf(4), f(5)), "elements")
	if _, err := k.AdamW(f(4), bf(4), f(4), f(4), f(4), nil, AdamW{Beta1: 0.9, Beta2: 0.99, Step: 1}); err != nil {
		t.Errorf("adamw with a bf16 copy: %v", err)
	}
	_, err = k.AdamW(f(4), f(4), f(4), f(4), f(4), nil, AdamW{Beta1: 0.9, Beta2: 0.99, Step: 1})
	wantErr(t, "float32 copy", err, "lowp is float32, want bf16")

	// A backend that has no bf16 kernel for an op says so.
	k.Backend, k.BF16Ops = "test", func(op string) bool { return op == "add" }
	if err := k.Add(bf(4), bf(4), bf(4)); err != nil {
		t.Errorf("bf16 add on a backend that has it: %v", err)
	}
	wantErr(t, "refused bf16", k.GeluForward(bf(4), bf(4)), "gelu forward: bf16 activations are not supported by the test backend yet")
	if err := k.GeluForward(f(4), f(4)); err != nil {
		t.Errorf("float32 gelu: %v", err)
	}
}
