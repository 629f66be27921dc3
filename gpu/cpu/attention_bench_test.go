package cpu

import (
	"fmt"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// attnBenchShapes are the tiny model's training shape (head size 32), a
// small training shape and GPT-2 small at full context.
var attnBenchShapes = []struct{ B, T, C, H int }{
	{16, 128, 128, 4},
	{32, 64, 128, 4}, // the tiny PPO iteration
	{4, 256, 256, 4},
	{1, 1024, 768, 12},
}

// attnBenchThreads are the worker counts each shape is measured with.
var attnBenchThreads = []int{1, 2}

// attnFlops is the causal FLOP count: each of the B·H heads forms about
// T²/2 scores, each a dot product of length hs (2·hs FLOPs), and as many
// axpys into the output; the backward pass does five such products
// (S recomputed, dV, dP, dQ, dK) to the forward's two.
func attnFlops(B, T, C, H int, products int) float64 {
	hs := C / H
	return float64(products) * 2 * float64(B*H) * float64(T) * float64(T) / 2 * float64(hs)
}

func BenchmarkAttentionForward(bm *testing.B) {
	for _, s := range attnBenchShapes {
		for _, threads := range attnBenchThreads {
			bm.Run(fmt.Sprintf("B%dT%dC%dH%d/t%d", s.B, s.T, s.C, s.H, threads), func(bm *testing.B) {
				b := New(threads)
				r := testRNG(1)
				qkv := tensorOf(bm, b, randn(r, s.B*s.T*3*s.C, 1), s.B, s.T, 3*s.C)
				out := tensorOf(bm, b, randn(r, s.B*s.T*s.C, 1), s.B, s.T, s.C)
				lse := tensorOf(bm, b, randn(r, s.B*s.H*s.T, 1), s.B, s.H, s.T)
				bm.ResetTimer()
				for bm.Loop() {
					b.AttentionForward(out, lse, qkv, nil, s.H, s.H)
				}
				assertNoErr(bm, b)
				bm.ReportMetric(attnFlops(s.B, s.T, s.C, s.H, 2)*float64(bm.N)/bm.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func BenchmarkAttentionBackward(bm *testing.B) {
	for _, s := range attnBenchShapes {
		for _, threads := range attnBenchThreads {
			bm.Run(fmt.Sprintf("B%dT%dC%dH%d/t%d", s.B, s.T, s.C, s.H, threads), func(bm *testing.B) {
				b := New(threads)
				r := testRNG(2)
				qkv := tensorOf(bm, b, randn(r, s.B*s.T*3*s.C, 1), s.B, s.T, 3*s.C)
				out := tensorOf(bm, b, randn(r, s.B*s.T*s.C, 1), s.B, s.T, s.C)
				lse := tensorOf(bm, b, randn(r, s.B*s.H*s.T, 1), s.B, s.H, s.T)
				dout := tensorOf(bm, b, randn(r, s.B*s.T*s.C, 1), s.B, s.T, s.C)
				dqkv := tensorOf(bm, b, randn(r, s.B*s.T*3*s.C, 1), s.B, s.T, 3*s.C)
				b.AttentionForward(out, lse, qkv, nil, s.H, s.H)
				bm.ResetTimer()
				for bm.Loop() {
					b.AttentionBackward(dqkv, dout, qkv, out, lse, nil, s.H, s.H)
				}
				assertNoErr(bm, b)
				bm.ReportMetric(attnFlops(s.B, s.T, s.C, s.H, 5)*float64(bm.N)/bm.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

// lsmBench holds the operands of a log-softmax benchmark.
type lsmBench struct {
	b                                      *Backend
	logits, targets, logp, lse, ent, dlogp *gpu.Tensor
}

func newLsmBench(bm *testing.B, n, v int) lsmBench {
	b := New(0)
	z, tg := lsmInputs(testRNG(3), n, v, 2)
	r := testRNG(4)
	return lsmBench{
		b:       b,
		logits:  tensorOf(bm, b, z, n, v),
		targets: int32Of(bm, b, tg, n),
		logp:    tensorOf(bm, b, randn(r, n, 1), n),
		lse:     tensorOf(bm, b, randn(r, n, 1), n),
		ent:     tensorOf(bm, b, randn(r, n, 1), n),
		dlogp:   tensorOf(bm, b, randn(r, n, 1), n),
	}
}

// BenchmarkLogSoftmax reports the bandwidth over the logits: the forward
// pass reads them once, the backward pass reads and writes them once.
func BenchmarkLogSoftmax(bm *testing.B) {
	for _, s := range []struct{ N, V int }{{256, 50257}, {4096, 257}} {
		bytes := float64(s.N) * float64(s.V) * 4
		bm.Run(fmt.Sprintf("forward/N%dV%d", s.N, s.V), func(bm *testing.B) {
			x := newLsmBench(bm, s.N, s.V)
			bm.ResetTimer()
			for bm.Loop() {
				x.b.LogSoftmaxForward(x.logp, x.ent, x.lse, x.logits, x.targets)
			}
			assertNoErr(bm, x.b)
			bm.ReportMetric(bytes*float64(bm.N)/bm.Elapsed().Seconds()/1e9, "GB/s")
		})
		bm.Run(fmt.Sprintf("backward/N%dV%d", s.N, s.V), func(bm *testing.B) {
			x := newLsmBench(bm, s.N, s.V)
			x.b.LogSoftmaxForward(x.logp, x.ent, x.lse, x.logits, x.targets)
			// The gradient overwrites the logits; later iterations run on
			// gradients, which costs the same (the work does not depend on
			// the values). dentropy is some random-looking row vector.
			bm.ResetTimer()
			for bm.Loop() {
				x.b.LogSoftmaxBackward(x.logits, x.lse, x.ent, x.targets, x.dlogp, x.logp)
			}
			assertNoErr(bm, x.b)
			bm.ReportMetric(2*bytes*float64(bm.N)/bm.Elapsed().Seconds()/1e9, "GB/s")
		})
	}
}

// BenchmarkAttnBwdBlock measures the attention backward pass, one thread,
// across query block sizes (attnBwdBlock, rounded up to whole register
// panels). On a Zen 4 core the sizes from 24 to 256 rows are within a few
// percent of each other on every shape here.
func BenchmarkAttnBwdBlock(bm *testing.B) {
	defer func(old int) { attnBwdBlock = old }(attnBwdBlock)
	for _, s := range attnBenchShapes {
		for _, blk := range []int{24, 64, 128, 256} {
			bm.Run(fmt.Sprintf("B%dT%dC%dH%d/blk%d", s.B, s.T, s.C, s.H, blk), func(bm *testing.B) {
				attnBwdBlock = blk
				b := New(1)
				r := testRNG(2)
				qkv := tensorOf(bm, b, randn(r, s.B*s.T*3*s.C, 1), s.B, s.T, 3*s.C)
				out := tensorOf(bm, b, randn(r, s.B*s.T*s.C, 1), s.B, s.T, s.C)
				lse := tensorOf(bm, b, randn(r, s.B*s.H*s.T, 1), s.B, s.H, s.T)
				dout := tensorOf(bm, b, randn(r, s.B*s.T*s.C, 1), s.B, s.T, s.C)
				dqkv := tensorOf(bm, b, randn(r, s.B*s.T*3*s.C, 1), s.B, s.T, 3*s.C)
				b.AttentionForward(out, lse, qkv, nil, s.H, s.H)
				bm.ResetTimer()
				for bm.Loop() {
					b.AttentionBackward(dqkv, dout, qkv, out, lse, nil, s.H, s.H)
				}
				assertNoErr(bm, b)
				bm.ReportMetric(attnFlops(s.B, s.T, s.C, s.H, 5)*float64(bm.N)/bm.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}
