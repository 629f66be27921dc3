package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train/data"
)

// dpoTestConfig is a language model small enough for finite differences
// through the whole network.
func dpoTestConfig() model.Config {
	return model.Config{VocabSize: 24, MaxSeqLen: 16, NLayer: 2, NHead: 2, NEmbd: 16, Tokenizer: "byte"}
}

// directSequenceLogProbs forwards each response of cs alone (one row, no
// padding) and sums, in float64, the log-probs of its tokens after the
// prompt: the definition of log π(y|x), independent of the batching code.
func directSequenceLogProbs(t *testing.T, m *model.Model, cs []data.ComparisonTokens) [][]float64 {
	t.Helper()
	out := make([][]float64, len(cs))
	for i, c := range cs {
		for _, seq := range c.Responses {
			T := len(seq)
			in := &model.Batch{B: 1, T: T, Tokens: seq, Targets: make([]int32, T)}
			for p := range in.Targets {
				in.Targets[p] = -1
				if p+1 < T && p+1 >= c.PromptLen {
					in.Targets[p] = seq[p+1]
				}
			}
			if err := m.Forward(in, false, 0); err != nil {
				t.Fatal(err)
			}
			s := 0.0
			for p, v := range download(t, m.Backend(), m.LogProbs()) {
				if in.Targets[p] >= 0 {
					s += float64(v)
				}
			}
			out[i] = append(out[i], s)
		}
	}
	return out
}

// directDPOLoss is the step's loss at m's weights from the definitions:
// directSequenceLogProbs, the implicit rewards, directPreferenceLoss, the
// mean over the prompts.
func directDPOLoss(t *testing.T, m *model.Model, cs []data.ComparisonTokens, ref [][]float64, p PreferenceLoss) float64 {
	t.Helper()
	logp := directSequenceLogProbs(t, m, cs)
	total := 0.0
	for i, c := range cs {
		r := make([]float64, len(c.Responses))
		for k := range r {
			r[k] = p.Beta * (logp[i][k] - ref[i][k])
		}
		g := data.ComparisonGroup{K: len(r), Ranking: c.Ranking}
		total += directPreferenceLoss(p, []data.ComparisonGroup{g}, r, 1/float64(len(cs)))
	}
	return total
}

// dpoFixture draws comparisons over cfg's vocabulary (no margins) and the
// reference log-probs of a different random model, so that the implicit
// rewards are not 0.
func dpoFixture(t *testing.T, seed uint64, cfg model.Config) ([]data.ComparisonTokens, [][]float64, []float32) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 77))
	cs := randomComparisons(rng, 5, cfg.VocabSize)
	dropMargins(cs)
	T := 0
	for _, c := range cs {
		T = max(T, c.MaxLen())
	}
	refModel := newTrainModel(t, cpu.New(2), cfg, noisyParams(cfg, seed+100), 1, T)
	return cs, directSequenceLogProbs(t, refModel, cs), noisyParams(cfg, seed)
}

// TestDPOGradientMatchesFiniteDifferences: the step's loss is the direct
// float64 computation's, and its parameter gradient (responses batched,
// padded, in micro-batches) matches central differences of that loss
// along random directions through all weights and along the coordinates
// with the largest gradients, for every loss form. The model computes in
// float32: the two agree to about 1e-4 relative, the bound is 3e-3 (a
// missing β, a wrong smoothing term or a shifted target is off by far
// more).
func TestDPOGradientMatchesFiniteDifferences(t *testing.T) {
	cfg := dpoTestConfig()
	for pi, p := range []PreferenceLoss{
		{Form: LossPlackettLuce, Beta: 0.5},
		{Form: LossPairs, Beta: 0.5, LabelSmoothing: 0.2},
		{Form: LossIPO, Beta: 0.5},
	} {
		cs, ref, params := dpoFixture(t, uint64(pi+1), cfg)
		rows, T := 0, 0
		idx := make([]int, len(cs))
		for i, c := range cs {
			idx[i] = i
			rows += len(c.Responses)
			T = max(T, c.MaxLen())
		}
		b := cpu.New(2)
		m := newTrainModel(t, b, cfg, params, 12, T)
		s, err := NewDPOStep(m, DefaultOptim(), 1, p, 12, 12*T, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.t.zeroGrad()
		var w rewardStats
		loss, _, forwarded, err := s.accumulate(cs, ref, idx, 1/float64(len(idx)), &w)
		if err != nil {
			t.Fatal(err)
		}
		if forwarded != rows || w.N != len(cs) {
			t.Fatalf("%d rows forwarded for %d responses, %d rankings in the metrics for %d", forwarded, rows, w.N, len(cs))
		}
		grad := download(t, b, m.Grads.All)
		want := directDPOLoss(t, m, cs, ref, p)
		if math.Abs(loss-want) > 1e-5*math.Max(1, math.Abs(want)) {
			t.Errorf("%s: loss %.9g, direct %.9g", p.Form, loss, want)
		}
		lossAt := func(x []float32) float64 {
			if err := b.Upload(m.Params.All, x); err != nil {
				t.Fatal(err)
			}
			return directDPOLoss(t, m, cs, ref, p)
		}
		rng := rand.New(rand.NewPCG(uint64(pi), 3))
		for range 3 {
			dir := make([]float32, len(params))
			dot := 0.0
			for i := range dir {
				dir[i] = float32(rng.NormFloat64())
				dot += float64(dir[i]) * float64(grad[i])
			}
			const h = 3e-4
			up, down := slices.Clone(params), slices.Clone(params)
			for i := range dir {
				up[i] += h * dir[i]
				down[i] -= h * dir[i]
			}
			fd := (lossAt(up) - lossAt(down)) / (2 * h)
			if math.Abs(fd-dot) > 3e-3*math.Abs(fd)+1e-4 {
				t.Errorf("%s: directional derivative %.6g, finite difference %.6g", p.Form, dot, fd)
			}
		}
		order := make([]int, len(grad))
		for i := range order {
			order[i] = i
		}
		slices.SortFunc(order, func(a, b int) int { return -cmpAbs(grad[a], grad[b]) })
		for _, i := range order[:8] {
			const h = 1e-2
			x := slices.Clone(params)
			x[i] = params[i] + h
			up := lossAt(x)
			x[i] = params[i] - h
			down := lossAt(x)
			fd := (up - down) / (2 * h)
			if math.Abs(fd-float64(grad[i])) > 3e-3*math.Abs(fd)+1e-4 {
				t.Errorf("%s: ∂loss/∂θ[%d] = %.6g, finite difference %.6g", p.Form, i, grad[i], fd)
			}
		}
	}
}

func cmpAbs(a, b float32) int {
	x, y := math.Abs(float64(a)), math.Abs(float64(b))
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}

// TestDPOStepFormsAgreeOnPairs: on preference pairs a step of the
// Plackett–Luce form and one of the pairwise form give the same loss and
// gradient.
func TestDPOStepFormsAgreeOnPairs(t *testing.T) {
	cfg := dpoTestConfig()
	cs, ref, params := dpoFixture(t, 9, cfg)
	for i := range cs {
		cs[i].Responses, cs[i].Ranking, ref[i] = cs[i].Responses[:2], []int{1, 0}, ref[i][:2]
	}
	idx := []int{0, 1, 2, 3, 4}
	var losses []float64
	var grads [][]float32
	for _, form := range []string{LossPlackettLuce, LossPairs} {
		b := cpu.New(2)
		m := newTrainModel(t, b, cfg, params, 10, cfg.MaxSeqLen)
		s, err := NewDPOStep(m, DefaultOptim(), 1, PreferenceLoss{Form: form, Beta: 0.1, LabelSmoothing: 0.1}, 10, 160, 0)
		if err != nil {
			t.Fatal(err)
		}
		s.t.zeroGrad()
		loss, _, _, err := s.accumulate(cs, ref, idx, 1/float64(len(idx)), &rewardStats{})
		if err != nil {
			t.Fatal(err)
		}
		losses = append(losses, loss)
		grads = append(grads, download(t, b, m.Grads.All))
	}
	if math.Abs(losses[0]-losses[1]) > 1e-12 {
		t.Errorf("loss: Plackett–Luce %.16g, pairwise %.16g", losses[0], losses[1])
	}
	for i := range grads[0] {
		if math.Abs(float64(grads[0][i]-grads[1][i])) > 1e-6*math.Abs(float64(grads[0][i]))+1e-9 {
			t.Fatalf("gradient %d: Plackett–Luce %g, pairwise %g", i, grads[0][i], grads[1][i])
		}
	}
}

// TestSequenceLogProbsMatchDirect: batched and padded sequence log-probs
// are the one-row-at-a-time sums, and only response tokens count.
func TestSequenceLogProbsMatchDirect(t *testing.T) {
	cfg := dpoTestConfig()
	cs, _, params := dpoFixture(t, 4, cfg)
	m := newTrainModel(t, cpu.New(2), cfg, params, 9, cfg.MaxSeqLen)
	got, err := SequenceLogProbs(m, cs, 0, 9, 9*cfg.MaxSeqLen)
	if err != nil {
		t.Fatal(err)
	}
	want := directSequenceLogProbs(t, m, cs)
	for i := range want {
		for k := range want[i] {
			if math.Abs(got[i][k]-want[i][k]) > 1e-5*math.Abs(want[i][k]) || want[i][k] >= 0 {
				t.Errorf("comparison %d response %d: %.7g, direct %.7g", i, k, got[i][k], want[i][k])
			}
		}
	}
	// A response with no token after the prompt has no log-prob.
	bad := slices.Clone(cs[:1])
	bad[0].PromptLen = len(bad[0].Responses[0])
	if _, err := SequenceLogProbs(m, bad, 0, 9, 9*cfg.MaxSeqLen); err == nil {
		t.Error("a response without tokens accepted")
	}
}
