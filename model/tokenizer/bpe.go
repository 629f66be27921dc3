package tokenizer

import (
	"sync"
	"unicode/utf8"
)

// bpe is a byte-pair-encoding model as Hugging Face tokenizers runs it: a
// word starts as one symbol per character (or, for a character outside the
// vocabulary, its <0xNN> byte tokens or the unknown token), then the
// adjacent pair with the lowest merge rank is merged, leftmost first, until
// no pair has a merge.
type bpe struct {
	vocab  map[string]int32
	merges map[uint64]merge // by pair of ids
	unk    int32            // -1: none
	// fuseUnk makes consecutive unknown characters one unknown token.
	fuseUnk bool
	// byteIDs are the ids of <0x00>..<0xFF> when the model falls back to
	// bytes for characters outside its vocabulary; nil otherwise.
	byteIDs *[256]int32
	// ignoreMerges takes a word found whole in the vocabulary as one
	// token without merging (Llama 3).
	ignoreMerges bool

	mu    sync.Mutex
	cache map[string][]int32 // words seen, up to cacheSize
}

// merge is the result of merging a pair: its priority and the new id.
type merge struct{ rank, id int32 }

func pairKey(a, b int32) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

// Cache bounds: words longer than cacheMaxWord bytes (SentencePiece-style
// models see whole lines as one word) are not kept; the cache is emptied
// when it reaches cacheSize words.
const (
	cacheSize    = 1 << 16
	cacheMaxWord = 64
)

// encodeWord appends the ids of one pre-tokenized word to out.
func (m *bpe) encodeWord(word string, out []int32) []int32 {
	if word == "" {
		return out
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(out, id)
		}
	}
	cacheable := len(word) <= cacheMaxWord
	if cacheable {
		m.mu.Lock()
		ids, ok := m.cache[word]
		m.mu.Unlock()
		if ok {
			return append(out, ids...)
		}
	}
	ids := m.merge(m.symbols(word))
	if cacheable {
		m.mu.Lock()
		if len(m.cache) >= cacheSize {
			clear(m.cache)
		}
		m.cache[word] = ids
		m.mu.Unlock()
	}
	return append(out, ids...)
}

// symbols is the word before any merge.
func (m *bpe) symbols(word string) []int32 {
	syms := make([]int32, 0, len(word))
	for i, r := range word {
		size := utf8.RuneLen(r)
		if r == utf8.RuneError {
			_, size = utf8.DecodeRuneInString(word[i:])
		}
		ch := word[i : i+size]
		if id, ok := m.vocab[ch]; ok {
			syms = append(syms, id)
			continue
		}
		if m.byteIDs != nil {
			for j := range len(ch) {
				syms = append(syms, m.byteIDs[ch[j]])
			}
			continue
		}
		if m.unk < 0 {
			continue // no unknown token: the character is dropped
		}
		if m.fuseUnk && len(syms) > 0 && syms[len(syms)-1] == m.unk {
			continue
		}
		syms = append(syms, m.unk)
	}
	return syms
}

// merge applies the merges to syms by rank, leftmost first among equal
// ranks, with a heap of candidate pairs checked when popped.
func (m *bpe) merge(syms []int32) []int32 {
	n := len(syms)
	if n < 2 {
		return syms
	}
	next := make([]int32, n) // index of the next live symbol, n at the end
	prev := make([]int32, n) // index of the previous live symbol, -1 first
	for i := range n {
		next[i], prev[i] = int32(i+1), int32(i-1)
	}
	h := make(pairHeap, 0, n)
	push := func(l, r int32) {
		if l < 0 || int(r) >= n {
			return
		}
		if mg, ok := m.merges[pairKey(syms[l], syms[r])]; ok {
			h.push(candidate{rank: mg.rank, left: l, right: r, leftID: syms[l], rightID: syms[r], id: mg.id})
		}
	}
	for i := range n - 1 {
		push(int32(i), int32(i+1))
	}
	dead := make([]bool, n)
	for len(h) > 0 {
		c := h.pop()
		l, r := c.left, c.right
		if dead[l] || dead[r] || next[l] != r || syms[l] != c.leftID || syms[r] != c.rightID {
			continue // stale: one side was merged since
		}
		syms[l] = c.id
		dead[r] = true
		next[l] = next[r]
		if int(next[r]) < n {
			prev[next[r]] = l
		}
		push(prev[l], l)
		push(l, next[l])
	}
	out := make([]int32, 0, n)
	for i := 0; i < n; i = int(next[i]) {
		out = append(out, syms[i])
	}
	return out
}

// candidate is a pair that may merge.
type candidate struct {
	rank, left, right   int32
	leftID, rightID, id int32
}

// pairHeap is a binary min-heap of candidates by rank, then position
// (typed, to keep the interface boxing of container/heap out of the
// merge loop).
type pairHeap []candidate

func (c candidate) before(d candidate) bool {
	if c.rank != d.rank {
		return c.rank < d.rank
	}
	return c.left < d.left
}

func (h *pairHeap) push(c candidate) {
	*h = append(*h, c)
	s := *h
	for i := len(s) - 1; i > 0; {
		p := (i - 1) / 2
		if !s[i].before(s[p]) {
			break
		}
		s[i], s[p] = s[p], s[i]
		i = p
	}
}

func (h *pairHeap) pop() candidate {
	s := *h
	top := s[0]
	last := len(s) - 1
	s[0] = s[last]
	s = s[:last]
	for i := 0; ; {
		l, r, m := 2*i+1, 2*i+2, i
		if l < len(s) && s[l].before(s[m]) {
			m = l
		}
		if r < len(s) && s[r].before(s[m]) {
			m = r
		}
		if m == i {
			break
		}
		s[i], s[m] = s[m], s[i]
		i = m
	}
	*h = s
	return top
}
