package train

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train/data"
)

// ppoDevice holds a rollout's per-token tensors on the backend and the
// scratch of the update, allocated once for the largest rollout.
type ppoDevice struct {
	b                       gpu.Backend
	E, Tmax                 int
	oldLogp, refLogp, mask  *gpu.Tensor // [E·Tmax]
	kl, rewards, values     *gpu.Tensor
	adv, returns            *gpu.Tensor
	score                   *gpu.Tensor // [E]
	lastIdx                 *gpu.Tensor // Int32 [E]
	dlogp, dvalues, dent    *gpu.Tensor // [E·Tmax]; minibatches use prefixes
	pstats, vstats, scalar  *gpu.Tensor
	ptxW, ptxGradW, ptxLoss *gpu.Tensor
}

func newPPODevice(b gpu.Backend, E, T, ptxTokens int) (*ppoDevice, error) {
	d := &ppoDevice{b: b, E: E, Tmax: T}
	n := E * T
	var err error
	alloc := func(dst **gpu.Tensor, dt gpu.DType, size int) {
		if err == nil {
			*dst, err = b.Alloc(dt, size)
		}
	}
	for _, t := range []**gpu.Tensor{&d.oldLogp, &d.refLogp, &d.mask, &d.kl, &d.rewards, &d.values, &d.adv, &d.returns, &d.dlogp, &d.dvalues, &d.dent} {
		alloc(t, gpu.Float32, n)
	}
	alloc(&d.score, gpu.Float32, E)
	alloc(&d.lastIdx, gpu.Int32, E)
	alloc(&d.pstats, gpu.Float32, 4)
	alloc(&d.vstats, gpu.Float32, 3)
	alloc(&d.scalar, gpu.Float32, 1)
	alloc(&d.ptxW, gpu.Float32, ptxTokens)
	alloc(&d.ptxGradW, gpu.Float32, ptxTokens)
	alloc(&d.ptxLoss, gpu.Float32, 1)
	return d, err
}

// advantages computes the KL-penalised per-token rewards, GAE advantages
// and returns, and whitens the advantages, all on the backend.
func (d *ppoDevice) advantages(ro *rollout, cfg PPOConfig, beta float32) error {
	b := d.b
	E, T := ro.E, ro.T
	n := E * T
	shape := []int{E, T}
	up := func(t *gpu.Tensor, host []float32) error { return b.Upload(t.MustView(0, n), host) }
	for _, p := range []struct {
		t    *gpu.Tensor
		host []float32
	}{{d.oldLogp, ro.oldLogp}, {d.refLogp, ro.ref}, {d.mask, ro.mask}, {d.values, ro.values}} {
		if err := up(p.t, p.host); err != nil {
			return err
		}
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
	b.Dot(d.scalar, kl, mask) // kl is 0 outside the mask: this is Σ kl
	var klSum [1]float32
	if err := b.Download(klSum[:], d.scalar); err != nil {
		return fmt.Errorf("advantages: %w", err)
	}
	ro.klSum = float64(klSum[0])
	ro.returns = make([]float32, n)
	if err := b.Download(ro.returns, returns); err != nil {
		return fmt.Errorf("advantages: %w", err)
	}
	b.MaskedWhiten(adv, mask, true)
	return b.Err()
}

// update runs the PPO epochs over the rollout's minibatches: the clipped
// surrogate (and entropy bonus) and the ptx language-model loss accumulate
// in the policy's gradient before one AdamW step, then the EMA follows;
// the value function takes its own clipped-loss step.
func (d *ppoDevice) update(ms *ppoModels, ro *rollout, ptx *data.WindowSampler, cfg PPOConfig, it int, rec *PPOMetrics) error {
	T, MB := ro.T, cfg.MiniBatch
	nMB := ro.E / MB
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
			if err := d.policyStep(ms, mb, ptx, ptxBatch, cfg, &sum); err != nil {
				return err
			}
			if err := d.valueStep(ms, mb, cfg, &sum); err != nil {
				return err
			}
			sum.steps++
		}
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
// count and the update's global index (which seeds its dropout).
type ppoMinibatch struct {
	in    *model.Batch
	lo, n int
	count float64
	step  int
}

// ppoUpdateStats sums the minibatches' losses and statistics.
type ppoUpdateStats struct {
	policyLoss, clipFrac, approxKL, entropy float64
	valueLoss, valueClip, ptxLoss           float64
	steps                                   int
}

// policyStep is the policy's update on one minibatch: the clipped
// surrogate, summed over each episode's tokens and averaged over episodes
// as the paper's per-episode objective, with the entropy bonus; then the
// ptx term, PtxCoef times the mean per-token pretraining loss, into the
// same gradient; one AdamW step; the EMA follows.
func (d *ppoDevice) policyStep(ms *ppoModels, mb ppoMinibatch, ptx *data.WindowSampler, ptxBatch *model.Batch, cfg PPOConfig, sum *ppoUpdateStats) error {
	b, pol := d.b, ms.policy
	scale := float32(1) / float32(mb.in.B)
	mask := d.mask.MustView(mb.lo, mb.n)
	ms.policyTrain.zeroGrad()
	if err := pol.Forward(mb.in, true, gpu.Mix64(cfg.Seed, uint64(mb.step))); err != nil {
		return err
	}
	dlogp := d.dlogp.MustView(0, mb.n)
	b.PPOPolicyLoss(dlogp, d.pstats, pol.LogProbs(), d.oldLogp.MustView(mb.lo, mb.n), d.adv.MustView(mb.lo, mb.n), mask, cfg.ClipEps, scale)
	b.Dot(d.scalar, pol.Entropy(), mask)
	var ent [1]float32
	if err := b.Download(ent[:], d.scalar); err != nil {
		return err
	}
	sum.entropy += float64(ent[0]) / mb.count
	var dent *gpu.Tensor
	if cfg.EntropyCoef > 0 {
		dent = d.dent.MustView(0, mb.n)
		b.Copy(dent, mask)
		b.Scale(dent, -cfg.EntropyCoef*scale)
	}
	if err := pol.Backward(dlogp, dent); err != nil {
		return err
	}
	var ps [4]float32
	if err := b.Download(ps[:], d.pstats); err != nil {
		return err
	}
	sum.policyLoss += float64(ps[0])
	sum.clipFrac += float64(ps[1])
	sum.approxKL += float64(ps[2])
	if ptx != nil {
		ptx.Fill(ptxBatch.Tokens, ptxBatch.Targets, cfg.PtxBatch)
		if err := pol.Forward(ptxBatch, true, gpu.Mix64(cfg.Seed^0x97, uint64(mb.step))); err != nil {
			return err
		}
		nPtx := cfg.PtxBatch * cfg.PtxSeq
		b.Dot(d.ptxLoss, pol.LogProbs(), d.ptxW.MustView(0, nPtx))
		if err := pol.Backward(d.ptxGradW.MustView(0, nPtx), nil); err != nil {
			return err
		}
		var pl [1]float32
		if err := b.Download(pl[:], d.ptxLoss); err != nil {
			return err
		}
		sum.ptxLoss += float64(pl[0])
	}
	ms.policyTrain.update(1)
	b.Lerp(ms.ema.All, pol.Params.All, 1-cfg.EMADecay)
	return nil
}

// valueStep is the value function's update on one minibatch: the clipped
// value loss, averaged over the minibatch's tokens, and one AdamW step.
func (d *ppoDevice) valueStep(ms *ppoModels, mb ppoMinibatch, cfg PPOConfig, sum *ppoUpdateStats) error {
	b, val := d.b, ms.value
	ms.valueTrain.zeroGrad()
	vin := &model.Batch{B: mb.in.B, T: mb.in.T, Tokens: mb.in.Tokens, ValidLen: mb.in.ValidLen}
	if err := val.Forward(vin, true, 0); err != nil {
		return err
	}
	dv := d.dvalues.MustView(0, mb.n)
	b.PPOValueLoss(dv, d.vstats, val.Values().MustReshape(mb.n), d.values.MustView(mb.lo, mb.n), d.returns.MustView(mb.lo, mb.n),
		d.mask.MustView(mb.lo, mb.n), cfg.ValueClip, float32(1/mb.count))
	if err := val.Backward(dv, nil); err != nil {
		return err
	}
	ms.valueTrain.update(1)
	var vs [3]float32
	if err := b.Download(vs[:], d.vstats); err != nil {
		return err
	}
	sum.valueLoss += float64(vs[0])
	sum.valueClip += float64(vs[1])
	return nil
}
