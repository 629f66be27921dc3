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
	if ro.T > d.Tmax {
		return fmt.Errorf("rollout rows of %d tokens exceed the buffers' %d", ro.T, d.Tmax)
	}
	if err := d.logProbs(ms.policy, ms.ref, ro); err != nil {
		return err
	}
	if err := forwardInto(ms.value, ro, true, d.values.MustView(0, ro.E*ro.T)); err != nil {
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
		for i := range steps {
			s := host[1+i*ppoStatWidth:]
			sum.policyLoss += float64(s[statPolicy])
			sum.clipFrac += float64(s[statPolicy+1])
			sum.approxKL += float64(s[statPolicy+2])
			sum.entropy += float64(s[statEntropy]) / sum.counts[i]
			sum.valueLoss += float64(s[statValue])
			sum.valueClip += float64(s[statValue+1])
			sum.ptxLoss += float64(s[statPtx])
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
			lo, hi := i*MB*T, (i+1)*MB*T
			mb := ppoMinibatch{
				in:   &model.Batch{B: MB, T: T, Tokens: ro.tokens[lo:hi], Targets: ro.targets[lo:hi], ValidLen: ro.validLen[i*MB : (i+1)*MB]},
				lo:   lo,
				n:    hi - lo,
				step: it*cfg.Epochs*nMB + epoch*nMB + i,
			}
			for _, m := range ro.mask[lo:hi] {
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

// ppoMinibatch is one minibatch of a rollout: its rows as a model batch,
// its span [lo, lo+n) of the rollout's per-token tensors, its masked token
// count, the update's global index (which seeds its dropout) and its slot
// of the statistics.
type ppoMinibatch struct {
	in    *model.Batch
	lo, n int
	count float64
	step  int
	slot  int
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
// same gradient; one AdamW step; the EMA follows.
func (d *ppoDevice) policyStep(ms *ppoModels, mb ppoMinibatch, ptx *data.WindowSampler, ptxBatch *model.Batch, cfg PPOConfig) error {
	b, pol := d.b, ms.policy
	scale := float32(1) / float32(mb.in.B)
	mask := d.mask.MustView(mb.lo, mb.n)
	ms.policyTrain.zeroGrad()
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
	if err := pol.Backward(dlogp, dent); err != nil {
		return err
	}
	ptxLoss := d.stat(mb.slot, statPtx, 1)
	if ptx == nil {
		b.Fill(ptxLoss, 0)
	} else {
		ptx.Fill(ptxBatch.Tokens, ptxBatch.Targets, cfg.PtxBatch)
		if err := pol.Forward(ptxBatch, true, gpu.Mix64(cfg.Seed^0x97, uint64(mb.step))); err != nil {
			return err
		}
		nPtx := cfg.PtxBatch * cfg.PtxSeq
		b.Dot(ptxLoss, pol.LogProbs(), d.ptxW.MustView(0, nPtx))
		if err := pol.Backward(d.ptxGradW.MustView(0, nPtx), nil); err != nil {
			return err
		}
	}
	ms.policyTrain.update(1)
	b.Lerp(ms.ema.All, pol.Params.All, 1-cfg.EMADecay)
	return nil
}

// valueStep is the value function's update on one minibatch: the clipped
// value loss, averaged over the minibatch's tokens, and one AdamW step.
func (d *ppoDevice) valueStep(ms *ppoModels, mb ppoMinibatch, cfg PPOConfig) error {
	b, val := d.b, ms.value
	ms.valueTrain.zeroGrad()
	vin := &model.Batch{B: mb.in.B, T: mb.in.T, Tokens: mb.in.Tokens, ValidLen: mb.in.ValidLen}
	if err := val.Forward(vin, true, 0); err != nil {
		return err
	}
	dv := d.dvalues.MustView(0, mb.n)
	b.PPOValueLoss(dv, d.stat(mb.slot, statValue, 3), val.Values().MustReshape(mb.n), d.values.MustView(mb.lo, mb.n), d.returns.MustView(mb.lo, mb.n),
		d.mask.MustView(mb.lo, mb.n), cfg.ValueClip, float32(1/mb.count))
	if err := val.Backward(dv, nil); err != nil {
		return err
	}
	ms.valueTrain.update(1)
	return b.Err()
}
