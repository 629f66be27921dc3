//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// attnCase is one attention shape; lens nil means no validLen tensor.
type attnCase struct {
	B, T, C, H int
	lens       []int32
}

func (c attnCase) String() string {
	return fmt.Sprintf("B=%d T=%d C=%d H=%d hs=%d lens=%v", c.B, c.T, c.C, c.H, c.C/c.H, c.lens)
}

// attnCases cover every kernel instance (padded head sizes 32, 64, 96,
// 128, and head sizes below them), lengths that are and are not multiples
// of the tiles, and valid lengths from 0 to T.
var attnCases = []attnCase{
	{1, 1, 32, 1, nil},
	{2, 37, 64, 2, nil},                 // hs 32
	{2, 70, 128, 2, []int32{70, 33}},    // hs 64
	{3, 45, 96, 1, []int32{45, 0, 1}},   // hs 96
	{1, 40, 128, 1, []int32{17}},        // hs 128
	{2, 33, 32, 2, []int32{33, 32}},     // hs 16, padded to 32
	{1, 50, 96, 2, nil},                 // hs 48, padded to 64
	{2, 129, 768, 12, []int32{129, 64}}, // gpt2's head size 64
}

func TestAttentionParity(t *testing.T) {
	rng := newRNG(30)
	for _, c := range attnCases {
		t.Run(c.String(), func(t *testing.T) { attentionParity(t, c, rng.Uint64()) })
	}
}

func attentionParity(t *testing.T, c attnCase, seed uint64) {
	p := newOpsPair(t)
	rng := newRNG(seed)
	B, T, C, H := c.B, c.T, c.C, c.H
	qkv := randn(rng, B*T*3*C, 1)
	// Padding rows hold NaN: keys and queries at or beyond validLen must
	// never be read.
	for b, l := range c.lens {
		for tt := int(l); tt < T; tt++ {
			for j := 0; j < 3*C; j++ {
				qkv[(b*T+tt)*3*C+j] = float32(math.NaN())
			}
		}
	}
	gqkv, hqkv := p.f32(0, qkv, B, T, 3*C)
	var gl, hl *gpu.Tensor
	if c.lens != nil {
		gl, hl = p.i32(c.lens, B)
	}
	gout, hout := p.f32(0, randn(rng, B*T*C, 1), B, T, C)
	glse, hlse := p.f32(0, randn(rng, B*H*T, 1), B, H, T)
	p.g.AttentionForward(gout, glse, gqkv, gl, H, H)
	p.h.AttentionForward(hout, hlse, hqkv, hl, H, H)
	closeTo(t, "out", p.get(gout), cpu.F32(hout), 1e-4)
	closeTo(t, "lse", p.get(glse), cpu.F32(hlse), 1e-4)

	dout := randn(rng, B*T*C, 1)
	gd, hd := p.f32(0, dout, B, T, C)
	gdq, hdq := p.f32(0, randn(rng, B*T*3*C, 1), B, T, 3*C) // overwritten
	p.g.AttentionBackward(gdq, gd, gqkv, gout, glse, gl, H, H)
	p.h.AttentionBackward(hdq, hd, hqkv, hout, hlse, hl, H, H)
	got, want := p.get(gdq), cpu.F32(hdq)
	// Compare the q, k and v parts separately (their scales differ); dq
	// and dk cancel to rounding noise where few keys are seen (one key: 0
	// exactly), so they are compared at least on dv's scale.
	var parts [3][2][]float32
	for part := range parts {
		for r := 0; r < B*T; r++ {
			parts[part][0] = append(parts[part][0], got[r*3*C+part*C:r*3*C+(part+1)*C]...)
			parts[part][1] = append(parts[part][1], want[r*3*C+part*C:r*3*C+(part+1)*C]...)
		}
	}
	floor := maxAbs(parts[2][1])
	closeToScale(t, "dq", parts[0][0], parts[0][1], 1e-4, floor)
	closeToScale(t, "dk", parts[1][0], parts[1][1], 1e-4, floor)
	closeTo(t, "dv", parts[2][0], parts[2][1], 1e-4)
	p.noErr()
}

func TestAttentionDeterministic(t *testing.T) {
	g := openTestBackend(t)
	rng := newRNG(31)
	const B, T, C, H = 2, 100, 128, 2
	qkv := devView(t, g, 0, randn(rng, B*T*3*C, 1), B, T, 3*C)
	out := devView(t, g, 0, make([]float32, B*T*C), B, T, C)
	lse := devView(t, g, 0, make([]float32, B*H*T), B, H, T)
	dout := devView(t, g, 0, randn(rng, B*T*C, 1), B, T, C)
	g.AttentionForward(out, lse, qkv, nil, H, H)
	d1 := devView(t, g, 0, make([]float32, B*T*3*C), B, T, 3*C)
	d2 := devView(t, g, 0, make([]float32, B*T*3*C), B, T, 3*C)
	g.AttentionBackward(d1, dout, qkv, out, lse, nil, H, H)
	g.AttentionBackward(d2, dout, qkv, out, lse, nil, H, H)
	sameBits(t, "dqkv twice", download(t, g, d1), download(t, g, d2))
}

func TestAttentionBadLength(t *testing.T) {
	p := newOpsPair(t)
	const B, T, C, H = 2, 4, 32, 1
	gqkv, hqkv := p.f32(0, make([]float32, B*T*3*C), B, T, 3*C)
	gl, hl := p.i32([]int32{4, 5}, B)
	gout, hout := p.f32(0, make([]float32, B*T*C), B, T, C)
	glse, hlse := p.f32(0, make([]float32, B*H*T), B, H, T)
	p.h.AttentionForward(hout, hlse, hqkv, hl, H, H)
	p.g.AttentionForward(gout, glse, gqkv, gl, H, H)
	if p.h.Err() == nil {
		t.Fatal("cpu accepted validLen 5 > T")
	}
	wantErrContains(t, "validLen 5", p.g.Sync(), p.h.Err().Error())
}

func TestAttentionHeadTooLarge(t *testing.T) {
	g := openTestBackend(t)
	qkv, _ := g.Alloc(gpu.Float32, 1, 2, 3*256)
	out, _ := g.Alloc(gpu.Float32, 1, 2, 256)
	lse, _ := g.Alloc(gpu.Float32, 1, 1, 2)
	g.AttentionForward(out, lse, qkv, nil, 1, 1)
	wantErrContains(t, "head size 256", g.Err(), "head size 256")
}

// TestDecodeParity writes a prompt's keys and values into the cache, then
// checks single-query decode against the cpu backend for cached lengths
// from 0 to S (0: an inactive sequence).
func TestDecodeParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(32)
	for _, tc := range []struct{ B, C, H, S, T int }{
		{2, 32, 1, 8, 5},
		{3, 128, 2, 40, 33},    // hs 64
		{2, 96, 1, 70, 70},     // hs 96
		{2, 256, 2, 1024, 300}, // hs 128, the longest context
		{2, 48, 2, 9, 9},       // hs 24, padded
	} {
		name := fmt.Sprintf("%+v", tc)
		B, C, H, S, T := tc.B, tc.C, tc.H, tc.S, tc.T
		hs := C / H
		gkc, hkc := p.f32(0, randn(rng, B*H*S*hs, 1), B, H, S, hs)
		gvc, hvc := p.f32(0, randn(rng, B*H*S*hs, 1), B, H, S, hs)
		gqkv, hqkv := p.f32(0, randn(rng, B*T*3*C, 1), B, T, 3*C)
		p.g.KVCacheWrite(gkc, gvc, gqkv, nil, H, H)
		p.h.KVCacheWrite(hkc, hvc, hqkv, nil, H, H)
		sameBits(t, name+" kc", p.get(gkc), cpu.F32(hkc))
		sameBits(t, name+" vc", p.get(gvc), cpu.F32(hvc))

		// Append one more position per sequence at different starts; a
		// negative start skips the sequence.
		start := make([]int32, B)
		for b := range start {
			start[b] = int32(rng.IntN(S))
		}
		start[B-1] = -1
		gst, hst := p.i32(start, B)
		gq1, hq1 := p.f32(0, randn(rng, B*3*C, 1), B, 1, 3*C)
		p.g.KVCacheWrite(gkc, gvc, gq1, gst, H, H)
		p.h.KVCacheWrite(hkc, hvc, hq1, hst, H, H)
		sameBits(t, name+" kc after start", p.get(gkc), cpu.F32(hkc))
		sameBits(t, name+" vc after start", p.get(gvc), cpu.F32(hvc))

		lens := make([]int32, B)
		for b := range lens {
			lens[b] = int32(rng.IntN(S + 1))
		}
		lens[0] = int32(S)
		if B > 2 {
			lens[1] = 0
		}
		gln, hln := p.i32(lens, B)
		gq, hq := p.f32(1, randn(rng, B*3*C, 1), B, 3*C)
		gout, hout := p.f32(0, randn(rng, B*C, 1), B, C)
		p.g.AttentionDecode(gout, gq, gkc, gvc, gln, H, H)
		p.h.AttentionDecode(hout, hq, hkc, hvc, hln, H, H)
		closeTo(t, name+" decode", p.get(gout), cpu.F32(hout), 1e-4)
		p.noErr()
	}
}

func TestDecodeBadLength(t *testing.T) {
	p := newOpsPair(t)
	const B, C, H, S = 2, 32, 1, 4
	gkc, hkc := p.f32(0, make([]float32, B*H*S*C), B, H, S, C)
	gvc, hvc := p.f32(0, make([]float32, B*H*S*C), B, H, S, C)
	gq, hq := p.f32(0, make([]float32, B*3*C), B, 3*C)
	gout, hout := p.f32(0, make([]float32, B*C), B, C)
	gln, hln := p.i32([]int32{5, 1}, B)
	p.h.AttentionDecode(hout, hq, hkc, hvc, hln, H, H)
	p.g.AttentionDecode(gout, gq, gkc, gvc, gln, H, H)
	if p.h.Err() == nil {
		t.Fatal("cpu accepted lens 5 > S")
	}
	wantErrContains(t, "lens 5", p.g.Sync(), p.h.Err().Error())
}

func TestKVCacheWriteBadStart(t *testing.T) {
	p := newOpsPair(t)
	const B, T, C, H, S = 2, 3, 32, 1, 4
	gkc, hkc := p.f32(0, make([]float32, B*H*S*C), B, H, S, C)
	gvc, hvc := p.f32(0, make([]float32, B*H*S*C), B, H, S, C)
	gq, hq := p.f32(0, make([]float32, B*T*3*C), B, T, 3*C)
	gst, hst := p.i32([]int32{1, 2}, B) // 2+3 > 4
	p.h.KVCacheWrite(hkc, hvc, hq, hst, H, H)
	p.g.KVCacheWrite(gkc, gvc, gq, gst, H, H)
	if p.h.Err() == nil {
		t.Fatal("cpu accepted start 2 with T=3, S=4")
	}
	wantErrContains(t, "start 2", p.g.Sync(), p.h.Err().Error())
}
