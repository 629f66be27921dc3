package data

import (
	"fmt"
	"slices"

	"github.com/instructgo/instructgo/model/tokenizer"
)

// SFTTokens is a tokenised demonstration: the prompt's tokens, then the
// completion's, then EOS (unless the completion was cut).
type SFTTokens struct {
	Tokens    []int32
	PromptLen int // Tokens[:PromptLen] is the prompt, Tokens[PromptLen:] the completion
	Source    int // index of the example in the slice given to TokenizeSFT
}

// ComparisonTokens is a tokenised Comparison: one sequence per response,
// each the shared prompt's tokens, the response's, then EOS (unless the
// response was cut). The reward model reads its score at the last token.
type ComparisonTokens struct {
	Responses [][]int32
	PromptLen int // every Responses[k][:PromptLen] is the same prompt
	Ranking   []int
	Margin    float64
	Source    int // index of the comparison in the slice given to TokenizeComparisons
}

// MaxLen is the length of the longest response sequence.
func (c *ComparisonTokens) MaxLen() int {
	n := 0
	for _, r := range c.Responses {
		n = max(n, len(r))
	}
	return n
}

// TruncStats counts what tokenisation did to fit examples into maxLen.
type TruncStats struct {
	Examples int // examples given
	Kept     int // examples returned
	// Dropped examples had no prompt or completion token left (see
	// TokenizeSFT): with maxLen ≥ 2 only when the encoder returned no
	// token for the prompt.
	Dropped             int
	PromptTruncated     int // kept examples whose prompt lost tokens
	CompletionTruncated int // kept examples with a completion (or any response) that lost tokens
	// Identical counts kept comparisons in which two responses have the
	// same tokens (as written, or after truncation): those pairs carry no
	// signal.
	Identical int
	Longest   int // longest sequence before truncation, EOS included
}

func (s TruncStats) String() string {
	msg := fmt.Sprintf("%d of %d examples kept, %d dropped; %d prompts and %d completions truncated; longest %d tokens",
		s.Kept, s.Examples, s.Dropped, s.PromptTruncated, s.CompletionTruncated, s.Longest)
	if s.Identical > 0 {
		msg += fmt.Sprintf("; %d with identical responses", s.Identical)
	}
	return msg
}

// fit applies the truncation rule to a prompt of p tokens and completions
// of c[k] tokens (EOS included), all sharing the prompt; it returns how
// many prompt tokens (from the end) and completion tokens (from the start)
// to keep. See TokenizeSFT for the rule.
func fit(p int, c []int, maxLen int) (keepP int, keepC []int) {
	limit := max(maxLen-p, maxLen/2)
	keepC = make([]int, len(c))
	longest := 0
	for k, n := range c {
		keepC[k] = max(0, min(n, limit))
		longest = max(longest, keepC[k])
	}
	return max(0, min(p, maxLen-longest)), keepC
}

// TokenizeSFT tokenises examples as prompt tokens + completion tokens +
// EOS and fits each into maxLen tokens by this rule, with P the prompt's
// length and C the completion's (EOS included):
//
//  1. If P + C ≤ maxLen nothing is cut.
//  2. Otherwise the completion is cut from the right to
//     min(C, max(maxLen − P, ⌊maxLen/2⌋)) tokens: it keeps all the room
//     the prompt leaves, and at least half of maxLen (or all of itself).
//     A cut completion loses its EOS, so the model never learns to stop
//     where the text did not.
//  3. Then the prompt is cut from the left to maxLen − (kept completion)
//     tokens if it is longer: the end of the prompt, next to the
//     completion, is kept.
//
// An example with no prompt token or no completion token left is dropped
// and counted: with maxLen ≥ 2 that only happens when the encoder returns
// no token for the prompt (a completion always has EOS). Everything that
// lost tokens is counted in TruncStats.
//
// Prompt and completion are encoded separately, so the boundary between
// them is a token boundary whatever the tokenizer. The prompt starts a
// sequence (tokenizer.EncodeStart: BOS where Hugging Face adds it), and a
// prompt cut from the left keeps that start token in place of its first
// kept one.
func TokenizeSFT(examples []SFTExample, enc tokenizer.Tokenizer, maxLen int) ([]SFTTokens, TruncStats) {
	st := TruncStats{Examples: len(examples)}
	out := make([]SFTTokens, 0, len(examples))
	eos := enc.EOS()
	for i, ex := range examples {
		prompt := tokenizer.EncodeStart(enc, ex.Prompt)
		completion := append(enc.Encode(ex.Completion), eos)
		p, c := len(prompt), len(completion)
		st.Longest = max(st.Longest, p+c)
		keepP, keepC := fit(p, []int{c}, maxLen)
		if keepP == 0 || keepC[0] == 0 {
			st.Dropped++
			continue
		}
		if keepP < p {
			st.PromptTruncated++
		}
		if keepC[0] < c {
			st.CompletionTruncated++
		}
		seq := make([]int32, 0, keepP+keepC[0])
		seq = append(seq, keepStart(enc, prompt, keepP)...)
		seq = append(seq, completion[:keepC[0]]...)
		out = append(out, SFTTokens{Tokens: seq, PromptLen: keepP, Source: i})
	}
	st.Kept = len(out)
	return out, st
}

// TokenizeComparisons tokenises comparisons as one sequence per response:
// prompt tokens + response tokens + EOS, fitted into maxLen by
// TokenizeSFT's rule with the responses sharing one prompt cut: each
// response is cut from the right to at most max(maxLen − P, ⌊maxLen/2⌋)
// tokens, then the prompt from the left to maxLen − (longest kept
// response), so that every sequence starts with the same prompt tokens.
// A comparison in which the prompt or any response has no token left is
// dropped and counted.
func TokenizeComparisons(cs []Comparison, enc tokenizer.Tokenizer, maxLen int) ([]ComparisonTokens, TruncStats) {
	st := TruncStats{Examples: len(cs)}
	out := make([]ComparisonTokens, 0, len(cs))
	eos := enc.EOS()
	for i, c := range cs {
		prompt := tokenizer.EncodeStart(enc, c.Prompt)
		p := len(prompt)
		resp := make([][]int32, len(c.Responses))
		lens := make([]int, len(c.Responses))
		for k, r := range c.Responses {
			resp[k] = append(enc.Encode(r), eos)
			lens[k] = len(resp[k])
			st.Longest = max(st.Longest, p+lens[k])
		}
		keepP, keepC := fit(p, lens, maxLen)
		if keepP == 0 || slices.Contains(keepC, 0) {
			st.Dropped++
			continue
		}
		if keepP < p {
			st.PromptTruncated++
		}
		ct := ComparisonTokens{
			Responses: make([][]int32, len(resp)),
			PromptLen: keepP,
			Ranking:   slices.Clone(c.Ranking),
			Margin:    c.Margin,
			Source:    i,
		}
		cut := false
		kept := keepStart(enc, prompt, keepP)
		for k, r := range resp {
			cut = cut || keepC[k] < lens[k]
			seq := make([]int32, 0, keepP+keepC[k])
			seq = append(seq, kept...)
			ct.Responses[k] = append(seq, r[:keepC[k]]...)
		}
		if cut {
			st.CompletionTruncated++
		}
		if hasDuplicate(ct.Responses) {
			st.Identical++
		}
		out = append(out, ct)
	}
	st.Kept = len(out)
	return out, st
}

// keepStart is the last keep tokens of prompt (encoded by
// tokenizer.EncodeStart), the first of them the tokenizer's start token
// again when the cut removed it: a sequence still starts as the model
// expects.
func keepStart(enc tokenizer.Tokenizer, prompt []int32, keep int) []int32 {
	kept := prompt[len(prompt)-keep:]
	if start, ok := tokenizer.StartID(enc); ok && keep < len(prompt) && prompt[0] == start {
		kept = append([]int32{start}, kept[1:]...)
	}
	return kept
}

func hasDuplicate(seqs [][]int32) bool {
	for i := range seqs {
		for j := i + 1; j < len(seqs); j++ {
			if slices.Equal(seqs[i], seqs[j]) {
				return true
			}
		}
	}
	return false
}
