//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// These tests run only on a machine with an NVIDIA GPU (Ampere or newer)
// and its driver: `go test -tags cuda ./gpu/cuda/`, or the compiled test
// binary of `make gpu-bundle`. Each test opens its own Backend on GPU 0 and
// uses it from the test's goroutine only (a Backend belongs to the goroutine
// that created it, so subtests, which run on goroutines of their own, open
// none).

// matmulCase is one product: shapes of A, B, C as passed to MatMul.
type matmulCase struct {
	a, b, c        []int
	transA, transB bool
	alpha, beta    float32
}

func (c matmulCase) String() string {
	return fmt.Sprintf("C%v=A%v(T=%v)·B%v(T=%v) α=%g β=%g", c.c, c.a, c.transA, c.b, c.transB, c.alpha, c.beta)
}

// matmulCases covers every transpose combination, ranks 2 and 3, shared
// rank-2 operands, the tall batched form, sizes that are and are not
// multiples of the 64×64×16 tile, and beta 0 (C ignored), 1 and other.
func matmulCases() []matmulCase {
	type mnk struct{ m, n, k int }
	sizes := []mnk{{1, 1, 1}, {7, 13, 5}, {64, 64, 16}, {65, 63, 130}, {128, 96, 200}, {3, 300, 70}}
	scal := [][2]float32{{1, 0}, {0.5, 1}, {-1.25, 0.75}}
	dims := func(rows, cols int, trans bool) []int {
		if trans {
			return []int{cols, rows}
		}
		return []int{rows, cols}
	}
	var cs []matmulCase
	for i, s := range sizes {
		for tr := 0; tr < 4; tr++ {
			ta, tb := tr&1 == 1, tr&2 == 2
			ab := scal[(i+tr)%len(scal)]
			a2, b2 := dims(s.m, s.k, ta), dims(s.k, s.n, tb)
			const batch = 3
			a3 := append([]int{batch}, a2...)
			b3 := append([]int{batch}, b2...)
			c2, c3 := []int{s.m, s.n}, []int{batch, s.m, s.n}
			cs = append(cs,
				matmulCase{a2, b2, c2, ta, tb, ab[0], ab[1]}, // plain
				matmulCase{a3, b3, c3, ta, tb, ab[0], ab[1]}, // batched
				matmulCase{a3, b2, c3, ta, tb, ab[0], ab[1]}, // shared B (tall when !transA)
				matmulCase{a2, b3, c3, ta, tb, ab[0], ab[1]}, // shared A
				matmulCase{a2, b2, c3, ta, tb, ab[0], ab[1]}, // both shared
			)
		}
	}
	return cs
}

// errorScale is, for every element of C, the scale of the error a float32
// product of this size can make: |α|·Σ_p |op(A)_ip·op(B)_pj| + |β·c_ij|,
// from the operands av, bv and C's initial values cv in float64.
func (c matmulCase) errorScale(av, bv, cv []float32) []float64 {
	batch, m, n := 1, c.c[len(c.c)-2], c.c[len(c.c)-1]
	if len(c.c) == 3 {
		batch = c.c[0]
	}
	k := c.k()
	at := func(z, i, p int) float64 { // op(A)[z][i][p]
		base := 0
		if len(c.a) == 3 {
			base = z * m * k
		}
		if c.transA {
			return float64(av[base+p*m+i])
		}
		return float64(av[base+i*k+p])
	}
	bt := func(z, p, j int) float64 { // op(B)[z][p][j]
		base := 0
		if len(c.b) == 3 {
			base = z * k * n
		}
		if c.transB {
			return float64(bv[base+j*k+p])
		}
		return float64(bv[base+p*n+j])
	}
	scale := make([]float64, batch*m*n)
	for z := 0; z < batch; z++ {
		for i := 0; i < m; i++ {
			for j := 0; j < n; j++ {
				idx := (z*m+i)*n + j
				s := 0.0
				for p := 0; p < k; p++ {
					s += math.Abs(at(z, i, p) * bt(z, p, j))
				}
				s *= math.Abs(float64(c.alpha))
				if c.beta != 0 {
					s += math.Abs(float64(c.beta) * float64(cv[idx]))
				}
				scale[idx] = s
			}
		}
	}
	return scale
}

// k is the product's inner dimension.
func (c matmulCase) k() int {
	if c.transA {
		return c.a[len(c.a)-2]
	}
	return c.a[len(c.a)-1]
}

func numel(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// checkMatMul runs c on the cuda backend and on the cpu backend with the
// same inputs and compares element by element: |gpu − cpu| must stay below
// tol × (|α|·Σ_p |a_ip||b_pj| + |β·c_ij| + 1e-30), the scale of the error a
// product of that size can make. beta = 0 starts C as NaN on both (the
// contract says C is then ignored).
func checkMatMul(t *testing.T, g *Backend, h *cpu.Backend, rng *rand.Rand, c matmulCase, tol float64, path string) {
	t.Helper()
	av, bv := randVals(rng, numel(c.a)), randVals(rng, numel(c.b))
	cv := randVals(rng, numel(c.c))
	if c.beta == 0 {
		for i := range cv {
			cv[i] = float32(math.NaN())
		}
	}
	ga, gb, gc := devView(t, g, 3, av, c.a...), devView(t, g, 1, bv, c.b...), devView(t, g, 2, cv, c.c...)
	ha, hb, hc := devView(t, h, 0, av, c.a...), devView(t, h, 0, bv, c.b...), devView(t, h, 0, cv, c.c...)
	g.MatMul(gc, ga, gb, c.transA, c.transB, c.alpha, c.beta)
	h.MatMul(hc, ha, hb, c.transA, c.transB, c.alpha, c.beta)
	if err := h.Err(); err != nil {
		t.Fatalf("%s: cpu: %v", c, err)
	}
	got := download(t, g, gc)
	want := cpu.F32(hc)

	scale := c.errorScale(av, bv, cv)
	worst, worstAt := 0.0, -1
	for idx := range got {
		d := math.Abs(float64(got[idx]) - float64(want[idx]))
		if math.IsNaN(d) {
			t.Fatalf("%s [%s]: element %d is %v, cpu %v", c, path, idx, got[idx], want[idx])
		}
		if r := d / (scale[idx] + 1e-30); r > worst {
			worst, worstAt = r, idx
		}
	}
	if worst > tol {
		t.Errorf("%s [%s]: relative error %.3g at element %d (gpu %v, cpu %v), tolerance %.3g",
			c, path, worst, worstAt, got[worstAt], want[worstAt], tol)
	}
	if err := g.Err(); err != nil {
		t.Fatalf("%s [%s]: %v", c, path, err)
	}
}

// Tolerances, relative to the error scale above. TF32 rounds both inputs to
// 10 mantissa bits (2⁻¹¹ each, about 1e-3 per product): 1e-2 leaves room.
// FP32 (cuBLAS default math, our kernel) differs from the cpu only in the
// order of the additions: a few k·2⁻²⁴ at worst.
const (
	tolTF32 = 1e-2
	tolFP32 = 1e-5
)

func TestMatMulParity(t *testing.T) {
	g := openTestBackend(t)
	h := cpu.New(2)
	t.Logf("%s; GEMM: %s", g.Name(), g.GEMM())
	type path struct {
		name   string
		tol    float64
		kernel bool
		tf32   bool
	}
	paths := []path{{"tiled kernel", tolFP32, true, false}}
	if g.CuBLASLoaded() {
		paths = append(paths, path{"cuBLAS TF32", tolTF32, false, true}, path{"cuBLAS FP32", tolFP32, false, false})
	} else {
		t.Logf("cuBLAS not loaded: only the kernel is tested")
	}
	for _, p := range paths {
		g.UseGEMMKernel(p.kernel)
		if !p.kernel {
			if err := g.SetTF32(p.tf32); err != nil {
				t.Fatal(err)
			}
		}
		rng := rand.New(rand.NewPCG(1, 2))
		for _, c := range matmulCases() {
			tol := p.tol
			if !p.tf32 {
				tol = p.tol * math.Max(1, float64(c.k())/16)
			}
			checkMatMul(t, g, h, rng, c, tol, p.name)
		}
	}
}

// TestMatMulZeroK: an empty inner dimension gives C = beta·C.
func TestMatMulZeroK(t *testing.T) {
	g := openTestBackend(t)
	a, _ := g.Alloc(gpu.Float32, 4, 0)
	bm, _ := g.Alloc(gpu.Float32, 0, 5)
	c := devView(t, g, 0, []float32{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, 4, 5)
	g.MatMul(c, a, bm, false, false, 1, 0.5)
	got := download(t, g, c)
	for i, v := range got {
		if v != float32(i+1)*0.5 {
			t.Fatalf("C[%d] = %v, want %v", i, v, float32(i+1)*0.5)
		}
	}
}

// TestMatMulErrors: bad shapes are recorded with the cpu backend's message
// and make later ops no-ops.
func TestMatMulErrors(t *testing.T) {
	g := openTestBackend(t)
	h := cpu.New(1)
	mk := func(b gpu.Backend, shape ...int) *gpu.Tensor {
		x, err := b.Alloc(gpu.Float32, shape...)
		if err != nil {
			t.Fatal(err)
		}
		return x
	}
	g.MatMul(mk(g, 2, 3), mk(g, 2, 4), mk(g, 5, 3), false, false, 1, 0)
	h.MatMul(mk(h, 2, 3), mk(h, 2, 4), mk(h, 5, 3), false, false, 1, 0)
	if g.Err() == nil || h.Err() == nil || g.Err().Error() != h.Err().Error() {
		t.Fatalf("cuda error %v, cpu error %v: want the same", g.Err(), h.Err())
	}
	// A later op does nothing and Sync reports the first error.
	c := mk(g, 2, 2)
	g.MatMul(c, mk(g, 2, 2), mk(g, 2, 2), false, false, 1, 0)
	if err := g.Sync(); err == nil || !strings.Contains(err.Error(), "inner dimensions") {
		t.Fatalf("Sync = %v, want the first error", err)
	}
}

// TestUploadDownloadViews round-trips views at offsets, large tensors that
// go through the staging ring several times, and Int32 data.
func TestUploadDownloadViews(t *testing.T) {
	g := openTestBackend(t)
	rng := rand.New(rand.NewPCG(5, 6))
	whole, err := g.Alloc(gpu.Float32, 1000)
	if err != nil {
		t.Fatal(err)
	}
	vals := randVals(rng, 100)
	if err := g.Upload(whole.MustView(17, 10, 10), vals); err != nil {
		t.Fatal(err)
	}
	all := download(t, g, whole)
	for i, v := range all {
		want := float32(0)
		if i >= 17 && i < 117 {
			want = vals[i-17]
		}
		if v != want {
			t.Fatalf("element %d = %v, want %v", i, v, want)
		}
	}
	part := download(t, g, whole.MustView(50, 30))
	for i, v := range part {
		if v != vals[33+i] {
			t.Fatalf("view element %d = %v, want %v", i, v, vals[33+i])
		}
	}

	// 48 MiB: six 8 MiB staging chunks, more than the ring's slots.
	big := randVals(rng, 12<<20+3)
	bt, err := g.Alloc(gpu.Float32, len(big))
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Upload(bt, big); err != nil {
		t.Fatal(err)
	}
	back := download(t, g, bt)
	for i := range big {
		if back[i] != big[i] {
			t.Fatalf("big element %d = %v, want %v", i, back[i], big[i])
		}
	}

	ids := make([]int32, 5000)
	for i := range ids {
		ids[i] = int32(rng.IntN(1<<31-1)) - 1<<30
	}
	it, err := g.Alloc(gpu.Int32, 50, 100)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.UploadInt32(it, ids); err != nil {
		t.Fatal(err)
	}
	gotIDs := make([]int32, len(ids))
	if err := g.DownloadInt32(gotIDs, it); err != nil {
		t.Fatal(err)
	}
	for i := range ids {
		if gotIDs[i] != ids[i] {
			t.Fatalf("id %d = %d, want %d", i, gotIDs[i], ids[i])
		}
	}
	// Wrong lengths and dtypes are errors, not recorded ones.
	if err := g.Upload(it, make([]float32, 5000)); err == nil {
		t.Error("float upload into an Int32 tensor succeeded")
	}
	if err := g.Download(make([]float32, 3), whole); err == nil {
		t.Error("download into a short slice succeeded")
	}
	if err := g.Err(); err != nil {
		t.Fatalf("argument errors were recorded: %v", err)
	}
}
