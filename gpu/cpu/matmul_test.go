package cpu

import (
	"fmt"
	"math"
	"testing"
)

// mmCase is one MatMul call: C[batch?,m,n] = alpha·op(A)·op(B) + beta·C.
type mmCase struct {
	batch              int  // 0: rank-2 C
	aBatched, bBatched bool // rank-3 A / B (else shared rank-2)
	m, n, k            int
	transA, transB     bool
	alpha, beta        float32
}

func (c mmCase) String() string {
	return fmt.Sprintf("b%d(%v,%v)_%dx%dx%d_tA%v_tB%v_a%g_b%g",
		c.batch, c.aBatched, c.bBatched, c.m, c.n, c.k, c.transA, c.transB, c.alpha, c.beta)
}

// refGemm is the float64 reference of one product.
func refGemm(m, n, k int, a []float32, transA bool, b []float32, transB bool, c0 []float32, alpha, beta float64) []float64 {
	out := make([]float64, m*n)
	for i := 0; i < m; i++ {
		for j := 0; j < n; j++ {
			var s float64
			for p := 0; p < k; p++ {
				av := a[i*k+p]
				if transA {
					av = a[p*m+i]
				}
				bv := b[p*n+j]
				if transB {
					bv = b[j*k+p]
				}
				s += float64(av) * float64(bv)
			}
			out[i*n+j] = alpha * s
			if beta != 0 {
				out[i*n+j] += beta * float64(c0[i*n+j])
			}
		}
	}
	return out
}

// mmRun is one way to run a product: a micro-kernel and a worker count.
type mmRun struct {
	kern    *microKernel
	threads int
}

// allRuns pairs every micro-kernel this machine supports (the portable Go
// one always; AVX2 on amd64 with AVX2+FMA, auto, always-packed and
// in-place A) with each worker count.
func allRuns(threads ...int) []mmRun {
	var rs []mmRun
	for _, k := range matmulKernels() {
		for _, th := range threads {
			rs = append(rs, mmRun{k, th})
		}
	}
	return rs
}

// runMMCase runs tc every way in runs against one float64 reference.
func runMMCase(t *testing.T, tc mmCase, seed uint64, runs []mmRun) {
	t.Helper()
	r := testRNG(seed)
	nb := max(tc.batch, 1)
	aShape := []int{tc.m, tc.k}
	if tc.transA {
		aShape = []int{tc.k, tc.m}
	}
	bShape := []int{tc.k, tc.n}
	if tc.transB {
		bShape = []int{tc.n, tc.k}
	}
	cShape := []int{tc.m, tc.n}
	na, nbb := 1, 1
	if tc.batch > 0 {
		cShape = append([]int{tc.batch}, cShape...)
		if tc.aBatched {
			aShape = append([]int{tc.batch}, aShape...)
			na = tc.batch
		}
		if tc.bBatched {
			bShape = append([]int{tc.batch}, bShape...)
			nbb = tc.batch
		}
	}
	ad := randn(r, na*tc.m*tc.k, 1)
	bd := randn(r, nbb*tc.k*tc.n, 1)
	cd := randn(r, nb*tc.m*tc.n, 1)
	if tc.beta == 0 {
		for i := range cd {
			cd[i] = float32(math.NaN())
		}
	}
	sa, sb, sc := tc.m*tc.k, tc.k*tc.n, tc.m*tc.n
	want := make([]float64, 0, nb*sc)
	for i := 0; i < nb; i++ {
		ai, bi := 0, 0
		if na > 1 {
			ai = i
		}
		if nbb > 1 {
			bi = i
		}
		want = append(want, refGemm(tc.m, tc.n, tc.k, ad[ai*sa:(ai+1)*sa], tc.transA, bd[bi*sb:(bi+1)*sb], tc.transB,
			cd[i*sc:(i+1)*sc], float64(tc.alpha), float64(tc.beta))...)
	}
	tol := 2e-6 * math.Sqrt(float64(tc.k)+1)
	for _, run := range runs {
		restore := setMatMulKernel(run.kern)
		be := New(run.threads)
		A := tensorOf(t, be, ad, aShape...)
		B := tensorOf(t, be, bd, bShape...)
		C := tensorOf(t, be, cd, cShape...)
		be.MatMul(C, A, B, tc.transA, tc.transB, tc.alpha, tc.beta)
		restore()
		assertNoErr(t, be)
		got := F32(C)
		for i := 0; i < nb; i++ {
			assertClose(t, fmt.Sprintf("%v [%s, %d threads] batch %d", tc, run.kern.name, run.threads, i),
				got[i*sc:(i+1)*sc], want[i*sc:(i+1)*sc], tol)
		}
	}
}

var mmScalars = []struct{ alpha, beta float32 }{{1, 0}, {0.7, 1}, {-1.3, 0.5}}

func TestMatMulTransposes(t *testing.T) {
	sizes := [][3]int{ // m, n, k
		{1, 1, 1}, {3, 5, 7}, {1, 17, 65}, {17, 3, 129}, {6, 16, 256},
		{7, 17, 300}, {65, 129, 17}, {129, 257, 64}, {13, 40, 513},
	}
	runs := allRuns(2)
	seed := uint64(1)
	for _, s := range sizes {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for _, ab := range mmScalars {
					seed++
					runMMCase(t, mmCase{m: s[0], n: s[1], k: s[2], transA: ta, transB: tb,
						alpha: ab.alpha, beta: ab.beta}, seed, runs)
				}
			}
		}
	}
}

// TestMatMulParallelSplits covers splits over rows and over column groups,
// several column blocks (n > nc) and depth blocks (k > kc), with 1, 2 and 3
// workers.
func TestMatMulParallelSplits(t *testing.T) {
	sizes := [][3]int{
		{257, 129, 300}, // rows split, two depth blocks
		{17, 1000, 200}, // wide: column groups split
		{5, 4200, 20},   // more than one column block
		{300, 65, 600},
	}
	runs := allRuns(1, 2, 3)
	seed := uint64(100)
	for _, s := range sizes {
		for _, tr := range [][2]bool{{false, false}, {true, true}, {false, true}} {
			seed++
			ab := mmScalars[int(seed)%len(mmScalars)]
			runMMCase(t, mmCase{m: s[0], n: s[1], k: s[2], transA: tr[0], transB: tr[1],
				alpha: ab.alpha, beta: ab.beta}, seed, runs)
		}
	}
	// A transposed with rows 4 KiB apart is never read in place.
	runMMCase(t, mmCase{m: 1024, n: 1030, k: 5, transA: true, alpha: 0.7, beta: 1}, seed+1, allRuns(2))
}

func TestMatMulBatched(t *testing.T) {
	shapes := [][3]int{{5, 7, 3}, {33, 20, 17}, {70, 40, 90}}
	runs := allRuns(1, 2)
	seed := uint64(500)
	for _, s := range shapes {
		for _, ops := range [][2]bool{{true, true}, {true, false}, {false, true}} {
			for _, tr := range [][2]bool{{false, false}, {true, false}, {false, true}, {true, true}} {
				seed++
				ab := mmScalars[int(seed)%len(mmScalars)]
				runMMCase(t, mmCase{batch: 3, aBatched: ops[0], bBatched: ops[1],
					m: s[0], n: s[1], k: s[2], transA: tr[0], transB: tr[1],
					alpha: ab.alpha, beta: ab.beta}, seed, runs)
			}
		}
	}
	// Both operands shared: every batch element gets the same product.
	runMMCase(t, mmCase{batch: 2, m: 9, n: 11, k: 13, alpha: 1, beta: 0}, seed+1, runs)
}

// TestMatMulDegenerate covers k = 0 and alpha = 0 (C = beta·C) and empty C.
func TestMatMulDegenerate(t *testing.T) {
	be := New(2)
	r := testRNG(7)
	for _, beta := range []float32{0, 1, 0.5} {
		for _, tc := range []struct{ m, n, k int }{{4, 5, 0}, {4, 5, 6}, {0, 5, 6}, {4, 0, 6}} {
			alpha := float32(0)
			if tc.k == 0 {
				alpha = 1
			}
			A := tensorOf(t, be, randn(r, tc.m*tc.k, 1), tc.m, tc.k)
			B := tensorOf(t, be, randn(r, tc.k*tc.n, 1), tc.k, tc.n)
			c0 := randn(r, tc.m*tc.n, 1)
			C := tensorOf(t, be, c0, tc.m, tc.n)
			be.MatMul(C, A, B, false, false, alpha, beta)
			assertNoErr(t, be)
			for i, v := range F32(C) {
				if want := beta * c0[i]; v != want {
					t.Fatalf("%+v beta %g: C[%d] = %g, want %g", tc, beta, i, v, want)
				}
			}
		}
	}
}

// TestMatMulViews multiplies views into a shared storage (non-zero offsets).
func TestMatMulViews(t *testing.T) {
	be := New(2)
	r := testRNG(9)
	m, n, k := 70, 50, 40
	all := tensorOf(t, be, randn(r, 7+m*k+k*n+m*n, 1), 7+m*k+k*n+m*n)
	A := all.MustView(7, m, k)
	B := all.MustView(7+m*k, k, n)
	C := all.MustView(7+m*k+k*n, m, n)
	ad, bd := append([]float32(nil), F32(A)...), append([]float32(nil), F32(B)...)
	c0 := append([]float32(nil), F32(C)...)
	be.MatMul(C, A, B, false, false, 0.5, 1)
	assertNoErr(t, be)
	assertClose(t, "views", F32(C), refGemm(m, n, k, ad, false, bd, false, c0, 0.5, 1), 2e-5)
}

func TestPeakFMA(t *testing.T) {
	g := PeakFMA(1, 20e6)
	if !(g > 0) || math.IsInf(g, 0) {
		t.Fatalf("PeakFMA = %g", g)
	}
	t.Logf("PeakFMA(1 thread) = %.1f GFLOP/s; features %v; kernel %s", g, CPUFeatures(), MatMulKernel())
}

// TestMatMulSkinny covers the few-row path (decoding) against the float64
// reference, with both layouts of B, every scalar case, lengths that are
// and are not multiples of the vector width, and 1 and 3 workers, whose
// results must agree bit for bit.
func TestMatMulSkinny(t *testing.T) {
	if activeSkinny == nil {
		t.Skip("no skinny kernel on this CPU")
	}
	sizes := [][2]int{{7, 300}, {33, 65}, {300, 9}, {384, 128}, {700, 130}, {1030, 64}} // n, k
	seed := uint64(100)
	for m := 1; m <= skinnyMaxRows; m++ {
		for _, s := range sizes {
			for _, tb := range []bool{false, true} {
				for _, ab := range mmScalars {
					seed++
					tc := mmCase{m: m, n: s[0], k: s[1], transB: tb, alpha: ab.alpha, beta: ab.beta}
					if !useSkinny(&gemm{m: tc.m, n: tc.n, k: tc.k, transB: tb}) {
						t.Fatalf("%v does not take the skinny path", tc)
					}
					runMMCase(t, tc, seed, allRuns(1, 3))
				}
			}
		}
	}
	r := testRNG(7)
	m, n, k := 3, 1030, 200
	ad, bd := randn(r, m*k, 1), randn(r, k*n, 1)
	for _, tb := range []bool{false, true} {
		bShape := []int{k, n}
		if tb {
			bShape = []int{n, k}
		}
		var first []float32
		for _, th := range []int{1, 2, 3} {
			be := New(th)
			C := tensorOf(t, be, make([]float32, m*n), m, n)
			be.MatMul(C, tensorOf(t, be, ad, m, k), tensorOf(t, be, bd, bShape...), false, tb, 1, 0)
			assertNoErr(t, be)
			if first == nil {
				first = append([]float32(nil), F32(C)...)
				continue
			}
			for i, v := range F32(C) {
				if math.Float32bits(v) != math.Float32bits(first[i]) {
					t.Fatalf("transB %v: %d workers give C[%d] = %v, 1 worker %v", tb, th, i, v, first[i])
				}
			}
		}
	}
}

// TestMatMulShortC covers products with few rows of C (decoding a batch of
// sequences), where whole B panels are read in place: around
// directBMaxRows and the register tile's rows, B widths with and without a
// partial panel, one and several depth blocks, 1 and 2 workers.
func TestMatMulShortC(t *testing.T) {
	seed := uint64(900)
	for _, m := range []int{5, 6, 31, 32, directBMaxRows, directBMaxRows + 1} {
		for _, n := range []int{16, 40, 384} {
			for _, k := range []int{128, 300} {
				seed++
				ab := mmScalars[int(seed)%len(mmScalars)]
				runMMCase(t, mmCase{m: m, n: n, k: k, alpha: ab.alpha, beta: ab.beta}, seed, allRuns(1, 2))
			}
		}
	}
}
