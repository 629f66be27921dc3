//go:build cuda

package cuda

import (
	"testing"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
)

// TestPPOIterationHostSyncs runs PPO-ptx iterations of small random models
// on the cuda backend and counts its host syncs: per iteration one final
// read per generated batch (all episodes in one batch here, responses too
// short for a poll), one for the reward model's scores and three for the
// metrics, whatever the number of minibatches and epochs: none per
// minibatch, so the device never waits between a forward and its backward.
func TestPPOIterationHostSyncs(t *testing.T) {
	b := openTestBackend(t)
	lm := modelParityConfig()
	lm.Dropout = 0
	sc := lm
	sc.ScalarHead = true
	const E, MB, P, G = 8, 2, 5, 6
	newModel := func(c model.Config, trainable bool, seed uint64) *model.Model {
		m, err := model.New(b, c, model.Options{MaxBatch: MB, MaxSeq: P + G + 1, Train: trainable})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Upload(m.Params.All, model.InitGPT2(c, seed)); err != nil {
			t.Fatal(err)
		}
		return m
	}
	ms := train.PPOIterationModels{Policy: newModel(lm, true, 1), Ref: newModel(lm, false, 1), Value: newModel(sc, true, 2), Reward: newModel(sc, false, 3)}
	cfg := train.DefaultPPO()
	cfg.Episodes, cfg.MiniBatch, cfg.Epochs, cfg.MaxNew, cfg.PtxBatch, cfg.PtxSeq, cfg.GenBatch = E, MB, 2, G, 2, 8, E
	rng := newRNG(9)
	text := make([]int32, 200)
	for i := range text {
		text[i] = int32(rng.IntN(lm.VocabSize))
	}
	it, err := train.NewPPOIteration(b, ms, cfg, text, -1, 0)
	if err != nil {
		t.Fatal(err)
	}
	prompts := make([][]int32, E)
	for i := range prompts {
		prompts[i] = text[i*P : (i+1)*P]
	}
	for i := 1; i <= 2; i++ {
		before := b.HostSyncs()
		ph, err := it.Run(prompts, i)
		if err != nil {
			t.Fatal(err)
		}
		if got := b.HostSyncs() - before; got != 1+1+3 {
			t.Errorf("iteration %d (%d minibatch steps): %d host syncs, want 5", i, cfg.Epochs*E/MB, got)
		}
		if ph.GenTokens != E*G || ph.Metrics.PolicyLoss == 0 {
			t.Errorf("iteration %d: %d tokens generated, metrics %+v", i, ph.GenTokens, ph.Metrics)
		}
	}
}
