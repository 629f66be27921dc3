package cpu

import (
	"fmt"
	"math"
	"testing"
)

// Grouped-query attention beyond the shared attention cases
// (attention_test.go): the equivalence with multi-head attention on
// repeated key/value heads (what Hugging Face's repeat_kv does), and the
// KV cache and decode with KVH < H.

// repeatKV returns the multi-head qkv [B,T,3·H·hs] of a grouped one
// [B,T,(H+2·KVH)·hs]: key/value head g copied to the H/KVH query heads of
// its group.
func repeatKV(x []float32, B, T, H, KVH, hs int) []float32 {
	W, C := (H+2*KVH)*hs, H*hs
	out := make([]float32, 0, B*T*3*C)
	for r := 0; r < B*T; r++ {
		row := x[r*W : (r+1)*W]
		out = append(out, row[:C]...)
		for part := 0; part < 2; part++ {
			for h := 0; h < H; h++ {
				g := (H + part*KVH + h/(H/KVH)) * hs
				out = append(out, row[g:g+hs]...)
			}
		}
	}
	return out
}

// TestGQAIsRepeatedKV: grouped-query attention gives the outputs of
// multi-head attention on the repeated key/value heads bit for bit (the
// same kernels read the same numbers), and as gradients the multi-head
// ones with each repeated head's dK and dV summed over its group.
func TestGQAIsRepeatedKV(t *testing.T) {
	for _, c := range []struct{ B, T, H, KVH, hs int }{
		{2, 37, 4, 2, 16}, {1, 130, 6, 1, 32}, {3, 20, 8, 4, 7}, {2, 70, 4, 2, 64},
	} {
		t.Run(fmt.Sprintf("%+v", c), func(t *testing.T) {
			r := testRNG(uint64(c.T))
			B, T, H, KVH, hs := c.B, c.T, c.H, c.KVH, c.hs
			C, W := H*hs, (H+2*KVH)*hs
			lens := make([]int32, B)
			for i := range lens {
				lens[i] = int32(T - i*T/(2*B))
			}
			x := randn(r, B*T*W, 1)
			dout := randn(r, B*T*C, 1)
			b := New(2)
			out, lse, dx := runGQA(t, b, x, dout, lens, B, T, H, KVH, hs)
			mOut, mLse, mdx := runGQA(t, b, repeatKV(x, B, T, H, KVH, hs), dout, lens, B, T, H, H, hs)
			sameBits := func(what string, got, want []float32) {
				for i := range want {
					if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
						t.Fatalf("%s[%d] = %v, multi-head attention on repeated heads gives %v", what, i, got[i], want[i])
					}
				}
			}
			sameBits("out", out, mOut)
			sameBits("lse", lse, mLse)
			// Sum the multi-head gradients of each group's repeated heads.
			want := make([]float64, len(dx))
			for rr := 0; rr < B*T; rr++ {
				for i := 0; i < C; i++ {
					want[rr*W+i] = float64(mdx[rr*3*C+i])
				}
				for part := 0; part < 2; part++ {
					for h := 0; h < H; h++ {
						g := (H + part*KVH + h/(H/KVH)) * hs
						for i := 0; i < hs; i++ {
							want[rr*W+g+i] += float64(mdx[rr*3*C+(1+part)*C+h*hs+i])
						}
					}
				}
			}
			checkCloseLog(t, "dqkv vs summed multi-head gradients", dx, want, 1e-6)
		})
	}
}

func TestGQAKVCacheWrite(t *testing.T) {
	const B, T, H, KVH, hs, S = 3, 4, 6, 2, 5, 9
	const W = (H + 2*KVH) * hs
	r := testRNG(11)
	for _, threads := range []int{1, 3} {
		b := New(threads)
		qkv := randn(r, B*T*W, 1)
		k0, v0 := randn(r, B*KVH*S*hs, 1), randn(r, B*KVH*S*hs, 1)
		kc, vc := tensorOf(t, b, k0, B, KVH, S, hs), tensorOf(t, b, v0, B, KVH, S, hs)
		start := []int32{2, -1, 5}
		b.KVCacheWrite(kc, vc, tensorOf(t, b, qkv, B, T, W), int32Of(t, b, start, B), H, KVH)
		assertNoErr(t, b)
		wantK, wantV := to64(k0), to64(v0)
		for bi := 0; bi < B; bi++ {
			if start[bi] < 0 {
				continue
			}
			for tt := 0; tt < T; tt++ {
				for g := 0; g < KVH; g++ {
					for i := 0; i < hs; i++ {
						dst := ((bi*KVH+g)*S+int(start[bi])+tt)*hs + i
						row := qkv[(bi*T+tt)*W:]
						wantK[dst] = float64(row[(H+g)*hs+i])
						wantV[dst] = float64(row[(H+KVH+g)*hs+i])
					}
				}
			}
		}
		assertClose(t, "kc", F32(kc), wantK, 0)
		assertClose(t, "vc", F32(vc), wantV, 0)
	}
}

func TestGQADecodeMatchesFloat64(t *testing.T) {
	for _, c := range []struct{ H, KVH, hs int }{{4, 2, 7}, {6, 1, 32}, {8, 2, 64}, {4, 1, 128}} {
		const B, S = 4, 11
		C, W := c.H*c.hs, (c.H+2*c.KVH)*c.hs
		r := testRNG(uint64(c.hs + c.KVH))
		lens := []int32{1, 5, 11, 0}
		qkv := randn(r, B*W, 1.5)
		k, v := randn(r, B*c.KVH*S*c.hs, 1.5), randn(r, B*c.KVH*S*c.hs, 1)
		want := gqaDecodeRef(qkv, k, v, lens, B, c.H, c.KVH, S, c.hs)
		for _, threads := range []int{1, 3} {
			b := New(threads)
			out := tensorOf(t, b, randn(r, B*C, 1), B, C)
			b.AttentionDecode(out, tensorOf(t, b, qkv, B, W), tensorOf(t, b, k, B, c.KVH, S, c.hs),
				tensorOf(t, b, v, B, c.KVH, S, c.hs), int32Of(t, b, lens, B), c.H, c.KVH)
			assertNoErr(t, b)
			assertClose(t, fmt.Sprintf("%+v out", c), F32(out), want, 2e-6)
		}
	}
}

// TestGQADecodeMatchesTrainingAttention is
// TestAttentionDecodeMatchesTrainingAttention with shared key/value heads:
// the cache filled one position at a time reproduces the rows of the fused
// causal attention.
func TestGQADecodeMatchesTrainingAttention(t *testing.T) {
	for _, kvh := range []int{2, 1} {
		const B, T, H, hs = 3, 13, 4, 8
		C, W := H*hs, (H+2*kvh)*hs
		const S = T + 2
		r := testRNG(uint64(30 + kvh))
		b := New(2)
		valid := []int32{T, 7, 1}
		qkvAll := randn(r, B*T*W, 1)
		out := tensorOf(t, b, randn(r, B*T*C, 1), B, T, C)
		lse := tensorOf(t, b, randn(r, B*H*T, 1), B, H, T)
		b.AttentionForward(out, lse, tensorOf(t, b, qkvAll, B, T, W), int32Of(t, b, valid, B), H, kvh)
		assertNoErr(t, b)
		want := F32(out)
		kc := tensorOf(t, b, randn(r, B*kvh*S*hs, 100), B, kvh, S, hs)
		vc := tensorOf(t, b, randn(r, B*kvh*S*hs, 100), B, kvh, S, hs)
		step := tensorOf(t, b, make([]float32, B*W), B, W)
		dec := tensorOf(t, b, make([]float32, B*C), B, C)
		start := int32Of(t, b, make([]int32, B), B)
		lens := int32Of(t, b, make([]int32, B), B)
		for tt := 0; tt < T; tt++ {
			for bi := 0; bi < B; bi++ {
				copy(F32(step)[bi*W:(bi+1)*W], qkvAll[(bi*T+tt)*W:(bi*T+tt+1)*W])
				if int32(tt) < valid[bi] {
					I32(start)[bi], I32(lens)[bi] = int32(tt), int32(tt+1)
				} else {
					I32(start)[bi], I32(lens)[bi] = -1, 0
				}
			}
			b.KVCacheWrite(kc, vc, step.MustReshape(B, 1, W), start, H, kvh)
			b.AttentionDecode(dec, step, kc, vc, lens, H, kvh)
			assertNoErr(t, b)
			for bi := 0; bi < B; bi++ {
				ref := to64(want[(bi*T+tt)*C : (bi*T+tt+1)*C])
				assertClose(t, fmt.Sprintf("KVH %d decode vs forward", kvh), F32(dec)[bi*C:(bi+1)*C], ref, 1e-5)
			}
		}
	}
}

// TestGQAPaddingNeverRead: with shared heads too, NaN in the padded rows of
// qkv and dout leaves every valid output and gradient bit-identical and
// the padded ones zero.
func TestGQAPaddingNeverRead(t *testing.T) {
	const B, T, H, KVH, hs = 3, 70, 6, 2, 12
	C, W := H*hs, (H+2*KVH)*hs
	lens := []int32{70, 33, 0}
	r := testRNG(12)
	x, dout := randn(r, B*T*W, 1), randn(r, B*T*C, 1)
	b := New(3)
	out, lse, dx := runGQA(t, b, x, dout, lens, B, T, H, KVH, hs)
	xp, dp := append([]float32(nil), x...), append([]float32(nil), dout...)
	nan := float32(math.NaN())
	for bi := 0; bi < B; bi++ {
		for ti := int(lens[bi]); ti < T; ti++ {
			for i := 0; i < W; i++ {
				xp[(bi*T+ti)*W+i] = nan
			}
			for i := 0; i < C; i++ {
				dp[(bi*T+ti)*C+i] = nan
			}
		}
	}
	out2, lse2, dx2 := runGQA(t, b, xp, dp, lens, B, T, H, KVH, hs)
	for _, c := range []struct {
		what      string
		a, b      []float32
		width, hw int // row width; lse is [B,H,T]
	}{{"out", out, out2, C, 0}, {"dqkv", dx, dx2, W, 0}, {"lse", lse, lse2, 0, 1}} {
		for i := range c.a {
			var bi, ti int
			if c.hw == 1 {
				bi, ti = i/(H*T), i%T
			} else {
				bi, ti = i/(T*c.width), i/c.width%T
			}
			padded := ti >= int(lens[bi])
			if math.Float32bits(c.a[i]) != math.Float32bits(c.b[i]) || (padded && c.a[i] != 0) {
				t.Fatalf("%s[%d] (sequence %d, row %d, padded %v): %v and %v with NaN padding", c.what, i, bi, ti, padded, c.a[i], c.b[i])
			}
		}
	}
}
