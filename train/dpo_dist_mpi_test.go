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
)

// DPO on 2 ranks against one process. The ranks split the reference's
// log-probs (each its shard of the comparisons, cut into its own
// micro-batches) and every step's prompts, so besides the all-reduce's
// order of the gradient terms, the log-probs of a row padded to another
// length may differ by a few float32 ulps: an implicit reward β·Σ log π
// by about 1e-7 of the sequence's log-prob. The losses then agree to
// distTol relative, the reward margins (differences of nearly equal
// rewards, near 0 at the start) to dpoMarginTol absolute, and the
// weights to distWeightTol relative L2.
const dpoMarginTol = 1e-5

func distDPO(fx distFixture, comm gpu.Comm) error {
	cfg := smallDPO(fx.Files["rm"], fx.Files["init"], fx.Out)
	cfg.Batch, cfg.Epochs, cfg.Steps, cfg.LogEvery, cfg.EvalEvery, cfg.SaveEvery = 9, 0, 8, 1, 4, 4
	_, err := DPO(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop(), Comm: comm, Resume: fx.Resume})
	return err
}

// TestDataParallelDPO: DPO on 9 prompts a step (shards of 4 and 5) on 2
// ranks gives one process's losses, reward margins and weights.
func TestDataParallelDPO(t *testing.T) {
	fx := distFixture{Files: map[string]string{}}
	if mpitest.InRank() {
		runDist(t, fx, distDPO)
		return
	}
	fx.Files["rm"], _ = writeLengthRM(t, 200)
	fx.Files["init"] = writeInitWith(t, dpoLMConfig())
	one := t.TempDir()
	if err := distDPO(distFixture{Files: fx.Files, Out: one}, nil); err != nil {
		t.Fatal(err)
	}
	fx.Out = t.TempDir()
	runDist(t, fx, distDPO)
	compareRuns(t, one, fx.Out, 8)
	step := func(r dpoMetrics) int { return r.Step }
	a, b := readMetrics(t, one, step), readMetrics(t, fx.Out, step)
	worst := 0.0
	for i := range a {
		for _, m := range []struct {
			name string
			x, y float64
		}{
			{"rewards/margins", a[i].Margin, b[i].Margin}, {"rewards/chosen", a[i].Chosen, b[i].Chosen},
			{"logps/chosen", a[i].LogpChosen / 100, b[i].LogpChosen / 100}, {"rewards/accuracies", a[i].Accuracy, b[i].Accuracy},
		} {
			d := math.Abs(m.x - m.y)
			worst = max(worst, d)
			if !(d <= dpoMarginTol) {
				t.Errorf("step %d: %s %v on 2 ranks, %v in one process (%.2g > %g)", i+1, m.name, m.y, m.x, d, dpoMarginTol)
			}
		}
	}
	if a[len(a)-1].Margin == 0 || a[len(a)-1].ValMeanMargin == nil || b[len(b)-1].ValMeanMargin == nil {
		t.Errorf("the run learned no margin or did not validate: %+v", a[len(a)-1])
	} else if d := math.Abs(*a[len(a)-1].ValMeanMargin - *b[len(b)-1].ValMeanMargin); !(d <= dpoMarginTol) {
		t.Errorf("held-out margin %v on 2 ranks, %v in one process", *b[len(b)-1].ValMeanMargin, *a[len(a)-1].ValMeanMargin)
	}
	t.Logf("reward metrics agree to %.2g absolute (log-probs per 100 nats)", worst)
}

// TestDataParallelDPORankKilled: rank 1 dies in step 7 of a 2-rank DPO
// run that saves every 4 steps (a step all-reduces the gradient once);
// resuming the state of step 4 on 2 ranks, which read the reference
// log-probs rank 0 wrote, ends with one process's losses and weights.
func TestDataParallelDPORankKilled(t *testing.T) {
	fx := distFixture{Files: map[string]string{}}
	if mpitest.InRank() {
		runDist(t, fx, distDPO)
		return
	}
	fx.Files["rm"], _ = writeLengthRM(t, 200)
	fx.Files["init"] = writeInitWith(t, dpoLMConfig())
	one := t.TempDir()
	if err := distDPO(distFixture{Files: fx.Files, Out: one}, nil); err != nil {
		t.Fatal(err)
	}
	fx.Out = t.TempDir()
	killRank1(t, &fx, 7, 4)
	runDist(t, fx, distDPO)
	compareRuns(t, one, fx.Out, 8)
}
