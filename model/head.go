package model

import "github.com/instructgo/instructgo/gpu"

// The heads on the final normalised hidden states a.lnf, shared by every
// architecture: the LM head (logits by the unembedding Params.LMHead, then
// log-probabilities of the targets) or the scalar head (one value per
// position by score.weight, plus the score bias).

// headForward runs the head. With dlogp (ForwardLM) the LM head is the
// fused cross-entropy, which leaves ∂L/∂logits in the logits.
func (m *Model) headForward(a *acts, dlogp *gpu.Tensor) {
	b, c, p := m.b, m.Cfg, m.w
	if c.ScalarHead {
		b.MatMul(a.values, a.lnf, p.Score, false, false, 1, 0)
		if c.ScoreBias != 0 {
			b.AddBias(a.values, m.scoreBias)
		}
		return
	}
	b.MatMul(a.logits, a.lnf, p.LMHead, false, true, 1, 0)
	if dlogp != nil {
		b.CrossEntropy(a.logp, nil, a.lseV, a.logits, a.targets, dlogp.MustReshape(a.logp.Len()))
	} else {
		b.LogSoftmaxForward(a.logp, a.entropy, a.lseV, a.logits, a.targets)
	}
}

// headBackward writes ∂L/∂lnf into a.dNormOut and adds the head's parameter
// gradients, from dout (∂L/∂logp or ∂L/∂values) and dentropy, or after
// ForwardLM from the logits.
func (m *Model) headBackward(a *acts, dout, dentropy *gpu.Tensor) {
	b, c := m.b, m.Cfg
	p, g := m.w, m.Grads
	if c.ScalarHead {
		// ∂L/∂values is float32; the products read it in the activation
		// dtype.
		dv := a.dValues
		b.Convert(dv, dout.MustReshape(dv.Len(), 1))
		b.MatMul(a.dNormOut, dv, p.Score, false, true, 1, 0)
		b.MatMul(g.Score, a.lnf, dv, true, false, 1, 1)
		return
	}
	if !a.logitsGrad {
		var ent *gpu.Tensor
		if dentropy != nil {
			ent = a.entropy
		}
		b.LogSoftmaxBackward(a.logits, a.lseV, ent, a.targets, dout, dentropy)
	}
	// The logits now hold ∂L/∂logits.
	b.MatMul(a.dNormOut, a.logits, p.LMHead, false, false, 1, 0)
	b.MatMul(g.LMHead, a.logits, a.lnf, true, false, 1, 1)
}
