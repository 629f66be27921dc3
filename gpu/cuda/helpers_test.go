//go:build cuda

package cuda

import (
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Helpers of the parity tests, shared by the GPU build and the emulated
// one (build tag cudaemu).

// openTestBackend opens GPU 0 for the calling test and closes it after.
func openTestBackend(t testing.TB) *Backend {
	t.Helper()
	b, err := New(0)
	if err != nil {
		t.Fatalf("open cuda:0: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil && err != errClosed {
			t.Errorf("close: %v", err)
		}
	})
	return b
}

// randVals returns n values uniform in [-1, 1) (never exactly zero).
func randVals(rng *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		for v[i] == 0 {
			v[i] = float32(rng.Float64()*2 - 1)
		}
	}
	return v
}

// devView allocates a tensor of the given shape as a view at offset off of
// a larger allocation (so kernels see an unaligned pointer) and uploads
// vals into it.
func devView(t *testing.T, b gpu.Backend, off int, vals []float32, shape ...int) *gpu.Tensor {
	t.Helper()
	n := 1
	for _, d := range shape {
		n *= d
	}
	whole, err := b.Alloc(gpu.Float32, off+n+5)
	if err != nil {
		t.Fatal(err)
	}
	v := whole.MustView(off, shape...)
	if err := b.Upload(v, vals); err != nil {
		t.Fatal(err)
	}
	return v
}

func download(t *testing.T, b gpu.Backend, x *gpu.Tensor) []float32 {
	t.Helper()
	out := make([]float32, x.Len())
	if err := b.Download(out, x); err != nil {
		t.Fatal(err)
	}
	return out
}
