package cpu

import (
	"fmt"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Benchmarks of the Llama family's ops, at the shapes of the benchmarks
// of the GPT-2 ops they stand beside (LayerNorm, GELU, attention), so that
// their cost in a step compares directly: GB/s over the bytes an op must
// read and write per call, as ops_bench_test.go counts them.

func BenchmarkRMSNormForward(tb *testing.B) {
	for _, s := range lnBenchShapes {
		tb.Run(s.name, func(tb *testing.B) {
			n, c := s.n, s.c
			b := New(0)
			inp, out, w, rstd := benchAlloc(tb, b, n, c), benchAlloc(tb, b, n, c), benchAlloc(tb, b, c), benchAlloc(tb, b, n)
			runGBs(tb, b, int64(4*(2*n*c+c+n)), func() { b.RMSNormForward(out, rstd, inp, w, 1e-5) })
		})
	}
}

func BenchmarkRMSNormBackward(tb *testing.B) {
	for _, s := range lnBenchShapes {
		tb.Run(s.name, func(tb *testing.B) {
			n, c := s.n, s.c
			b := New(0)
			inp, out, dout, dinp := benchAlloc(tb, b, n, c), benchAlloc(tb, b, n, c), benchAlloc(tb, b, n, c), benchAlloc(tb, b, n, c)
			w, dw, rstd := benchAlloc(tb, b, c), benchAlloc(tb, b, c), benchAlloc(tb, b, n)
			b.RMSNormForward(out, rstd, inp, w, 1e-5)
			// Reads dout, inp and dinp, writes dinp; small vectors once.
			runGBs(tb, b, int64(4*(4*n*c+3*c+n)), func() { b.RMSNormBackward(dinp, dw, dout, inp, w, rstd) })
		})
	}
}

// ropeBenchShapes are a tiny Llama's training batch (hs 32, two query heads
// a key/value head) and Llama 3.2 1B's attention at 1024 positions (32
// query heads on 8 key/value heads of 64).
var ropeBenchShapes = []struct{ B, T, H, KVH, hs int }{{16, 128, 4, 2, 32}, {1, 1024, 32, 8, 64}}

func BenchmarkRoPE(tb *testing.B) {
	for _, s := range ropeBenchShapes {
		for _, backward := range []bool{false, true} {
			pass := "Forward"
			if backward {
				pass = "Backward"
			}
			tb.Run(fmt.Sprintf("%s/B%dT%dH%dKVH%dhs%d", pass, s.B, s.T, s.H, s.KVH, s.hs), func(tb *testing.B) {
				b := New(0)
				W := (s.H + 2*s.KVH) * s.hs
				qkv := benchAlloc(tb, b, s.B, s.T, W)
				inv, err := gpu.RoPEInvFreq(s.hs, 500000, nil)
				if err != nil {
					tb.Fatal(err)
				}
				f := tensorOf(tb, b, inv, s.hs/2)
				// Reads and writes the query and key heads.
				bytes := int64(2 * 4 * s.B * s.T * (s.H + s.KVH) * s.hs)
				if backward {
					runGBs(tb, b, bytes, func() { b.RoPEBackward(qkv, f, nil, s.H, s.KVH) })
				} else {
					runGBs(tb, b, bytes, func() { b.RoPEForward(qkv, f, nil, s.H, s.KVH) })
				}
			})
		}
	}
}

// BenchmarkSwiGLU runs forward and backward on the shapes of BenchmarkGelu
// (1M and 12M outputs), reporting GB/s and ns per output element.
func BenchmarkSwiGLU(tb *testing.B) {
	for _, sz := range []struct {
		name string
		n, f int
	}{{"1M", 16 * 128, 512}, {"12M", 4096, 3072}} {
		tb.Run(sz.name, func(tb *testing.B) {
			n, f := sz.n, sz.f
			b := New(0)
			inp, out, dout, dinp := benchAlloc(tb, b, n, 2*f), benchAlloc(tb, b, n, f), benchAlloc(tb, b, n, f), benchAlloc(tb, b, n, 2*f)
			nsPerElem := func(tb *testing.B) {
				tb.ReportMetric(float64(tb.Elapsed().Nanoseconds())/float64(tb.N)/float64(n*f), "ns/elem")
			}
			tb.Run("Forward", func(tb *testing.B) {
				runGBs(tb, b, int64(4*3*n*f), func() { b.SwiGLUForward(out, inp) })
				nsPerElem(tb)
			})
			tb.Run("Backward", func(tb *testing.B) {
				runGBs(tb, b, int64(4*5*n*f), func() { b.SwiGLUBackward(dinp, inp, dout) })
				nsPerElem(tb)
			})
		})
	}
}

// BenchmarkGQA times attention forward and backward with H query heads on
// KVH = H (multi-head), H/4 and 1 key/value heads: the same FLOPs (the
// score and output products are per query head), fewer keys and values to
// pack and, backward, one dK/dV per group.
func BenchmarkGQA(tb *testing.B) {
	const B, T, H, hs = 4, 256, 8, 32
	for _, kvh := range []int{H, H / 4, 1} {
		C, W := H*hs, (H+2*kvh)*hs
		flops := func(products int) float64 { return attnFlops(B, T, C, H, products) }
		tb.Run(fmt.Sprintf("B%dT%dH%dKVH%dhs%d", B, T, H, kvh, hs), func(tb *testing.B) {
			b := New(0)
			r := testRNG(5)
			qkv := tensorOf(tb, b, randn(r, B*T*W, 1), B, T, W)
			out := tensorOf(tb, b, randn(r, B*T*C, 1), B, T, C)
			lse := tensorOf(tb, b, randn(r, B*H*T, 1), B, H, T)
			dout := tensorOf(tb, b, randn(r, B*T*C, 1), B, T, C)
			dqkv := tensorOf(tb, b, randn(r, B*T*W, 1), B, T, W)
			tb.Run("Forward", func(tb *testing.B) {
				for tb.Loop() {
					b.AttentionForward(out, lse, qkv, nil, H, kvh)
				}
				assertNoErr(tb, b)
				tb.ReportMetric(flops(2)*float64(tb.N)/tb.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
			tb.Run("Backward", func(tb *testing.B) {
				b.AttentionForward(out, lse, qkv, nil, H, kvh)
				for tb.Loop() {
					b.AttentionBackward(dqkv, dout, qkv, out, lse, nil, H, kvh)
				}
				assertNoErr(tb, b)
				tb.ReportMetric(flops(5)*float64(tb.N)/tb.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		})
	}
}
