package tokenizer

import (
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
)

// referenceMerge is BPE by its definition: repeatedly merge the leftmost
// of the adjacent pairs with the lowest rank, scanning the whole word.
func referenceMerge(m *bpe, syms []int32) []int32 {
	syms = slices.Clone(syms)
	for {
		best, at := merge{rank: -1}, -1
		for i := 0; i+1 < len(syms); i++ {
			mg, ok := m.merges[pairKey(syms[i], syms[i+1])]
			if ok && (at < 0 || mg.rank < best.rank) {
				best, at = mg, i
			}
		}
		if at < 0 {
			return syms
		}
		syms = slices.Replace(syms, at, at+2, best.id)
	}
}

// TestBPEMergeMatchesReference compares the heap-driven merge with the
// definition on random words over the test vocabularies (long words too:
// SentencePiece-style models merge whole lines).
func TestBPEMergeMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 5))
	for _, name := range []string{"bl_llama3.json", "sp_llama2.json"} {
		m := loadTestHF(t, name).model
		var chars []int32
		for tok, id := range m.vocab {
			if len([]rune(tok)) == 1 {
				chars = append(chars, id)
			}
		}
		slices.Sort(chars)
		// Words built from the left and right halves of merges, so that
		// many pairs merge and merges compete.
		keys := slices.Sorted(maps.Keys(m.merges))
		parts := make([][]int32, len(keys))
		for i, k := range keys {
			parts[i] = []int32{int32(k >> 32), int32(uint32(k))}
		}
		merged := 0
		for range 2000 {
			var w []int32
			for range 1 + rng.IntN(40) {
				if rng.IntN(3) == 0 {
					w = append(w, chars[rng.IntN(len(chars))])
				} else {
					w = append(w, parts[rng.IntN(len(parts))]...)
				}
			}
			want := referenceMerge(m, w)
			got := m.merge(slices.Clone(w))
			if !slices.Equal(got, want) {
				t.Fatalf("%s: merge(%v) = %v, want %v", name, w, got, want)
			}
			if len(got) < len(w) {
				merged++
			}
		}
		if merged < 1000 {
			t.Errorf("%s: only %d of 2000 words merged anything", name, merged)
		}
	}
}
