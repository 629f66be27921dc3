package cpu

import (
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Benchmarks of the memory-bound ops, reporting GB/s: the bytes an op must
// read and write per call (each tensor once) over the time per call.

// benchAlloc allocates a float32 tensor filled with a cheap non-zero
// pattern (randn would dominate set-up time at 124M elements).
func benchAlloc(tb testing.TB, b *Backend, shape ...int) *gpu.Tensor {
	tb.Helper()
	x, err := b.Alloc(gpu.Float32, shape...)
	if err != nil {
		tb.Fatal(err)
	}
	s := F32(x)
	for i := range s {
		s[i] = float32(i%1013-506)*(1.0/512) + 0.001
	}
	return x
}

// runGBs times f and reports bytes/call as GB/s.
func runGBs(tb *testing.B, be *Backend, bytes int64, f func()) {
	f() // warm up
	tb.ResetTimer()
	for i := 0; i < tb.N; i++ {
		f()
	}
	tb.StopTimer()
	if err := be.Err(); err != nil {
		tb.Fatal(err)
	}
	tb.SetBytes(bytes)
	tb.ReportMetric(float64(bytes)*float64(tb.N)/tb.Elapsed().Seconds()/1e9, "GB/s")
}

func BenchmarkLayerNormForward(tb *testing.B) {
	const n, c = 4096, 768
	b := New(0)
	inp, out := benchAlloc(tb, b, n, c), benchAlloc(tb, b, n, c)
	w, bias := benchAlloc(tb, b, c), benchAlloc(tb, b, c)
	mean, rstd := benchAlloc(tb, b, n), benchAlloc(tb, b, n)
	runGBs(tb, b, 4*(2*n*c+2*c+2*n), func() { b.LayerNormForward(out, mean, rstd, inp, w, bias) })
}

func BenchmarkLayerNormBackward(tb *testing.B) {
	const n, c = 4096, 768
	b := New(0)
	inp, out, dout, dinp := benchAlloc(tb, b, n, c), benchAlloc(tb, b, n, c), benchAlloc(tb, b, n, c), benchAlloc(tb, b, n, c)
	w, bias, dw, db := benchAlloc(tb, b, c), benchAlloc(tb, b, c), benchAlloc(tb, b, c), benchAlloc(tb, b, c)
	mean, rstd := benchAlloc(tb, b, n), benchAlloc(tb, b, n)
	b.LayerNormForward(out, mean, rstd, inp, w, bias)
	// Reads dout, inp and dinp, writes dinp; small vectors read/written once.
	runGBs(tb, b, 4*(4*n*c+5*c+2*n), func() { b.LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd) })
}

func BenchmarkAdamW(tb *testing.B) {
	for _, sz := range []struct {
		name string
		n    int
	}{{"16M", 16 << 20}, {"124M", 124_439_808}} {
		tb.Run(sz.name, func(tb *testing.B) {
			if sz.n > 20<<20 && testing.Short() {
				tb.Skip("large AdamW skipped in -short mode")
			}
			b := New(0)
			p, g, m, v := benchAlloc(tb, b, sz.n), benchAlloc(tb, b, sz.n), benchAlloc(tb, b, sz.n), benchAlloc(tb, b, sz.n)
			normSq := benchAlloc(tb, b, 1)
			h := gpu.AdamW{LR: 1e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, Step: 1, MaxNorm: 1, GradScale: 0.5}
			// Reads params, grads, m, v; writes params, m, v.
			runGBs(tb, b, int64(sz.n)*4*7, func() { b.AdamW(p, g, m, v, normSq, h); h.Step++ })
		})
	}
}

func BenchmarkGelu(tb *testing.B) {
	const n = 4096 * 3072
	b := New(0)
	inp, out, dout := benchAlloc(tb, b, n), benchAlloc(tb, b, n), benchAlloc(tb, b, n)
	tb.Run("Forward", func(tb *testing.B) { runGBs(tb, b, 4*2*n, func() { b.GeluForward(out, inp) }) })
	tb.Run("Backward", func(tb *testing.B) { runGBs(tb, b, 4*3*n, func() { b.GeluBackward(out, inp, dout) }) })
}

func BenchmarkDropout(tb *testing.B) {
	const n = 4096 * 768
	b := New(0)
	inp, out := benchAlloc(tb, b, n), benchAlloc(tb, b, n)
	runGBs(tb, b, 4*2*n, func() { b.Dropout(out, inp, 0.1, 42) })
}

func BenchmarkSumSquares(tb *testing.B) {
	const n = 16 << 20
	b := New(0)
	x, out := benchAlloc(tb, b, n), benchAlloc(tb, b, 1)
	runGBs(tb, b, 4*n, func() { b.SumSquares(out, x) })
}

func BenchmarkEmbedding(tb *testing.B) {
	const bsz, t, c, v = 8, 512, 768, 50257
	b := New(0)
	out, wte, wpe := benchAlloc(tb, b, bsz, t, c), benchAlloc(tb, b, v, c), benchAlloc(tb, b, 1024, c)
	tokens, _ := b.Alloc(gpu.Int32, bsz, t)
	for i, x := range I32(tokens) {
		I32(tokens)[i] = (x + int32(i)*7919) % v
	}
	// Forward reads two rows per token and writes one; backward reads dout
	// and read-modify-writes two gradient rows per token.
	tb.Run("Forward", func(tb *testing.B) {
		runGBs(tb, b, 4*3*bsz*t*c, func() { b.EmbeddingForward(out, tokens, nil, wte, wpe) })
	})
	tb.Run("Backward", func(tb *testing.B) {
		runGBs(tb, b, 4*5*bsz*t*c, func() { b.EmbeddingBackward(wte, wpe, out, tokens, nil) })
	})
}
