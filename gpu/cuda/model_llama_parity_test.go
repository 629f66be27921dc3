//go:build cuda

package cuda

import (
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
)

// TestLlamaModelStepParity is TestModelStepParity for the Llama family: a
// Qwen2 model (grouped-query attention, q/k/v biases, untied head, RMSNorm,
// RoPE, SwiGLU, dropout) through a training step and incremental decoding
// on both backends, GEMMs in full FP32.
func TestLlamaModelStepParity(t *testing.T) {
	cfg := model.Config{VocabSize: 97, MaxSeqLen: 64, NLayer: 2, NHead: 4, NEmbd: 128, Dropout: 0.1, Tokenizer: "byte",
		Arch: model.ArchQwen2, KVHeads: 2, Intermediate: 344, RopeTheta: 1000, RMSNormEps: 1e-6, AttentionBias: true}
	const B, T = 2, 24
	batch, init, m0, v0, dlogp, dent := modelStepInputs(newRNG(51), cfg, B, T, true) // biases away from 0, gains from 1

	g := openTestBackend(t)
	if err := g.SetTF32(false); err != nil {
		t.Fatal(err)
	}
	want := runModelStep(t, cpu.New(2), cfg, init, m0, v0, dlogp, dent, batch)
	got := runModelStep(t, g, cfg, init, m0, v0, dlogp, dent, batch)

	checkFP32Step(t, got, want)

	// The bf16 precision mode: bf16 weights and activations on both
	// backends. They round at the same points but sum in other orders, so
	// they agree to a few bf16 steps (2⁻⁸ relative each), not exactly.
	bf := func(b gpu.Backend) (logp, grads []float32) {
		m, err := model.New(b, cfg, model.Options{MaxBatch: B, MaxSeq: T, Train: true, Precision: model.BF16})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetParams(init); err != nil {
			t.Fatal(err)
		}
		b.Fill(m.Grads.All, 0)
		if err := m.Forward(batch, true, 12345); err != nil {
			t.Fatal(err)
		}
		logp = make([]float32, B*T)
		grads = make([]float32, m.Grads.All.Len())
		d, err := b.Alloc(gpu.Float32, B*T)
		if err == nil {
			err = b.Upload(d, dlogp)
		}
		if err == nil {
			err = b.Download(logp, m.LogProbs())
		}
		if err == nil {
			err = m.Backward(d, nil)
		}
		if err == nil {
			err = b.Download(grads, m.Grads.All)
		}
		if err != nil {
			t.Fatalf("%s bf16: %v", b.Name(), err)
		}
		return logp, grads
	}
	wantLogp, wantGrads := bf(cpu.New(2))
	gotLogp, gotGrads := bf(g)
	closeTo(t, "logp (bf16)", gotLogp, wantLogp, 2e-2)
	closeTo(t, "gradients (bf16)", gotGrads, wantGrads, 5e-2)
	t.Logf("bf16: logp differ by %.3g, gradients by %.3g, relative to their largest", relDiff(gotLogp, wantLogp), relDiff(gotGrads, wantGrads))
}
