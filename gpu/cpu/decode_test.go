package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

func TestKVCacheWriteMatchesReference(t *testing.T) {
	const B, T, H, hs, S = 3, 4, 3, 5, 9
	const C = H * hs
	r := testRNG(1)
	for _, tc := range []struct {
		name  string
		start []int32 // nil: 0
	}{
		{name: "nil start"},
		{name: "offsets", start: []int32{0, 2, 5}},
		{name: "skip", start: []int32{3, -1, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, threads := range []int{1, 3} {
				b := New(threads)
				qkv := randn(r, B*T*3*C, 1)
				k0, v0 := randn(r, B*H*S*hs, 1), randn(r, B*H*S*hs, 1)
				kc, vc := tensorOf(t, b, k0, B, H, S, hs), tensorOf(t, b, v0, B, H, S, hs)
				var start *gpu.Tensor
				if tc.start != nil {
					start = int32Of(t, b, tc.start, B)
				}
				b.KVCacheWrite(kc, vc, tensorOf(t, b, qkv, B, T, 3*C), start, H, H)
				assertNoErr(t, b)

				wantK, wantV := to64(k0), to64(v0)
				for bi := 0; bi < B; bi++ {
					s0 := 0
					if tc.start != nil {
						if tc.start[bi] < 0 {
							continue
						}
						s0 = int(tc.start[bi])
					}
					for tt := 0; tt < T; tt++ {
						for h := 0; h < H; h++ {
							for i := 0; i < hs; i++ {
								dst := ((bi*H+h)*S+s0+tt)*hs + i
								src := (bi*T+tt)*3*C + h*hs + i
								wantK[dst] = float64(qkv[src+C])
								wantV[dst] = float64(qkv[src+2*C])
							}
						}
					}
				}
				assertClose(t, "kc", F32(kc), wantK, 0)
				assertClose(t, "vc", F32(vc), wantV, 0)
			}
		})
	}
}

// attnDecodeRef is the float64 single-query attention over the first
// lens[b] cached positions.
func attnDecodeRef(qkv, kc, vc []float32, lens []int32, B, H, S, hs int) []float64 {
	return gqaDecodeRef(qkv, kc, vc, lens, B, H, H, S, hs)
}

// gqaDecodeRef is attnDecodeRef for H query heads on KVH key/value heads:
// qkv [B,(H+2·KVH)·hs], caches [B,KVH,S,hs].
func gqaDecodeRef(qkv, kc, vc []float32, lens []int32, B, H, KVH, S, hs int) []float64 {
	C, W := H*hs, (H+2*KVH)*hs
	out := make([]float64, B*C)
	scale := 1 / math.Sqrt(float64(hs))
	for bi := 0; bi < B; bi++ {
		n := int(lens[bi])
		for h := 0; h < H; h++ {
			if n == 0 {
				continue
			}
			cache := (bi*KVH + h/(H/KVH)) * S * hs
			s := make([]float64, n)
			m := math.Inf(-1)
			for j := range s {
				var d float64
				for i := 0; i < hs; i++ {
					d += float64(qkv[bi*W+h*hs+i]) * float64(kc[cache+j*hs+i])
				}
				s[j] = d * scale
				m = math.Max(m, s[j])
			}
			var sum float64
			for j := range s {
				s[j] = math.Exp(s[j] - m)
				sum += s[j]
			}
			for j := range s {
				for i := 0; i < hs; i++ {
					out[bi*C+h*hs+i] += s[j] / sum * float64(vc[cache+j*hs+i])
				}
			}
		}
	}
	return out
}

func TestAttentionDecodeMatchesFloat64(t *testing.T) {
	// Head sizes below 16 take the scalar loops, from 16 on the vector
	// ones where the CPU has them; 36 leaves a tail after the vectors.
	// Multiples of 8 take the whole-head loops where the CPU has them (40:
	// a block of 32 columns and one of 8), and are also run without them.
	for _, hs := range []int{7, 8, 32, 36, 40, 64} {
		const B, H, S = 4, 3, 11
		C := H * hs
		r := testRNG(uint64(2 + hs))
		lens := []int32{1, 5, 11, 0} // 0: an inactive sequence gets zeros
		qkv := randn(r, B*3*C, 1.5)
		k, v := randn(r, B*H*S*hs, 1.5), randn(r, B*H*S*hs, 1)
		want := attnDecodeRef(qkv, k, v, lens, B, H, S, hs)
		for _, dk := range []*decodeKernel{activeDecode.Load(), nil} {
			for _, threads := range []int{1, 2, 5} {
				old := activeDecode.Swap(dk)
				b := New(threads)
				out := tensorOf(t, b, randn(r, B*C, 1), B, C)
				b.AttentionDecode(out, tensorOf(t, b, qkv, B, 3*C), tensorOf(t, b, k, B, H, S, hs),
					tensorOf(t, b, v, B, H, S, hs), int32Of(t, b, lens, B), H, H)
				activeDecode.Store(old)
				assertNoErr(t, b)
				assertClose(t, fmt.Sprintf("hs %d (whole-head loops %v) out", hs, dk != nil), F32(out), want, 2e-6)
				for i, x := range F32(out)[3*C:] {
					if x != 0 {
						t.Fatalf("hs %d, inactive sequence: out[%d] = %g, want 0", hs, i, x)
					}
				}
			}
		}
	}
}

// TestAttentionDecodeMatchesTrainingAttention fills a cache one position
// at a time, as decoding does, and checks that the single-query attention
// at position t reproduces row t of the fused causal attention over the
// whole sequence, padding included.
func TestAttentionDecodeMatchesTrainingAttention(t *testing.T) {
	const B, T, H, hs = 3, 13, 4, 8
	const C = H * hs
	const S = T + 2 // room to spare: positions ≥ t+1 are never read
	r := testRNG(3)
	b := New(2)
	valid := []int32{T, 7, 1}
	qkvAll := randn(r, B*T*3*C, 1)
	out := tensorOf(t, b, randn(r, B*T*C, 1), B, T, C)
	lse := tensorOf(t, b, randn(r, B*H*T, 1), B, H, T)
	b.AttentionForward(out, lse, tensorOf(t, b, qkvAll, B, T, 3*C), int32Of(t, b, valid, B), H, H)
	assertNoErr(t, b)
	want := F32(out)

	// Garbage in the cache beyond the written positions must not matter.
	kc := tensorOf(t, b, randn(r, B*H*S*hs, 100), B, H, S, hs)
	vc := tensorOf(t, b, randn(r, B*H*S*hs, 100), B, H, S, hs)
	step := tensorOf(t, b, make([]float32, B*3*C), B, 3*C)
	dec := tensorOf(t, b, make([]float32, B*C), B, C)
	start := int32Of(t, b, make([]int32, B), B)
	lens := int32Of(t, b, make([]int32, B), B)
	for tt := 0; tt < T; tt++ {
		for bi := 0; bi < B; bi++ {
			copy(F32(step)[bi*3*C:(bi+1)*3*C], qkvAll[(bi*T+tt)*3*C:(bi*T+tt+1)*3*C])
			if int32(tt) < valid[bi] {
				I32(start)[bi], I32(lens)[bi] = int32(tt), int32(tt+1)
			} else {
				I32(start)[bi], I32(lens)[bi] = -1, 0 // finished: leave the cache alone
			}
		}
		b.KVCacheWrite(kc, vc, step.MustReshape(B, 1, 3*C), start, H, H)
		b.AttentionDecode(dec, step, kc, vc, lens, H, H)
		assertNoErr(t, b)
		for bi := 0; bi < B; bi++ {
			ref := to64(want[(bi*T+tt)*C : (bi*T+tt+1)*C])
			assertClose(t, "decode vs forward", F32(dec)[bi*C:(bi+1)*C], ref, 1e-5)
		}
	}
}

// TestDecodeMixIsAxpys: the whole-head weighted sum gives the bits of an
// axpy per key in key order (the skinny kernel's), for head sizes with and
// without a block of 8 after the blocks of 32.
func TestDecodeMixIsAxpys(t *testing.T) {
	dk, sk := activeDecode.Load(), activeSkinny
	if dk == nil || sk == nil {
		t.Skip("no whole-head decoding loops on this CPU")
	}
	r := testRNG(12)
	for _, hs := range []int{8, 32, 40, 64, 96} {
		for _, n := range []int{1, 2, 13, 64} {
			w, v := randn(r, n, 1), randn(r, n*hs, 1)
			got, want := nanFilled(hs), make([]float32, hs)
			dk.mix(got, w, v)
			for j := range w {
				sk.axpy(want, v[j*hs:(j+1)*hs], w[j])
			}
			for c := range want {
				if math.Float32bits(got[c]) != math.Float32bits(want[c]) {
					t.Fatalf("hs %d n %d: o[%d] = %v, axpys give %v", hs, n, c, got[c], want[c])
				}
			}
		}
	}
}
