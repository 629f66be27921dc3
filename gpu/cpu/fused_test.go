package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Tests of the fused ops: CrossEntropy and AddLayerNormForward give the
// bits of the ops they fuse (LogSoftmaxForward, the entropy included, then
// LogSoftmaxBackward;
// Add then LayerNormForward), with every kernel set, thread count and
// activation dtype, and match the float64 references of those ops.

// sameBits fails unless got and want are equal bit for bit.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d is %v (%08x), unfused %v (%08x)", what, i,
				got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
		}
	}
}

// actTensor allocates a tensor of dtype dt on b holding vals (rounded for
// bf16).
func actTensor(t *testing.T, b *Backend, dt gpu.DType, vals []float32, shape ...int) *gpu.Tensor {
	t.Helper()
	x, err := b.Alloc(dt, shape...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(x, vals); err != nil {
		t.Fatal(err)
	}
	return x
}

// download returns a float tensor's contents.
func download(t *testing.T, b *Backend, x *gpu.Tensor) []float32 {
	t.Helper()
	v := make([]float32, x.Len())
	if err := b.Download(v, x); err != nil {
		t.Fatal(err)
	}
	return v
}

func TestCrossEntropyIsLogSoftmaxForwardBackward(t *testing.T) {
	cases := []struct {
		name    string
		n, v    int
		std     float64
		ignored []int
		negInf  bool // −Inf logits (masked tokens) in row 0
	}{
		{"V1", 3, 1, 1, []int{1}, false},
		{"V7", 5, 7, 1, []int{0, 4}, true},
		{"V257-large-magnitude", 6, 257, 40, []int{2}, false},
		{"V1031-odd", 9, 1031, 2, []int{3, 8}, true},
		{"V50257-gpt2", 3, 50257, 2, []int{1}, true},
		{"all-ignored", 2, 33, 1, []int{0, 1}, false},
	}
	var worst [3]float64
	for ci, c := range cases {
		r := testRNG(uint64(700 + ci))
		z, tg := lsmInputs(r, c.n, c.v, c.std, c.ignored...)
		if c.negInf && c.v > 4 {
			z[1], z[3] = float32(math.Inf(-1)), float32(math.Inf(-1))
			if tg[0] == 1 || tg[0] == 3 {
				tg[0] = 0
			}
		}
		if len(c.ignored) > 1 {
			tg[c.ignored[1]] = -100 // any negative target is ignored
		}
		dlogp := randn(r, c.n, 1)
		for _, kern := range vecKernels() {
			for _, threads := range []int{1, 2} {
				for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
					t.Run(fmt.Sprintf("%s/%s/threads=%d/%v", c.name, kern.name, threads, dt), func(t *testing.T) {
						defer setVecKernel(kern)()
						b := New(threads)
						// The unfused ops.
						z1 := actTensor(t, b, dt, z, c.n, c.v)
						tg1 := int32Of(t, b, tg, c.n)
						lp1 := tensorOf(t, b, randn(r, c.n, 1), c.n)
						ls1 := tensorOf(t, b, randn(r, c.n, 1), c.n)
						en1 := tensorOf(t, b, randn(r, c.n, 1), c.n)
						dl := tensorOf(t, b, dlogp, c.n)
						b.LogSoftmaxForward(lp1, en1, ls1, z1, tg1)
						b.LogSoftmaxBackward(z1, ls1, nil, tg1, dl, nil)
						// The fused op.
						z2 := actTensor(t, b, dt, z, c.n, c.v)
						lp2 := tensorOf(t, b, randn(r, c.n, 1), c.n)
						ls2 := tensorOf(t, b, randn(r, c.n, 1), c.n)
						en2 := tensorOf(t, b, randn(r, c.n, 1), c.n)
						b.CrossEntropy(lp2, en2, ls2, z2, tg1, dl)
						assertNoErr(t, b)
						sameBits(t, "entropy", download(t, b, en2), download(t, b, en1))
						sameBits(t, "logp", download(t, b, lp2), download(t, b, lp1))
						sameBits(t, "lse", download(t, b, ls2), download(t, b, ls1))
						sameBits(t, "gradient", download(t, b, z2), download(t, b, z1))
						if dt != gpu.Float32 {
							return
						}
						// The float64 references of the unfused ops; a
						// −Inf logit is −1e4 there (probability exactly 0,
						// without 0·∞ in the reference's gradient).
						z64 := to64(z)
						for i, x := range z64 {
							if math.IsInf(x, -1) {
								z64[i] = -1e4
							}
						}
						wl, ws, wh := refLogSoftmax(z64, tg, c.v)
						dz := refLogSoftmaxGrad(z64, tg, c.v, to64(dlogp), nil)
						logp, lse, grad := download(t, b, lp2), download(t, b, ls2), download(t, b, z2)
						for _, i := range c.ignored {
							if logp[i] != 0 {
								t.Errorf("ignored row %d: logp %v, want 0", i, logp[i])
							}
							for j := 0; j < c.v; j++ {
								if grad[i*c.v+j] != 0 {
									t.Fatalf("ignored row %d: gradient %v at %d, want 0", i, grad[i*c.v+j], j)
								}
							}
						}
						// As in TestLogSoftmaxBackward: with logits of
						// magnitude ~100 the float32 lse carries ~4e-6
						// absolute error into every probability.
						tol := 1e-5
						if c.std > 10 {
							tol = 1e-4
						}
						assertClose(t, "logp", logp, wl, 2e-6)
						assertClose(t, "lse", lse, ws, 2e-6)
						// As in TestLogSoftmaxForward's entropy.
						assertClose(t, "entropy", download(t, b, en2), wh, 1e-5)
						assertClose(t, "gradient", grad, dz, tol)
						worst[0] = max(worst[0], relErr(logp, wl))
						worst[1] = max(worst[1], relErr(lse, ws))
						worst[2] = max(worst[2], relErr(grad, dz))
					})
				}
			}
		}
	}
	t.Logf("max relative errors vs float64: logp %.2g, lse %.2g, gradient %.2g", worst[0], worst[1], worst[2])
}

// TestCrossEntropyLeadingDims: logits [B,T,V] with per-row tensors [B,T]
// are the flattened call.
func TestCrossEntropyLeadingDims(t *testing.T) {
	const B, T, V = 2, 3, 17
	r := testRNG(710)
	z, tg := lsmInputs(r, B*T, V, 1, 4)
	dlogp := randn(r, B*T, 1)
	b := New(2)
	run := func(shape ...int) (logp, lse, grad []float32) {
		rows := shape[:len(shape)-1]
		lz := tensorOf(t, b, z, shape...)
		lp := tensorOf(t, b, make([]float32, B*T), rows...)
		ls := tensorOf(t, b, make([]float32, B*T), rows...)
		b.CrossEntropy(lp, nil, ls, lz, int32Of(t, b, tg, rows...), tensorOf(t, b, dlogp, rows...))
		assertNoErr(t, b)
		return F32(lp), F32(ls), F32(lz)
	}
	lp3, ls3, g3 := run(B, T, V)
	lp2, ls2, g2 := run(B*T, V)
	sameBits(t, "logp", lp3, lp2)
	sameBits(t, "lse", ls3, ls2)
	sameBits(t, "gradient", g3, g2)
}

func TestAddLayerNormIsAddThenLayerNorm(t *testing.T) {
	var worst [3]float64
	for ci, c := range []struct{ n, c int }{{1, 1}, {5, 7}, {33, 96}, {70, 768}, {3, 1001}} {
		r := testRNG(uint64(720 + ci))
		// a is a residual stream away from zero, b a branch's output.
		a, w, bias := lnInputs(uint64(730+ci), c.n, c.c, 3)
		bv := randn(r, c.n*c.c, 0.5)
		for _, kern := range vecKernels() {
			for _, threads := range []int{1, 2} {
				for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
					for _, stats := range []bool{true, false} {
						name := fmt.Sprintf("N=%d C=%d/%s/threads=%d/%v/stats=%v", c.n, c.c, kern.name, threads, dt, stats)
						t.Run(name, func(t *testing.T) {
							defer setVecKernel(kern)()
							b := New(threads)
							ta, tb := actTensor(t, b, dt, a, c.n, c.c), actTensor(t, b, dt, bv, c.n, c.c)
							tw, tbias := actTensor(t, b, dt, w, c.c), actTensor(t, b, dt, bias, c.c)
							out := func() (res, ln, mean, rstd *gpu.Tensor) {
								res = actTensor(t, b, dt, randn(r, c.n*c.c, 1), c.n, c.c)
								ln = actTensor(t, b, dt, randn(r, c.n*c.c, 1), c.n, c.c)
								if stats {
									mean, rstd = tensorOf(t, b, randn(r, c.n, 1), c.n), tensorOf(t, b, randn(r, c.n, 1), c.n)
								}
								return res, ln, mean, rstd
							}
							res1, ln1, m1, rs1 := out()
							b.Add(res1, ta, tb)
							b.LayerNormForward(ln1, m1, rs1, res1, tw, tbias)
							res2, ln2, m2, rs2 := out()
							b.AddLayerNormForward(res2, ln2, m2, rs2, ta, tb, tw, tbias)
							assertNoErr(t, b)
							sameBits(t, "sum", download(t, b, res2), download(t, b, res1))
							sameBits(t, "normalised", download(t, b, ln2), download(t, b, ln1))
							if !stats {
								return
							}
							sameBits(t, "mean", download(t, b, m2), download(t, b, m1))
							sameBits(t, "rstd", download(t, b, rs2), download(t, b, rs1))
							if dt != gpu.Float32 {
								return
							}
							// The float64 reference: the float32 sum is
							// a + b rounded once, then layerNorm64.
							sum := make([]float64, len(a))
							for i := range sum {
								sum[i] = float64(float32(float64(a[i]) + float64(bv[i])))
							}
							wo, wm, wr := layerNorm64(sum, to64(w), to64(bias), c.n, c.c)
							got := download(t, b, res2)
							for i := range sum {
								if float64(got[i]) != sum[i] {
									t.Fatalf("sum element %d: %v, want %v", i, got[i], sum[i])
								}
							}
							lo, lm, lr := download(t, b, ln2), download(t, b, m2), download(t, b, rs2)
							assertClose(t, "normalised", lo, wo, 1e-6)
							assertClose(t, "mean", lm, wm, 1e-6)
							assertClose(t, "rstd", lr, wr, 1e-6)
							worst[0] = max(worst[0], relErr(lo, wo))
							worst[1] = max(worst[1], relErr(lm, wm))
							worst[2] = max(worst[2], relErr(lr, wr))
						})
					}
				}
			}
		}
	}
	t.Logf("max relative errors vs float64: out %.2g, mean %.2g, rstd %.2g", worst[0], worst[1], worst[2])
}
