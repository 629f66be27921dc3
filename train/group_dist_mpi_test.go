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

// GRPO and RLOO on 2 ranks against one process, as PPO (ppoDistTol and
// its reasons): the first rollout is the one process's bit for bit (its
// rewards to firstScoreTol, scored in a rank's pieces), later
// ones and the losses differ by the all-reduce's order of the gradient
// terms, carried through the updates.

// distGroupConfig is a run whose every piece splits unevenly over 2
// ranks: 27 episodes (9 prompts × 3) in 3 seed groups of 9 (1 and 2 per
// rank), minibatches of 9 (4 and 5 rows). GRPO is rewarded by the reward
// model; RLOO by it and the task scores, on prompts of a built-in task.
func distGroupConfig(fx distFixture) GroupConfig {
	c := DefaultGRPO()
	prompts := fx.Files["prompts"]
	if fx.Files["method"] == MethodRLOO {
		c, prompts = DefaultRLOO(), fx.Files["tasks"]
		c.TaskReward = true
	}
	c = smallGroup(c, prompts, fx.Files["policy"], fx.Files["reward"], fx.Out)
	c.Iterations, c.PromptsPerIter, c.Group, c.MiniBatch, c.MaxNew = 4, 9, 3, 9, 6
	c.SaveEvery, c.LogEvery = 2, 1
	return c
}

func distGroup(fx distFixture, comm gpu.Comm) error {
	cfg := distGroupConfig(fx)
	opt := RunOptions{Log: zerolog.Nop(), Comm: comm, Resume: fx.Resume}
	var err error
	if cfg.Method == MethodRLOO {
		_, err = RLOO(context.Background(), cpu.New(1), byteTok, cfg, opt)
	} else {
		_, err = GRPO(context.Background(), cpu.New(1), byteTok, cfg, opt)
	}
	return err
}

// TestDataParallelGroupMethods: 2 ranks give one process's GRPO and RLOO
// metrics and policy.
func TestDataParallelGroupMethods(t *testing.T) {
	for _, method := range []string{MethodGRPO, MethodRLOO} {
		t.Run(method, func(t *testing.T) {
			fx := distFixture{Files: map[string]string{}}
			if mpitest.InRank() {
				runDist(t, fx, distGroup)
				return
			}
			fx.Files["prompts"], fx.Files["policy"], fx.Files["reward"] = writePPOFixture(t)
			fx.Files["tasks"], fx.Files["method"] = writeTaskPrompts(t, 40), method
			one := t.TempDir()
			if err := distGroup(distFixture{Files: fx.Files, Out: one}, nil); err != nil {
				t.Fatal(err)
			}
			fx.Out = t.TempDir()
			runDist(t, fx, distGroup)
			step := func(r GroupMetrics) int { return r.Step }
			a, b := readMetrics(t, one, step), readMetrics(t, fx.Out, step)
			iters := distGroupConfig(fx).Iterations
			if len(a) != iters || len(b) != iters {
				t.Fatalf("%d and %d metrics records, want %d", len(a), len(b), iters)
			}
			if !closeRel(a[0].Reward, b[0].Reward, firstScoreTol) || a[0].KL != b[0].KL || a[0].ResponseLen != b[0].ResponseLen || a[0].EOSFrac != b[0].EOSFrac {
				t.Errorf("iteration 1: reward %v, KL %v, length %v, EOS %v on 2 ranks; %v, %v, %v, %v in one process (the first rollout must be the same)",
					b[0].Reward, b[0].KL, b[0].ResponseLen, b[0].EOSFrac, a[0].Reward, a[0].KL, a[0].ResponseLen, a[0].EOSFrac)
			}
			worst := 0.0
			for i := range a {
				ms := []metricPair{
					{"reward", a[i].Reward, b[i].Reward}, {"rm_score", *a[i].RMScore, *b[i].RMScore}, {"kl", a[i].KL, b[i].KL},
					{"policy_loss", a[i].PolicyLoss, b[i].PolicyLoss}, {"entropy", a[i].Entropy, b[i].Entropy},
					{"clip_frac", a[i].ClipFrac, b[i].ClipFrac}, {"approx_kl", a[i].ApproxKL, b[i].ApproxKL},
					{"response_len", a[i].ResponseLen, b[i].ResponseLen}, {"eos_frac", a[i].EOSFrac, b[i].EOSFrac},
					{"flat_groups", a[i].FlatGroups, b[i].FlatGroups},
				}
				if method == MethodRLOO {
					ms = append(ms, metricPair{"task_score", *a[i].TaskScore, *b[i].TaskScore})
				}
				worst = max(worst, checkMetricPairs(t, i+1, ms))
			}
			if a[iters-1].KL == 0 || a[iters-1].PolicyLoss == 0 {
				t.Errorf("the run did not train: %+v", a[iters-1])
			}
			rel := relL2(readCheckpoint(t, one), readCheckpoint(t, fx.Out))
			if !(rel <= distWeightTol) {
				t.Errorf("the policies differ by %.3g relative L2 (> %g)", rel, distWeightTol)
			}
			t.Logf("%d iterations: metrics agree to %.2g, the policies to %.2g relative L2", iters, worst, rel)
		})
	}
}

// TestDataParallelGRPORankKilled: rank 1 dies in iteration 3 of a 2-rank
// GRPO run that saves every 2 iterations; resuming the state of iteration
// 2 on 2 ranks ends with one process's rewards and policy.
func TestDataParallelGRPORankKilled(t *testing.T) {
	fx := distFixture{Files: map[string]string{}}
	if mpitest.InRank() {
		runDist(t, fx, distGroup)
		return
	}
	fx.Files["prompts"], fx.Files["policy"], fx.Files["reward"] = writePPOFixture(t)
	fx.Files["method"] = MethodGRPO
	one := t.TempDir()
	if err := distGroup(distFixture{Files: fx.Files, Out: one}, nil); err != nil {
		t.Fatal(err)
	}
	// An iteration all-reduces 2 rollout tensors, then the policy's
	// gradient for each of its 3 minibatches.
	fx.Out = t.TempDir()
	killRank1(t, &fx, 2*5+3, 2)
	runDist(t, fx, distGroup)
	step := func(r GroupMetrics) int { return r.Step }
	a, b := readMetrics(t, one, step), readMetrics(t, fx.Out, step)
	if len(a) != len(b) {
		t.Fatalf("%d metrics records after the resume, %d in one process", len(b), len(a))
	}
	for i := range a {
		if d := math.Abs(a[i].Reward-b[i].Reward) / math.Max(1, math.Abs(a[i].Reward)); !(d <= ppoDistTol) {
			t.Errorf("iteration %d: reward %v after the kill and resume, %v in one process", i+1, b[i].Reward, a[i].Reward)
		}
	}
	if rel := relL2(readCheckpoint(t, one), readCheckpoint(t, fx.Out)); !(rel <= distWeightTol) {
		t.Errorf("the policies differ by %.3g relative L2 after the kill and resume", rel)
	}
}
