package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// TestBF16Storage: a bf16 tensor holds each uploaded value rounded to
// nearest even and downloads it exactly; Convert rounds and widens the
// same way; Fill rounds once; Copy copies bits; AdamW's bf16 copy is the
// updated params rounded.
func TestBF16Storage(t *testing.T) {
	b := New(2)
	rng := rand.New(rand.NewPCG(3, 9))
	const n = 1000
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(rng.NormFloat64() * 5)
	}
	round := func(xs []float32) []float32 {
		out := make([]float32, len(xs))
		for i, x := range xs {
			out[i] = gpu.RoundBF16(x)
		}
		return out
	}
	want := round(vals)
	bt, err := b.Alloc(gpu.BF16, n)
	if err != nil {
		t.Fatal(err)
	}
	if bt.DType() != gpu.BF16 || bt.DType().Size() != 2 {
		t.Fatalf("dtype %v of size %d", bt.DType(), bt.DType().Size())
	}
	if err := b.Upload(bt, vals); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, n)
	if err := b.Download(got, bt); err != nil {
		t.Fatal(err)
	}
	equal := func(what string, got, want []float32) {
		t.Helper()
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s[%d] = %g, want %g", what, i, got[i], want[i])
			}
		}
	}
	equal("download", got, want)
	for i, x := range got {
		if math.Abs(float64(x-vals[i])) > math.Abs(float64(vals[i]))/256 {
			t.Fatalf("value %d: %g rounded to %g, more than half a bf16 ulp", i, vals[i], x)
		}
	}

	ft, _ := b.Alloc(gpu.Float32, n)
	copy(F32(ft), vals)
	ct, _ := b.Alloc(gpu.BF16, n)
	b.Convert(ct, ft)
	b.Convert(ft, ct)
	equal("convert there and back", F32(ft), want)

	b.Copy(bt, ct)
	b.Fill(ct, 0.1)
	if err := b.Download(got, bt); err != nil {
		t.Fatal(err)
	}
	equal("copy", got, want)
	if err := b.Download(got, ct); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != gpu.RoundBF16(0.1) {
			t.Fatalf("fill[%d] = %g", i, got[i])
		}
	}

	p, _ := b.Alloc(gpu.Float32, n)
	g, _ := b.Alloc(gpu.Float32, n)
	m, _ := b.Alloc(gpu.Float32, n)
	v, _ := b.Alloc(gpu.Float32, n)
	copy(F32(p), vals)
	for i := range F32(g) {
		F32(g)[i] = float32(rng.NormFloat64())
	}
	b.AdamW(p, ct, g, m, v, nil, gpu.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, Step: 1})
	if err := b.Download(got, ct); err != nil {
		t.Fatal(err)
	}
	equal("adamw bf16 copy", got, round(F32(p)))
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
}
