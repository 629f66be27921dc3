//go:build cuda

package cuda

import (
	"fmt"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// Parity of grouped-query attention (H query heads on KVH key/value heads,
// qkv [B,T,(H+2·KVH)·hs]) with the cpu backend: forward, backward, the KV
// cache write and decode, in float32 and in bf16 (the tensor-core kernels
// and the CUDA-core fallback). Tolerances are those of the multi-head
// tests (attention_parity_test.go, attention_bf16_parity_test.go): a
// shared head's dK and dV sum the group's query heads, in another order on
// each backend, which the same relative bounds cover.

// gqaCase is one grouped attention shape; off is the element offset of
// every activation tensor in its allocation (bf16: 1 leaves them
// unaligned); mma says whether bf16 takes the tensor-core kernels.
type gqaCase struct {
	B, T, H, KVH, hs int
	lens             []int32
	off              int
	mma              bool
}

func (c gqaCase) String() string {
	return fmt.Sprintf("B=%d T=%d H=%d KVH=%d hs=%d lens=%v off=%d", c.B, c.T, c.H, c.KVH, c.hs, c.lens, c.off)
}

func (c gqaCase) dims() (C, W int) { return c.H * c.hs, (c.H + 2*c.KVH) * c.hs }

// gqaParts splits dqkv rows of width W into the query part (C columns) and
// the key and value parts (KVH·hs each).
func gqaParts(x []float32, C, W int) (q, k, v []float32) {
	kv := (W - C) / 2
	for r := 0; r < len(x)/W; r++ {
		row := x[r*W : (r+1)*W]
		q, k, v = append(q, row[:C]...), append(k, row[C:C+kv]...), append(v, row[C+kv:]...)
	}
	return q, k, v
}

var gqaCases = []gqaCase{
	{2, 37, 4, 2, 32, nil, 0, true},
	{2, 70, 4, 1, 64, []int32{70, 33}, 0, true},
	{1, 40, 2, 1, 128, []int32{17}, 0, true},
	{3, 45, 6, 3, 16, []int32{45, 0, 1}, 0, false}, // hs 16, padded to 32
	{1, 50, 4, 2, 48, nil, 0, false},               // hs 48, padded to 64
	{2, 33, 8, 2, 96, []int32{33, 20}, 0, false},   // hs 96
	{2, 41, 4, 2, 64, []int32{41, 9}, 1, false},    // unaligned: bf16 on the CUDA cores
}

func TestGQAParity(t *testing.T) {
	rng := newRNG(50)
	for _, c := range gqaCases {
		t.Run(c.String(), func(t *testing.T) { gqaParity(t, c, rng.Uint64()) })
	}
}

func gqaParity(t *testing.T, c gqaCase, seed uint64) {
	p := newOpsPair(t)
	rng := newRNG(seed)
	B, T, H, KVH := c.B, c.T, c.H, c.KVH
	C, W := c.dims()
	// NaN in the padding rows: never read.
	qkv := roundedRandn(rng, B, T, W, c.lens)
	gqkv, hqkv := p.f32(c.off, qkv, B, T, W)
	var gl, hl *gpu.Tensor
	if c.lens != nil {
		gl, hl = p.i32(c.lens, B)
	}
	gout, hout := p.f32(c.off, randn(rng, B*T*C, 1), B, T, C)
	glse, hlse := p.f32(0, randn(rng, B*H*T, 1), B, H, T)
	p.g.AttentionForward(gout, glse, gqkv, gl, H, KVH)
	p.h.AttentionForward(hout, hlse, hqkv, hl, H, KVH)
	closeTo(t, "out", p.get(gout), cpu.F32(hout), 1e-4)
	closeTo(t, "lse", p.get(glse), cpu.F32(hlse), 1e-4)

	gd, hd := p.f32(c.off, randn(rng, B*T*C, 1), B, T, C)
	gdq, hdq := p.f32(c.off, randn(rng, B*T*W, 1), B, T, W) // overwritten
	p.g.AttentionBackward(gdq, gd, gqkv, gout, glse, gl, H, KVH)
	p.h.AttentionBackward(hdq, hd, hqkv, hout, hlse, hl, H, KVH)
	gq, gk, gv := gqaParts(p.get(gdq), C, W)
	wq, wk, wv := gqaParts(cpu.F32(hdq), C, W)
	floor := maxAbs(wv)
	closeToScale(t, "dq", gq, wq, 1e-4, floor)
	closeToScale(t, "dk", gk, wk, 1e-4, floor)
	closeTo(t, "dv", gv, wv, 1e-4)
	p.noErr()
}

func TestGQABF16Parity(t *testing.T) {
	rng := newRNG(51)
	for _, c := range gqaCases {
		t.Run(c.String(), func(t *testing.T) { gqaBF16Parity(t, c, rng.Uint64()) })
	}
}

func gqaBF16Parity(t *testing.T, c gqaCase, seed uint64) {
	p := newOpsPair(t)
	rng := newRNG(seed)
	B, T, H, KVH := c.B, c.T, c.H, c.KVH
	C, W := c.dims()
	qkv := roundedRandn(rng, B, T, W, c.lens)
	gqkv, hqkv := devBF16(t, p.g, c.off, qkv, B, T, W), p.hostF32(qkv, B, T, W)
	var gl, hl *gpu.Tensor
	if c.lens != nil {
		gl, hl = p.i32(c.lens, B)
	}
	gout := devBF16(t, p.g, c.off, randn(rng, B*T*C, 1), B, T, C)
	glse := devView(t, p.g, 0, randn(rng, B*H*T, 1), B, H, T)
	hout := p.hostF32(make([]float32, B*T*C), B, T, C)
	hlse := p.hostF32(make([]float32, B*H*T), B, H, T)
	d := gpu.AttnDims{B: B, T: T, C: C, H: H, KVH: KVH, HS: c.hs, Act: gpu.BF16}
	if got := p.g.attnUseMMA(d, gout, gqkv); got != c.mma {
		t.Fatalf("tensor-core kernels take it: %v, want %v", got, c.mma)
	}
	p.g.AttentionForward(gout, glse, gqkv, gl, H, KVH)
	p.h.AttentionForward(hout, hlse, hqkv, hl, H, KVH)
	wantOut := roundBF16s(cpu.F32(hout))
	bf16Close(t, "out", p.get(gout), wantOut, attnBF16Slack, 0)
	closeTo(t, "lse", p.get(glse), cpu.F32(hlse), 2e-6)

	dout := roundedRandn(rng, B, T, C, c.lens)
	gd, hd := devBF16(t, p.g, c.off, dout, B, T, C), p.hostF32(dout, B, T, C)
	gof, hof := devBF16(t, p.g, c.off, wantOut, B, T, C), p.hostF32(wantOut, B, T, C)
	glf := devView(t, p.g, 0, cpu.F32(hlse), B, H, T)
	gdq := devBF16(t, p.g, c.off, randn(rng, B*T*W, 1), B, T, W) // overwritten
	hdq := p.hostF32(make([]float32, B*T*W), B, T, W)
	p.g.AttentionBackward(gdq, gd, gqkv, gof, glf, gl, H, KVH)
	p.h.AttentionBackward(hdq, hd, hqkv, hof, hlse, hl, H, KVH)
	gq, gk, gv := gqaParts(p.get(gdq), C, W)
	wq, wk, wv := gqaParts(roundBF16s(cpu.F32(hdq)), C, W)
	floor := maxAbs(wv)
	bf16Close(t, "dq", gq, wq, attnBF16Slack, floor)
	bf16Close(t, "dk", gk, wk, attnBF16Slack, floor)
	bf16Close(t, "dv", gv, wv, attnBF16Slack, 0)
	p.noErr()
}

// TestGQADeterministic: with shared heads the backward pass (a dK/dV block
// loops over its group) still gives the same bits twice, in both dtypes.
func TestGQADeterministic(t *testing.T) {
	g := openTestBackend(t)
	rng := newRNG(52)
	const B, T, H, KVH, hs = 2, 90, 4, 2, 64
	const C, W = H * hs, (H + 2*KVH) * hs
	for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
		put := func(v []float32, shape ...int) *gpu.Tensor {
			if dt == gpu.BF16 {
				return devBF16(t, g, 0, v, shape...)
			}
			return devView(t, g, 0, v, shape...)
		}
		qkv, out := put(randn(rng, B*T*W, 1), B, T, W), put(make([]float32, B*T*C), B, T, C)
		lse := devView(t, g, 0, make([]float32, B*H*T), B, H, T)
		dout := put(randn(rng, B*T*C, 1), B, T, C)
		g.AttentionForward(out, lse, qkv, nil, H, KVH)
		d1, d2 := put(make([]float32, B*T*W), B, T, W), put(make([]float32, B*T*W), B, T, W)
		g.AttentionBackward(d1, dout, qkv, out, lse, nil, H, KVH)
		g.AttentionBackward(d2, dout, qkv, out, lse, nil, H, KVH)
		sameBits(t, fmt.Sprintf("%v dqkv twice", dt), download(t, g, d1), download(t, g, d2))
	}
}

// TestGQADecodeParity fills caches of KVH heads from whole sequences
// (bit for bit: the write copies), appends a row at per-sequence starts
// (one sequence inactive), and checks decode against the cpu backend, in
// float32 and bf16.
func TestGQADecodeParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(53)
	for _, tc := range []struct{ B, H, KVH, hs, S, T int }{
		{2, 4, 2, 32, 20, 13},
		{3, 6, 1, 64, 40, 33},
		{2, 4, 2, 128, 30, 30},
		{2, 4, 1, 24, 9, 9}, // hs 24, padded to 32
	} {
		for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
			name := fmt.Sprintf("%+v %v", tc, dt)
			B, H, KVH, hs, S, T := tc.B, tc.H, tc.KVH, tc.hs, tc.S, tc.T
			C, W := H*hs, (H+2*KVH)*hs
			// put puts rounded values on both: bf16 on cuda when dt is.
			put := func(v []float32, shape ...int) (*gpu.Tensor, *gpu.Tensor) {
				v = roundBF16s(v)
				if dt == gpu.BF16 {
					return devBF16(t, p.g, 0, v, shape...), p.hostF32(v, shape...)
				}
				return p.f32(0, v, shape...)
			}
			gkc, hkc := put(randn(rng, B*KVH*S*hs, 1), B, KVH, S, hs)
			gvc, hvc := put(randn(rng, B*KVH*S*hs, 1), B, KVH, S, hs)
			gqkv, hqkv := put(randn(rng, B*T*W, 1), B, T, W)
			p.g.KVCacheWrite(gkc, gvc, gqkv, nil, H, KVH)
			p.h.KVCacheWrite(hkc, hvc, hqkv, nil, H, KVH)
			sameBits(t, name+" kc", p.get(gkc), cpu.F32(hkc))
			sameBits(t, name+" vc", p.get(gvc), cpu.F32(hvc))
			start := make([]int32, B)
			for b := range start {
				start[b] = int32(rng.IntN(S))
			}
			start[B-1] = -1
			gst, hst := p.i32(start, B)
			g1, h1 := put(randn(rng, B*W, 1), B, 1, W)
			p.g.KVCacheWrite(gkc, gvc, g1, gst, H, KVH)
			p.h.KVCacheWrite(hkc, hvc, h1, hst, H, KVH)
			sameBits(t, name+" kc after start", p.get(gkc), cpu.F32(hkc))
			sameBits(t, name+" vc after start", p.get(gvc), cpu.F32(hvc))

			lens := make([]int32, B)
			for b := range lens {
				lens[b] = int32(1 + rng.IntN(S))
			}
			lens[0] = int32(S)
			if B > 2 {
				lens[1] = 0
			}
			gln, hln := p.i32(lens, B)
			gq, hq := put(randn(rng, B*W, 1), B, W)
			gout, _ := put(randn(rng, B*C, 1), B, C)
			hout := p.hostF32(make([]float32, B*C), B, C)
			p.g.AttentionDecode(gout, gq, gkc, gvc, gln, H, KVH)
			p.h.AttentionDecode(hout, hq, hkc, hvc, hln, H, KVH)
			if dt == gpu.BF16 {
				want := roundBF16s(cpu.F32(hout))
				closeBF16(t, name+" decode", p.get(gout), want, 1, 1e-5*maxAbs(want))
			} else {
				closeTo(t, name+" decode", p.get(gout), cpu.F32(hout), 1e-4)
			}
			p.noErr()
		}
	}
}
