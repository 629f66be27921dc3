package train

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
)

// PPO data parallel: the rollout is sampled, scored and gathered as every
// RL method's (rollout_dist.go), its scoring filling the policy's and the
// reference's log-probs and the values; the update splits each minibatch
// (ppoDevice.update) and the ptx batch over the ranks.

// sampleShard samples and scores this rank's shard of a data-parallel
// rollout of prompts and returns the whole rollout, gathered, with the
// policy's and the reference's log-probs and the values of all its
// episodes in the device tensors, and the tokens sampled by all ranks.
// between sees this rank's scored episodes (the first being episode lo)
// before the gather.
func (p *PPOIteration) sampleShard(prompts [][]int32, s rolloutSampling, between func(ro *rollout, lo int) error) (*rollout, int, error) {
	d := p.dev
	sr := shardRollout{comm: p.comm, b: p.b, policy: p.ms.policy, Tmax: d.Tmax, shared: []*gpu.Tensor{d.oldLogp, d.refLogp, d.values}}
	return sr.run(prompts, s, func(loc *rollout, lo int) error {
		if err := d.scoreRolloutAt(p.ms, loc, lo*loc.T); err != nil {
			return fmt.Errorf("rollout: %w", err)
		}
		if between != nil {
			return between(loc, lo)
		}
		return nil
	})
}

// ppoStatShares are the shares and means of masked tokens in a PPO update
// step's slot (see globalStats): the surrogate's, and the value loss's
// clip fraction with its Σmask.
var ppoStatShares = append([][2]int{{statValue + 1, statValue + 2}}, surrogateShares...)
