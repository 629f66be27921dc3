package train

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train/data"
)

// ppoDevice holds a rollout's per-token tensors on the backend and the
// scratch of the update, allocated once for the largest rollout. The four
// models' outputs are written here by the scoring forwards and read here by
// the advantages and the update; the host reads back the reward model's
// scores once per rollout and the update's statistics (stats) once per
// update, never between a forward and its backward.
type ppoDevice struct {
	*rolloutScorer       // oldLogp, refLogp, rewards (the KL-penalised rewards after the scoring), score
	b                    gpu.Backend
	E, Tmax, steps       int
	mask, kl, values     *gpu.Tensor // [E·Tmax]
	adv, returns         *gpu.Tensor
	lastIdx              *gpu.Tensor // Int32 [E]
	dlogp, dvalues, dent *gpu.Tensor // [E·Tmax]; minibatches use prefixes
	stats                *gpu.Tensor // [1 + steps·ppoStatWidth]: Σ KL, then each update step's statistics
	ptxW, ptxGradW       *gpu.Tensor
	comm                 gpu.Comm // data-parallel ranks (ppo_dist.go); nil: one
}

// The statistics an update step leaves in its slot of ppoDevice.stats:
// PPOPolicyLoss's 4, the entropy summed over the minibatch's tokens,
// PPOValueLoss's 3 and the ptx loss.
const (
	statPolicy    = 0
	statEntropy   = 4
	statValue     = 5
	statPtx       = 8
	ppoStatWidth  = 9
	statKLSumSlot = 0 // stats[0], before the steps' slots
)

// newPPODevice allocates for rollouts of E episodes of up to T tokens,
// ptxTokens tokens of ptx per step and updates of up to steps minibatch
// steps (epochs × minibatches).
func newPPODevice(b gpu.Backend, E, T, ptxTokens, steps int) (*ppoDevice, error) {
	d := &ppoDevice{b: b, E: E, Tmax: T, steps: steps}
	n := E * T
	var err error
	if d.rolloutScorer, err = newRolloutScorer(b, E, T); err != nil {
		return nil, err
	}
	alloc := func(dst **gpu.Tensor, dt gpu.DType, size int) {
		if err == nil {
			*dst, err = b.Alloc(dt, size)
		}
	}
	for _, t := range []**gpu.Tensor{&d.mask, &d.kl, &d.values, &d.adv, &d.returns, &d.dlogp, &d.dvalues, &d.dent} {
		alloc(t, gpu.Float32, n)
	}
	alloc(&d.lastIdx, gpu.Int32, E)
	alloc(&d.stats, gpu.Float32, 1+steps*ppoStatWidth)
	alloc(&d.ptxW, gpu.Float32, ptxTokens)
	alloc(&d.ptxGradW, gpu.Float32, ptxTokens)
	return d, err
}

// stat is n statistics of update step i from offset off of its slot.
func (d *ppoDevice) stat(i, off, n int) *gpu.Tensor {
	return d.stats.MustView(1+i*ppoStatWidth+off, n)
}

// scoreRollout runs the rollout through the four models, leaving the
// policy's and the reference's log-probs of each response token and the
// value of each state on the device, and reads back the reward model's
// score of each whole response into ro.rawScores: the rollout's one read.
func (d *ppoDevice) scoreRollout(ms *ppoModels, ro *rollout) error {
	return d.scoreRolloutAt(ms, ro, 0)
}

// scoreRolloutAt is scoreRollout writing the per-token tensors from
// element off (a data-parallel rank's rows of a larger rollout).
func (d *ppoDevice) scoreRolloutAt(ms *ppoModels, ro *rollout, off int) error {
	if ro.T > d.Tmax {
		return fmt.Errorf("rollout rows of %d tokens exceed the buffers' %d", ro.T, d.Tmax)
	}
	if err := d.logProbsAt(ms.policy, ms.ref, ro, off); err != nil {
		return err
	}
	if err := forwardInto(ms.value, ro, true, d.values.MustView(off, ro.E*ro.T)); err != nil {
		return fmt.Errorf("values: %w", err)
	}
	var err error
	ro.rawScores, err = d.rewardModel(ms.reward, ro)
	return err
}

// advantages computes the KL-penalised per-token rewards, GAE advantages
// and returns, and whitens the advantages, all on the backend from the
// scoring's outputs (scoreRollout) and the episodes' final scores; Σ KL goes to
// stats.
func (d *ppoDevice) advantages(ro *rollout, cfg PPOConfig, beta float32) error {
	b := d.b
	E, T := ro.E, ro.T
	n := E * T
	shape := []int{E, T}
	if err := b.Upload(d.mask.MustView(0, n), ro.mask); err != nil {
		return err
	}
	if err := b.Upload(d.score.MustView(0, E), ro.scores); err != nil {
		return err
	}
	if err := b.UploadInt32(d.lastIdx.MustView(0, E), ro.lastIdx); err != nil {
		return err
	}
	mask := d.mask.MustView(0, shape...)
	kl, rewards := d.kl.MustView(0, shape...), d.rewards.MustView(0, shape...)
	adv, returns := d.adv.MustView(0, shape...), d.returns.MustView(0, shape...)
	b.KLPenalizedRewards(rewards, kl, d.oldLogp.MustView(0, shape...), d.refLogp.MustView(0, shape...), mask,
		d.score.MustView(0, E), d.lastIdx.MustView(0, E), beta, cfg.KLEstimator)
	b.GAE(adv, returns, rewards, d.values.MustView(0, shape...), mask, cfg.Gamma, cfg.Lambda)
	b.Dot(d.stats.MustView(statKLSumSlot, 1), kl, mask) // kl is 0 outside the mask: this is Σ kl
	b.MaskedWhiten(adv, mask, true)
	return b.Err()
}

// readBack downloads what the rollout's metrics need from the device: Σ KL
// and the update's statistics (summed into sum over its steps, in their
// order), the returns and the values.
func (d *ppoDevice) readBack(ro *rollout, steps int, sum *ppoUpdateStats) error {
	n := ro.E * ro.T
	host := make([]float32, 1+steps*ppoStatWidth)
	if err := d.b.Download(host, d.stats.MustView(0, len(host))); err != nil {
		return err
	}
	ro.klSum = float64(host[statKLSumSlot])
	if sum != nil {
		stats := make([]float64, steps*ppoStatWidth)
		for i, v := range host[1:] {
			stats[i] = float64(v)
		}
		if distributed(d.comm) {
			if err := globalStats(d.comm, stats, steps, ppoStatWidth, ppoStatShares); err != nil {
				return err
			}
		}
		for i := range steps {
			s := stats[i*ppoStatWidth:]
			sum.policyLoss += s[statPolicy]
			sum.clipFrac += s[statPolicy+1]
			sum.approxKL += s[statPolicy+2]
			sum.entropy += s[statEntropy] / sum.counts[i]
			sum.valueLoss += s[statValue]
			sum.valueClip += s[statValue+1]
			sum.ptxLoss += s[statPtx]
		}
	}
	ro.returns, ro.values = make([]float32, n), make([]float32, n)
	if err := d.b.Download(ro.returns, d.returns.MustView(0, n)); err != nil {
		return err
	}
	return d.b.Download(ro.values, d.values.MustView(0, n))
}

// update runs the PPO epochs over the rollout's minibatches: the clipped
// surrogate (and entropy bonus) and the ptx language-model loss accumulate
// in the policy's gradient before one AdamW step, then the EMA follows;
// the value function takes its own clipped-loss step. The steps leave their
// statistics on the device; one read at the end (readBack) brings them,
// Σ KL, the returns and the values to ro and rec.
func (d *ppoDevice) update(ms *ppoModels, ro *rollout, ptx *data.WindowSampler, cfg PPOConfig, it int, rec *PPOMetrics) error {
	T, MB := ro.T, cfg.MiniBatch
	nMB := ro.E / MB
	if steps := cfg.Epochs * nMB; steps > d.steps {
		return fmt.Errorf("%d update steps, the statistics hold %d", steps, d.steps)
	}
	var sum ppoUpdateStats
	var ptxBatch *model.Batch
	if ptx != nil {
		nPtx := cfg.PtxBatch * cfg.PtxSeq
		ptxBatch = &model.Batch{B: cfg.PtxBatch, T: cfg.PtxSeq, Tokens: make([]int32, nPtx), Targets: make([]int32, nPtx)}
		d.b.Fill(d.ptxW.MustView(0, nPtx), -1/float32(nPtx))
		d.b.Fill(d.ptxGradW.MustView(0, nPtx), -cfg.PtxCoef/float32(nPtx))
	}
	for epoch := 0; epoch < cfg.Epochs; epoch++ {
		for i := 0; i < nMB; i++ {
			r0, r1 := minibatchShard(d.comm, i, MB) // this rank's rows of the minibatch
			lo, hi := r0*T, r1*T
			mb := ppoMinibatch{
				in:       &model.Batch{B: r1 - r0, T: T, Tokens: ro.tokens[lo:hi], Targets: ro.targets[lo:hi], ValidLen: ro.validLen[r0:r1]},
				lo:       lo,
				n:        hi - lo,
				episodes: MB,
				step:     it*cfg.Epochs*nMB + epoch*nMB + i,
			}
			for _, m := range ro.mask[i*MB*T : (i+1)*MB*T] {
				mb.count += float64(m)
			}
			mb.slot = sum.steps
			if err := d.policyStep(ms, mb, ptx, ptxBatch, cfg); err != nil {
				return err
			}
			if err := d.valueStep(ms, mb, cfg); err != nil {
				return err
			}
			sum.counts = append(sum.counts, mb.count)
			sum.steps++
		}
	}
	if err := d.readBack(ro, sum.steps, &sum); err != nil {
		return err
	}
	n := float64(sum.steps)
	rec.PolicyLoss, rec.ClipFrac, rec.ApproxKL = sum.policyLoss/n, sum.clipFrac/n, sum.approxKL/n
	rec.ValueLoss, rec.ValueClipFrac, rec.Entropy = sum.valueLoss/n, sum.valueClip/n, sum.entropy/n
	if ptx != nil {
		rec.PtxLoss = sum.ptxLoss / n
	}
	return d.b.Err()
}

// ppoMinibatch is one minibatch of a rollout: its rows as a model batch
// (data parallel, this rank's shard of them), their span [lo, lo+n) of
// the rollout's per-token tensors, the whole minibatch's episodes and
// masked token count (the losses' normalisers), the update's global index
// (which seeds its dropout) and its slot of the statistics.
type ppoMinibatch struct {
	in       *model.Batch
	lo, n    int
	episodes int
	count    float64
	step     int
	slot     int
}

// ppoUpdateStats sums the minibatches' losses and statistics; counts are
// the steps' masked token counts.
type ppoUpdateStats struct {
	policyLoss, clipFrac, approxKL, entropy float64
	valueLoss, valueClip, ptxLoss           float64
	steps                                   int
	counts                                  []float64
}

// policyStep is the policy's update on one minibatch: the clipped
// surrogate, summed over each episode's tokens and averaged over episodes
// as the paper's per-episode objective, with the entropy bonus; then the
// ptx term, PtxCoef times the mean per-token pretraining loss, into the
// same gradient; the ranks' gradients summed; one AdamW step; the EMA
// follows.
func (d *ppoDevice) policyStep(ms *ppoModels, mb ppoMinibatch, ptx *data.WindowSampler, ptxBatch *model.Batch, cfg PPOConfig) error {
	b := d.b
	ms.policyTrain.zeroGrad()
	// The last backward pass of the step sums the gradients over the
	// ranks as it finishes them: the ptx term's where this rank has ptx
	// rows, else the surrogate's.
	ptxLast := ptx != nil && d.ptxShard(ptxBatch).B > 0
	if mb.in.B == 0 { // a rank's empty shard of a minibatch smaller than the ranks
		b.Fill(d.stat(mb.slot, statPolicy, statValue-statPolicy), 0)
	} else if err := d.surrogate(ms.policy, mb, cfg, func() {
		if !ptxLast {
			ms.policyTrain.reduceDuringBackward()
		}
	}); err != nil {
		return err
	}
	if err := d.ptxTerm(ms.policy, mb, ptx, ptxBatch, cfg, ms.policyTrain.reduceDuringBackward); err != nil {
		return err
	}
	if err := ms.policyTrain.reduceGrads(); err != nil {
		return fmt.Errorf("policy gradients: %w", err)
	}
	ms.policyTrain.update(1)
	b.Lerp(ms.ema.All, ms.policy.Params.All, 1-cfg.EMADecay)
	return nil
}

// surrogate adds the gradient of the clipped surrogate and the entropy
// bonus on the minibatch's rows to the policy's, each episode weighing
// 1/mb.episodes; beforeBackward runs just before the backward pass.
func (d *ppoDevice) surrogate(pol *model.Model, mb ppoMinibatch, cfg PPOConfig, beforeBackward func()) error {
	b := d.b
	scale := float32(1) / float32(mb.episodes)
	mask := d.mask.MustView(mb.lo, mb.n)
	if err := pol.Forward(mb.in, true, gpu.Mix64(cfg.Seed, uint64(mb.step))); err != nil {
		return err
	}
	dlogp := d.dlogp.MustView(0, mb.n)
	b.PPOPolicyLoss(dlogp, d.stat(mb.slot, statPolicy, 4), pol.LogProbs(), d.oldLogp.MustView(mb.lo, mb.n), d.adv.MustView(mb.lo, mb.n), mask, cfg.ClipEps, scale)
	b.Dot(d.stat(mb.slot, statEntropy, 1), pol.Entropy(), mask)
	var dent *gpu.Tensor
	if cfg.EntropyCoef > 0 {
		dent = d.dent.MustView(0, mb.n)
		b.Copy(dent, mask)
		b.Scale(dent, -cfg.EntropyCoef*scale)
	}
	beforeBackward()
	return pol.Backward(dlogp, dent)
}

// ptxTerm adds the gradient of the ptx term to the policy's: the next
// windows of pretraining text, PtxCoef times the mean per-token loss over
// the global ptx batch; data parallel, every rank draws the global batch
// and trains its shard of the rows. beforeBackward runs just before the
// backward pass.
func (d *ppoDevice) ptxTerm(pol *model.Model, mb ppoMinibatch, ptx *data.WindowSampler, ptxBatch *model.Batch, cfg PPOConfig, beforeBackward func()) error {
	b := d.b
	ptxLoss := d.stat(mb.slot, statPtx, 1)
	if ptx == nil {
		b.Fill(ptxLoss, 0)
		return nil
	}
	ptx.Fill(ptxBatch.Tokens, ptxBatch.Targets, cfg.PtxBatch)
	in := d.ptxShard(ptxBatch)
	if in.B == 0 {
		b.Fill(ptxLoss, 0)
		return nil
	}
	if err := pol.Forward(in, true, gpu.Mix64(cfg.Seed^0x97, uint64(mb.step))); err != nil {
		return err
	}
	n := in.B * in.T // each token weighs −1/(PtxBatch·PtxSeq), the global batch's
	b.Dot(ptxLoss, pol.LogProbs(), d.ptxW.MustView(0, n))
	beforeBackward()
	return pol.Backward(d.ptxGradW.MustView(0, n), nil)
}

// ptxShard is this rank's rows of the ptx batch (all of them in one
// process).
func (d *ppoDevice) ptxShard(ptxBatch *model.Batch) *model.Batch {
	if !distributed(d.comm) {
		return ptxBatch
	}
	return shardRows(ptxBatch, d.comm.Rank(), d.comm.Size())
}

// valueStep is the value function's update on one minibatch: the clipped
// value loss, averaged over the minibatch's tokens (data parallel, the
// whole minibatch's; the ranks' gradients summed), and one AdamW step.
func (d *ppoDevice) valueStep(ms *ppoModels, mb ppoMinibatch, cfg PPOConfig) error {
	b := d.b
	ms.valueTrain.zeroGrad()
	ms.valueTrain.reduceDuringBackward() // its one backward pass is the last
	if mb.in.B == 0 {
		b.Fill(d.stat(mb.slot, statValue, 3), 0)
	} else if err := d.valueLoss(ms.value, mb, cfg); err != nil {
		return err
	}
	if err := ms.valueTrain.reduceGrads(); err != nil {
		return fmt.Errorf("value gradients: %w", err)
	}
	ms.valueTrain.update(1)
	return b.Err()
}

// valueLoss adds the gradient of the clipped value loss on the
// minibatch's rows to the value function's, each token weighing
// 1/mb.count.
func (d *ppoDevice) valueLoss(val *model.Model, mb ppoMinibatch, cfg PPOConfig) error {
	b := d.b
	vin := &model.Batch{B: mb.in.B, T: mb.in.T, Tokens: mb.in.Tokens, ValidLen: mb.in.ValidLen}
	if err := val.Forward(vin, true, 0); err != nil {
		return err
	}
	dv := d.dvalues.MustView(0, mb.n)
	b.PPOValueLoss(dv, d.stat(mb.slot, statValue, 3), val.Values().MustReshape(mb.n), d.values.MustView(mb.lo, mb.n), d.returns.MustView(mb.lo, mb.n),
		d.mask.MustView(mb.lo, mb.n), cfg.ValueClip, float32(1/mb.count))
	return val.Backward(dv, nil)
}
