package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu/cpu"
)

// TestForwardLMIsForwardThenBackward: on the cpu backend, ForwardLM with
// the loss weights w and Backward(nil, nil) leave exactly the log-probs and
// gradients of Forward and Backward(w, nil), in float32 and bf16, with
// dropout and padding (the fused cross-entropy keeps the unfused ops'
// arithmetic).
func TestForwardLMIsForwardThenBackward(t *testing.T) {
	cfg := testConfig()
	cfg.Dropout = 0.2
	const B, T = 3, 6
	for _, prec := range []Precision{FP32, BF16} {
		t.Run(prec.String(), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(41, 42))
			host := randomParams(cfg, rng)
			in := randomBatch(cfg, rng, B, T, true)
			w := randVec(rng, B*T)
			run := func(fused bool) (logp, grads []float32) {
				b := cpu.New(2)
				m, err := New(b, cfg, Options{MaxBatch: B, MaxSeq: T, Train: true, Precision: prec})
				if err != nil {
					t.Fatal(err)
				}
				if err := m.SetParams(host); err != nil {
					t.Fatal(err)
				}
				wt := upload(t, b, w, B*T)
				if fused {
					err = m.ForwardLM(in, 7, wt)
				} else {
					err = m.Forward(in, true, 7)
				}
				if err != nil {
					t.Fatal(err)
				}
				logp = make([]float32, B*T)
				mustDownload(t, b, logp, m.LogProbs())
				if fused {
					if m.Entropy() != nil {
						t.Error("ForwardLM left entropies")
					}
					if err := m.Backward(wt, nil); err == nil {
						t.Error("Backward took loss weights again after ForwardLM")
					}
					err = m.Backward(nil, nil)
				} else {
					err = m.Backward(wt, nil)
				}
				if err != nil {
					t.Fatal(err)
				}
				grads = make([]float32, m.Grads.All.Len())
				mustDownload(t, b, grads, m.Grads.All)
				return logp, grads
			}
			lp1, g1 := run(false)
			lp2, g2 := run(true)
			sameBits(t, "logp", lp2, lp1)
			sameBits(t, "gradients", g2, g1)
		})
	}
}

func TestForwardLMRejects(t *testing.T) {
	cfg := testConfig()
	b := cpu.New(1)
	rng := rand.New(rand.NewPCG(43, 44))
	in := randomBatch(cfg, rng, 2, 4, false)
	m, err := New(b, cfg, Options{MaxBatch: 2, MaxSeq: 4, Train: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.ForwardLM(in, 1, upload(t, b, randVec(rng, 7), 7)); err == nil {
		t.Error("ForwardLM took 7 loss weights for 8 positions")
	}
	if err := m.ForwardLM(in, 1, nil); err == nil {
		t.Error("ForwardLM took no loss weights")
	}
	cfg.ScalarHead = true
	s, err := New(b, cfg, Options{MaxBatch: 2, MaxSeq: 4, Train: true})
	if err != nil {
		t.Fatal(err)
	}
	in.Targets = nil
	if err := s.ForwardLM(in, 1, upload(t, b, randVec(rng, 8), 8)); err == nil {
		t.Error("a scalar-head model ran ForwardLM")
	}
	frozen, err := New(b, testConfig(), Options{MaxBatch: 2, MaxSeq: 4})
	if err != nil {
		t.Fatal(err)
	}
	in = randomBatch(testConfig(), rng, 2, 4, false)
	if err := frozen.ForwardLM(in, 1, upload(t, b, randVec(rng, 8), 8)); err == nil {
		t.Error("a model without training buffers ran ForwardLM")
	}
}

// sameBits fails unless got and want are equal bit for bit.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("%s: element %d is %v, unfused %v", what, i, got[i], want[i])
		}
	}
}
