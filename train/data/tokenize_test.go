package data

import (
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"
)

// testEOS and testPad follow the byte ids of testEnc.
const (
	testEOS int32 = 256
	testPad int32 = 257
)

// testEnc is a byte-level encoder that drops '_', so that a text can
// encode to nothing.
type testEnc struct{}

func (testEnc) Encode(s string) []int32 {
	var ids []int32
	for i := range len(s) {
		if s[i] != '_' {
			ids = append(ids, int32(s[i]))
		}
	}
	return ids
}
func (testEnc) EOS() int32                { return testEOS }
func (testEnc) Pad() int32                { return testPad }
func (testEnc) Name() string              { return "test" }
func (testEnc) VocabSize() int            { return 258 }
func (testEnc) Decode(ids []int32) string { panic("testEnc: Decode is not used") }

// toks encodes s; a '|' in it stands for EOS.
func toks(s string) []int32 {
	ids := make([]int32, len(s))
	for i := range len(s) {
		ids[i] = int32(s[i])
		if s[i] == '|' {
			ids[i] = testEOS
		}
	}
	return ids
}

func TestTokenizeSFTTruncation(t *testing.T) {
	ex := []SFTExample{
		{Prompt: "abc", Completion: "de"},               // 3+3 fits in 8
		{Prompt: "abcd", Completion: "efg"},             // 4+4: exactly 8
		{Prompt: "ab", Completion: "cdefghij"},          // 2+9: completion cut to max(8−2, 4) = 6
		{Prompt: "abcdefghij", Completion: "xy"},        // 10+3: completion kept, prompt cut to 8−3 = 5 from the left
		{Prompt: "abcdefghij", Completion: "uvwxyz"},    // 10+7: completion cut to max(−2, 4) = 4, prompt to 4
		{Prompt: "__", Completion: "c"},                 // prompt encodes to nothing: dropped
		{Prompt: "abcdefgh", Completion: "abcdefghijk"}, // 8+12: both to 4
	}
	got, st := TokenizeSFT(ex, testEnc{}, 8)
	want := []SFTTokens{
		{Tokens: toks("abcde|"), PromptLen: 3, Source: 0},
		{Tokens: toks("abcdefg|"), PromptLen: 4, Source: 1},
		{Tokens: toks("abcdefgh"), PromptLen: 2, Source: 2},
		{Tokens: toks("fghijxy|"), PromptLen: 5, Source: 3},
		{Tokens: toks("ghijuvwx"), PromptLen: 4, Source: 4},
		{Tokens: toks("efghabcd"), PromptLen: 4, Source: 6},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	wantSt := TruncStats{Examples: 7, Kept: 6, Dropped: 1, PromptTruncated: 3, CompletionTruncated: 3, Longest: 20}
	if st != wantSt {
		t.Errorf("stats %+v, want %+v", st, wantSt)
	}

	// An odd maxLen floors the completion's share: 10+7 into 7 keeps 3 and 4.
	got, _ = TokenizeSFT(ex[4:5], testEnc{}, 7)
	if want := toks("ghijuvw"); !slices.Equal(got[0].Tokens, want) || got[0].PromptLen != 4 {
		t.Errorf("maxLen 7: %v", got[0])
	}
	// Nothing fits in fewer than 2 tokens: everything is dropped and counted.
	for _, maxLen := range []int{1, 0, -3} {
		got, st = TokenizeSFT(ex, testEnc{}, maxLen)
		if len(got) != 0 || st.Dropped != len(ex) || st.Kept != 0 {
			t.Errorf("maxLen %d: %d kept, stats %+v", maxLen, len(got), st)
		}
	}
	// maxLen 2: one prompt token and one completion token.
	got, _ = TokenizeSFT(ex[4:5], testEnc{}, 2)
	if want := toks("ju"); !slices.Equal(got[0].Tokens, want) || got[0].PromptLen != 1 {
		t.Errorf("maxLen 2: %v", got[0])
	}
}

// TestTokenizeSFTRule checks the stated rule on random lengths.
func TestTokenizeSFTRule(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	letters := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return string(b)
	}
	for range 2000 {
		maxLen := 2 + rng.IntN(40)
		P, C := 1+rng.IntN(60), rng.IntN(60) // C is without EOS
		ex := SFTExample{Prompt: letters(P), Completion: letters(C)}
		got, st := TokenizeSFT([]SFTExample{ex}, testEnc{}, maxLen)
		if len(got) != 1 {
			t.Fatalf("P %d C %d maxLen %d: dropped", P, C, maxLen)
		}
		seq, p := got[0].Tokens, got[0].PromptLen
		c := len(seq) - p
		full := append(toks(ex.Prompt), toks(ex.Completion)...)
		full = append(full, testEOS)
		switch {
		case P+C+1 <= maxLen:
			if !slices.Equal(seq, full) || p != P || st.PromptTruncated+st.CompletionTruncated != 0 {
				t.Fatalf("P %d C %d maxLen %d: cut although it fits", P, C, maxLen)
			}
		default:
			if len(seq) != maxLen {
				t.Fatalf("P %d C %d maxLen %d: %d tokens, want exactly maxLen", P, C, maxLen, len(seq))
			}
			wantC := min(C+1, max(maxLen-P, maxLen/2))
			if c != wantC || p != maxLen-wantC {
				t.Fatalf("P %d C %d maxLen %d: kept %d+%d, want %d+%d", P, C, maxLen, p, c, maxLen-wantC, wantC)
			}
		}
		if !slices.Equal(seq[:p], full[P-p:P]) || !slices.Equal(seq[p:], full[P:P+c]) {
			t.Fatalf("P %d C %d maxLen %d: kept the wrong ends", P, C, maxLen)
		}
		if (p < P) != (st.PromptTruncated == 1) || (c < C+1) != (st.CompletionTruncated == 1) || st.Longest != P+C+1 {
			t.Fatalf("P %d C %d maxLen %d: stats %+v", P, C, maxLen, st)
		}
	}
}

func TestTokenizeComparisons(t *testing.T) {
	cs := []Comparison{
		{Prompt: "abcdefghij", Responses: []string{"xy", "uvwxyz"}, Ranking: []int{1, 0}, Margin: 0.5},
		{Prompt: "ab", Responses: []string{"cdefghij", "cdefghik", "z"}, Ranking: []int{2, 0, 1}},
		{Prompt: "p", Responses: []string{"a", "b"}, Ranking: []int{0, 1}},
		{Prompt: "__", Responses: []string{"a", "b"}, Ranking: []int{0, 1}},
		{Prompt: "p", Responses: []string{"same", "same"}, Ranking: []int{0, 1}},
	}
	got, st := TokenizeComparisons(cs, testEnc{}, 8)
	want := []ComparisonTokens{
		// Responses of 3 and 7 tokens: cut to at most max(8−10, 4) = 4;
		// the prompt, shared, to 8 − 4.
		{Responses: [][]int32{toks("ghijxy|"), toks("ghijuvwx")}, PromptLen: 4, Ranking: []int{1, 0}, Margin: 0.5, Source: 0},
		// Both long responses cut to 6 tokens: they become identical.
		{Responses: [][]int32{toks("abcdefgh"), toks("abcdefgh"), toks("abz|")}, PromptLen: 2, Ranking: []int{2, 0, 1}, Source: 1},
		{Responses: [][]int32{toks("pa|"), toks("pb|")}, PromptLen: 1, Ranking: []int{0, 1}, Source: 2},
		{Responses: [][]int32{toks("psame|"), toks("psame|")}, PromptLen: 1, Ranking: []int{0, 1}, Source: 4},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	wantSt := TruncStats{Examples: 5, Kept: 4, Dropped: 1, PromptTruncated: 1, CompletionTruncated: 2, Identical: 2, Longest: 17}
	if st != wantSt {
		t.Errorf("stats %+v, want %+v", st, wantSt)
	}
	if got[0].MaxLen() != 8 || got[2].MaxLen() != 3 {
		t.Errorf("MaxLen %d %d", got[0].MaxLen(), got[2].MaxLen())
	}
	// The ranking is copied, not shared with the input.
	got[0].Ranking[0] = 7
	if cs[0].Ranking[0] != 1 {
		t.Error("ranking shared with the input")
	}
	if s := st.String(); s != "4 of 5 examples kept, 1 dropped; 1 prompts and 2 completions truncated; longest 17 tokens; 2 with identical responses" {
		t.Errorf("String: %s", s)
	}
}
