package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The Split patterns of GPT-2, Llama 3 and Qwen2, as make_hf.py has them.
var testPatterns = map[string]string{
	"gpt2":   gpt2Pattern,
	"llama3": `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
	"qwen2":  `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`,
}

// pretokCase is a string and Hugging Face's split of it.
type pretokCase struct {
	in   string
	want []string
}

// readPretokCases reads expected.json's "pretok": by pattern name, random
// strings and how Hugging Face's Split cut them.
func readPretokCases(t testing.TB) map[string][]pretokCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "hf", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Pretok map[string][][2]json.RawMessage `json:"pretok"`
	}
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	out := map[string][]pretokCase{}
	for name, cases := range e.Pretok {
		for _, c := range cases {
			var pc pretokCase
			if err := json.Unmarshal(c[0], &pc.in); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(c[1], &pc.want); err != nil {
				t.Fatal(err)
			}
			out[name] = append(out[name], pc)
		}
	}
	return out
}

// TestPatternSplitMatchesOniguruma compares the lookahead-free rewrite of
// the patterns with Hugging Face's splits (Oniguruma, with lookahead and
// Unicode \s) of random strings rich in whitespace runs.
func TestPatternSplitMatchesOniguruma(t *testing.T) {
	all := readPretokCases(t)
	for name, src := range testPatterns {
		pt, err := compilePattern(src)
		if err != nil {
			t.Fatal(err)
		}
		cases := all[name]
		if len(cases) < 100 {
			t.Fatalf("%s: %d cases", name, len(cases))
		}
		trimmed := 0
		for _, c := range cases {
			in, want := c.in, c.want
			got := pt.split(in, nil)
			if !slices.Equal(got, want) {
				t.Errorf("%s: split(%q) = %q, want %q", name, in, got, want)
			}
			if strings.Join(got, "") != in {
				t.Errorf("%s: pieces of %q do not concatenate to it", name, in)
			}
			for i := 1; i < len(want); i++ {
				if strings.TrimSpace(want[i-1]) == "" && len(want[i-1]) > 1 && strings.HasPrefix(want[i], " ") {
					trimmed++
				}
			}
		}
		if trimmed == 0 {
			t.Errorf("%s: no case exercises the lookahead (a space run giving its last space to the next word)", name)
		}
	}
}

func TestPatternRefusesLookaround(t *testing.T) {
	for _, p := range []string{`a(?=b)`, `(?<!x)y`, `\s+(?!\S)`, `[\S]`, `(\s+(?!\S)|\s+)x`, `a\|\s+(?!\S)|\s+`} {
		if _, err := compilePattern(p); err == nil {
			t.Errorf("compilePattern(%q): no error", p)
		}
	}
}

// TestPatternUnicodeSpace checks the rewrite of \s: NBSP and U+3000 are
// whitespace, as in Oniguruma and unlike Go's \s.
func TestPatternUnicodeSpace(t *testing.T) {
	pt, err := compilePattern(testPatterns["llama3"])
	if err != nil {
		t.Fatal(err)
	}
	got := pt.split("a\u00a0\u00a0b\u3000c", nil)
	want := []string{"a", "\u00a0", "\u00a0b", "\u3000c"}
	if !slices.Equal(got, want) {
		t.Errorf("split = %q, want %q", got, want)
	}
}
