//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Tests of the tensor-core helpers of kernels/bf16.cuh and kernels/mma.cuh
// through the probes of kernels/tensorcore_probe.cu: each lane's registers
// after ldmatrix and mma.sync are checked against the PTX ISA's fragment
// tables, written out again here from the ISA's text (PTX ISA 9.0,
// 9.7.14.5.7 "Matrix Fragments for mma.m16n8k8", 9.7.14.5.8 "Matrix
// Fragments for mma.m16n8k16 with floating point type", 9.7.14.5.15
// "Warp-level matrix load instruction: ldmatrix"), and the products against
// float64. They run under the emulator (make cuda-emu-test) and on a GPU,
// where they check the emulator's reading of the ISA against hardware.

// ---- bf16 reference ----

// bf16Value is the value of bf16 bits h.
func bf16Value(h uint16) float64 {
	return float64(math.Float32frombits(uint32(h) << 16))
}

// bf16RNE rounds a non-NaN x to the nearest bf16 by comparing distances
// (ties to the even bit pattern), with infinity standing for 2^128, the
// step above the largest finite bf16: independent of the kernels' bit trick.
func bf16RNE(x float32) uint16 {
	down := uint16(math.Float32bits(x) >> 16) // truncation: same sign, |down| <= |x|
	if bf16Value(down) == float64(x) || math.IsInf(float64(x), 0) {
		return down
	}
	up := down + 1 // the next bf16 away from zero
	mag := func(h uint16) float64 {
		if h&0x7fff == 0x7f80 {
			return math.Ldexp(1, 128)
		}
		return math.Abs(bf16Value(h))
	}
	ax := math.Abs(float64(x))
	dDown, dUp := ax-mag(down), mag(up)-ax // exact in float64
	switch {
	case dDown < dUp:
		return down
	case dUp < dDown:
		return up
	case down%2 == 0:
		return down
	}
	return up
}

// bf16Canonical is the bf16 every NaN converts to in the emulator and in
// cuda_bf16.hpp's generic path; on a GPU, TestBF16Conversion checks that
// cvt.rn.bf16.f32 gives it too (the PTX ISA only says "a NaN").
const bf16Canonical = 0x7fff

// toBF16 rounds every value of x to bf16.
func toBF16(x []float32) []uint16 {
	h := make([]uint16, len(x))
	for i, v := range x {
		h[i] = bf16RNE(v)
	}
	return h
}

// packWords packs bf16 values two to an int32 word, the lower index in the
// low half (little-endian memory).
func packWords(h []uint16) []int32 {
	w := make([]int32, len(h)/2)
	for i := range w {
		w[i] = int32(uint32(h[2*i]) | uint32(h[2*i+1])<<16)
	}
	return w
}

// regHalves splits a 32-bit fragment register into its low and high bf16.
func regHalves(r int32) (lo, hi uint16) { return uint16(uint32(r)), uint16(uint32(r) >> 16) }

// ---- launching the probes ----

func tcAlloc(t *testing.T, b *Backend, d gpu.DType, n int) *gpu.Tensor {
	t.Helper()
	x, err := b.Alloc(d, n)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func tcUploadF32(t *testing.T, b *Backend, v []float32) *gpu.Tensor {
	t.Helper()
	x := tcAlloc(t, b, gpu.Float32, len(v))
	if err := b.Upload(x, v); err != nil {
		t.Fatal(err)
	}
	return x
}

func tcUploadI32(t *testing.T, b *Backend, v []int32) *gpu.Tensor {
	t.Helper()
	x := tcAlloc(t, b, gpu.Int32, len(v))
	if err := b.UploadInt32(x, v); err != nil {
		t.Fatal(err)
	}
	return x
}

func tcDownloadI32(t *testing.T, b *Backend, x *gpu.Tensor) []int32 {
	t.Helper()
	v := make([]int32, x.Len())
	if err := b.DownloadInt32(v, x); err != nil {
		t.Fatal(err)
	}
	return v
}

// tcLaunch runs a probe kernel with blocks of one warp and fails the test
// on any error.
func tcLaunch(t *testing.T, b *Backend, kernel string, blocks int, args ...any) {
	t.Helper()
	b.launch(kernel, [3]int{blocks, 1, 1}, [3]int{32, 1, 1}, 0, args...)
	if err := b.Sync(); err != nil {
		t.Fatalf("%s: %v", kernel, err)
	}
}

// ---- bf16 conversions ----

func TestBF16Conversion(t *testing.T) {
	b := openTestBackend(t)
	rng := rand.New(rand.NewPCG(14, 7))
	special := []uint32{
		0x00000000, 0x80000000, 0x3f800000, 0xbf800000, // ±0, ±1
		0x00000001, 0x007fffff, 0x00800000, 0x80000001, // subnormals, the smallest normal
		0x00008000, 0x00018000, 0x00008001, 0x00007fff, // ties and near-ties among subnormals
		0x3f808000, 0x3f818000, 0x3f808001, 0x3f807fff, // ties to even (down, up) and near-ties
		0xbf818000, 0xc0ff8000, // negative ties
		0x7f7f7fff, 0x7f7f8000, 0x7f7fffff, 0xff7fffff, // around the largest bf16: overflow to ±inf
		0x7f800000, 0xff800000, // ±inf
		0x7fc00000, 0xffc00000, 0x7f800001, 0xff800001, 0x7fffffff, 0x7fa00000, // NaNs, quiet and signalling
	}
	var x []float32
	for _, u := range special {
		x = append(x, math.Float32frombits(u))
	}
	for i := 0; i < 2000; i++ {
		x = append(x, math.Float32frombits(rng.Uint32()))  // every exponent
		x = append(x, float32(rng.Float64()*2-1)*0x1p-125) // around the subnormals
		x = append(x, float32(rng.NormFloat64()))
	}
	n := len(x)
	xs := tcUploadF32(t, b, x)
	bitsT := tcAlloc(t, b, gpu.Int32, n)
	backT := tcAlloc(t, b, gpu.Float32, n)
	packedT := tcAlloc(t, b, gpu.Int32, n/2)
	tcLaunch(t, b, "tc_probe_bf16", (n+31)/32, b.ptr(xs), int32(n), b.ptr(bitsT), b.ptr(backT), b.ptr(packedT))
	bits, packed := tcDownloadI32(t, b, bitsT), tcDownloadI32(t, b, packedT)
	back := download(t, b, backT)

	bad := 0
	for i, v := range x {
		want := uint16(bf16Canonical)
		if !math.IsNaN(float64(v)) {
			want = bf16RNE(v)
		}
		got := uint16(bits[i])
		wantBack := math.Float32frombits(uint32(got) << 16)
		if bits[i] != int32(want) || math.Float32bits(back[i]) != math.Float32bits(wantBack) {
			if bad++; bad <= 10 {
				t.Errorf("bf16(%#08x = %g) = %#04x (widened %#08x), want %#04x", math.Float32bits(v), v, got,
					math.Float32bits(back[i]), want)
			}
		}
	}
	for j := range packed {
		want := int32(uint32(uint16(bits[2*j])) | uint32(uint16(bits[2*j+1]))<<16)
		if packed[j] != want {
			if bad++; bad <= 10 {
				t.Errorf("pack(%g, %g) = %#08x, want %#08x", x[2*j], x[2*j+1], uint32(packed[j]), uint32(want))
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d of %d conversions wrong", bad, n+n/2)
	}
}

// TestBF16Reference checks the test's own rounding on cases worked by hand.
func TestBF16Reference(t *testing.T) {
	for _, c := range []struct {
		x    uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, {0x3f808000, 0x3f80}, {0x3f818000, 0x3f82}, {0x3f808001, 0x3f81},
		{0x00008000, 0x0000}, {0x00018000, 0x0002}, {0x7f7f8000, 0x7f80}, {0x7f7f7fff, 0x7f7f},
		{0xbf818000, 0xbf82}, {0x7f800000, 0x7f80}, {0xff7fffff, 0xff80},
	} {
		if got := bf16RNE(math.Float32frombits(c.x)); got != c.want {
			t.Errorf("bf16RNE(%#08x) = %#04x, want %#04x", c.x, got, c.want)
		}
	}
}

// ---- ldmatrix ----

// ldmatrixForms are the forms of tc_probe_ldmatrix, in its order.
var ldmatrixForms = []struct {
	num   int
	trans bool
}{{1, false}, {2, false}, {4, false}, {1, true}, {2, true}, {4, true}}

// TestLdmatrixFragments loads 32 shared rows whose elements are numbered
// (row r, column c holds r·8 + c, exact in bf16), with lane i pointing at a
// random row, and checks each lane's registers against the ldmatrix table:
// lanes 8m..8m+7 address rows 0..7 of matrix m; register m of lane l holds
// row l/4, columns 2·(l%4) and 2·(l%4)+1 of matrix m, and with .trans row
// 2·(l%4) and 2·(l%4)+1 of column l/4.
func TestLdmatrixFragments(t *testing.T) {
	b := openTestBackend(t)
	rng := rand.New(rand.NewPCG(14, 8))
	vals := make([]float32, 32*8)
	for i := range vals {
		vals[i] = float32(i)
	}
	rowOf := make([]int32, 32)
	for i, p := range rng.Perm(32) {
		rowOf[i] = int32(p)
	}
	rows := tcUploadI32(t, b, packWords(toBF16(vals)))
	rowOfT := tcUploadI32(t, b, rowOf)
	outT := tcAlloc(t, b, gpu.Int32, len(ldmatrixForms)*32*4)
	tcLaunch(t, b, "tc_probe_ldmatrix", 1, b.ptr(rows), b.ptr(rowOfT), b.ptr(outT))
	out := tcDownloadI32(t, b, outT)

	// element (r, c) of matrix m, as the element number stored there
	elem := func(m, r, c int) int { return int(rowOf[8*m+r])*8 + c }
	bad := 0
	for f, form := range ldmatrixForms {
		for lane := 0; lane < 32; lane++ {
			for m := 0; m < form.num; m++ {
				var want [2]int
				for j := 0; j < 2; j++ {
					if form.trans {
						want[j] = elem(m, 2*(lane%4)+j, lane/4)
					} else {
						want[j] = elem(m, lane/4, 2*(lane%4)+j)
					}
				}
				lo, hi := regHalves(out[(f*32+lane)*4+m])
				got := [2]int{int(bf16Value(lo)), int(bf16Value(hi))}
				if got != want {
					if bad++; bad <= 10 {
						t.Errorf("ldmatrix.x%d trans=%v lane %d register %d holds elements %v, want %v",
							form.num, form.trans, lane, m, got, want)
					}
				}
			}
		}
	}
	if bad > 0 {
		t.Errorf("%d ldmatrix registers wrong", bad)
	}
}

// ---- mma.sync ----

// The fragment tables of mma.m16n8k16 and mma.m16n8k8 with .bf16 A and B
// and .f32 C and D; i is the element index of the lane's fragment
// (register i/2, low half for even i).
func fragA(k, lane, i int) (row, col int) {
	groupID, threadInGroup := lane>>2, lane%4
	if k == 16 {
		row = groupID + 8
		if i < 2 || (4 <= i && i < 6) {
			row = groupID
		}
		col = threadInGroup*2 + (i & 1)
		if i >= 4 {
			col += 8
		}
		return row, col
	}
	row = groupID
	if i >= 2 {
		row = groupID + 8
	}
	return row, threadInGroup*2 + (i & 1)
}

func fragB(k, lane, i int) (row, col int) {
	groupID, threadInGroup := lane>>2, lane%4
	if k == 16 {
		row = threadInGroup*2 + (i & 1)
		if i >= 2 {
			row += 8
		}
		return row, groupID
	}
	return threadInGroup*2 + i, groupID
}

func fragC(lane, i int) (row, col int) {
	groupID, threadInGroup := lane>>2, lane%4
	row = groupID
	if i >= 2 {
		row = groupID + 8
	}
	return row, threadInGroup*2 + (i & 1)
}

// mmaCase is one random D = A·B + C of shape m16n8k{k}.
type mmaCase struct {
	k       int
	a, b    []uint16  // A 16×k and B k×8, row-major bf16
	c       []float32 // 16×8
	ref, sc []float64 // the exact D and |C| + Σ|a·b|, 16×8
}

func newMmaCase(rng *rand.Rand, k, kvalid int) mmaCase {
	m := mmaCase{k: k, a: toBF16(randVals(rng, 16*k)), b: toBF16(randVals(rng, k*8)), c: randVals(rng, 16*8)}
	m.ref, m.sc = make([]float64, 16*8), make([]float64, 16*8)
	for r := 0; r < 16; r++ {
		for n := 0; n < 8; n++ {
			s, abs := float64(m.c[r*8+n]), math.Abs(float64(m.c[r*8+n]))
			for kk := 0; kk < kvalid; kk++ {
				p := bf16Value(m.a[r*k+kk]) * bf16Value(m.b[kk*8+n]) // exact
				s += p
				abs += math.Abs(p)
			}
			m.ref[r*8+n], m.sc[r*8+n] = s, abs
		}
	}
	return m
}

// mmaTol is the error a GPU may make on one output: the PTX ISA leaves the
// order and precision of the accumulation open; k+1 terms of fp32 rounding
// with a factor of 2 to spare.
func mmaTol(k int, scale float64) float64 { return float64(k+1) * 0x1p-22 * scale }

// runMmaProbe runs tc_probe_mma on cases (all of one k), with every lane's
// registers built from the tables above, and returns D per case, row-major,
// read back through the C/D table.
func runMmaProbe(t *testing.T, b *Backend, cases []mmaCase) [][]float32 {
	t.Helper()
	k := cases[0].k
	na := len(cases) * 32
	a, bb, c := make([]int32, na*4), make([]int32, na*2), make([]float32, na*4)
	for z, m := range cases {
		for lane := 0; lane < 32; lane++ {
			l := z*32 + lane
			var ah [8]uint16
			for i := 0; i < k/2; i++ {
				r, col := fragA(k, lane, i)
				ah[i] = m.a[r*k+col]
			}
			for j := 0; j < 4; j++ {
				a[l*4+j] = int32(uint32(ah[2*j]) | uint32(ah[2*j+1])<<16)
			}
			var bh [4]uint16
			for i := 0; i < k/4; i++ {
				r, col := fragB(k, lane, i)
				bh[i] = m.b[r*8+col]
			}
			for j := 0; j < 2; j++ {
				bb[l*2+j] = int32(uint32(bh[2*j]) | uint32(bh[2*j+1])<<16)
			}
			for i := 0; i < 4; i++ {
				r, col := fragC(lane, i)
				c[l*4+i] = m.c[r*8+col]
			}
		}
	}
	aT, bT, cT := tcUploadI32(t, b, a), tcUploadI32(t, b, bb), tcUploadF32(t, b, c)
	dT := tcAlloc(t, b, gpu.Float32, na*4)
	tcLaunch(t, b, "tc_probe_mma", len(cases), b.ptr(aT), b.ptr(bT), b.ptr(cT), b.ptr(dT), int32(k))
	d := download(t, b, dT)
	out := make([][]float32, len(cases))
	for z := range cases {
		out[z] = make([]float32, 16*8)
		for lane := 0; lane < 32; lane++ {
			for i := 0; i < 4; i++ {
				r, col := fragC(lane, i)
				out[z][r*8+col] = d[(z*32+lane)*4+i]
			}
		}
	}
	return out
}

// dHolder is the lane and element of the C/D fragment that holds (row, col).
func dHolder(row, col int) (lane, i int) {
	for lane = 0; lane < 32; lane++ {
		for i = 0; i < 4; i++ {
			if r, c := fragC(lane, i); r == row && c == col {
				return lane, i
			}
		}
	}
	return -1, -1
}

// checkD compares a 16×8 D with the case's float64 reference.
func checkD(t *testing.T, what string, got []float32, m mmaCase, tol func(scale float64) float64) {
	t.Helper()
	bad := 0
	for i, g := range got {
		if diff := math.Abs(float64(g) - m.ref[i]); !(diff <= tol(m.sc[i])) {
			if bad++; bad <= 5 {
				lane, reg := dHolder(i/8, i%8)
				t.Errorf("%s: D[%d][%d] (lane %d, d%d) = %.9g, want %.9g (error %.3g, tolerance %.3g)", what, i/8, i%8,
					lane, reg, g, m.ref[i], diff, tol(m.sc[i]))
			}
		}
	}
}

// TestMmaFragments runs mma.sync m16n8k16 and m16n8k8 on random bf16 A and
// B and fp32 C placed in the lanes' registers by the tables; a register in
// the wrong place changes D by about |a·b|, thousands of times the
// tolerance.
func TestMmaFragments(t *testing.T) {
	b := openTestBackend(t)
	rng := rand.New(rand.NewPCG(14, 9))
	for _, k := range []int{16, 8} {
		cases := make([]mmaCase, 6)
		for z := range cases {
			cases[z] = newMmaCase(rng, k, k)
		}
		for z, d := range runMmaProbe(t, b, cases) {
			checkD(t, fmt.Sprintf("m16n8k%d case %d", k, z), d, cases[z], func(s float64) float64 { return mmaTol(k, s) })
		}
	}
}

// TestMmaTile runs the path a kernel takes (tc_probe_tile): cp.async in
// three groups, each waited for on its own, ldmatrix.x4 of a row-major A,
// ldmatrix.x2.trans of a row-major B, one m16n8k16 and two chained m16n8k8.
// Columns of A from kvalid on hold NaN in global memory: the zero-filling
// copy must not read them.
func TestMmaTile(t *testing.T) {
	b := openTestBackend(t)
	rng := rand.New(rand.NewPCG(14, 10))
	for _, kvalid := range []int{16, 5} {
		cases := make([]mmaCase, 4)
		var a, bb []uint16
		var c []float32
		for z := range cases {
			m := newMmaCase(rng, 16, kvalid)
			cases[z] = m
			aNaN := append([]uint16(nil), m.a...)
			for i := range aNaN {
				if i%16 >= kvalid {
					aNaN[i] = bf16Canonical
				}
			}
			a, bb, c = append(a, aNaN...), append(bb, m.b...), append(c, m.c...)
		}
		aT, bT, cT := tcUploadI32(t, b, packWords(a)), tcUploadI32(t, b, packWords(bb)), tcUploadF32(t, b, c)
		dT := tcAlloc(t, b, gpu.Float32, len(c))
		d8T := tcAlloc(t, b, gpu.Float32, len(c))
		tcLaunch(t, b, "tc_probe_tile", len(cases), b.ptr(aT), b.ptr(bT), b.ptr(cT), b.ptr(dT), b.ptr(d8T), int32(kvalid))
		d, d8 := download(t, b, dT), download(t, b, d8T)
		for z, m := range cases {
			tol := func(s float64) float64 { return mmaTol(16, s) }
			checkD(t, fmt.Sprintf("tile kvalid=%d case %d, m16n8k16", kvalid, z), d[z*128:(z+1)*128], m, tol)
			checkD(t, fmt.Sprintf("tile kvalid=%d case %d, 2×m16n8k8", kvalid, z), d8[z*128:(z+1)*128], m, tol)
		}
	}
}
