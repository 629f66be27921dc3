package train

import (
	"fmt"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train/data"
)

// groupDevice holds a rollout's per-token tensors on the backend and the
// scratch of the update, allocated once for the largest rollout. Each
// update step leaves its statistics in its slot of stats (the loss's 4 and
// the entropy summed over the minibatch's tokens), read back once per
// update.
type groupDevice struct {
	*rolloutScorer                      // oldLogp, refLogp: the scoring's, read by the update
	n, steps                int         // elements of each per-token tensor; update steps
	mask                    *gpu.Tensor // [n]
	adv, weight, dlogp, dkl *gpu.Tensor
	stats, klStats          *gpu.Tensor
}

// groupStatWidth is an update step's slot in groupDevice.stats.
const groupStatWidth = 5

// newGroupDevice allocates for rollouts of E episodes of up to T tokens and
// updates of up to steps minibatch steps.
func newGroupDevice(b gpu.Backend, E, T, steps int) (*groupDevice, error) {
	n := E * T
	d := &groupDevice{n: n, steps: steps}
	var err error
	if d.rolloutScorer, err = newRolloutScorer(b, E, T); err != nil {
		return nil, err
	}
	for _, t := range []**gpu.Tensor{&d.mask, &d.adv, &d.weight, &d.dlogp, &d.dkl} {
		if err == nil {
			*t, err = b.Alloc(gpu.Float32, n)
		}
	}
	if err == nil {
		d.klStats, err = b.Alloc(gpu.Float32, 4)
	}
	if err == nil {
		d.stats, err = b.Alloc(gpu.Float32, steps*groupStatWidth)
	}
	if err != nil {
		return nil, fmt.Errorf("rollout tensors: %w", err)
	}
	return d, nil
}

// rollout samples the iteration's responses, scores their tokens with the
// policy and the reference and the responses with the reward model and/or
// the task scorers, and starts the iteration's metrics.
func (g *groupTrainer) rollout(ids [][]int32, recs []data.Prompt, it int) (*rollout, GroupMetrics, error) {
	cfg := g.cfg
	rec := GroupMetrics{Step: it}
	t0 := time.Now()
	ro, genTokens, err := generateRollout(g.policy.m, ids, rolloutSampling{
		maxNew: cfg.MaxNew, temperature: cfg.Temperature, seed: gpu.Mix64(cfg.Seed, uint64(it)), eos: g.tok.EOS(), pad: g.tok.Pad(),
	})
	if err != nil {
		return nil, rec, fmt.Errorf("rollout: %w", err)
	}
	if err := g.dev.logProbs(g.policy.m, g.ref, ro); err != nil {
		return nil, rec, fmt.Errorf("rollout: %w", err)
	}
	if err := g.dev.readLogProbs(ro); err != nil { // the group advantages' KL is summed on the host
		return nil, rec, fmt.Errorf("rollout: %w", err)
	}
	responses := ro.responses(g.tok)
	rec.TaskScore = rolloutTaskScore(recs, responses)
	ro.rawScores = make([]float32, ro.E)
	if g.rm != nil {
		s, err := g.dev.rewardModel(g.rm, ro)
		if err != nil {
			return nil, rec, fmt.Errorf("rollout: %w", err)
		}
		mean := 0.0
		for i, v := range s {
			ro.rawScores[i] += v
			mean += float64(v) / float64(ro.E)
		}
		rec.RMScore = &mean
	}
	if cfg.TaskReward {
		s, err := taskScores(recs, responses)
		if err != nil {
			return nil, rec, err
		}
		for i, v := range s {
			ro.rawScores[i] += v
		}
	}
	ro.finishScores(cfg.MissingEOSPenalty, 0)
	var length, eos float64
	for i := range ro.E {
		rec.Reward += float64(ro.scores[i]) / float64(ro.E)
		length += float64(ro.responseLen[i])
		if ro.eos[i] {
			eos++
		}
	}
	rec.ResponseLen, rec.EOSFrac = length/float64(ro.E), eos/float64(ro.E)
	rec.GenSeconds = time.Since(t0).Seconds()
	rec.GenTokensSec = float64(genTokens) / rec.GenSeconds
	return ro, rec, nil
}

// advantages returns the per-token advantage w_i·A_i and token weight w_i
// of every response token (0 elsewhere): GRPO's group-normalised A_i with
// w_i = 1/|o_i| (the mean over the response's tokens), Dr. GRPO's
// centred A_i with w_i = 1/MaxNew, RLOO's leave-one-out A_i of the
// KL-penalised reward r_i − β·Σ_t k1 with w_i = 1 (the gradient of the
// sequence log-prob).
func (g *groupTrainer) advantages(ro *rollout, rec *GroupMetrics) (adv, weight []float32, err error) {
	cfg := g.cfg
	rewards := make([]float64, ro.E)
	for i, s := range ro.scores {
		rewards[i] = float64(s)
	}
	rec.FlatGroups = float64(flatGroups(rewards, cfg.Group)) / float64(cfg.PromptsPerIter)
	var a []float64
	w := make([]float64, ro.E)
	if cfg.Method == MethodRLOO {
		kl := ro.sequenceKL(gpu.KLK1)
		for i := range rewards {
			rewards[i] -= float64(cfg.KLCoef) * kl[i]
			rec.KL += kl[i] / float64(ro.E)
			w[i] = 1
		}
		a, err = rlooAdvantages(rewards, cfg.Group)
	} else {
		kl := ro.sequenceKL(gpu.KLK3)
		for i := range rewards {
			rec.KL += kl[i] / float64(ro.E)
			w[i] = 1 / float64(ro.responseLen[i])
			if cfg.DrGRPO {
				w[i] = 1 / float64(cfg.MaxNew)
			}
		}
		a, err = grpoAdvantages(rewards, cfg.Group, cfg.DrGRPO)
	}
	if err != nil {
		return nil, nil, err
	}
	n := ro.E * ro.T
	adv, weight = make([]float32, n), make([]float32, n)
	for i, m := range ro.mask {
		if m != 0 {
			e := i / ro.T
			adv[i], weight[i] = float32(a[e]*w[e]), float32(w[e])
		}
	}
	return adv, weight, nil
}

// update takes cfg.Epochs passes of policy steps over the rollout's
// minibatches: each step's loss is the group loss (group_loss.go) averaged
// over the minibatch's responses, then one AdamW update.
func (g *groupTrainer) update(ro *rollout, adv, weight []float32, it int, rec *GroupMetrics) error {
	cfg, b, d, pol := g.cfg, g.b, g.dev, g.policy.m
	t0 := time.Now()
	n := ro.E * ro.T
	for _, p := range []struct {
		t    *gpu.Tensor
		host []float32
	}{{d.mask, ro.mask}, {d.adv, adv}, {d.weight, weight}} { // the log-probs are there from the scoring
		if err := b.Upload(p.t.MustView(0, n), p.host); err != nil {
			return err
		}
	}
	beta := cfg.KLCoef
	if cfg.Method == MethodRLOO {
		beta = 0 // in the reward
	}
	MB, T := cfg.MiniBatch, ro.T
	nMB := ro.E / MB
	steps := cfg.Epochs * nMB
	if steps > d.steps {
		return fmt.Errorf("%d update steps, the statistics hold %d", steps, d.steps)
	}
	step := 0
	for range cfg.Epochs {
		for i := range nMB {
			lo, mbn := i*MB*T, MB*T
			in := &model.Batch{B: MB, T: T, Tokens: ro.tokens[lo : lo+mbn], Targets: ro.targets[lo : lo+mbn], ValidLen: ro.validLen[i*MB : (i+1)*MB]}
			g.policy.zeroGrad()
			if err := pol.Forward(in, true, 0); err != nil {
				return err
			}
			mask := d.mask.MustView(lo, mbn)
			dlogp := d.dlogp.MustView(0, mbn)
			slot := d.stats.MustView(step*groupStatWidth, groupStatWidth)
			groupLoss(b, dlogp, slot.MustView(0, 4), d.dkl.MustView(0, mbn), d.klStats, groupLossInputs{
				logp: pol.LogProbs(), oldLogp: d.oldLogp.MustView(lo, mbn), refLogp: d.refLogp.MustView(lo, mbn),
				adv: d.adv.MustView(lo, mbn), weight: d.weight.MustView(lo, mbn), mask: mask,
			}, cfg.ClipEps, beta, 1/float32(MB))
			b.Dot(slot.MustView(4, 1), pol.Entropy(), mask)
			if err := pol.Backward(dlogp, nil); err != nil {
				return err
			}
			g.policy.update(1)
			step++
		}
	}
	host := make([]float32, steps*groupStatWidth) // the update's one read back
	if err := b.Download(host, d.stats.MustView(0, len(host))); err != nil {
		return err
	}
	var loss, clip, approxKL, entropy float64
	for i := range steps {
		st := host[i*groupStatWidth:]
		loss += float64(st[0])
		clip += float64(st[1])
		approxKL += float64(st[2])
		entropy += float64(st[4]) / max(float64(st[3]), 1)
	}
	n64 := float64(steps)
	rec.PolicyLoss, rec.ClipFrac, rec.ApproxKL, rec.Entropy = loss/n64, clip/n64, approxKL/n64, entropy/n64
	rec.TrainSeconds = time.Since(t0).Seconds()
	return b.Err()
}
