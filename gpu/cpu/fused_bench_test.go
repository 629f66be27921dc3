package cpu

import (
	"fmt"
	"testing"
)

// Benchmarks of the fused ops against the ops they fuse, at the tiny
// model's and GPT-2's sizes. The logits are overwritten by the gradient
// every call, in both variants, so later calls run on gradient values.

func BenchmarkCrossEntropy(tb *testing.B) {
	for _, s := range []struct{ n, v int }{{2048, 258}, {64, 50257}} {
		for _, fused := range []bool{false, true} {
			name := fmt.Sprintf("N=%d/V=%d/fused=%v", s.n, s.v, fused)
			tb.Run(name, func(tb *testing.B) {
				b := New(0)
				z := benchAlloc(tb, b, s.n, s.v)
				lp, ls, dl := benchAlloc(tb, b, s.n), benchAlloc(tb, b, s.n), benchAlloc(tb, b, s.n)
				tg := make([]int32, s.n)
				for i := range tg {
					tg[i] = int32(i*7919) % int32(s.v)
				}
				tgt := int32Of(tb, b, tg, s.n)
				f := func() {
					b.LogSoftmaxForward(lp, nil, ls, z, tgt)
					b.LogSoftmaxBackward(z, ls, nil, tgt, dl, nil)
				}
				if fused {
					f = func() { b.CrossEntropy(lp, nil, ls, z, tgt, dl) }
				}
				runGBs(tb, b, int64(4*s.n*s.v), f)
			})
		}
	}
}

func BenchmarkAddLayerNorm(tb *testing.B) {
	for _, s := range []struct{ n, c int }{{2048, 128}, {1024, 768}} {
		for _, fused := range []bool{false, true} {
			name := fmt.Sprintf("N=%d/C=%d/fused=%v", s.n, s.c, fused)
			tb.Run(name, func(tb *testing.B) {
				b := New(0)
				a, c, res, out := benchAlloc(tb, b, s.n, s.c), benchAlloc(tb, b, s.n, s.c), benchAlloc(tb, b, s.n, s.c), benchAlloc(tb, b, s.n, s.c)
				w, bias := benchAlloc(tb, b, s.c), benchAlloc(tb, b, s.c)
				mean, rstd := benchAlloc(tb, b, s.n), benchAlloc(tb, b, s.n)
				f := func() {
					b.Add(res, a, c)
					b.LayerNormForward(out, mean, rstd, res, w, bias)
				}
				if fused {
					f = func() { b.AddLayerNormForward(res, out, mean, rstd, a, c, w, bias) }
				}
				// The fused op's traffic: a and b read, res and out written.
				runGBs(tb, b, int64(4*4*s.n*s.c), f)
			})
		}
	}
}
