package train

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
)

// BenchmarkTrainStep times one full language-model training step (forward,
// backward, AdamW) of the tiny config and of GPT-2 124M, reporting tokens/s
// and the achieved model FLOP rate with llm.c's count (6·N + 6·L·C·T per
// token).
func BenchmarkTrainStep(b *testing.B) {
	tiny, _ := model.ConfigByName("tiny")
	gpt2, _ := model.ConfigByName("gpt2")
	cases := []struct {
		name string
		cfg  model.Config
		B, T int
	}{
		{"tiny/B16xT128", tiny, 16, 128},
		{"tiny/B8xT256", tiny, 8, 256},
		{"gpt2/B1xT256", gpt2, 1, 256},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			if testing.Short() && c.cfg.NLayer > 4 {
				b.Skip("gpt2 step skipped in -short mode")
			}
			benchTrainStep(b, c.cfg, c.B, c.T)
		})
	}
}

func benchTrainStep(b *testing.B, cfg model.Config, B, T int) {
	be := cpu.New(runtime.GOMAXPROCS(0)) // -test.cpu 1,2 compares thread counts
	m, err := model.New(be, cfg, model.Options{MaxBatch: B, MaxSeq: T, Train: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := be.Upload(m.Params.All, model.InitGPT2(cfg, 1)); err != nil {
		b.Fatal(err)
	}
	lm, err := NewLMStep(m, DefaultOptim(), 1<<30, 1, 1)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	in := &model.Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
	for i := range in.Tokens {
		in.Tokens[i] = int32(rng.IntN(cfg.VocabSize))
		in.Targets[i] = int32(rng.IntN(cfg.VocabSize))
	}
	step := func(i int) {
		if _, _, err := lm.Run(i, func() (*model.Batch, error) { return in, nil }); err != nil {
			b.Fatal(err)
		}
	}
	step(1) // warm-up: first-touch of every buffer
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		step(i + 2)
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	tokens := float64(B * T)
	b.ReportMetric(tokens/sec, "tokens/s")
	b.ReportMetric(cfg.FLOPsPerToken(T)*tokens/sec/1e9, "GFLOP/s")
	if err := be.Err(); err != nil {
		b.Fatal(fmt.Errorf("backend: %w", err))
	}
}

var _ gpu.Backend = (*cpu.Backend)(nil)

// BenchmarkDivergenceGuard times the divergence guard's per-step work (one
// Σw² reduction over the master weights and the read-back of it and of the
// gradient norm), to set beside BenchmarkTrainStep of the same config.
func BenchmarkDivergenceGuard(b *testing.B) {
	for _, name := range []string{"tiny", "gpt2"} {
		cfg, _ := model.ConfigByName(name)
		b.Run(name, func(b *testing.B) {
			be := cpu.New(runtime.GOMAXPROCS(0))
			m, err := model.New(be, cfg, model.Options{MaxBatch: 1, MaxSeq: 8, Train: true})
			if err != nil {
				b.Fatal(err)
			}
			if err := be.Upload(m.Params.All, model.InitGPT2(cfg, 1)); err != nil {
				b.Fatal(err)
			}
			tr, err := newTrainable(m, DefaultOptim(), 1<<30)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				be.SumSquares(tr.wsq, m.Params.All)
				if _, err := tr.health("model"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
