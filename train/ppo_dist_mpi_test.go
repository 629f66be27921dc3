//go:build mpi

package train

import (
	"context"
	"math"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/internal/mpitest"
	"github.com/instructgo/instructgo/model/tokenizer"
)

// PPO on 2 ranks against one process. The rollouts of the first iteration
// are the one process's bit for bit (the same weights sample the same
// tokens with the same seed groups, and the gather is exact), so its
// lengths, EOS fraction and KL agree exactly; its score to firstScoreTol.
// The updates differ by the order in which
// the ranks' gradient terms are summed, a few float32 ulps per element and
// step, which later iterations' log-probs, values and losses carry: they
// agree to ppoDistTol relative (or absolute below 1). A sampled token that
// flipped on such a difference would change an episode and move the
// metrics far beyond it.
const ppoDistTol = 1e-4

// metricPair is one metric of an iteration in one process (x) and on 2
// ranks (y).
type metricPair struct {
	name string
	x, y float64
}

// checkMetricPairs fails every pair whose difference, relative to
// max(1, |x|), exceeds ppoDistTol, and returns the largest.
func checkMetricPairs(t *testing.T, iter int, ms []metricPair) (worst float64) {
	t.Helper()
	for _, m := range ms {
		d := math.Abs(m.x-m.y) / math.Max(1, math.Abs(m.x))
		worst = max(worst, d)
		if !(d <= ppoDistTol) {
			t.Errorf("iteration %d: %s %v on 2 ranks, %v in one process (%.2g > %g)", iter, m.name, m.y, m.x, d, ppoDistTol)
		}
	}
	return worst
}

// firstScoreTol is how closely the first iteration's scores agree: a
// rank's reward model holds its shard of a minibatch and scores the
// rollout in pieces of that size, and the cpu backend may round a row
// differently in a batch of another size (its matrix products pick their
// kernel by size; measured: 1.7e-8 relative). A sampled token that
// differed would move the score by orders of magnitude more.
const firstScoreTol = 1e-6

// distPPOConfig is a PPO-ptx run whose every piece splits unevenly over 2
// ranks: 3 seed groups of 9 episodes (1 and 2 per rank), minibatches of 9
// (4 and 5 rows), ptx batches of 3 (1 and 2); with an adaptive β.
func distPPOConfig(fx distFixture) PPOConfig {
	cfg := DefaultPPO()
	cfg.Prompts, cfg.Policy, cfg.Reward, cfg.Ptx, cfg.Out = fx.Files["prompts"], fx.Files["policy"], fx.Files["reward"], []string{fx.Files["ptx"]}, fx.Out
	cfg.Iterations, cfg.Episodes, cfg.MiniBatch, cfg.MaxNew = 4, 27, 9, 6
	cfg.PtxBatch, cfg.PtxSeq = 3, 16
	cfg.KLTarget, cfg.KLHorizon = 0.5, 100
	cfg.PolicyOptim.LR, cfg.ValueOptim.LR = 1e-3, 1e-3
	cfg.EMADecay, cfg.SaveEvery, cfg.LogEvery = 0.9, 2, 1
	return cfg
}

func distPPO(fx distFixture, comm gpu.Comm) error {
	tok, _ := tokenizer.New("byte")
	_, err := PPO(context.Background(), cpu.New(1), tok, distPPOConfig(fx), RunOptions{Log: zerolog.Nop(), Comm: comm, Resume: fx.Resume})
	return err
}

// TestDataParallelPPO: 2 ranks give one process's PPO-ptx metrics and EMA
// policy.
func TestDataParallelPPO(t *testing.T) {
	fx := distFixture{Files: map[string]string{}}
	if mpitest.InRank() {
		runDist(t, fx, distPPO)
		return
	}
	fx.Files["prompts"], fx.Files["policy"], fx.Files["reward"] = writePPOFixture(t)
	fx.Files["ptx"] = synthText(t, 400)
	one := t.TempDir()
	if err := distPPO(distFixture{Files: fx.Files, Out: one}, nil); err != nil {
		t.Fatal(err)
	}
	fx.Out = t.TempDir()
	runDist(t, fx, distPPO)
	a, b := readPPOMetrics(t, one), readPPOMetrics(t, fx.Out)
	iters := distPPOConfig(fx).Iterations
	if len(a) != iters || len(b) != iters {
		t.Fatalf("%d and %d metrics records, want %d", len(a), len(b), iters)
	}
	if !closeRel(a[0].Score, b[0].Score, firstScoreTol) || a[0].KL != b[0].KL || a[0].ResponseLen != b[0].ResponseLen || a[0].EOSFrac != b[0].EOSFrac {
		t.Errorf("iteration 1: score %v, KL %v, length %v, EOS %v on 2 ranks; %v, %v, %v, %v in one process (the first rollout must be the same)",
			b[0].Score, b[0].KL, b[0].ResponseLen, b[0].EOSFrac, a[0].Score, a[0].KL, a[0].ResponseLen, a[0].EOSFrac)
	}
	worst := 0.0
	for i := range a {
		worst = max(worst, checkMetricPairs(t, i+1, []metricPair{
			{"rm_score", a[i].Score, b[i].Score}, {"kl", a[i].KL, b[i].KL}, {"beta", a[i].Beta, b[i].Beta},
			{"policy_loss", a[i].PolicyLoss, b[i].PolicyLoss}, {"value_loss", a[i].ValueLoss, b[i].ValueLoss},
			{"ptx_loss", a[i].PtxLoss, b[i].PtxLoss}, {"entropy", a[i].Entropy, b[i].Entropy},
			{"clip_frac", a[i].ClipFrac, b[i].ClipFrac}, {"approx_kl", a[i].ApproxKL, b[i].ApproxKL},
			{"value_clip_frac", a[i].ValueClipFrac, b[i].ValueClipFrac}, {"explained_variance", a[i].ExplainedVar, b[i].ExplainedVar},
			{"response_len", a[i].ResponseLen, b[i].ResponseLen}, {"eos_frac", a[i].EOSFrac, b[i].EOSFrac},
		}))
	}
	if a[0].PtxLoss == 0 || a[iters-1].Beta == a[0].Beta {
		t.Errorf("the fixture does not exercise ptx and the adaptive β: %+v", a[iters-1])
	}
	rel := relL2(readCheckpoint(t, one), readCheckpoint(t, fx.Out))
	if !(rel <= distWeightTol) {
		t.Errorf("the EMA policies differ by %.3g relative L2 (> %g)", rel, distWeightTol)
	}
	t.Logf("%d iterations: metrics agree to %.2g, the EMA policies to %.2g relative L2", iters, worst, rel)
}

// TestDataParallelPPORankKilled: rank 1 dies (SIGKILL) in iteration 3 of
// a 2-rank PPO run that saves every 2 iterations; the job fails naming
// rank 1, the state of iteration 2 is intact, and resuming it on 2 ranks
// ends with one process's metrics and EMA policy.
func TestDataParallelPPORankKilled(t *testing.T) {
	fx := distFixture{Files: map[string]string{}}
	if mpitest.InRank() {
		runDist(t, fx, distPPO)
		return
	}
	fx.Files["prompts"], fx.Files["policy"], fx.Files["reward"] = writePPOFixture(t)
	fx.Files["ptx"] = synthText(t, 400)
	one := t.TempDir()
	if err := distPPO(distFixture{Files: fx.Files, Out: one}, nil); err != nil {
		t.Fatal(err)
	}
	// An iteration all-reduces 3 rollout tensors, then the policy's and
	// the value function's gradients for each of its 3 minibatches.
	fx.Out = t.TempDir()
	killRank1(t, &fx, 2*9+5, 2)
	if got := readPPOMetrics(t, fx.Out); len(got) != 2 {
		t.Errorf("%d metrics records after the kill in iteration 3, want 2", len(got))
	}
	runDist(t, fx, distPPO)
	a, b := readPPOMetrics(t, one), readPPOMetrics(t, fx.Out)
	if len(a) != len(b) {
		t.Fatalf("%d metrics records after the resume, %d in one process", len(b), len(a))
	}
	for i := range a {
		if d := math.Abs(a[i].Score-b[i].Score) / math.Max(1, math.Abs(a[i].Score)); !(d <= ppoDistTol) {
			t.Errorf("iteration %d: score %v after the kill and resume, %v in one process", i+1, b[i].Score, a[i].Score)
		}
	}
	if wa, wb := readCheckpoint(t, one), readCheckpoint(t, fx.Out); relL2(wa, wb) > distWeightTol {
		t.Errorf("the EMA policies differ by %.3g relative L2 after the kill and resume", relL2(wa, wb))
	}
}

// relL2 is ‖a−b‖/‖a‖.
func relL2(a, b []float32) float64 {
	d2, n2 := 0.0, 0.0
	for i := range a {
		d := float64(a[i] - b[i])
		d2, n2 = d2+d*d, n2+float64(a[i])*float64(a[i])
	}
	return math.Sqrt(d2 / n2)
}
