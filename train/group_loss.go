package train

import (
	"github.com/instructgo/instructgo/gpu"
)

// The policy loss of the group methods (GRPO, Dr. GRPO, RLOO), composed
// from the backend's PPO ops. Over a minibatch's masked tokens t of
// episodes i, with the episode's advantage A_i and token weight w_i,
// r = exp(logp − oldLogp) and ρ = exp(refLogp − logp):
//
//	L = −scale·Σ min(r·w_i·A_i, clip(r, 1−ε, 1+ε)·w_i·A_i)
//	    + β·scale·Σ w_i·((ρ−1) − log ρ)
//
// The first sum is PPOPolicyLoss with the per-token advantage w_i·A_i (a
// positive weight passes through the min and the clip unchanged). The
// second is the k3 estimate of KL(π‖π_ref) in the loss, as GRPO has it;
// its gradient β·scale·w_i·(1 − ρ) is w_i plus PPOPolicyLoss's gradient
// with the log-prob arguments swapped (logp := refLogp, oldLogp := logp,
// adv := w, no clip, scale 1), which is −w_i·exp(refLogp − logp). RLOO has
// β = 0 here: its KL is in the reward.

// groupLossInputs are a minibatch's per-token tensors on the backend, of
// one length.
type groupLossInputs struct {
	logp             *gpu.Tensor // the training forward's log-probs of the response tokens
	oldLogp, refLogp *gpu.Tensor // the sampling policy's and the reference's
	adv              *gpu.Tensor // w_i·A_i on the episode's tokens, 0 elsewhere
	weight           *gpu.Tensor // w_i on the episode's tokens, 0 elsewhere
	mask             *gpu.Tensor
}

// groupLoss writes ∂L/∂logp into dlogp and the surrogate's statistics
// (PPOPolicyLoss's: loss, clip fraction, approximate KL to the sampling
// policy, Σmask) into stats; with β > 0, dkl [same length] and klStats [4]
// are scratch for the KL term.
func groupLoss(b gpu.Backend, dlogp, stats, dkl, klStats *gpu.Tensor, in groupLossInputs, clipEps, beta, scale float32) {
	b.PPOPolicyLoss(dlogp, stats, in.logp, in.oldLogp, in.adv, in.mask, clipEps, scale)
	if beta == 0 {
		return
	}
	b.PPOPolicyLoss(dkl, klStats, in.refLogp, in.logp, in.weight, in.mask, 0, 1)
	b.Axpy(dlogp, beta*scale, in.weight)
	b.Axpy(dlogp, beta*scale, dkl)
}
