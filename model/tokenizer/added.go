package tokenizer

import (
	"slices"
	"strings"
)

// addedToken is an entry of tokenizer.json's added_tokens: text matched
// whole before the BPE model runs.
type addedToken struct {
	content string
	id      int32
	special bool
}

// addedMatcher finds added tokens in text, leftmost first and longest
// among those starting at the same place, as Hugging Face does.
type addedMatcher struct {
	byFirst [256][]addedToken // by first byte, longest first
}

func newAddedMatcher(tokens []addedToken) *addedMatcher {
	m := &addedMatcher{}
	for _, t := range tokens {
		m.byFirst[t.content[0]] = append(m.byFirst[t.content[0]], t)
	}
	for _, ts := range &m.byFirst {
		slices.SortStableFunc(ts, func(a, b addedToken) int { return len(b.content) - len(a.content) })
	}
	return m
}

// split calls fn for each stretch of text in order: with id −1 for text
// between tokens (start is its byte offset), with the token's id for a
// match. With plainSpecial, special tokens are not matched.
func (m *addedMatcher) split(text string, plainSpecial bool, fn func(seg string, id int32, start int)) {
	gap := 0
	for i := 0; i < len(text); i++ {
		for _, t := range m.byFirst[text[i]] {
			if plainSpecial && t.special || !strings.HasPrefix(text[i:], t.content) {
				continue
			}
			if i > gap {
				fn(text[gap:i], -1, gap)
			}
			fn(t.content, t.id, i)
			gap = i + len(t.content)
			i = gap - 1
			break
		}
	}
	if gap < len(text) {
		fn(text[gap:], -1, gap)
	}
}
