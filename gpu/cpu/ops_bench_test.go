package cpu

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/instructgo/instructgo/gpu"
)

// Benchmarks of the memory-bound ops, reporting GB/s: the bytes an op must
// read and write per call (each tensor once) over the time per call; and
// parallelFor's test and benchmark.

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

// benchTensor allocates a tensor of dtype dt on b holding vals (rounded
// for bf16).
func benchTensor(tb testing.TB, b *Backend, dt gpu.DType, vals []float32, shape ...int) *gpu.Tensor {
	tb.Helper()
	x, err := b.Alloc(dt, shape...)
	if err != nil {
		tb.Fatal(err)
	}
	if err := b.Upload(x, vals); err != nil {
		tb.Fatal(err)
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

// lnBenchShapes are the LayerNorm benchmark shapes: the tiny GPT's
// activations (B·T = 2048 rows of C = 128) and GPT-2's (4096 of 768).
var lnBenchShapes = []struct {
	name string
	n, c int
}{{"2048x128", 2048, 128}, {"4096x768", 4096, 768}}

func BenchmarkLayerNormForward(tb *testing.B) {
	for _, s := range lnBenchShapes {
		tb.Run(s.name, func(tb *testing.B) { benchLayerNormForward(tb, s.n, s.c, gpu.Float32) })
	}
}

// benchLayerNormForward times LayerNormForward on n rows of c with
// activations of dtype act, reporting the bytes of float32 activations
// (so that GB/s compare across dtypes as time does).
func benchLayerNormForward(tb *testing.B, n, c int, act gpu.DType) {
	b := New(0)
	f := func(shape ...int) *gpu.Tensor {
		return benchTensor(tb, b, act, F32(benchAlloc(tb, b, shape...)), shape...)
	}
	inp, out := f(n, c), f(n, c)
	w, bias := f(c), f(c)
	mean, rstd := benchAlloc(tb, b, n), benchAlloc(tb, b, n)
	runGBs(tb, b, int64(4*(2*n*c+2*c+2*n)), func() { b.LayerNormForward(out, mean, rstd, inp, w, bias) })
}

func BenchmarkLayerNormBackward(tb *testing.B) {
	for _, s := range lnBenchShapes {
		tb.Run(s.name, func(tb *testing.B) {
			n, c := s.n, s.c
			b := New(0)
			inp, out, dout, dinp := benchAlloc(tb, b, n, c), benchAlloc(tb, b, n, c), benchAlloc(tb, b, n, c), benchAlloc(tb, b, n, c)
			w, bias, dw, db := benchAlloc(tb, b, c), benchAlloc(tb, b, c), benchAlloc(tb, b, c), benchAlloc(tb, b, c)
			mean, rstd := benchAlloc(tb, b, n), benchAlloc(tb, b, n)
			b.LayerNormForward(out, mean, rstd, inp, w, bias)
			// Reads dout, inp and dinp, writes dinp; small vectors read/written once.
			runGBs(tb, b, int64(4*(4*n*c+5*c+2*n)), func() { b.LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd) })
		})
	}
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
			runGBs(tb, b, int64(sz.n)*4*7, func() { b.AdamW(p, nil, g, m, v, normSq, h); h.Step++ })
		})
	}
}

// BenchmarkGelu times GELU forward and backward with each kernel set, on the
// tiny GPT's MLP activation (B·T·4C = 16·128·512 = 1M elements, which
// stays in cache) and on GPT-2's (4096·3072, memory-bound), reporting GB/s
// and ns per element.
func BenchmarkGelu(tb *testing.B) {
	for _, k := range vecKernels() {
		for _, sz := range []struct {
			name string
			n    int
		}{{"1M", 16 * 128 * 512}, {"12M", 4096 * 3072}} {
			tb.Run(k.name+"/"+sz.name, func(tb *testing.B) {
				defer setVecKernel(k)()
				n := sz.n
				b := New(0)
				inp, out, dout := benchAlloc(tb, b, n), benchAlloc(tb, b, n), benchAlloc(tb, b, n)
				nsPerElem := func(tb *testing.B) {
					tb.ReportMetric(float64(tb.Elapsed().Nanoseconds())/float64(tb.N)/float64(n), "ns/elem")
				}
				tb.Run("Forward", func(tb *testing.B) {
					runGBs(tb, b, 4*2*int64(n), func() { b.GeluForward(out, inp) })
					nsPerElem(tb)
				})
				tb.Run("Backward", func(tb *testing.B) {
					runGBs(tb, b, 4*3*int64(n), func() { b.GeluBackward(out, inp, dout) })
					nsPerElem(tb)
				})
			})
		}
	}
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

// TestParallelFor checks that parallelFor's chunks are disjoint, cover
// [0, n), hold at least minChunk items (but the last), are all finished when
// it returns, and do not depend on timing.
func TestParallelFor(t *testing.T) {
	for _, threads := range []int{1, 2, 3, 5} {
		b := New(threads)
		for _, n := range []int{0, 1, 2, 3, 7, 100, 1000, 12345, 1<<16 + 3} {
			for _, minChunk := range []int{0, 1, 3, 64, 1000, 1 << 20} {
				var first [][2]int
				for rep := 0; rep < 5; rep++ {
					var mu sync.Mutex
					var chunks [][2]int
					b.parallelFor(n, minChunk, func(lo, hi int) {
						if rep == 0 && lo == 0 {
							time.Sleep(time.Millisecond) // let the others take more
						}
						mu.Lock()
						chunks = append(chunks, [2]int{lo, hi})
						mu.Unlock()
					})
					mu.Lock() // every body has returned: nothing may append now
					slices.SortFunc(chunks, func(a, b [2]int) int { return a[0] - b[0] })
					what := fmt.Sprintf("threads=%d n=%d minChunk=%d", threads, n, minChunk)
					at := 0
					for _, c := range chunks {
						if c[0] != at || c[1] <= c[0] || c[1] > n {
							t.Fatalf("%s: chunk %v after %d in %v", what, c, at, chunks)
						}
						if c[1] < n && c[1]-c[0] < minChunk {
							t.Fatalf("%s: chunk %v smaller than minChunk", what, c)
						}
						at = c[1]
					}
					if at != n {
						t.Fatalf("%s: chunks %v do not cover [0,%d)", what, chunks, n)
					}
					if rep == 0 {
						first = chunks
					} else if !slices.Equal(chunks, first) {
						t.Fatalf("%s: chunks %v, then %v", what, first, chunks)
					}
					mu.Unlock()
				}
			}
		}
	}
}

// BenchmarkParallelFor times parallelFor over a GELU body (minimum chunk
// 8192) after 100µs of single-threaded work, so the other cores have parked
// as between the ops of a training step (waking one costs tens of
// microseconds on a VM), against the body on one core.
func BenchmarkParallelFor(tb *testing.B) {
	for _, n := range []int{16 << 10, 64 << 10, 256 << 10, 1 << 20} {
		x, o := make([]float32, n), make([]float32, n)
		b := New(0)
		fwd := activeVec.Load().geluFwd
		body := func(lo, hi int) { fwd(o[lo:hi], x[lo:hi]) }
		for _, one := range []bool{false, true} {
			name := fmt.Sprintf("%dK/parallel", n>>10)
			if one {
				name = fmt.Sprintf("%dK/one-core", n>>10)
			}
			tb.Run(name, func(tb *testing.B) {
				var d time.Duration
				for i := 0; i < tb.N; i++ {
					spinFor(100 * time.Microsecond) // single-threaded work between ops
					t0 := time.Now()
					if one {
						body(0, n)
					} else {
						b.parallelFor(n, ewMinChunk/4, body)
					}
					d += time.Since(t0)
				}
				tb.ReportMetric(float64(d.Nanoseconds())/float64(tb.N)/1e3, "µs/call")
			})
		}
	}
}

// spinFor keeps the calling goroutine busy for d.
func spinFor(d time.Duration) {
	for t0 := time.Now(); time.Since(t0) < d; {
	}
}

// BenchmarkAddBias times the bias add of the tiny GPT's QKV projection
// (B·T rows of 3C = 384), as a PPO update's forward passes do it many times.
func BenchmarkAddBias(tb *testing.B) {
	const rows, c = 16 * 128, 384
	b := New(0)
	out, bias := benchAlloc(tb, b, rows, c), benchAlloc(tb, b, c)
	runGBs(tb, b, 4*2*rows*c, func() { b.AddBias(out, bias) })
}
