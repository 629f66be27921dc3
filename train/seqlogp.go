package train

import (
	"fmt"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train/data"
)

// A response's sequence log-probability log π(y|x) is the sum, over the
// response's tokens, of the log-probability the language model gives each
// token after the prompt and the response's tokens before it. Prompt tokens
// and padding carry none (TRL's DPO masks the prompt the same way). The
// model's per-token log-probs are float32; the sums are float64 on the host.

// responseBatch is a comparison batch laid out for the LM head: one row per
// response, targets on the response tokens only.
type responseBatch struct {
	*data.ComparisonBatch
	// sums are the rows' sequence log-probs after forward.
	sums []float64
}

// newResponseBatch lays out the comparisons cs[idx...] with, at position t
// of a row, the target token t+1 when that token belongs to the response,
// −1 elsewhere. Every comparison must have a prompt and every response a
// token after it.
func newResponseBatch(cs []data.ComparisonTokens, idx []int, pad int32) (*responseBatch, error) {
	cb := data.NewComparisonBatch(cs, idx, pad)
	T := cb.T
	cb.Targets = make([]int32, cb.B*T)
	for i := range cb.Targets {
		cb.Targets[i] = -1
	}
	for gi, g := range cb.Groups {
		c := &cs[cb.Examples[gi]]
		for k, seq := range c.Responses {
			if c.PromptLen < 1 || len(seq) <= c.PromptLen {
				return nil, fmt.Errorf("comparison %d, response %d: %d tokens after a prompt of %d; a sequence log-prob needs a prompt and a response", c.Source, k, len(seq)-c.PromptLen, c.PromptLen)
			}
			row := cb.Targets[(g.Start+k)*T : (g.Start+k+1)*T]
			for t := c.PromptLen - 1; t+1 < len(seq); t++ {
				row[t] = seq[t+1]
			}
		}
	}
	return &responseBatch{ComparisonBatch: cb}, nil
}

// forward runs m over the batch (train: keeping what Backward needs; the
// model must have no dropout then, see NewDPOStep; else in pieces of the
// model's MaxBatch, forwardPieces) and sets rb.sums; logp is a host buffer
// of at least B·T floats, left holding the per-token log-probs.
func (rb *responseBatch) forward(m *model.Model, train bool, logp []float32) error {
	n := rb.B * rb.T
	if len(logp) < n {
		return fmt.Errorf("sequence log-probs: a buffer of %d for %d×%d tokens", len(logp), rb.B, rb.T)
	}
	read := func(lo, hi int) error { return m.Backend().Download(logp[lo*rb.T:hi*rb.T], m.LogProbs()) }
	if !train {
		if err := forwardPieces(m, &rb.Batch, read); err != nil {
			return err
		}
	} else if err := m.Forward(&rb.Batch, true, 0); err != nil {
		return err
	} else if err := read(0, rb.B); err != nil {
		return err
	}
	rb.sums = make([]float64, rb.B)
	for i, t := range rb.Targets {
		if t >= 0 {
			rb.sums[i/rb.T] += float64(logp[i])
		}
	}
	return nil
}

// SequenceLogProbs returns log π(y|x) under m of every response of cs, by
// comparison and response: m forwards without dropout in micro-batches of
// at most maxRows responses and budget padded tokens (a comparison's
// responses together, shortest comparisons first), each in pieces of the
// model's MaxBatch rows. m must hold the longest comparison.
func SequenceLogProbs(m *model.Model, cs []data.ComparisonTokens, pad int32, maxRows, budget int) ([][]float64, error) {
	out := make([][]float64, len(cs))
	idx := make([]int, len(cs))
	for i := range idx {
		idx[i] = i
	}
	logp := make([]float32, max(maxRows, m.MaxBatch())*m.MaxSeq())
	for _, sub := range microBatches(cs, idx, maxRows, budget) {
		rb, err := newResponseBatch(cs, sub, pad)
		if err != nil {
			return nil, fmt.Errorf("sequence log-probs: %w", err)
		}
		if err := rb.forward(m, false, logp); err != nil {
			return nil, fmt.Errorf("sequence log-probs: %w", err)
		}
		for gi, g := range rb.Groups {
			out[rb.Examples[gi]] = rb.sums[g.Start : g.Start+g.K]
		}
	}
	return out, nil
}
