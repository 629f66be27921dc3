package model

import (
	"math/rand/v2"
	"syscall"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// The Llama family's cost on the cpu backend (docs/EXPERIMENTS.md):
// BenchmarkLMStep times a language-model training step (ForwardLM and
// Backward, no optimizer) of tiny and llama-tiny at the pipeline's
// pretraining shape, per token and per parameter·token;
// BenchmarkLlamaTinyOps times, at the same shape, exactly the RMSNorm and
// RoPE calls (forward and backward) that llama-tiny's step makes, and
// apart its SwiGLU calls, so their shares of the step are the ratios. Besides wall
// time each reports the process's CPU time (user and system, all threads)
// per token, which other load on a shared machine disturbs less.

const benchB, benchT = 16, 128

func BenchmarkLMStep(bm *testing.B) {
	for _, name := range []string{"tiny", "llama-tiny"} {
		bm.Run(name, func(bm *testing.B) {
			cfg, err := ConfigByName(name)
			if err != nil {
				bm.Fatal(err)
			}
			b := cpu.New(0)
			m, err := New(b, cfg, Options{MaxBatch: benchB, MaxSeq: benchT, Train: true})
			if err != nil {
				bm.Fatal(err)
			}
			if err := m.SetParams(InitGPT2(cfg, 1)); err != nil {
				bm.Fatal(err)
			}
			rng := rand.New(rand.NewPCG(1, 2))
			in := randomBatch(cfg, rng, benchB, benchT, false)
			dlogp, err := b.Alloc(gpu.Float32, benchB*benchT)
			if err != nil {
				bm.Fatal(err)
			}
			b.Fill(dlogp, -1/float32(benchB*benchT))
			step := func() {
				b.Fill(m.Grads.All, 0)
				if err := m.ForwardLM(in, 1, dlogp); err != nil {
					bm.Fatal(err)
				}
				if err := m.Backward(nil, nil); err != nil {
					bm.Fatal(err)
				}
				if err := b.Sync(); err != nil {
					bm.Fatal(err)
				}
			}
			step()
			bm.ResetTimer()
			cpu0 := cpuTime(bm)
			for range bm.N {
				step()
			}
			tokens := float64(bm.N * benchB * benchT)
			ns, cpuNs := float64(bm.Elapsed().Nanoseconds()), float64(cpuTime(bm)-cpu0)
			bm.ReportMetric(ns/tokens, "ns/token")
			bm.ReportMetric(cpuNs/tokens, "cpu-ns/token")
			bm.ReportMetric(1e3*cpuNs/tokens/float64(cfg.NumParams()), "cpu-ps/param-token")
		})
	}
}

func BenchmarkLlamaTinyOps(bm *testing.B) {
	cfg, err := ConfigByName("llama-tiny")
	if err != nil {
		bm.Fatal(err)
	}
	b := cpu.New(0)
	rng := rand.New(rand.NewPCG(3, 4))
	N, C, W := benchB*benchT, cfg.NEmbd, cfg.QKVWidth()
	alloc := func(dt gpu.DType, shape ...int) *gpu.Tensor {
		t, err := b.Alloc(dt, shape...)
		if err != nil {
			bm.Fatal(err)
		}
		if dt == gpu.Float32 {
			if err := b.Upload(t, randVec(rng, t.Len())); err != nil {
				bm.Fatal(err)
			}
		}
		return t
	}
	x, out, dout, dx := alloc(gpu.Float32, N, C), alloc(gpu.Float32, N, C), alloc(gpu.Float32, N, C), alloc(gpu.Float32, N, C)
	w, dw, rstd := alloc(gpu.Float32, C), alloc(gpu.Float32, C), alloc(gpu.Float32, N)
	qkv := alloc(gpu.Float32, benchB, benchT, W)
	inv, err := cfg.ropeInvFreq()
	if err != nil {
		bm.Fatal(err)
	}
	invFreq := alloc(gpu.Float32, len(inv))
	if err := b.Upload(invFreq, inv); err != nil {
		bm.Fatal(err)
	}
	F := cfg.Intermediate
	gu, dgu, act, dact := alloc(gpu.Float32, N, 2*F), alloc(gpu.Float32, N, 2*F), alloc(gpu.Float32, N, F), alloc(gpu.Float32, N, F)
	eps := float32(cfg.RMSNormEps)
	for _, c := range []struct {
		name  string
		calls func()
	}{
		{"rope+rmsnorm", func() {
			for range 2*cfg.NLayer + 1 { // two per block and the final one
				b.RMSNormForward(out, rstd, x, w, eps)
				b.RMSNormBackward(dx, dw, dout, x, w, rstd)
			}
			for range cfg.NLayer {
				b.RoPEForward(qkv, invFreq, nil, cfg.NHead, cfg.KVHeads)
				b.RoPEBackward(qkv, invFreq, nil, cfg.NHead, cfg.KVHeads)
			}
		}},
		{"swiglu", func() {
			for range cfg.NLayer {
				b.SwiGLUForward(act, gu)
				b.SwiGLUBackward(dgu, gu, dact)
			}
		}},
	} {
		bm.Run(c.name, func(bm *testing.B) {
			run := func() {
				c.calls()
				if err := b.Sync(); err != nil {
					bm.Fatal(err)
				}
			}
			run()
			bm.ResetTimer()
			cpu0 := cpuTime(bm)
			for range bm.N {
				run()
			}
			bm.ReportMetric(float64(bm.Elapsed().Nanoseconds())/float64(bm.N*N), "ns/token")
			bm.ReportMetric(float64(cpuTime(bm)-cpu0)/float64(bm.N*N), "cpu-ns/token")
		})
	}
}

// cpuTime is the process's user and system CPU time so far, in ns.
func cpuTime(bm *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		bm.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
