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
// the task scorers, and starts the iteration's metrics. Data parallel,
// each rank samples and scores its shard of the episodes and the ranks
// gather the rollout (rollout_dist.go).
func (g *groupTrainer) rollout(ids [][]int32, recs []data.Prompt, it int) (*rollout, GroupMetrics, error) {
	cfg := g.cfg
	rec := GroupMetrics{Step: it}
	t0 := time.Now()
	sampling := rolloutSampling{
		maxNew: cfg.MaxNew, temperature: cfg.Temperature, seed: gpu.Mix64(cfg.Seed, uint64(it)), eos: g.tok.EOS(), pad: g.tok.Pad(),
		seedGroup: cfg.MiniBatch,
	}
	var sc groupScores
	score := func(ro *rollout, lo int) error { return g.score(ro, recs[lo:lo+ro.E], lo, len(ids), &sc) }
	var ro *rollout
	var genTokens int
	var err error
	if distributed(g.comm) {
		sr := shardRollout{comm: g.comm, b: g.b, policy: g.policy.m, Tmax: g.dev.maxT, shared: []*gpu.Tensor{g.dev.oldLogp, g.dev.refLogp}}
		if ro, genTokens, err = sr.run(ids, sampling, score); err != nil {
			return nil, rec, err
		}
		if err := sc.overRanks(g.comm); err != nil {
			return nil, rec, err
		}
	} else {
		if ro, genTokens, err = generateRollout(g.policy.m, ids, sampling); err != nil {
			return nil, rec, fmt.Errorf("rollout: %w", err)
		}
		if err := score(ro, 0); err != nil {
			return nil, rec, err
		}
	}
	if err := g.dev.readLogProbs(ro); err != nil { // the group advantages' KL is summed on the host
		return nil, rec, fmt.Errorf("rollout: %w", err)
	}
	if sc.taskN > 0 {
		mean := sc.taskSum / float64(sc.taskN)
		rec.TaskScore = &mean
	}
	if g.rm != nil {
		rec.RMScore = &sc.rmMean
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

// groupScores are a rollout's summed scores, for its metrics: the reward
// model's mean, and the sum and count of the task scores of prompts of
// the built-in tasks (rolloutTaskScoreSum).
type groupScores struct {
	rmMean, taskSum float64
	taskN           int
}

// overRanks sums the ranks' shares of the scores.
func (sc *groupScores) overRanks(c gpu.Comm) error {
	sums, err := gpu.SumOverRanks(c, sc.rmMean, sc.taskSum, float64(sc.taskN))
	if err != nil {
		return fmt.Errorf("sum the rollout's scores: %w", err)
	}
	sc.rmMean, sc.taskSum, sc.taskN = sums[0], sums[1], int(sums[2])
	return nil
}

// score scores the episodes ro (episodes lo.. of a rollout of E, whose
// prompts are recs): their tokens' log-probs under the policy and the
// reference, from element lo·T of the scorer's tensors, their raw scores
// (the reward model's plus the task scores), and their share of sc.
func (g *groupTrainer) score(ro *rollout, recs []data.Prompt, lo, E int, sc *groupScores) error {
	if err := g.dev.logProbsAt(g.policy.m, g.ref, ro, lo*ro.T); err != nil {
		return fmt.Errorf("rollout: %w", err)
	}
	responses := ro.responses(g.tok)
	total, n := rolloutTaskScoreSum(recs, responses)
	sc.taskSum, sc.taskN = sc.taskSum+total, sc.taskN+n
	ro.rawScores = make([]float32, ro.E)
	if g.rm != nil {
		s, err := g.dev.rewardModel(g.rm, ro)
		if err != nil {
			return fmt.Errorf("rollout: %w", err)
		}
		for i, v := range s {
			ro.rawScores[i] += v
			sc.rmMean += float64(v) / float64(E)
		}
	}
	if g.cfg.TaskReward {
		s, err := taskScores(recs, responses)
		if err != nil {
			return err
		}
		for i, v := range s {
			ro.rawScores[i] += v
		}
	}
	return nil
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
// over the minibatch's responses, then one AdamW update. Data parallel,
// each rank takes its shard of every minibatch's rows, each response
// weighing 1/MiniBatch, the ranks' gradients are summed before each step,
// and the statistics once at the end (globalStats).
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
			r0, r1 := minibatchShard(g.comm, i, MB)
			lo, mbn := r0*T, (r1-r0)*T
			slot := d.stats.MustView(step*groupStatWidth, groupStatWidth)
			g.policy.zeroGrad()
			if r1 == r0 { // a rank's empty shard of a minibatch smaller than the ranks
				b.Fill(slot, 0)
			} else {
				in := &model.Batch{B: r1 - r0, T: T, Tokens: ro.tokens[lo : lo+mbn], Targets: ro.targets[lo : lo+mbn], ValidLen: ro.validLen[r0:r1]}
				if err := pol.Forward(in, true, 0); err != nil {
					return err
				}
				mask := d.mask.MustView(lo, mbn)
				dlogp := d.dlogp.MustView(0, mbn)
				groupLoss(b, dlogp, slot.MustView(0, 4), d.dkl.MustView(0, mbn), d.klStats, groupLossInputs{
					logp: pol.LogProbs(), oldLogp: d.oldLogp.MustView(lo, mbn), refLogp: d.refLogp.MustView(lo, mbn),
					adv: d.adv.MustView(lo, mbn), weight: d.weight.MustView(lo, mbn), mask: mask,
				}, cfg.ClipEps, beta, 1/float32(MB))
				b.Dot(slot.MustView(4, 1), pol.Entropy(), mask)
				g.policy.reduceDuringBackward()
				if err := pol.Backward(dlogp, nil); err != nil {
					return err
				}
			}
			if err := g.policy.reduceGrads(); err != nil {
				return fmt.Errorf("policy gradients: %w", err)
			}
			g.policy.update(1)
			step++
		}
	}
	host := make([]float32, steps*groupStatWidth) // the update's one read back
	if err := b.Download(host, d.stats.MustView(0, len(host))); err != nil {
		return err
	}
	stats := make([]float64, len(host))
	for i, v := range host {
		stats[i] = float64(v)
	}
	if distributed(g.comm) {
		if err := globalStats(g.comm, stats, steps, groupStatWidth, surrogateShares); err != nil {
			return err
		}
	}
	var loss, clip, approxKL, entropy float64
	for i := range steps {
		st := stats[i*groupStatWidth:]
		loss += st[0]
		clip += st[1]
		approxKL += st[2]
		entropy += st[4] / max(st[3], 1)
	}
	n64 := float64(steps)
	rec.PolicyLoss, rec.ClipFrac, rec.ApproxKL, rec.Entropy = loss/n64, clip/n64, approxKL/n64, entropy/n64
	rec.TrainSeconds = time.Since(t0).Seconds()
	return b.Err()
}
