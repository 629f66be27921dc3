//go:build cuda

package cuda

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
)

// A whole training step of a small GPT-2 (forward with dropout and padding,
// backward, global norm, AdamW) and incremental decoding on both backends
// from the same weights and batch. GEMMs run in full FP32 (TF32 off) for
// the strict comparison; a second run with TF32 checks the loss within the
// looser tolerance of 10-bit mantissas.

// modelStepResult is what a step leaves for comparison.
type modelStepResult struct {
	logp, entropy []float32
	grads         map[string][]float32
	normSq        float32
	params        []float32
	logpAfter     []float32
	prefill       []float32 // NextLogits after Prefill
	decode        []float32 // NextLogits after one DecodeStep
}

func modelParityConfig() model.Config {
	return model.Config{VocabSize: 97, MaxSeqLen: 64, NLayer: 2, NHead: 4, NEmbd: 128, Dropout: 0.1, Tokenizer: "byte"}
}

// checkFP32Step requires an fp32 step on the cuda backend (got) to match
// the cpu backend's (want): log-probs, entropies, gradients, the update
// and the decoding after it, within float32 sum-order differences.
func checkFP32Step(t *testing.T, got, want modelStepResult) {
	t.Helper()
	closeTo(t, "logp", got.logp, want.logp, 1e-4)
	closeTo(t, "entropy", got.entropy, want.entropy, 1e-4)
	for name, w := range want.grads {
		closeTo(t, "grad "+name, got.grads[name], w, 1e-3)
	}
	closeTo(t, "‖grad‖²", []float32{got.normSq}, []float32{want.normSq}, 1e-4)
	closeTo(t, "params after AdamW", got.params, want.params, 1e-5)
	closeTo(t, "logp after the step", got.logpAfter, want.logpAfter, 1e-4)
	closeTo(t, "prefill logits", got.prefill, want.prefill, 1e-4)
	closeTo(t, "decode logits", got.decode, want.decode, 1e-4)
}

// runModelStep runs the step on b; every input comes from the arguments so
// both backends see the same ones.
func runModelStep(t *testing.T, b gpu.Backend, cfg model.Config, init, m0, v0, dlogp, dent []float32, batch *model.Batch) modelStepResult {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", b.Name(), err)
		}
	}
	m, err := model.New(b, cfg, model.Options{MaxBatch: batch.B, MaxSeq: batch.T, Train: true})
	must(err)
	must(b.Upload(m.Params.All, init))
	n := batch.B * batch.T
	get := func(x *gpu.Tensor) []float32 {
		out := make([]float32, x.Len())
		must(b.Download(out, x))
		return out
	}
	tensor := func(vals []float32, shape ...int) *gpu.Tensor {
		x, err := b.Alloc(gpu.Float32, shape...)
		must(err)
		must(b.Upload(x, vals))
		return x
	}
	var r modelStepResult
	b.Fill(m.Grads.All, 0)
	must(m.Forward(batch, true, 12345))
	r.logp, r.entropy = get(m.LogProbs()), get(m.Entropy())
	must(m.Backward(tensor(dlogp, n), tensor(dent, n)))
	r.grads = make(map[string][]float32)
	for _, name := range m.Grads.Names() {
		r.grads[name] = get(m.Grads.Tensor(name))
	}
	normSq := tensor([]float32{0}, 1)
	b.SumSquares(normSq, m.Grads.All)
	r.normSq = get(normSq)[0]
	mt, vt := tensor(m0, len(m0)), tensor(v0, len(v0))
	b.AdamW(m.Params.All, nil, m.Grads.All, mt, vt, normSq, gpu.AdamW{
		LR: 1e-3, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, Step: 3, MaxNorm: 1,
	})
	r.params = get(m.Params.All)
	must(m.Forward(batch, false, 0))
	r.logpAfter = get(m.LogProbs())

	// Incremental decoding: prefill two prompts of different lengths,
	// then one step.
	kv, err := m.NewKVCache(2, cfg.MaxSeqLen)
	must(err)
	must(m.Prefill(kv, [][]int32{batch.Tokens[:9], batch.Tokens[batch.T : batch.T+4]}))
	r.prefill = get(m.NextLogits())
	must(m.DecodeStep(kv, []int32{5, 77}))
	r.decode = get(m.NextLogits())
	must(b.Sync())
	return r
}

// modelStepInputs are a step's random inputs for TestModelStepParity and
// TestLlamaModelStepParity: a batch of B rows of T tokens (the second
// padded after 15, the first 3 of each a prompt without targets), initial
// weights (perturbed, when perturb, so that biases leave 0 and gains 1),
// AdamW moments, and the gradients of the log-probs and entropies.
func modelStepInputs(rng *rand.Rand, cfg model.Config, B, T int, perturb bool) (batch *model.Batch, init, m0, v0, dlogp, dent []float32) {
	batch = &model.Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T), ValidLen: []int32{int32(T), 15}}
	for i := range batch.Tokens {
		batch.Tokens[i] = int32(rng.IntN(cfg.VocabSize))
		batch.Targets[i] = int32(rng.IntN(cfg.VocabSize))
		if i%T < 3 || (i >= T && i%T >= 15) {
			batch.Targets[i] = -1 // prompt and padding
		}
	}
	init = model.InitGPT2(cfg, 7)
	if perturb {
		for i, v := range randn(rng, len(init), 0.05) {
			init[i] += v
		}
	}
	m0, v0 = randn(rng, len(init), 1e-3), make([]float32, len(init))
	for i := range v0 {
		v0[i] = float32(1e-6 * (1 + rng.Float64()))
	}
	dlogp, dent = randn(rng, B*T, 1.0/float64(B*T)), randn(rng, B*T, 0.01/float64(B*T))
	return batch, init, m0, v0, dlogp, dent
}

func TestModelStepParity(t *testing.T) {
	cfg := modelParityConfig()
	const B, T = 2, 24
	batch, init, m0, v0, dlogp, dent := modelStepInputs(newRNG(50), cfg, B, T, false)

	g := openTestBackend(t)
	if err := g.SetTF32(false); err != nil {
		t.Fatal(err)
	}
	want := runModelStep(t, cpu.New(2), cfg, init, m0, v0, dlogp, dent, batch)
	got := runModelStep(t, g, cfg, init, m0, v0, dlogp, dent, batch)

	checkFP32Step(t, got, want)

	// TF32 tensor cores: the same step within TF32's precision.
	if err := g.SetTF32(true); err != nil {
		t.Fatal(err)
	}
	tf := runModelStep(t, g, cfg, init, m0, v0, dlogp, dent, batch)
	closeTo(t, "logp (TF32)", tf.logp, want.logp, 2e-2)
	closeTo(t, "grad wte.weight (TF32)", tf.grads["wte.weight"], want.grads["wte.weight"], 5e-2)
	t.Logf("%s: parity with %s", g.Name(), fmt.Sprint(cpu.New(2).Name()))
}
