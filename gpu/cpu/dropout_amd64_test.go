package cpu

import (
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// TestDropoutVecMatchesScalar: the AVX2 dropout must drop exactly the
// elements gpu.DropoutUniform drops (the cuda kernel draws the same mask)
// and scale the others bit for bit, at any offset into a call, for any p,
// for lengths with and without a tail, with non-finite inputs kept or
// zeroed as the scalar loop does.
func TestDropoutVecMatchesScalar(t *testing.T) {
	if !hasAVX2FMA {
		t.Skip("no AVX2")
	}
	r := testRNG(11)
	for _, p := range []float32{1e-7, 0.1, 0.2, 1.0 / 3, 0.5, 0.9, 0.99999} {
		scale := 1 / (1 - p)
		for _, lo := range []int{0, 5, 1 << 33} {
			for _, n := range []int{1, 7, 8, 9, 64, 1003} {
				seed := r.Uint64()
				src := randn(r, n, 1)
				src[0], src[n/2] = float32(math.Inf(1)), float32(math.NaN())
				got := make([]float32, n)
				vecAVX2.dropout(got, src, lo, p, seed, scale)
				for i, v := range src {
					want := v * scale
					if gpu.DropoutUniform(seed, lo+i) < p {
						want = 0
					}
					if math.Float32bits(got[i]) != math.Float32bits(want) {
						t.Fatalf("p %v, lo %d, n %d: element %d = %v, want %v", p, lo, n, i, got[i], want)
					}
				}
			}
		}
	}
}
