package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
)

func smallConfig() model.Config {
	return model.Config{VocabSize: 20, MaxSeqLen: 8, NLayer: 2, NHead: 2, NEmbd: 8, Tokenizer: "byte"}
}

// TestWeightDecaySkipsBiasesAndNorms: with zero gradients AdamW's only
// effect is decay, which must shrink matrices and embeddings and leave
// biases and LayerNorm parameters exactly as they were.
func TestWeightDecaySkipsBiasesAndNorms(t *testing.T) {
	cfg := smallConfig()
	b := cpu.New(1)
	p, err := model.NewParams(b, cfg)
	if err != nil {
		t.Fatal(err)
	}
	g, _ := model.NewParams(b, cfg)
	init := model.InitGPT2(cfg, 3)
	for i := range init {
		init[i] += 0.5 // every parameter non-zero, biases included
	}
	b.Upload(p.All, init)
	oc := DefaultOptim()
	oc.WeightDecay = 0.5
	opt, err := NewOptimizer(b, cfg, oc)
	if err != nil {
		t.Fatal(err)
	}
	opt.Update(p, nil, g, 0.1, 1)
	for _, name := range p.Names() {
		before := make([]float32, p.Tensor(name).Len())
		after := make([]float32, len(before))
		off := p.Tensor(name).Offset()
		copy(before, init[off:off+len(before)])
		b.Download(after, p.Tensor(name))
		decayed := len(name) > 7 && (name[len(name)-7:] == ".weight") && !isNorm(name)
		for i := range after {
			want := before[i]
			if decayed {
				want = before[i] * (1 - 0.1*0.5)
			}
			if math.Abs(float64(after[i]-want)) > 1e-6 {
				t.Fatalf("%s[%d]: %v after a zero-gradient step from %v, want %v", name, i, after[i], before[i], want)
			}
		}
	}
}

func isNorm(name string) bool {
	for _, s := range []string{"ln_1.", "ln_2.", "ln_f."} {
		for i := 0; i+len(s) <= len(name); i++ {
			if name[i:i+len(s)] == s {
				return true
			}
		}
	}
	return false
}

// TestGradAccumulationMatchesOneBatch: two micro-batches of B accumulated
// give the same update as one batch of 2B.
func TestGradAccumulationMatchesOneBatch(t *testing.T) {
	cfg := smallConfig()
	const B, T = 2, 8
	rng := rand.New(rand.NewPCG(4, 4))
	tokens := make([]int32, 2*B*T)
	targets := make([]int32, 2*B*T)
	for i := range tokens {
		tokens[i], targets[i] = int32(rng.IntN(cfg.VocabSize)), int32(rng.IntN(cfg.VocabSize))
	}
	init := model.InitGPT2(cfg, 9)
	run := func(micro int) []float32 {
		b := cpu.New(1)
		mb := 2 * B / micro
		m, err := model.New(b, cfg, model.Options{MaxBatch: mb, MaxSeq: T, Train: true})
		if err != nil {
			t.Fatal(err)
		}
		b.Upload(m.Params.All, init)
		oc := DefaultOptim()
		oc.LR, oc.Warmup, oc.MinLRFrac = 1e-2, 0, 1
		lm, err := NewLMStep(m, oc, 1, micro, 1)
		if err != nil {
			t.Fatal(err)
		}
		next := 0
		if _, _, err := lm.Run(1, func() (*model.Batch, error) {
			i := next
			next++
			return &model.Batch{B: mb, T: T, Tokens: tokens[i*mb*T : (i+1)*mb*T], Targets: targets[i*mb*T : (i+1)*mb*T]}, nil
		}); err != nil {
			t.Fatal(err)
		}
		out := make([]float32, m.Params.All.Len())
		b.Download(out, m.Params.All)
		return out
	}
	one, two := run(1), run(2)
	maxDiff, maxStep := 0.0, 0.0
	for i := range one {
		maxDiff = math.Max(maxDiff, math.Abs(float64(one[i]-two[i])))
		maxStep = math.Max(maxStep, math.Abs(float64(one[i]-init[i])))
	}
	if maxStep == 0 || maxDiff > 1e-3*maxStep {
		t.Fatalf("accumulated update differs by %g (update size %g)", maxDiff, maxStep)
	}
}
