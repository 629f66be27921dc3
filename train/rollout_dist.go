package train

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
)

// The RL methods' rollouts data parallel (PPO, GRPO, RLOO; see dist.go
// for the rule every method follows). Each rank samples and scores its
// contiguous shard of an iteration's episodes: whole seed groups of a
// minibatch's episodes (the group size one process's policy has), each
// sampled with its global group index, so an episode's tokens do not
// depend on the number of ranks. The rank's policy, reference and reward
// model hold only its shard of a minibatch (shardCap): it decodes a group
// in one batch (the KV cache holds a group) and prefills and scores it in
// pieces of its models' MaxBatch. The ranks then
// gather the rollout (its host rows and the scoring's per-token tensors)
// by summing buffers that each rank fills at its rows and zeroes
// elsewhere, an exact sum: every rank then holds the one process's
// rollout, and what follows from it (advantages, their whitening, the KL,
// the rollout's metrics) is the one process's, computed alike on every
// rank. The updates split each global minibatch's rows over the ranks,
// weigh the losses by the global minibatch's episode and token counts,
// and sum the gradients before each AdamW step; the update's statistics
// are summed over the ranks once, at its end (globalStats).

// episodeShard is this rank's episodes [lo, hi) of a rollout of E: whole
// groups of group episodes (the policy's sampling seed groups), and lo's
// group index.
func episodeShard(c gpu.Comm, E, group int) (lo, hi, g0 int) {
	groups := (E + group - 1) / group
	g0, g1 := gpu.Shard(groups, c.Rank(), c.Size())
	return min(E, g0*group), min(E, g1*group), g0
}

// maxOverRanks is the largest of every rank's n.
func maxOverRanks(c gpu.Comm, n int) (int, error) {
	all, err := c.AllGather([]float64{float64(n)})
	if err != nil {
		return 0, err
	}
	m := 0
	for _, v := range all {
		m = max(m, int(v))
	}
	return m, nil
}

// shardRollout is where a data-parallel rollout is sampled and scored:
// the ranks, the policy that samples, the longest row the models hold,
// and the per-token tensors of the whole rollout that the scoring fills
// at this rank's rows and the gather sums over the ranks.
type shardRollout struct {
	comm   gpu.Comm
	b      gpu.Backend
	policy *model.Model
	Tmax   int
	shared []*gpu.Tensor // each at least E·T elements
}

// run samples this rank's shard of a rollout of prompts, lays it out with
// the ranks' common row length T, zeroes the first E·T elements of the
// shared tensors, lets score fill this rank's rows (the first being
// episode lo, at element lo·T) and their raw scores, and returns the
// whole rollout, gathered, and the tokens sampled by all ranks.
func (s shardRollout) run(prompts [][]int32, sampling rolloutSampling, score func(loc *rollout, lo int) error) (*rollout, int, error) {
	c, E := s.comm, len(prompts)
	if sampling.seedGroup <= 0 {
		return nil, 0, fmt.Errorf("rollout: a data-parallel rollout needs its seed group size")
	}
	lo, hi, g0 := episodeShard(c, E, sampling.seedGroup)
	sampling.seedGroup0 = g0
	ep := &episodes{}
	if hi > lo {
		var err error
		if ep, err = sampleEpisodes(s.policy, prompts[lo:hi], sampling); err != nil {
			return nil, 0, fmt.Errorf("rollout: %w", err)
		}
	}
	T, err := maxOverRanks(c, ep.T)
	if err != nil {
		return nil, 0, fmt.Errorf("rollout: agree on the row length: %w", err)
	}
	if T > s.Tmax {
		return nil, 0, fmt.Errorf("rollout rows of %d tokens exceed the models' %d", T, s.Tmax)
	}
	loc := ep.layout(T, sampling.pad)
	n := E * T
	for _, t := range s.shared {
		s.b.Fill(t.MustView(0, n), 0)
	}
	if loc.E > 0 {
		if err := score(loc, lo); err != nil {
			return nil, 0, err
		}
	}
	ro, err := gatherRollout(c, loc, lo, E)
	if err != nil {
		return nil, 0, err
	}
	for _, t := range s.shared {
		if err := c.AllReduceSum(t.MustView(0, n)); err != nil {
			return nil, 0, fmt.Errorf("gather the rollout's scores: %w", err)
		}
	}
	tokens, err := gpu.SumOverRanks(c, float64(ep.genTokens))
	if err != nil {
		return nil, 0, err
	}
	return ro, int(tokens[0]), s.b.Err()
}

// The host fields of a rollout row that gatherRollout sums: tokens and
// targets [T] each, then these.
const (
	rowValidLen = iota
	rowLastIdx
	rowResponseLen
	rowEOS
	rowRawScore
	rowScalars
)

// gatherRollout returns the rollout of E episodes whose rows lo.. are loc
// (this rank's, laid out with the ranks' common T and scored) on every
// rank: each rank writes its rows into a zeroed buffer, and the sum over
// the ranks is every row exactly (token ids are exact in float64). The
// mask follows from the targets; the sampled tokens stay with the rank
// that sampled them.
func gatherRollout(c gpu.Comm, loc *rollout, lo, E int) (*rollout, error) {
	sum, err := gpu.SumOverRanks(c, packRows(loc, lo, E)...)
	if err != nil {
		return nil, fmt.Errorf("gather the rollout: %w", err)
	}
	return unpackRows(sum, E, loc.T), nil
}

// packRows is loc's rows at rows lo.. of a zeroed buffer of E rows: each
// row's tokens and targets [T], then its rowScalars.
func packRows(loc *rollout, lo, E int) []float64 {
	T := loc.T
	width := 2*T + rowScalars
	buf := make([]float64, E*width)
	for i := range loc.E {
		row := buf[(lo+i)*width : (lo+i+1)*width]
		for j := range T {
			row[j], row[T+j] = float64(loc.tokens[i*T+j]), float64(loc.targets[i*T+j])
		}
		s := row[2*T:]
		s[rowValidLen], s[rowLastIdx], s[rowResponseLen] = float64(loc.validLen[i]), float64(loc.lastIdx[i]), float64(loc.responseLen[i])
		if loc.eos[i] {
			s[rowEOS] = 1
		}
		s[rowRawScore] = float64(loc.rawScores[i])
	}
	return buf
}

// unpackRows is the rollout of E episodes of T tokens that packRows' sums
// over the ranks hold.
func unpackRows(sum []float64, E, T int) *rollout {
	width := 2*T + rowScalars
	ro := &rollout{E: E, T: T, tokens: make([]int32, E*T), targets: make([]int32, E*T), mask: make([]float32, E*T),
		validLen: make([]int32, E), lastIdx: make([]int32, E), rawScores: make([]float32, E), scores: make([]float32, E),
		responseLen: make([]int, E), eos: make([]bool, E)}
	for i := range E {
		row := sum[i*width : (i+1)*width]
		for j := range T {
			ro.tokens[i*T+j], ro.targets[i*T+j] = int32(row[j]), int32(row[T+j])
			if ro.targets[i*T+j] >= 0 {
				ro.mask[i*T+j] = 1
			}
		}
		s := row[2*T:]
		ro.validLen[i], ro.lastIdx[i], ro.responseLen[i] = int32(s[rowValidLen]), int32(s[rowLastIdx]), int(s[rowResponseLen])
		ro.eos[i] = s[rowEOS] != 0
		ro.rawScores[i] = float32(s[rowRawScore])
	}
	return ro
}

// minibatchShard is this rank's rows [r0, r1) of minibatch i of mb
// episodes (all of them in one process).
func minibatchShard(c gpu.Comm, i, mb int) (r0, r1 int) {
	rank, size := 0, 1
	if distributed(c) {
		rank, size = c.Rank(), c.Size()
	}
	lo, hi := gpu.Shard(mb, rank, size)
	return i*mb + lo, i*mb + hi
}

// surrogateShares are the statistics of PPOPolicyLoss, as an update
// step's slot holds them from offset 0 (PPO's and the group methods'),
// that are shares or means of the masked tokens: the clip fraction and
// the approximate KL, each with the slot's Σmask, which weighs it.
var surrogateShares = [][2]int{{1, 3}, {2, 3}}

// globalStats turns an update's statistics, steps slots of width as each
// rank computed them on its shards, into the global minibatches' on every
// rank: the sums (the losses, Σ entropy, the token counts) are summed, and
// the shares and means of masked tokens (weighted: pairs of a statistic
// and the count that weighs it, offsets in a slot) are summed weighted by
// each rank's token count and divided by the global count.
func globalStats(c gpu.Comm, stats []float64, steps, width int, weighted [][2]int) error {
	for i := range steps {
		s := stats[i*width : (i+1)*width]
		for _, w := range weighted {
			s[w[0]] *= s[w[1]]
		}
	}
	sum, err := gpu.SumOverRanks(c, stats[:steps*width]...)
	if err != nil {
		return fmt.Errorf("sum the update's statistics: %w", err)
	}
	copy(stats, sum)
	for i := range steps {
		s := stats[i*width : (i+1)*width]
		for _, w := range weighted {
			if s[w[1]] > 0 {
				s[w[0]] /= s[w[1]]
			}
		}
	}
	return nil
}
