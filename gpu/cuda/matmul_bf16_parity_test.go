//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// Parity of MatMul with bf16 A and B against the contract's reference: the
// inputs rounded to bf16 (gpu.RoundBF16), the cpu backend's float32 MatMul
// on them, and for a bf16 C the result rounded to bf16 once (the old C
// widened first). The emulated build runs kernels/gemm_bf16.cu; a GPU run
// checks the kernel and, where it loaded, cuBLASLt.
//
// Tolerance of element (i, j), with S = |α|·Σ_p |a_ip·b_pj| + |β·c_ij|
// from the rounded inputs in float64:
//   - float32 C: (K+4)·2⁻²³·S. Both sides sum K exact products in float32
//     in different orders, each within about K·2⁻²⁴·S of the exact sum
//     (the kernel rounds once per mma of 16 products, the cpu once per
//     product); the epilogue's α· and +β·c add two roundings;
//   - bf16 C: the same plus one bf16 ulp of the larger of the two results:
//     two float32 values that close may round to neighbouring bf16 values
//     when a rounding boundary lies between them.
// A wrong fragment, a lost product or a stale tile is off by about S/K or
// more, far above these bounds for the K used here (≤ 200).

// bf16Case is one product: shapes as passed to MatMul, the dtype of C, the
// scalars, and the element offset of A's and B's views (1: not 16-byte
// aligned, so the kernel's _ua form runs).
type bf16Case struct {
	matmulCase
	outBF16 bool
	off     int
}

func (c bf16Case) String() string {
	out := "f32"
	if c.outBF16 {
		out = "bf16"
	}
	return fmt.Sprintf("C%v(%s)=A%v(T=%v)·B%v(T=%v) α=%g β=%g off=%d",
		c.c, out, c.a, c.transA, c.b, c.transB, c.alpha, c.beta, c.off)
}

// bf16Cases: every transpose pair at sizes that are and are not multiples
// of the 128×128×32 tile and of 8 (the aligned loads), K = 1, rank 2 and
// 3, shared operands (the tall form when B is shared and A not
// transposed), float32 C accumulated with β = 1, bf16 C with β 0 and
// other, and aligned and unaligned operands: all 16 kernels.
func bf16Cases() []bf16Case {
	type mnk struct{ m, n, k int }
	sizes := []mnk{{1, 1, 1}, {7, 13, 5}, {130, 129, 33}, {3, 200, 1}, {64, 48, 72}, {136, 264, 40}}
	dims := func(rows, cols int, trans bool) []int {
		if trans {
			return []int{cols, rows}
		}
		return []int{rows, cols}
	}
	var cs []bf16Case
	for _, s := range sizes {
		for tr := 0; tr < 4; tr++ {
			ta, tb := tr&1 == 1, tr&2 == 2
			a2, b2 := dims(s.m, s.k, ta), dims(s.k, s.n, tb)
			const batch = 3
			a3, b3 := append([]int{batch}, a2...), append([]int{batch}, b2...)
			c2, c3 := []int{s.m, s.n}, []int{batch, s.m, s.n}
			cs = append(cs,
				bf16Case{matmulCase{a2, b2, c2, ta, tb, 1, 0}, false, 0},       // plain, float32 C
				bf16Case{matmulCase{a2, b2, c2, ta, tb, -1.25, 0.75}, true, 1}, // plain, bf16 C, unaligned
				bf16Case{matmulCase{a3, b3, c3, ta, tb, 1, 1}, false, 0},       // batched, accumulate into float32
				bf16Case{matmulCase{a3, b2, c3, ta, tb, 0.5, 0}, true, 0},      // shared B (tall when !transA), bf16 C
				bf16Case{matmulCase{a2, b3, c3, ta, tb, 1.5, -0.5}, false, 1},  // shared A, unaligned
			)
		}
	}
	return cs
}

// bf16Upload puts vals (rounded on upload) into a bf16 view at element
// offset off of a larger cuda allocation.
func bf16Upload(t *testing.T, g *Backend, off int, vals []float32, shape ...int) *gpu.Tensor {
	t.Helper()
	whole, err := g.Alloc(gpu.BF16, off+numel(shape)+5)
	if err != nil {
		t.Fatal(err)
	}
	v := whole.MustView(off, shape...)
	if err := g.Upload(v, vals); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkMatMulBF16 runs c on g and the reference on h and compares with the
// bounds above. It returns the kernel the product ran on g's kernel path.
func checkMatMulBF16(t *testing.T, g *Backend, h *cpu.Backend, rng *rand.Rand, c bf16Case, path string) string {
	t.Helper()
	av, bv, cv := randVals(rng, numel(c.a)), randVals(rng, numel(c.b)), randVals(rng, numel(c.c))
	ar, br := roundBF16s(av), roundBF16s(bv)
	outDT := gpu.Float32
	if c.outBF16 {
		outDT = gpu.BF16
		cv = roundBF16s(cv)
	}
	cInit := cv
	if c.beta == 0 { // C is ignored: start it as NaN on both
		cInit = make([]float32, len(cv))
		for i := range cInit {
			cInit[i] = float32(math.NaN())
		}
	}
	ga, gb := bf16Upload(t, g, c.off, av, c.a...), bf16Upload(t, g, c.off, bv, c.b...)
	var gc *gpu.Tensor
	if c.outBF16 {
		gc = bf16Upload(t, g, 1-c.off, cInit, c.c...)
	} else {
		gc = devView(t, g, 2, cInit, c.c...)
	}
	ha, hb, hc := devView(t, h, 0, ar, c.a...), devView(t, h, 0, br, c.b...), devView(t, h, 0, cInit, c.c...)

	p, err := g.checker.MatMul(gc, ga, gb, c.transA, c.transB)
	if err != nil {
		t.Fatalf("%s: %v", c, err)
	}
	if p.In != gpu.BF16 || p.Out != outDT {
		t.Fatalf("%s: Checker says %v → %v", c, p.In, p.Out)
	}
	kernel := gemmKernelFor(p, c.transA, c.transB, uint64(g.ptr(ga)), uint64(g.ptr(gb))).name

	g.MatMul(gc, ga, gb, c.transA, c.transB, c.alpha, c.beta)
	h.MatMul(hc, ha, hb, c.transA, c.transB, c.alpha, c.beta)
	if err := h.Err(); err != nil {
		t.Fatalf("%s: cpu: %v", c, err)
	}
	got := download(t, g, gc)
	want := append([]float32(nil), cpu.F32(hc)...)
	if c.outBF16 {
		want = roundBF16s(want)
	}

	scale := c.errorScale(ar, br, cv)
	k := c.k()
	worst, worstAt := 0.0, -1
	for idx := range got {
		tol := float64(k+4) * 0x1p-23 * scale[idx]
		if c.outBF16 {
			tol += bf16ULP(float32(math.Max(math.Abs(float64(got[idx])), math.Abs(float64(want[idx])))))
		}
		d := math.Abs(float64(got[idx]) - float64(want[idx]))
		if math.IsNaN(d) || math.IsInf(d, 0) {
			t.Fatalf("%s [%s, %s]: element %d is %v, reference %v", c, path, kernel, idx, got[idx], want[idx])
		}
		if r := d / (tol + 1e-30); r > worst {
			worst, worstAt = r, idx
		}
	}
	if worst > 1 {
		t.Errorf("%s [%s, %s]: element %d is %v, reference %v: %.3g times the tolerance",
			c, path, kernel, worstAt, got[worstAt], want[worstAt], worst)
	}
	if err := g.Err(); err != nil {
		t.Fatalf("%s [%s]: %v", c, path, err)
	}
	return kernel
}

func TestMatMulBF16Parity(t *testing.T) {
	g := openTestBackend(t)
	h := cpu.New(2)
	t.Logf("%s; GEMM: %s", g.Name(), g.GEMM())
	paths := []struct {
		name   string
		kernel bool
	}{{"bf16 kernel", true}}
	if g.CuBLASLtLoaded() {
		paths = append(paths, struct {
			name   string
			kernel bool
		}{"cuBLASLt", false})
	} else {
		t.Logf("cuBLASLt not loaded: only the kernel is tested")
	}
	for _, p := range paths {
		g.UseGEMMKernel(p.kernel)
		rng := rand.New(rand.NewPCG(14, 3))
		ran := map[string]int{}
		for _, c := range bf16Cases() {
			ran[checkMatMulBF16(t, g, h, rng, c, p.name)]++
		}
		if !p.kernel {
			continue
		}
		// Every form of the kernel ran at least once.
		for _, ta := range "nt" {
			for _, tb := range "nt" {
				for _, out := range []string{"cf32", "cbf16"} {
					for _, ua := range []string{"", "_ua"} {
						name := fmt.Sprintf("gemm_bf16_%c%c_%s%s", ta, tb, out, ua)
						if ran[name] == 0 {
							t.Errorf("no case ran %s", name)
						}
					}
				}
			}
		}
	}
	g.UseGEMMKernel(false)
}

// TestMatMulBF16ZeroK: an empty inner dimension gives C = β·C, rounded once
// for a bf16 C.
func TestMatMulBF16ZeroK(t *testing.T) {
	g := openTestBackend(t)
	a, _ := g.Alloc(gpu.BF16, 4, 0)
	bm, _ := g.Alloc(gpu.BF16, 0, 5)
	vals := randVals(rand.New(rand.NewPCG(14, 4)), 20)
	for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
		c, err := g.Alloc(dt, 4, 5)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Upload(c, vals); err != nil {
			t.Fatal(err)
		}
		g.MatMul(c, a, bm, false, false, 1, 0.3)
		got := download(t, g, c)
		for i, v := range got {
			want := float32(0.3) * vals[i]
			if dt == gpu.BF16 {
				want = gpu.RoundBF16(0.3 * gpu.RoundBF16(vals[i]))
			}
			if v != want {
				t.Fatalf("%v C[%d] = %v, want %v", dt, i, v, want)
			}
		}
	}
}
