package train

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
)

// PPO data parallel (see dist.go for the rule every method follows). Each
// rank samples and scores its contiguous shard of an iteration's episodes:
// whole seed groups of the policy's MaxBatch, each sampled with its global
// group index, so an episode's tokens do not depend on the number of
// ranks. The ranks then gather the rollout (its host rows and the scoring's
// per-token tensors) by summing buffers that each rank fills at its rows
// and zeroes elsewhere, an exact sum: every rank then holds the one
// process's rollout, and the advantages, their whitening, the KL sum and
// the rollout's metrics are the one process's, computed alike on every
// rank. The update splits each global minibatch's rows over the ranks,
// weighs the losses by the global minibatch's episode and token counts,
// and sums the policy's and the value function's gradients before each
// AdamW step; the ptx term takes each rank's shard of the global ptx
// batch. The update's statistics are summed over the ranks once, at its
// end.

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

// sampleShard samples and scores this rank's shard of a data-parallel
// rollout of prompts and returns the whole rollout, gathered, with the
// policy's and the reference's log-probs and the values of all its
// episodes in the device tensors, and the tokens sampled by all ranks.
// between sees this rank's scored episodes (the first being episode lo)
// before the gather.
func (p *PPOIteration) sampleShard(prompts [][]int32, s rolloutSampling, between func(ro *rollout, lo int) error) (*rollout, int, error) {
	c, d, E := p.comm, p.dev, len(prompts)
	group := p.ms.policy.MaxBatch()
	lo, hi, g0 := episodeShard(c, E, group)
	s.seedGroup0 = g0
	ep := &episodes{}
	if hi > lo {
		var err error
		if ep, err = sampleEpisodes(p.ms.policy, prompts[lo:hi], s); err != nil {
			return nil, 0, fmt.Errorf("rollout: %w", err)
		}
	}
	T, err := maxOverRanks(c, ep.T)
	if err != nil {
		return nil, 0, fmt.Errorf("rollout: agree on the row length: %w", err)
	}
	if T > d.Tmax {
		return nil, 0, fmt.Errorf("rollout rows of %d tokens exceed the models' %d", T, d.Tmax)
	}
	loc := ep.layout(T, s.pad)
	n := E * T
	shared := []*gpu.Tensor{d.oldLogp.MustView(0, n), d.refLogp.MustView(0, n), d.values.MustView(0, n)}
	for _, t := range shared {
		p.b.Fill(t, 0)
	}
	if loc.E > 0 {
		if err := d.scoreRolloutAt(p.ms, loc, lo*T); err != nil {
			return nil, 0, fmt.Errorf("rollout: %w", err)
		}
	}
	if between != nil {
		if err := between(loc, lo); err != nil {
			return nil, 0, err
		}
	}
	ro, err := gatherRollout(c, loc, lo, E)
	if err != nil {
		return nil, 0, err
	}
	for _, t := range shared {
		if err := c.AllReduceSum(t); err != nil {
			return nil, 0, fmt.Errorf("gather the rollout's scores: %w", err)
		}
	}
	tokens, err := gpu.SumOverRanks(c, float64(ep.genTokens))
	if err != nil {
		return nil, 0, err
	}
	return ro, int(tokens[0]), p.b.Err()
}

// globalStats turns the update's statistics, steps slots of ppoStatWidth
// as each rank computed them on its shards, into the global minibatches'
// on every rank: the sums (the losses, Σ entropy, the ptx loss, the
// token counts) are summed, and the shares and means of masked tokens
// (the clip fractions, the approximate KL) are summed weighted by each
// rank's token count and divided by the global count.
func globalStats(c gpu.Comm, stats []float64, steps int) error {
	weighted := [][2]int{{statPolicy + 1, statPolicy + 3}, {statPolicy + 2, statPolicy + 3}, {statValue + 1, statValue + 2}}
	for i := range steps {
		s := stats[i*ppoStatWidth : (i+1)*ppoStatWidth]
		for _, w := range weighted {
			s[w[0]] *= s[w[1]]
		}
	}
	sum, err := gpu.SumOverRanks(c, stats[:steps*ppoStatWidth]...)
	if err != nil {
		return fmt.Errorf("sum the update's statistics: %w", err)
	}
	copy(stats, sum)
	for i := range steps {
		s := stats[i*ppoStatWidth : (i+1)*ppoStatWidth]
		for _, w := range weighted {
			if s[w[1]] > 0 {
				s[w[0]] /= s[w[1]]
			}
		}
	}
	return nil
}
