package data

import (
	"slices"

	"github.com/instructgo/instructgo/model"
)

// ComparisonBatch is a batch of comparisons for the reward model: a
// model.Batch whose rows are right-padded with Pad and which has no
// Targets (the scalar head is read at ValidLen−1). Every response of a
// comparison is one row, and a comparison's K rows are consecutive, so all
// K·(K−1)/2 pairs of a prompt are scored from K forward rows, as
// InstructGPT does.
type ComparisonBatch struct {
	model.Batch
	// Groups are the comparisons, in row order.
	Groups []ComparisonGroup
	// Examples are the indices of the comparisons in the
	// ComparisonTokens slice.
	Examples []int
}

// ComparisonGroup is one comparison in a batch: rows Start..Start+K−1 hold
// its responses in their original order.
type ComparisonGroup struct {
	Start, K int
	Ranking  []int // response indices 0..K−1, best first
	Margin   float64
}

// Pairs returns the group's K·(K−1)/2 (better, worse) pairs as batch rows.
// InstructGPT weights each by 1/(K·(K−1)/2), so that every prompt counts
// once in the loss whatever its K.
func (g ComparisonGroup) Pairs() [][2]int {
	var out [][2]int
	for i := range g.Ranking {
		for j := i + 1; j < len(g.Ranking); j++ {
			out = append(out, [2]int{g.Start + g.Ranking[i], g.Start + g.Ranking[j]})
		}
	}
	return out
}

// NewComparisonBatch lays out the comparisons cs[idx[0]], cs[idx[1]], ...
// as a batch with T the longest response sequence among them.
func NewComparisonBatch(cs []ComparisonTokens, idx []int, pad int32) *ComparisonBatch {
	B, T := 0, 0
	for _, i := range idx {
		B += len(cs[i].Responses)
		T = max(T, cs[i].MaxLen())
	}
	b := &ComparisonBatch{
		Batch:    model.Batch{B: B, T: T, Tokens: make([]int32, B*T), ValidLen: make([]int32, B)},
		Groups:   make([]ComparisonGroup, 0, len(idx)),
		Examples: append([]int(nil), idx...),
	}
	row := 0
	for _, i := range idx {
		c := &cs[i]
		b.Groups = append(b.Groups, ComparisonGroup{
			Start: row, K: len(c.Responses), Ranking: slices.Clone(c.Ranking), Margin: c.Margin,
		})
		for _, seq := range c.Responses {
			tok := b.Tokens[row*T : (row+1)*T]
			copy(tok, seq)
			for t := len(seq); t < T; t++ {
				tok[t] = pad
			}
			b.ValidLen[row] = int32(len(seq))
			row++
		}
	}
	return b
}
