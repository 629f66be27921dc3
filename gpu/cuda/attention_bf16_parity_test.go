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

// Parity of bf16 attention (forward, backward, KV-cache write, decode)
// with the contract's reference: the cpu backend's float32 op on the
// bf16-rounded inputs, its outputs rounded to bf16 (lse stays float32).
//
// Tolerances, and why:
//   - out, dv: within one bf16 ulp of the reference (two roundings of
//     nearly the same float32 value land one ulp apart near a tie) plus
//     attnBF16Slack of the tensor's largest value: the tensor-core kernels
//     round P to bf16 for P·V and Pᵀ·dO (relative error 2^-9 per weight, of
//     random sign, so about 2^-10 of the result) and sum in another order.
//   - dq, dk: the same, with the slack taken on dv's scale: dS = P∘(dP−D)
//     is rounded to bf16 too, and rows with few keys cancel to rounding
//     noise (one key: 0 in exact arithmetic).
//   - lse: 2e-6 of the largest |lse|: float32 sums of up to T terms in
//     another order, no bf16 rounding.

// attnBF16Slack bounds the differences beyond one bf16 ulp, relative to
// the largest reference value of a tensor (2^-8: four times the 2^-10
// expected of the rounding of P and dS).
const attnBF16Slack = 1.0 / 256

// attnBF16Case is one bf16 attention shape: lens nil means no validLen;
// off is the element offset of every bf16 tensor in its allocation (0 and
// 8 keep them 16-byte aligned, 1 does not); mma says whether the
// tensor-core kernels take it.
type attnBF16Case struct {
	B, T, C, H int
	lens       []int32
	off        int
	mma        bool
}

func (c attnBF16Case) String() string {
	return fmt.Sprintf("B=%d T=%d C=%d H=%d hs=%d lens=%v off=%d", c.B, c.T, c.C, c.H, c.C/c.H, c.lens, c.off)
}

// attnBF16Cases cover the three tensor-core head sizes, lengths that are
// not multiples of the tiles and long enough that a double buffer is
// reused (more than two K/V or Q/dO tiles), a sequence of length 1 beside
// full ones, an empty one, and the CUDA-core fallback for an odd head size
// and for unaligned tensors.
var attnBF16Cases = []attnBF16Case{
	{1, 1, 32, 1, nil, 0, true},
	{2, 70, 64, 2, []int32{70, 1}, 0, true},     // hs 32
	{1, 150, 64, 1, nil, 8, true},               // hs 64, three K/V tiles
	{3, 45, 128, 2, []int32{1, 45, 0}, 0, true}, // hs 64
	{2, 75, 256, 2, []int32{75, 40}, 0, true},   // hs 128: tiles of 32 in the backward
	{2, 40, 96, 2, []int32{40, 1}, 0, false},    // hs 48: CUDA cores, padded to 64
	{2, 37, 128, 2, []int32{37, 20}, 1, false},  // hs 64, unaligned: CUDA cores
	{1, 33, 384, 3, []int32{33}, 0, true},       // hs 128, one row block
}

func TestAttentionBF16Parity(t *testing.T) {
	rng := newRNG(40)
	for _, c := range attnBF16Cases {
		t.Run(c.String(), func(t *testing.T) { attentionBF16Parity(t, c, rng.Uint64()) })
	}
}

// roundedRandn is randn rounded to bf16, with NaN in the rows at or beyond
// each sequence's valid length (rows of width w, T per sequence): padding
// must never be read.
func roundedRandn(rng *rand.Rand, B, T, w int, lens []int32) []float32 {
	x := make([]float32, B*T*w)
	for i := range x {
		for x[i] == 0 {
			x[i] = gpu.RoundBF16(float32(rng.NormFloat64()))
		}
	}
	for b, l := range lens {
		for t := int(l); t < T; t++ {
			for j := 0; j < w; j++ {
				x[(b*T+t)*w+j] = float32(math.NaN())
			}
		}
	}
	return x
}

// devBF16 puts vals (rounded on upload) on the cuda backend as a bf16 view
// at element offset off of a larger allocation.
func devBF16(t *testing.T, b *Backend, off int, vals []float32, shape ...int) *gpu.Tensor {
	t.Helper()
	n := len(vals)
	whole, err := b.Alloc(gpu.BF16, off+n+5)
	if err != nil {
		t.Fatal(err)
	}
	v := whole.MustView(off, shape...)
	if err := b.Upload(v, vals); err != nil {
		t.Fatal(err)
	}
	return v
}

// hostF32 is a cpu float32 tensor holding vals.
func (p *opsPair) hostF32(vals []float32, shape ...int) *gpu.Tensor {
	p.t.Helper()
	h, err := p.h.Alloc(gpu.Float32, shape...)
	if err != nil {
		p.t.Fatal(err)
	}
	copy(cpu.F32(h), vals)
	return h
}

// bf16Close fails unless every |got − want| ≤ ulp(want) + slack·max(max|want|, floor),
// ulp being the bf16 spacing at |want|.
func bf16Close(t *testing.T, what string, got, want []float32, slack, floor float64) {
	t.Helper()
	scale := math.Max(maxAbs(want), floor)
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) || math.IsNaN(w) {
			if math.IsNaN(g) != math.IsNaN(w) {
				t.Errorf("%s: element %d is %v, want %v", what, i, g, w)
				return
			}
			continue
		}
		if d := math.Abs(g - w); d > bf16ULP(float32(w))+slack*scale {
			t.Errorf("%s: element %d is %v, want %v: off by %.3g, allowed %.3g (one bf16 ulp %.3g + %.3g of %.3g)",
				what, i, g, w, d, bf16ULP(float32(w))+slack*scale, bf16ULP(float32(w)), slack, scale)
			return
		}
	}
}

// attnParts splits dqkv rows [.., 3C] into their q, k and v parts.
func attnParts(x []float32, C int) (q, k, v []float32) {
	for r := 0; r < len(x)/(3*C); r++ {
		row := x[r*3*C : (r+1)*3*C]
		q, k, v = append(q, row[:C]...), append(k, row[C:2*C]...), append(v, row[2*C:]...)
	}
	return q, k, v
}

func attentionBF16Parity(t *testing.T, c attnBF16Case, seed uint64) {
	p := newOpsPair(t)
	rng := newRNG(seed)
	B, T, C, H := c.B, c.T, c.C, c.H
	qkv := roundedRandn(rng, B, T, 3*C, c.lens)
	gqkv := devBF16(t, p.g, c.off, qkv, B, T, 3*C)
	hqkv := p.hostF32(qkv, B, T, 3*C)
	var gl, hl *gpu.Tensor
	if c.lens != nil {
		gl, hl = p.i32(c.lens, B)
	}
	// The outputs start random: every element must be written.
	gout := devBF16(t, p.g, c.off, randn(rng, B*T*C, 1), B, T, C)
	glse := devView(t, p.g, 0, randn(rng, B*H*T, 1), B, H, T)
	hout := p.hostF32(make([]float32, B*T*C), B, T, C)
	hlse := p.hostF32(make([]float32, B*H*T), B, H, T)
	d := gpu.AttnDims{B: B, T: T, C: C, H: H, KVH: H, HS: C / H, Act: gpu.BF16}
	if got := p.g.attnUseMMA(d, gout, gqkv); got != c.mma {
		t.Fatalf("tensor-core kernels take it: %v, want %v", got, c.mma)
	}
	p.g.AttentionForward(gout, glse, gqkv, gl, H, H)
	p.h.AttentionForward(hout, hlse, hqkv, hl, H, H)
	wantOut := roundBF16s(cpu.F32(hout))
	bf16Close(t, "out", p.get(gout), wantOut, attnBF16Slack, 0)
	closeTo(t, "lse", p.get(glse), cpu.F32(hlse), 2e-6)

	// The backward pass gets the reference's forward outputs on both sides.
	dout := roundedRandn(rng, B, T, C, c.lens)
	gd := devBF16(t, p.g, c.off, dout, B, T, C)
	hd := p.hostF32(dout, B, T, C)
	gof := devBF16(t, p.g, c.off, wantOut, B, T, C)
	hof := p.hostF32(wantOut, B, T, C)
	glf := devView(t, p.g, 0, cpu.F32(hlse), B, H, T)
	gdq := devBF16(t, p.g, c.off, randn(rng, B*T*3*C, 1), B, T, 3*C) // overwritten
	hdq := p.hostF32(make([]float32, B*T*3*C), B, T, 3*C)
	p.g.AttentionBackward(gdq, gd, gqkv, gof, glf, gl, H, H)
	p.h.AttentionBackward(hdq, hd, hqkv, hof, hlse, hl, H, H)
	gq, gk, gv := attnParts(p.get(gdq), C)
	wq, wk, wv := attnParts(roundBF16s(cpu.F32(hdq)), C)
	floor := maxAbs(wv)
	bf16Close(t, "dq", gq, wq, attnBF16Slack, floor)
	bf16Close(t, "dk", gk, wk, attnBF16Slack, floor)
	bf16Close(t, "dv", gv, wv, attnBF16Slack, 0)
	p.noErr()
}

// TestAttentionBF16Deterministic: the bf16 backward pass gives the same
// bits twice (no atomics).
func TestAttentionBF16Deterministic(t *testing.T) {
	g := openTestBackend(t)
	rng := newRNG(41)
	const B, T, C, H = 2, 90, 128, 2
	qkv := devBF16(t, g, 0, randn(rng, B*T*3*C, 1), B, T, 3*C)
	out := devBF16(t, g, 0, make([]float32, B*T*C), B, T, C)
	lse := devView(t, g, 0, make([]float32, B*H*T), B, H, T)
	dout := devBF16(t, g, 0, randn(rng, B*T*C, 1), B, T, C)
	g.AttentionForward(out, lse, qkv, nil, H, H)
	d1 := devBF16(t, g, 0, make([]float32, B*T*3*C), B, T, 3*C)
	d2 := devBF16(t, g, 0, make([]float32, B*T*3*C), B, T, 3*C)
	g.AttentionBackward(d1, dout, qkv, out, lse, nil, H, H)
	g.AttentionBackward(d2, dout, qkv, out, lse, nil, H, H)
	sameBits(t, "dqkv twice", download(t, g, d1), download(t, g, d2))
}

// TestDecodeBF16Parity fills a bf16 KV cache with whole sequences (checked
// bit for bit: the write copies bf16 values), appends a row at per-sequence
// starts (one inactive), and checks single-query decode with the query of
// position L−1 over L cached positions against row L−1 of the reference
// forward pass: the decode path is the forward's last row. Lengths run from
// 0 (an inactive sequence, a zero row) to the whole cache.
func TestDecodeBF16Parity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(42)
	for _, tc := range []struct {
		B, C, H, S int
		lens       []int32
	}{
		{3, 64, 2, 40, []int32{40, 1, 0}}, // hs 32
		{2, 128, 2, 70, []int32{70, 33}},  // hs 64
		{2, 256, 2, 50, []int32{17, 50}},  // hs 128
		{2, 48, 2, 9, []int32{9, 5}},      // hs 24, padded to 32
	} {
		name := fmt.Sprintf("%+v", tc)
		B, C, H, S := tc.B, tc.C, tc.H, tc.S
		hs := C / H
		qkv := roundedRandn(rng, B, S, 3*C, nil)
		gqkv, hqkv := devBF16(t, p.g, 0, qkv, B, S, 3*C), p.hostF32(qkv, B, S, 3*C)
		cache := randn(rng, B*H*S*hs, 1)
		gkc, hkc := devBF16(t, p.g, 0, cache, B, H, S, hs), p.hostF32(roundBF16s(cache), B, H, S, hs)
		gvc, hvc := devBF16(t, p.g, 0, cache, B, H, S, hs), p.hostF32(roundBF16s(cache), B, H, S, hs)
		p.g.KVCacheWrite(gkc, gvc, gqkv, nil, H, H)
		p.h.KVCacheWrite(hkc, hvc, hqkv, nil, H, H)
		sameBits(t, name+" kc", p.get(gkc), cpu.F32(hkc))
		sameBits(t, name+" vc", p.get(gvc), cpu.F32(hvc))

		// The reference forward pass over the whole sequences.
		hout := p.hostF32(make([]float32, B*S*C), B, S, C)
		hlse := p.hostF32(make([]float32, B*H*S), B, H, S)
		p.h.AttentionForward(hout, hlse, hqkv, nil, H, H)
		fwd := roundBF16s(cpu.F32(hout))

		// Decode position L−1 of each sequence against the first L cached.
		q := make([]float32, B*3*C)
		want := make([]float32, B*C)
		for b, l := range tc.lens {
			if l > 0 {
				copy(q[b*3*C:(b+1)*3*C], qkv[(b*S+int(l)-1)*3*C:])
				copy(want[b*C:(b+1)*C], fwd[(b*S+int(l)-1)*C:])
			}
		}
		gq := devBF16(t, p.g, 0, q, B, 3*C)
		gln, _ := p.i32(tc.lens, B)
		gout := devBF16(t, p.g, 0, randn(rng, B*C, 1), B, C)
		p.g.AttentionDecode(gout, gq, gkc, gvc, gln, H, H)
		// Decode rounds P nowhere: one ulp (a tie) and float32 order.
		bf16Close(t, name+" decode", p.get(gout), want, 1e-5, 0)

		// Append one position at per-sequence starts; the last sequence is
		// inactive (start −1) and keeps its cache.
		start := make([]int32, B)
		for b := range start {
			start[b] = int32(rng.IntN(S))
		}
		start[B-1] = -1
		gst, hst := p.i32(start, B)
		row := roundedRandn(rng, B, 1, 3*C, nil)
		p.g.KVCacheWrite(gkc, gvc, devBF16(t, p.g, 0, row, B, 1, 3*C), gst, H, H)
		p.h.KVCacheWrite(hkc, hvc, p.hostF32(row, B, 1, 3*C), hst, H, H)
		sameBits(t, name+" kc after start", p.get(gkc), cpu.F32(hkc))
		sameBits(t, name+" vc after start", p.get(gvc), cpu.F32(hvc))
		p.noErr()
	}
}

// TestAttentionMMASharedMemoryGuard: a tensor-core kernel launched with
// less dynamic shared memory than its tiles need (the wrapper's size
// rule out of step with the kernel's) writes nothing and reports it.
func TestAttentionMMASharedMemoryGuard(t *testing.T) {
	g := openTestBackend(t)
	const B, T, C, H = 1, 8, 32, 1
	qkv := devBF16(t, g, 0, randn(newRNG(43), B*T*3*C, 1), B, T, 3*C)
	out := devBF16(t, g, 0, make([]float32, B*T*C), B, T, C)
	lse := devView(t, g, 0, make([]float32, B*H*T), B, H, T)
	need, _, _ := attnMMASmem(C / H)
	_, scale2 := attnScales(C / H)
	g.launch("attention_forward_mma_hs32", [3]int{B * H, 1, 1}, block1(128), need-16,
		g.ptr(out), g.ptr(lse), g.ptr(qkv), devicePtr(0), i32(T), i32(H), i32(H), scale2, i32(need-16),
		g.attnSmemCode(), g.flagPtr())
	wantErrContains(t, "short shared memory", g.Sync(), fmt.Sprintf("needs %d bytes of shared memory", need))
}
