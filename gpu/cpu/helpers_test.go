package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Shared test helpers: random inputs (never zeros), float64 references,
// relative-error comparison and central finite differences.

// testRNG returns a deterministic generator for a test.
func testRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x5eed)) }

// randn returns n normal draws scaled by std.
func randn(r *rand.Rand, n int, std float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(r.NormFloat64() * std)
	}
	return x
}

// tensorOf allocates a float32 tensor on b holding data.
func tensorOf(t testing.TB, b *Backend, data []float32, shape ...int) *gpu.Tensor {
	t.Helper()
	x, err := b.Alloc(gpu.Float32, shape...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(x, data); err != nil {
		t.Fatal(err)
	}
	return x
}

// int32Of allocates an Int32 tensor on b holding data.
func int32Of(t testing.TB, b *Backend, data []int32, shape ...int) *gpu.Tensor {
	t.Helper()
	x, err := b.Alloc(gpu.Int32, shape...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.UploadInt32(x, data); err != nil {
		t.Fatal(err)
	}
	return x
}

// to64 widens a float32 slice.
func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

// relErr is max|got−want| / max(max|want|, tiny): an error relative to the
// scale of the reference, so near-zero entries do not dominate.
func relErr(got []float32, want []float64) float64 {
	var maxDiff, maxRef float64
	for i := range want {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i])-want[i]))
		maxRef = math.Max(maxRef, math.Abs(want[i]))
	}
	return maxDiff / math.Max(maxRef, 1e-30)
}

// assertClose fails the test when relErr(got, want) > tol or lengths differ.
func assertClose(t testing.TB, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: length %d, want %d", what, len(got), len(want))
	}
	if e := relErr(got, want); e > tol || math.IsNaN(e) {
		t.Errorf("%s: relative error %.3g > %.3g", what, e, tol)
	}
}

// assertNoErr fails the test when the backend recorded an error.
func assertNoErr(t testing.TB, b *Backend) {
	t.Helper()
	if err := b.Err(); err != nil {
		t.Fatalf("backend error: %v", err)
	}
}

// numGrad returns the central finite-difference gradient of the scalar f
// with respect to x, evaluated in float64 (x is perturbed in place and
// restored).
func numGrad(x []float64, f func() float64) []float64 {
	g := make([]float64, len(x))
	for i := range x {
		old := x[i]
		h := 1e-6 * math.Max(1, math.Abs(old))
		x[i] = old + h
		fp := f()
		x[i] = old - h
		fm := f()
		x[i] = old
		g[i] = (fp - fm) / (2 * h)
	}
	return g
}
