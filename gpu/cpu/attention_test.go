package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// attnCase is one shape of the attention tests; lens nil means no padding.
type attnCase struct {
	name        string
	B, T, C, H  int
	lens        []int32
	qkvStd      float64 // spread of q, k, v (0: 1); larger gives sharper softmaxes
	fdCheckGrad bool    // also check the gradient by finite differences
	KVH         int     // key/value heads (grouped-query attention); 0: H
}

// kvh is the case's number of key/value heads.
func (c attnCase) kvh() int {
	if c.KVH == 0 {
		return c.H
	}
	return c.KVH
}

// width is the row width of the case's packed qkv.
func (c attnCase) width() int { return (c.H + 2*c.kvh()) * (c.C / c.H) }

var attnCases = []attnCase{
	{name: "B2T5C8H2-padded", B: 2, T: 5, C: 8, H: 2, lens: []int32{5, 3}, fdCheckGrad: true},
	{name: "B2T5C8H1-padded", B: 2, T: 5, C: 8, H: 1, lens: []int32{4, 2}, fdCheckGrad: true},
	{name: "B1T1C4H1", B: 1, T: 1, C: 4, H: 1, fdCheckGrad: true},
	{name: "B2T1C6H3-padded", B: 2, T: 1, C: 6, H: 3, lens: []int32{1, 0}, fdCheckGrad: true},
	{name: "B2T7C12H3-empty", B: 2, T: 7, C: 12, H: 3, lens: []int32{0, 7}, fdCheckGrad: true},
	{name: "B3T16C16H1", B: 3, T: 16, C: 16, H: 1},
	{name: "B2T33C24H4-hs6", B: 2, T: 33, C: 24, H: 4, lens: []int32{33, 17}},
	{name: "B2T64C64H2-sharp", B: 2, T: 64, C: 64, H: 2, lens: []int32{64, 40}, qkvStd: 2},
	// Shapes that cross the tiles and blocks of the GEMM-based kernels:
	// several backward blocks (64 rows) with a partial last one, validLen
	// in the middle of a block, register panels (6 rows) and key tiles
	// (16 keys) cut by T and validLen, head sizes that are not a multiple
	// of the 16-column tile. Three threads on few heads also split each
	// head's query rows between workers (both passes).
	{name: "B2T200C64H2-blocks", B: 2, T: 200, C: 64, H: 2, lens: []int32{200, 100}},
	{name: "B1T130C48H2-hs24", B: 1, T: 130, C: 48, H: 2},
	{name: "B2T97C128H2-hs64", B: 2, T: 97, C: 128, H: 2, lens: []int32{97, 61}},
	// One head per sequence, one of them short: split into three, its
	// rows give an empty middle piece.
	{name: "B2T200C32H1-short", B: 2, T: 200, C: 32, H: 1, lens: []int32{200, 13}},
	{name: "B3T71C20H1-hs20", B: 3, T: 71, C: 20, H: 1, lens: []int32{65, 71, 1}, qkvStd: 1.5},
	// Scores hundreds apart: the forward softmax must shift by the row
	// maximum, not by the diagonal score.
	{name: "B2T40C16H2-extreme", B: 2, T: 40, C: 16, H: 2, lens: []int32{40, 23}, qkvStd: 6},
	// Grouped-query attention: groups of 2 and of all heads, head sizes
	// 32, 64 and 128 and odd ones, padding, pieces split between workers
	// (few key/value heads), finite differences on the small ones.
	{name: "B2T5C12H4KVH2-padded", B: 2, T: 5, C: 12, H: 4, KVH: 2, lens: []int32{5, 3}, fdCheckGrad: true},
	{name: "B2T6C12H4KVH1-padded", B: 2, T: 6, C: 12, H: 4, KVH: 1, lens: []int32{2, 6}, fdCheckGrad: true},
	{name: "B1T7C15H3KVH1", B: 1, T: 7, C: 15, H: 3, KVH: 1, fdCheckGrad: true},
	{name: "B2T45C128H4KVH2-hs32", B: 2, T: 45, C: 128, H: 4, KVH: 2, lens: []int32{45, 30}},
	{name: "B1T70C256H4KVH1-hs64", B: 1, T: 70, C: 256, H: 4, KVH: 1},
	{name: "B2T33C512H4KVH2-hs128", B: 2, T: 33, C: 512, H: 4, KVH: 2, lens: []int32{33, 9}},
	{name: "B1T150C96H6KVH3-split", B: 1, T: 150, C: 96, H: 6, KVH: 3, lens: []int32{131}, qkvStd: 1.5},
	{name: "B3T64C40H8KVH2-hs5", B: 3, T: 64, C: 40, H: 8, KVH: 2, lens: []int32{64, 1, 0}},
}

// refAttnForward is refGQAForward for multi-head attention: qkv [B,T,3C].
func refAttnForward(x []float64, lens []int32, B, T, C, H int) (out, lse []float64) {
	return refGQAForward(x, lens, B, T, H, H, C/H)
}

// gqaCols returns the first columns of query head h and of the key and
// value parts of its key/value head h/(H/KVH) in a packed qkv row.
func gqaCols(h, H, KVH, hs int) (q, k, v int) {
	g := h / (H / KVH)
	return h * hs, (H + g) * hs, (H + KVH + g) * hs
}

// refGQAForward is the float64 reference: explicit scores over keys j ≤ t,
// a masked softmax and the weighted sum of values; query head h reads the
// keys and values of head h/(H/KVH) of x [B,T,(H+2·KVH)·hs]. Padded rows
// are zero.
func refGQAForward(x []float64, lens []int32, B, T, H, KVH, hs int) (out, lse []float64) {
	C, W := H*hs, (H+2*KVH)*hs
	scale := 1 / math.Sqrt(float64(hs))
	out = make([]float64, B*T*C)
	lse = make([]float64, B*H*T)
	for b := 0; b < B; b++ {
		n := T
		if lens != nil {
			n = int(lens[b])
		}
		for h := 0; h < H; h++ {
			qc, kc, vc := gqaCols(h, H, KVH, hs)
			for t := 0; t < n; t++ {
				q := x[(b*T+t)*W+qc:]
				s := make([]float64, t+1)
				m := math.Inf(-1)
				for j := 0; j <= t; j++ {
					k := x[(b*T+j)*W+kc:]
					for i := 0; i < hs; i++ {
						s[j] += q[i] * k[i]
					}
					s[j] *= scale
					m = math.Max(m, s[j])
				}
				var sum float64
				for j := range s {
					sum += math.Exp(s[j] - m)
				}
				l := m + math.Log(sum)
				lse[(b*H+h)*T+t] = l
				for j := 0; j <= t; j++ {
					p := math.Exp(s[j] - l)
					v := x[(b*T+j)*W+vc:]
					for i := 0; i < hs; i++ {
						out[(b*T+t)*C+h*hs+i] += p * v[i]
					}
				}
			}
		}
	}
	return out, lse
}

// refAttnBackward is refGQABackward for multi-head attention.
func refAttnBackward(x, dout, o []float64, lens []int32, B, T, C, H int) []float64 {
	return refGQABackward(x, dout, o, lens, B, T, H, H, C/H)
}

// refGQABackward is the analytic float64 backward, written the textbook way
// (softmax Jacobian with Σ_k P·dP), independent of the D = dO·O shortcut;
// a key/value head gathers the gradients of its group's query heads.
// Given the forward output o (nil: none), it uses Σ_k P·dP = dO·O with that
// o instead, as the kernels do: the formula they evaluate on a rounded O.
func refGQABackward(x, dout, o []float64, lens []int32, B, T, H, KVH, hs int) []float64 {
	C, W := H*hs, (H+2*KVH)*hs
	scale := 1 / math.Sqrt(float64(hs))
	dx := make([]float64, len(x))
	for b := 0; b < B; b++ {
		n := T
		if lens != nil {
			n = int(lens[b])
		}
		for h := 0; h < H; h++ {
			qc, kc, vc := gqaCols(h, H, KVH, hs)
			for t := 0; t < n; t++ {
				qo := (b*T+t)*W + qc
				p := make([]float64, t+1)
				m := math.Inf(-1)
				for j := 0; j <= t; j++ {
					ko := (b*T+j)*W + kc
					for i := 0; i < hs; i++ {
						p[j] += x[qo+i] * x[ko+i]
					}
					p[j] *= scale
					m = math.Max(m, p[j])
				}
				var sum float64
				for j := range p {
					p[j] = math.Exp(p[j] - m)
					sum += p[j]
				}
				dp := make([]float64, t+1)
				var pdp float64
				do := dout[(b*T+t)*C+h*hs:]
				for j := 0; j <= t; j++ {
					p[j] /= sum
					vo := (b*T+j)*W + vc
					for i := 0; i < hs; i++ {
						dx[vo+i] += p[j] * do[i]
						dp[j] += do[i] * x[vo+i]
					}
					pdp += p[j] * dp[j]
				}
				if o != nil {
					pdp = 0
					for i := 0; i < hs; i++ {
						pdp += do[i] * o[(b*T+t)*C+h*hs+i]
					}
				}
				for j := 0; j <= t; j++ {
					ds := p[j] * (dp[j] - pdp) * scale
					ko := (b*T+j)*W + kc
					for i := 0; i < hs; i++ {
						dx[qo+i] += ds * x[ko+i]
						dx[ko+i] += ds * x[qo+i]
					}
				}
			}
		}
	}
	return dx
}

// runAttn runs forward and backward of multi-head attention on the cpu
// backend and returns out, lse and dqkv.
func runAttn(t *testing.T, b *Backend, x, dout []float32, lens []int32, B, T, C, H int) (out, lse, dx []float32) {
	t.Helper()
	return runGQA(t, b, x, dout, lens, B, T, H, H, C/H)
}

// runGQA is runAttn for H query heads on KVH key/value heads of hs.
func runGQA(t *testing.T, b *Backend, x, dout []float32, lens []int32, B, T, H, KVH, hs int) (out, lse, dx []float32) {
	t.Helper()
	C, W := H*hs, (H+2*KVH)*hs
	qkv := tensorOf(t, b, x, B, T, W)
	var vl *gpu.Tensor
	if lens != nil {
		vl = int32Of(t, b, lens, B)
	}
	o := tensorOf(t, b, randn(testRNG(99), B*T*C, 1), B, T, C) // garbage: must be overwritten
	l := tensorOf(t, b, randn(testRNG(98), B*H*T, 1), B, H, T)
	b.AttentionForward(o, l, qkv, vl, H, KVH)
	assertNoErr(t, b)
	d := tensorOf(t, b, dout, B, T, C)
	dq := tensorOf(t, b, randn(testRNG(97), B*T*W, 1), B, T, W)
	b.AttentionBackward(dq, d, qkv, o, l, vl, H, KVH)
	assertNoErr(t, b)
	return append([]float32(nil), F32(o)...), append([]float32(nil), F32(l)...), append([]float32(nil), F32(dq)...)
}

func TestAttentionForwardBackward(t *testing.T) {
	var worstOut, worstLse, worstGrad, worstFD float64
	for ci, c := range attnCases {
		t.Run(c.name, func(t *testing.T) {
			r := testRNG(uint64(100 + ci))
			std := c.qkvStd
			if std == 0 {
				std = 1
			}
			hs := c.C / c.H
			x := randn(r, c.B*c.T*c.width(), std)
			dout := randn(r, c.B*c.T*c.C, 1)
			for _, threads := range []int{1, 3} {
				b := New(threads)
				out, lse, dx := runGQA(t, b, x, dout, c.lens, c.B, c.T, c.H, c.kvh(), hs)
				x64, d64 := to64(x), to64(dout)
				wantOut, wantLse := refGQAForward(x64, c.lens, c.B, c.T, c.H, c.kvh(), hs)
				wantDx := refGQABackward(x64, d64, nil, c.lens, c.B, c.T, c.H, c.kvh(), hs)
				eo, el, eg := relErr(out, wantOut), relErr(lse, wantLse), relErr(dx, wantDx)
				worstOut, worstLse, worstGrad = max(worstOut, eo), max(worstLse, el), max(worstGrad, eg)
				assertClose(t, "out", out, wantOut, 1e-5)
				assertClose(t, "lse", lse, wantLse, 1e-5)
				assertClose(t, "dqkv", dx, wantDx, 2e-5)
				if !c.fdCheckGrad || threads != 1 {
					continue
				}
				// Central differences of L = Σ dout·out through the float64
				// reference forward.
				loss := func() float64 {
					o, _ := refGQAForward(x64, c.lens, c.B, c.T, c.H, c.kvh(), hs)
					var s float64
					for i := range o {
						s += d64[i] * o[i]
					}
					return s
				}
				fd := numGrad(x64, loss)
				ef := relErr(dx, fd)
				worstFD = max(worstFD, ef)
				assertClose(t, "dqkv vs finite differences", dx, fd, 1e-4)
				// The analytic reference itself agrees with the differences.
				var md, mr float64
				for i := range fd {
					md = math.Max(md, math.Abs(fd[i]-wantDx[i]))
					mr = math.Max(mr, math.Abs(fd[i]))
				}
				if md > 1e-6*math.Max(mr, 1e-30) {
					t.Errorf("reference backward vs finite differences: %.3g", md/mr)
				}
			}
		})
	}
	t.Logf("max relative errors: out %.2g, lse %.2g, dqkv (vs float64 analytic) %.2g, dqkv (vs finite differences) %.2g",
		worstOut, worstLse, worstGrad, worstFD)
}

// TestAttentionKernelsAndBlocks runs the attention cases on every GEMM
// micro-kernel of this machine (the portable 4×4 one has other tile
// sizes), every set of softmax row kernels, and with backward blocks from
// one register panel to more than T.
func TestAttentionKernelsAndBlocks(t *testing.T) {
	defer func(old int) { attnBwdBlock = old }(attnBwdBlock)
	for i, kern := range matmulKernels() {
		vk := vecKernels()[i%len(vecKernels())]
		for _, blk := range []int{1, 7, 64, 1000} {
			t.Run(fmt.Sprintf("%s/%s/blk%d", kern.name, vk.name, blk), func(t *testing.T) {
				defer setMatMulKernel(kern)()
				defer setVecKernel(vk)()
				attnBwdBlock = blk
				for ci, c := range attnCases {
					r := testRNG(uint64(200 + ci))
					std := c.qkvStd
					if std == 0 {
						std = 1
					}
					hs := c.C / c.H
					x := randn(r, c.B*c.T*c.width(), std)
					dout := randn(r, c.B*c.T*c.C, 1)
					out, lse, dx := runGQA(t, New(2), x, dout, c.lens, c.B, c.T, c.H, c.kvh(), hs)
					x64 := to64(x)
					wantOut, wantLse := refGQAForward(x64, c.lens, c.B, c.T, c.H, c.kvh(), hs)
					wantDx := refGQABackward(x64, to64(dout), nil, c.lens, c.B, c.T, c.H, c.kvh(), hs)
					assertClose(t, c.name+" out", out, wantOut, 1e-5)
					assertClose(t, c.name+" lse", lse, wantLse, 1e-5)
					assertClose(t, c.name+" dqkv", dx, wantDx, 2e-5)
				}
			})
		}
	}
}

// TestAttentionPadding checks that padded rows give exact zeros and that
// queries, keys and values at padded positions never influence valid rows:
// filling them with NaN leaves every valid output and gradient bit-identical.
func TestAttentionPadding(t *testing.T) {
	for _, c := range []struct {
		B, T, C, H int
		lens       []int32
	}{
		{3, 9, 12, 2, []int32{9, 4, 0}},
		// validLen inside register panels, key tiles and backward blocks.
		{3, 150, 48, 2, []int32{150, 70, 0}},
		{2, 137, 128, 2, []int32{131, 64}},
	} {
		t.Run(fmt.Sprintf("B%dT%dC%dH%d", c.B, c.T, c.C, c.H), func(t *testing.T) {
			testAttentionPadding(t, c.B, c.T, c.C, c.H, c.lens)
		})
	}
}

func testAttentionPadding(t *testing.T, B, T, C, H int, lens []int32) {
	r := testRNG(7)
	x := randn(r, B*T*3*C, 1)
	dout := randn(r, B*T*C, 1)
	b := New(2)
	out, lse, dx := runAttn(t, b, x, dout, lens, B, T, C, H)

	xp := append([]float32(nil), x...)
	dp := append([]float32(nil), dout...)
	nan := float32(math.NaN())
	for bi := 0; bi < B; bi++ {
		for ti := int(lens[bi]); ti < T; ti++ {
			for i := 0; i < 3*C; i++ {
				xp[(bi*T+ti)*3*C+i] = nan
			}
			for i := 0; i < C; i++ {
				dp[(bi*T+ti)*C+i] = nan
			}
		}
	}
	out2, lse2, dx2 := runAttn(t, b, xp, dp, lens, B, T, C, H)
	for bi := 0; bi < B; bi++ {
		for ti := 0; ti < T; ti++ {
			padded := ti >= int(lens[bi])
			for i := 0; i < C; i++ {
				k := (bi*T+ti)*C + i
				if padded && (out[k] != 0 || out2[k] != 0) {
					t.Fatalf("out[%d,%d,%d] = %v, %v on a padded row, want 0", bi, ti, i, out[k], out2[k])
				}
				if out[k] != out2[k] {
					t.Fatalf("out[%d,%d,%d] changed with padding contents: %v vs %v", bi, ti, i, out[k], out2[k])
				}
			}
			for i := 0; i < 3*C; i++ {
				k := (bi*T+ti)*3*C + i
				if padded && (dx[k] != 0 || dx2[k] != 0) {
					t.Fatalf("dqkv[%d,%d,%d] = %v, %v on a padded row, want 0", bi, ti, i, dx[k], dx2[k])
				}
				if dx[k] != dx2[k] {
					t.Fatalf("dqkv[%d,%d,%d] changed with padding contents: %v vs %v", bi, ti, i, dx[k], dx2[k])
				}
			}
			for h := 0; h < H; h++ {
				k := (bi*H+h)*T + ti
				if padded && (lse[k] != 0 || lse2[k] != 0) {
					t.Fatalf("lse[%d,%d,%d] = %v, %v on a padded row, want 0", bi, h, ti, lse[k], lse2[k])
				}
				if lse[k] != lse2[k] {
					t.Fatalf("lse[%d,%d,%d] changed with padding contents", bi, h, ti)
				}
			}
		}
	}
	// nil validLen is the same as validLen = T everywhere.
	full := make([]int32, B)
	for i := range full {
		full[i] = int32(T)
	}
	o1, l1, d1 := runAttn(t, b, x, dout, nil, B, T, C, H)
	o2, l2, d2 := runAttn(t, b, x, dout, full, B, T, C, H)
	for i := range o1 {
		if o1[i] != o2[i] {
			t.Fatal("nil validLen differs from validLen = T (out)")
		}
	}
	for i := range l1 {
		if l1[i] != l2[i] {
			t.Fatal("nil validLen differs from validLen = T (lse)")
		}
	}
	for i := range d1 {
		if d1[i] != d2[i] {
			t.Fatal("nil validLen differs from validLen = T (dqkv)")
		}
	}
}

// TestAttentionSingleToken: with T = 1 the output is v and lse is q·k/sqrt(hs).
func TestAttentionSingleToken(t *testing.T) {
	const B, C, H = 2, 8, 2
	hs := C / H
	x := randn(testRNG(3), B*3*C, 1)
	b := New(1)
	out, lse, _ := runAttn(t, b, x, randn(testRNG(4), B*C, 1), nil, B, 1, C, H)
	for bi := 0; bi < B; bi++ {
		for h := 0; h < H; h++ {
			var s float64
			for i := 0; i < hs; i++ {
				s += float64(x[bi*3*C+h*hs+i]) * float64(x[bi*3*C+C+h*hs+i])
				if got, want := out[bi*C+h*hs+i], x[bi*3*C+2*C+h*hs+i]; math.Abs(float64(got-want)) > 1e-6*math.Abs(float64(want))+1e-7 {
					t.Errorf("out[%d,0,%d] = %v, want v = %v", bi, h*hs+i, got, want)
				}
			}
			s /= math.Sqrt(float64(hs))
			if got := lse[bi*H+h]; math.Abs(float64(got)-s) > 1e-5*math.Max(1, math.Abs(s)) {
				t.Errorf("lse[%d,%d] = %v, want %v", bi, h, got, s)
			}
		}
	}
}

// TestAttentionEverySequenceLength runs every T from 1 to 140 with valid
// lengths spread below it: the per-worker scratch is sized from T while the
// work uses the valid length, and the two once disagreed (ld is not
// monotonic), overrunning the scratch for T = 61 with a sequence of 59.
func TestAttentionEverySequenceLength(t *testing.T) {
	r := testRNG(61)
	const C, H = 16, 2
	for T := 1; T <= 140; T++ {
		B := 3
		lens := []int32{int32(T), int32(1 + r.IntN(T)), int32(1 + r.IntN(T))}
		x := randn(r, B*T*3*C, 1)
		dout := randn(r, B*T*C, 1)
		out, lse, dx := runAttn(t, New(1+T%2), x, dout, lens, B, T, C, H)
		wantOut, wantLse := refAttnForward(to64(x), lens, B, T, C, H)
		assertClose(t, fmt.Sprintf("T=%d out", T), out, wantOut, 1e-5)
		assertClose(t, fmt.Sprintf("T=%d lse", T), lse, wantLse, 1e-5)
		assertClose(t, fmt.Sprintf("T=%d dqkv", T), dx, refAttnBackward(to64(x), to64(dout), nil, lens, B, T, C, H), 1e-5)
	}
}
