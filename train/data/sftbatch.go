package data

import "github.com/instructgo/instructgo/model"

// SFTBatch is a batch of demonstrations: a model.Batch of B sequences of
// T positions, row-major, each right-padded with the encoder's Pad, whose
// Targets are the next-token labels at completion positions only: at
// position t the token at t+1 when that token belongs to the completion,
// else −1 (prompt, the last position of a sequence, padding). So the
// position holding the last prompt token predicts the first completion
// token, and the one holding the last completion token predicts nothing.
type SFTBatch struct {
	model.Batch
	// Examples are the indices of the sequences in the SFTTokens slice.
	Examples []int
	// LossTokens is the number of targets that are not −1.
	LossTokens int
}

// NewSFTBatch lays out the examples ex[idx[0]], ex[idx[1]], ... as a batch
// with T the longest of them.
func NewSFTBatch(ex []SFTTokens, idx []int, pad int32) *SFTBatch {
	T := 0
	for _, i := range idx {
		T = max(T, len(ex[i].Tokens))
	}
	B := len(idx)
	b := &SFTBatch{
		Batch:    model.Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T), ValidLen: make([]int32, B)},
		Examples: append([]int(nil), idx...),
	}
	for r, i := range idx {
		seq, p := ex[i].Tokens, ex[i].PromptLen
		tok, tgt := b.Tokens[r*T:(r+1)*T], b.Targets[r*T:(r+1)*T]
		copy(tok, seq)
		for t := range T {
			if t >= len(seq) {
				tok[t] = pad
			}
			if t+1 < len(seq) && t+1 >= p {
				tgt[t] = seq[t+1]
				b.LossTokens++
			} else {
				tgt[t] = -1
			}
		}
		b.ValidLen[r] = int32(len(seq))
	}
	return b
}

// SFTItems describes tokenised demonstrations to a Batcher: one row each.
func SFTItems(ex []SFTTokens) []Item {
	items := make([]Item, len(ex))
	for i, e := range ex {
		items[i] = Item{Rows: 1, Len: len(e.Tokens)}
	}
	return items
}

// SFTBatcher is a Batcher over tokenised demonstrations that returns laid
// out batches. Pos, Seek and EpochBatches are the Batcher's.
type SFTBatcher struct {
	*Batcher
	examples []SFTTokens
	pad      int32
}

// NewSFTBatcher returns an SFTBatcher over ex, padding with pad.
func NewSFTBatcher(ex []SFTTokens, pad int32, opt BatchOptions) (*SFTBatcher, error) {
	b, err := NewBatcher(SFTItems(ex), opt)
	if err != nil {
		return nil, err
	}
	return &SFTBatcher{Batcher: b, examples: ex, pad: pad}, nil
}

// Next returns the next batch.
func (s *SFTBatcher) Next() *SFTBatch {
	return NewSFTBatch(s.examples, s.Batcher.Next(), s.pad)
}
