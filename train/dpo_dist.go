package train

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train/data"
)

// DPO data parallel (see dist.go for the rule every method follows). The
// frozen reference's sequence log-probs, computed once at the start, are
// split over the ranks: each computes those of its contiguous shard of
// the training and of the held-out comparisons, and the ranks gather them
// exactly (sums of buffers each rank fills at its comparisons and zeroes
// elsewhere), so every rank holds them all and rank 0 writes them. A step
// then takes each rank's shard of the global batch of prompts, weighs
// every prompt by the global count, sums the policy's gradient once
// before the AdamW step, and sums the loss and the implicit-reward
// metrics over the ranks (DPOStep.Run).

// sequenceLogProbsOverRanks is SequenceLogProbs of cs, each rank of c
// computing its contiguous shard of the comparisons, gathered on every
// rank. A shard cut into its own micro-batches pads its rows to other
// lengths than one process does, which a backend may round differently
// (a few float32 ulps of a token's log-prob); one rank is
// SequenceLogProbs.
func sequenceLogProbsOverRanks(c gpu.Comm, m *model.Model, cs []data.ComparisonTokens, pad int32, maxRows, budget int) ([][]float64, error) {
	if !distributed(c) {
		return SequenceLogProbs(m, cs, pad, maxRows, budget)
	}
	lo, hi := gpu.Shard(len(cs), c.Rank(), c.Size())
	part, err := SequenceLogProbs(m, cs[lo:hi], pad, maxRows, budget)
	if err != nil {
		return nil, err
	}
	off := make([]int, len(cs)+1)
	for i, ct := range cs {
		off[i+1] = off[i] + len(ct.Responses)
	}
	buf := make([]float64, off[len(cs)])
	for i, lp := range part {
		copy(buf[off[lo+i]:off[lo+i+1]], lp)
	}
	sum, err := gpu.SumOverRanks(c, buf...)
	if err != nil {
		return nil, fmt.Errorf("gather the sequence log-probs: %w", err)
	}
	out := make([][]float64, len(cs))
	for i := range cs {
		out[i] = sum[off[i]:off[i+1]:off[i+1]]
	}
	return out, nil
}
