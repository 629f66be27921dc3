//go:build cuda

package cuda

import (
	"github.com/instructgo/instructgo/gpu"
)

// The PPO math (kernels/ppo.cu): PPOPolicyLoss, PPOValueLoss,
// KLPenalizedRewards, GAE and MaskedWhiten. The losses and the whitening
// reduce deterministically, with one double per block and component in the
// scratch buffer and a fixed-order second stage; nothing is read back to the
// host (the stats stay on the device until the caller downloads them).

// ppoThreads is the block size of the PPO reduction kernels.
const ppoThreads = 256

// ppoBlocks is the grid of a PPO reduction over n tokens: about four tokens
// per thread, at least one block (an empty op still writes its stats), at
// most 512. It depends on n alone, so results are reproducible.
func ppoBlocks(n int) int { return min(max((n+4*ppoThreads-1)/(4*ppoThreads), 1), 512) }

// PPOPolicyLoss implements gpu.Backend.
func (b *Backend) PPOPolicyLoss(dlogp, stats, logp, oldLogp, adv, mask *gpu.Tensor, clipEps, scale float32) {
	if b.err != nil {
		return
	}
	n, err := b.checker.PPOPolicyLoss(dlogp, stats, logp, oldLogp, adv, mask, clipEps, scale)
	if b.fail(err) {
		return
	}
	b.ppoLoss("ppo_policy_loss", 4, n, dlogp, stats, logp, oldLogp, adv, mask, clipEps, scale)
}

// PPOValueLoss implements gpu.Backend.
func (b *Backend) PPOValueLoss(dvalues, stats, values, oldValues, returns, mask *gpu.Tensor, clipEps, scale float32) {
	if b.err != nil {
		return
	}
	n, err := b.checker.PPOValueLoss(dvalues, stats, values, oldValues, returns, mask, clipEps, scale)
	if b.fail(err) {
		return
	}
	b.ppoLoss("ppo_value_loss", 3, n, dvalues, stats, values, oldValues, returns, mask, clipEps, scale)
}

// ppoLoss launches a loss kernel writing ncomp rows of partial sums and
// ppo_stats_finish turning them into the stats.
func (b *Backend) ppoLoss(kernel string, ncomp, n int, grad, stats, x, old, target, mask *gpu.Tensor, clipEps, scale float32) {
	g := ppoBlocks(n)
	partial := b.scratch(8 * ncomp * g)
	if b.err != nil {
		return
	}
	// Launched for n = 0 too: its partials (zeros) feed the stats.
	b.launch(kernel, grid1(g), block1(ppoThreads), 0,
		b.ptr(grad), partial, b.ptr(x), b.ptr(old), b.ptr(target), b.ptr(mask), int64(n), clipEps, scale)
	b.launch("ppo_stats_finish", grid1(1), block1(ppoThreads), 0,
		partial, i32(g), i32(ncomp), scale, b.ptr(stats))
}

// KLPenalizedRewards implements gpu.Backend. The range of lastIdx and the
// mask at each lastIdx are checked on the device before the rewards kernel
// runs (see ops_state.go); the rewards kernel writes nothing after a failed
// check.
func (b *Backend) KLPenalizedRewards(rewards, kl, logp, refLogp, mask, score, lastIdx *gpu.Tensor, beta float32, estimator int) {
	const op = "kl-penalized rewards"
	if b.err != nil {
		return
	}
	nb, nt, checks, err := b.checker.KLPenalizedRewards(rewards, kl, logp, refLogp, mask, score, lastIdx, beta, estimator)
	if b.fail(err) || nb == 0 || b.fail(fitsInt32(op, nb, nt)) || !b.runChecks(checks) {
		return
	}
	code := b.checkCode(func(i int, v int32) error { return gpu.KLLastIdxMaskError(i, v) })
	flag := b.flagPtr()
	b.launch("ppo_kl_check_last", grid1((nb+127)/128), block1(128), 0,
		b.ptr(mask), b.ptr(lastIdx), i32(nb), i32(nt), code, flag)
	b.launch("ppo_kl_rewards", ewGrid(nb*nt, ewThreads), block1(ewThreads), 0,
		b.ptr(rewards), b.ptr(kl), b.ptr(logp), b.ptr(refLogp), b.ptr(mask), b.ptr(score), b.ptr(lastIdx),
		i32(nb), i32(nt), beta, int32(estimator), flag)
}

// GAE implements gpu.Backend: one block of one warp per sequence.
func (b *Backend) GAE(adv, returns, rewards, values, mask *gpu.Tensor, gamma, lambda float32) {
	const op = "gae"
	if b.err != nil {
		return
	}
	nb, nt, err := b.checker.GAE(adv, returns, rewards, values, mask, gamma, lambda)
	if b.fail(err) || nb == 0 || nt == 0 || b.fail(fitsInt32(op, nb, nt)) {
		return
	}
	b.launch("ppo_gae", grid1(nb), block1(32), 0,
		b.ptr(adv), b.ptr(returns), b.ptr(rewards), b.ptr(values), b.ptr(mask), i32(nt), gamma, lambda)
}

// MaskedWhiten implements gpu.Backend: the masked sum and count, the
// squared deviations from the mean, then the elementwise update, three
// launches over the same grid sharing 3 rows of partials.
func (b *Backend) MaskedWhiten(x, mask *gpu.Tensor, shiftMean bool) {
	if b.err != nil {
		return
	}
	n, err := b.checker.MaskedWhiten(x, mask)
	if b.fail(err) || n == 0 {
		return
	}
	g := ppoBlocks(n)
	partial := b.scratch(8 * 3 * g)
	if b.err != nil {
		return
	}
	px, pm := b.ptr(x), b.ptr(mask)
	b.launch("ppo_whiten_sum", grid1(g), block1(ppoThreads), 0, px, pm, int64(n), partial)
	b.launch("ppo_whiten_sqdev", grid1(g), block1(ppoThreads), 0, px, pm, int64(n), partial)
	b.launch("ppo_whiten_apply", grid1(g), block1(ppoThreads), 0, px, pm, int64(n), partial, bool32(shiftMean))
}
