package data

import (
	"errors"
	"fmt"
)

// Item is what the Batcher knows of an example: how many sequences (rows)
// it puts into a batch and the length of the longest.
type Item struct {
	Rows, Len int
}

// BatchOptions sets how a Batcher groups examples. At least one of
// TokenBudget and MaxBatch must be set.
type BatchOptions struct {
	// TokenBudget bounds a batch's padded size B·T (rows times the longest
	// row); 0 means no bound.
	TokenBudget int
	// MaxBatch bounds a batch's rows B (a comparison of K responses takes
	// K rows); 0 means no bound.
	MaxBatch int
	// Seed seeds the shuffle; epoch e is visited in the order
	// permutation(seed, e).
	Seed uint64
	// Sequential visits examples in their given order every epoch, without
	// shuffling (evaluation).
	Sequential bool
}

// Position is where a Batcher is: the epoch (epochs completed before it)
// and the index, in that epoch's order, of the next example. Saving it and
// Seeking back to it resumes the exact sequence of batches.
type Position struct {
	Epoch int `json:"epoch"`
	Next  int `json:"next"`
}

// Batcher cuts a dataset into batches, epoch after epoch. Each epoch it
// shuffles the examples (seeded by BatchOptions.Seed and the epoch number)
// and then fills batches greedily in that order: a batch takes the next
// example while its rows times its longest row stays within TokenBudget
// and its rows within MaxBatch, and ends at the first example that does
// not fit (nothing is skipped or reordered) or at the end of the epoch (no
// batch spans two epochs, so the last of an epoch may be small). Batches
// are a function of (options, position) alone, so they are deterministic
// and resumable. A Batcher is not safe for concurrent use.
type Batcher struct {
	items []Item
	opt   BatchOptions
	order []int
	pos   Position
}

// NewBatcher returns a Batcher over items at epoch 0. Every item must fit
// in a batch on its own: an item over the budget is an error, not a silent
// drop.
func NewBatcher(items []Item, opt BatchOptions) (*Batcher, error) {
	if len(items) == 0 {
		return nil, errors.New("batcher: no examples")
	}
	if opt.TokenBudget < 0 || opt.MaxBatch < 0 {
		return nil, fmt.Errorf("batcher: negative token budget %d or batch size %d", opt.TokenBudget, opt.MaxBatch)
	}
	if opt.TokenBudget == 0 && opt.MaxBatch == 0 {
		return nil, errors.New("batcher: neither a token budget nor a batch size set")
	}
	for i, it := range items {
		switch {
		case it.Rows < 1 || it.Len < 1:
			return nil, fmt.Errorf("batcher: example %d has %d sequences of up to %d tokens", i, it.Rows, it.Len)
		case opt.MaxBatch > 0 && it.Rows > opt.MaxBatch:
			return nil, fmt.Errorf("batcher: example %d has %d sequences, more than the batch size %d", i, it.Rows, opt.MaxBatch)
		case opt.TokenBudget > 0 && it.Rows*it.Len > opt.TokenBudget:
			return nil, fmt.Errorf("batcher: example %d (%d sequences × %d tokens) exceeds the token budget %d", i, it.Rows, it.Len, opt.TokenBudget)
		}
	}
	b := &Batcher{items: items, opt: opt}
	b.order = b.epochOrder(0)
	return b, nil
}

// Len is the number of examples in an epoch.
func (b *Batcher) Len() int { return len(b.items) }

// Pos returns the current position.
func (b *Batcher) Pos() Position { return b.pos }

// Seek moves to a position saved from Pos (of a Batcher over the same
// items and options).
func (b *Batcher) Seek(p Position) error {
	if p.Epoch < 0 || p.Next < 0 || p.Next > len(b.items) {
		return fmt.Errorf("batcher: position epoch %d, example %d outside an epoch of %d", p.Epoch, p.Next, len(b.items))
	}
	if p.Next == len(b.items) {
		p = Position{Epoch: p.Epoch + 1}
	}
	if p.Epoch != b.pos.Epoch {
		b.order = b.epochOrder(p.Epoch)
	}
	b.pos = p
	return nil
}

// Next returns the indices (into the items) of the next batch, never
// empty, and moves past it; after an epoch's last batch the position is
// the start of the next epoch.
func (b *Batcher) Next() []int {
	end := b.fill(b.order, b.pos.Next)
	idx := append([]int(nil), b.order[b.pos.Next:end]...)
	b.pos.Next = end
	if end == len(b.order) {
		b.pos = Position{Epoch: b.pos.Epoch + 1}
		b.order = b.epochOrder(b.pos.Epoch)
	}
	return idx
}

// EpochBatches is the number of batches in the given epoch.
func (b *Batcher) EpochBatches(epoch int) int {
	order := b.order
	if epoch != b.pos.Epoch {
		order = b.epochOrder(epoch)
	}
	n := 0
	for i := 0; i < len(order); n++ {
		i = b.fill(order, i)
	}
	return n
}

// fill returns the end of the batch that starts at order[start].
func (b *Batcher) fill(order []int, start int) int {
	rows, T := 0, 0
	end := start
	for end < len(order) {
		it := b.items[order[end]]
		r, t := rows+it.Rows, max(T, it.Len)
		if end > start && (b.opt.MaxBatch > 0 && r > b.opt.MaxBatch ||
			b.opt.TokenBudget > 0 && r*t > b.opt.TokenBudget) {
			break
		}
		rows, T = r, t
		end++
	}
	return end
}

func (b *Batcher) epochOrder(epoch int) []int {
	if b.opt.Sequential {
		order := make([]int, len(b.items))
		for i := range order {
			order[i] = i
		}
		return order
	}
	return permutation(len(b.items), b.opt.Seed, uint64(epoch))
}
