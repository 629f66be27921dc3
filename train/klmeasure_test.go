package train

import (
	"math"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
)

// TestMeasureKLOneToken: with one-token responses the sequence KL is the
// next-token KL, computed exactly in float64 from both models' logits; the
// estimate from 8000 samples lies within 4 standard errors of it. A model
// against itself measures exactly 0.
func TestMeasureKLOneToken(t *testing.T) {
	cfg := model.Config{VocabSize: 258, MaxSeqLen: 16, NLayer: 1, NHead: 2, NEmbd: 16, Tokenizer: "byte"}
	b := cpu.New(2)
	tok, _ := tokenizer.New("byte")
	sharp := func(seed uint64) []float32 { // logits of a few nats, not near-uniform ones
		w := noisyParams(cfg, seed)
		for i := range w {
			w[i] *= 2.5
		}
		return w
	}
	policy := newTrainModel(t, b, cfg, sharp(5), 64, 16)
	ref := newTrainModel(t, b, cfg, sharp(6), 64, 16)
	const n = 8000
	prompts := strings.Split(strings.Repeat("add: 3\n,", n), ",")[:n]

	exact := 0.0
	p, q := nextTokenLogProbs(t, policy, tok.Encode(prompts[0])), nextTokenLogProbs(t, ref, tok.Encode(prompts[0]))
	for v := range p {
		exact += math.Exp(p[v]) * (p[v] - q[v])
	}
	got, err := MeasureKL(policy, ref, tok, prompts, 1, 9)
	if err != nil {
		t.Fatal(err)
	}
	if got.N != n || got.MeanTokens != 1 || !(got.StdErr > 0) || exact < 0.05 {
		t.Fatalf("estimate %+v, exact %.4f", got, exact)
	}
	t.Logf("estimate %.4f ± %.4f, exact %.4f", got.KL, got.StdErr, exact)
	if math.Abs(got.KL-exact) > 4*got.StdErr {
		t.Errorf("KL estimate %.4f ± %.4f, exact %.4f", got.KL, got.StdErr, exact)
	}
	self, err := MeasureKL(policy, policy, tok, prompts[:50], 5, 9)
	if err != nil {
		t.Fatal(err)
	}
	if self.KL != 0 || self.StdErr != 0 || self.MeanTokens < 1 || self.MeanTokens > 6 {
		t.Errorf("a model against itself: %+v", self)
	}
}

// nextTokenLogProbs is the float64 log-softmax of m's logits after ids.
func nextTokenLogProbs(t *testing.T, m *model.Model, ids []int32) []float64 {
	t.Helper()
	kv, err := m.NewKVCache(1, len(ids)+1)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Prefill(kv, [][]int32{ids}); err != nil {
		t.Fatal(err)
	}
	logits := download(t, m.Backend(), m.NextLogits())[:m.Cfg.VocabSize]
	mx := math.Inf(-1)
	for _, x := range logits {
		mx = math.Max(mx, float64(x))
	}
	sum := 0.0
	for _, x := range logits {
		sum += math.Exp(float64(x) - mx)
	}
	out := make([]float64, len(logits))
	for v, x := range logits {
		out[v] = float64(x) - mx - math.Log(sum)
	}
	return out
}
