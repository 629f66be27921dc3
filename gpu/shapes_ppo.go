package gpu

import (
	"fmt"
	"math"
	"strings"
)

// Argument validation of the PPO ops (Backend.PPOPolicyLoss and the four
// after it), shared by the backends like the Checker methods of shapes.go.

// checkFinite reports an error unless every value is finite; names lists
// them space-separated.
func checkFinite(op, names string, vs ...float32) error {
	for i, v := range vs {
		if f := float64(v); math.IsNaN(f) || math.IsInf(f, 0) {
			return fmt.Errorf("%s: %s = %v, want a finite value", op, argName(names, i), v)
		}
	}
	return nil
}

// ppoLoss validates the per-token operands of a PPO loss (equal lengths)
// and its stats output of nstats elements, and returns the token count.
// names are those of grad, stats, x, old, target and mask. The gradient and
// stats outputs may overlap no input nor each other.
func (k Checker) ppoLoss(op string, names [6]string, nstats int, grad, stats, x, old, target, mask *Tensor, clipEps, scale float32) (int, error) {
	ng, ns, nx, no, nt, nm := names[0], names[1], names[2], names[3], names[4], names[5]
	if err := k.F32(op, strings.Join(names[:], " "), grad, stats, x, old, target, mask); err != nil {
		return 0, err
	}
	n := x.Len()
	if err := first(
		CheckLen(op, n, no+" "+nt+" "+nm+" "+ng, old, target, mask, grad),
		CheckLen(op, nstats, ns, stats),
		CheckDisjoint(op, ng, grad, ns+" "+nx+" "+no+" "+nt+" "+nm, stats, x, old, target, mask),
		CheckDisjoint(op, ns, stats, nx+" "+no+" "+nt+" "+nm, x, old, target, mask),
		checkFinite(op, "clipEps scale", clipEps, scale)); err != nil {
		return 0, err
	}
	return n, nil
}

// PPOPolicyLoss checks Backend.PPOPolicyLoss and returns the token count.
func (k Checker) PPOPolicyLoss(dlogp, stats, logp, oldLogp, adv, mask *Tensor, clipEps, scale float32) (n int, err error) {
	return k.ppoLoss("ppo policy loss", [6]string{"dlogp", "stats", "logp", "oldLogp", "adv", "mask"}, 4, dlogp, stats, logp, oldLogp, adv, mask, clipEps, scale)
}

// PPOValueLoss checks Backend.PPOValueLoss and returns the token count.
func (k Checker) PPOValueLoss(dvalues, stats, values, oldValues, returns, mask *Tensor, clipEps, scale float32) (n int, err error) {
	return k.ppoLoss("ppo value loss", [6]string{"dvalues", "stats", "values", "oldValues", "returns", "mask"}, 3, dvalues, stats, values, oldValues, returns, mask, clipEps, scale)
}

// tokenGrid validates mask as [B,T] and returns B and T.
func (k Checker) tokenGrid(op string, mask *Tensor) (b, t int, err error) {
	if err := k.Tensor(op, "mask", mask, Float32); err != nil {
		return 0, 0, err
	}
	if mask.Rank() != 2 {
		return 0, 0, fmt.Errorf("%s: mask is %v, want [B,T]", op, mask)
	}
	return mask.Dim(0), mask.Dim(1), nil
}

// KLPenalizedRewards checks Backend.KLPenalizedRewards (kl may be nil) and
// returns B and T. The check bounds lastIdx to [0,T); that the mask is set
// at every lastIdx[b] is left to the backend, which reports a violation
// with KLLastIdxMaskError.
func (k Checker) KLPenalizedRewards(rewards, kl, logp, refLogp, mask, score, lastIdx *Tensor, beta float32, estimator int) (b, t int, checks []IndexCheck, err error) {
	const op = "kl-penalized rewards"
	if b, t, err = k.tokenGrid(op, mask); err != nil {
		return 0, 0, nil, err
	}
	if err := first(k.F32(op, "rewards logp refLogp score", rewards, logp, refLogp, score),
		k.Tensor(op, "lastIdx", lastIdx, Int32)); err != nil {
		return 0, 0, nil, err
	}
	if kl != nil {
		if err := k.Tensor(op, "kl", kl, Float32); err != nil {
			return 0, 0, nil, err
		}
		if err := first(CheckLen(op, b*t, "kl", kl),
			CheckDisjoint(op, "kl", kl, "rewards logp refLogp mask score", rewards, logp, refLogp, mask, score)); err != nil {
			return 0, 0, nil, err
		}
	}
	if err := first(
		CheckLen(op, b*t, "rewards logp refLogp", rewards, logp, refLogp),
		CheckLen(op, b, "score lastIdx", score, lastIdx),
		CheckDisjoint(op, "rewards", rewards, "logp refLogp mask score", logp, refLogp, mask, score),
		checkFinite(op, "beta", beta)); err != nil {
		return 0, 0, nil, err
	}
	if estimator != KLK1 && estimator != KLK3 {
		return 0, 0, nil, fmt.Errorf("%s: unknown KL estimator %d (want %d for k1 or %d for k3)", op, estimator, KLK1, KLK3)
	}
	tt := t
	checks = []IndexCheck{{T: lastIdx, Lo: 0, Hi: int64(t), Err: func(i int, v int32) error {
		return fmt.Errorf("%s: lastIdx[%d] = %d outside [0,%d)", op, i, v, tt)
	}}}
	return b, t, checks, nil
}

// KLLastIdxMaskError is the error of KLPenalizedRewards when lastIdx[seq]
// = pos points at a token outside the mask (the lowest such seq).
func KLLastIdxMaskError(seq int, pos int32) error {
	return fmt.Errorf("kl-penalized rewards: lastIdx[%d] = %d is not a response token (mask is 0 there)", seq, pos)
}

// GAE checks Backend.GAE and returns B and T.
func (k Checker) GAE(adv, returns, rewards, values, mask *Tensor, gamma, lambda float32) (b, t int, err error) {
	const op = "gae"
	if b, t, err = k.tokenGrid(op, mask); err != nil {
		return 0, 0, err
	}
	if err := k.F32(op, "adv returns rewards values", adv, returns, rewards, values); err != nil {
		return 0, 0, err
	}
	return b, t, first(
		CheckLen(op, b*t, "adv returns rewards values", adv, returns, rewards, values),
		CheckDisjoint(op, "adv", adv, "returns rewards values mask", returns, rewards, values, mask),
		CheckDisjoint(op, "returns", returns, "rewards values mask", rewards, values, mask),
		checkFinite(op, "gamma lambda", gamma, lambda))
}

// MaskedWhiten checks Backend.MaskedWhiten and returns the length.
func (k Checker) MaskedWhiten(x, mask *Tensor) (n int, err error) {
	const op = "masked whiten"
	if err := k.F32(op, "x mask", x, mask); err != nil {
		return 0, err
	}
	return x.Len(), first(CheckLen(op, x.Len(), "mask", mask), CheckDisjoint(op, "x", x, "mask", mask))
}
