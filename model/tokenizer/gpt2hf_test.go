package tokenizer

import (
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"testing"
)

// gpt2TokenizerJSON builds GPT-2's tokenizer.json from the built-in gpt2
// tokenizer (tiktoken's ranks): the vocabulary is each id's bytes in the
// byte alphabet, and the merge that made a token is found by running BPE
// on its bytes with the lower ranks only, which leaves its two halves.
// It gives a full-size vocabulary to check the loader against an
// independent implementation.
var gpt2TokenizerJSON = sync.OnceValues(func() ([]byte, error) {
	tok, err := New("gpt2")
	if err != nil {
		return nil, err
	}
	rank := make(map[string]int, gpt2EOS)
	pieces := make([]string, gpt2EOS)
	for id := range gpt2EOS {
		pieces[id] = tok.Decode([]int32{int32(id)})
		rank[pieces[id]] = id
	}
	vocab := map[string]int{}
	var merges [][2]string
	for id, p := range pieces {
		vocab[byteLevelString(p)] = id
		if len(p) < 2 {
			continue
		}
		parts := make([]string, len(p))
		for i := range len(p) {
			parts[i] = p[i : i+1]
		}
		for len(parts) > 2 {
			best, at := id, -1
			for i := 0; i+1 < len(parts); i++ {
				if r, ok := rank[parts[i]+parts[i+1]]; ok && r < best {
					best, at = r, i
				}
			}
			if at < 0 {
				break
			}
			parts = slices.Replace(parts, at, at+2, parts[at]+parts[at+1])
		}
		if len(parts) == 2 {
			merges = append(merges, [2]string{byteLevelString(parts[0]), byteLevelString(parts[1])})
		}
	}
	return json.Marshal(map[string]any{
		"added_tokens":  []any{map[string]any{"id": gpt2EOS, "content": EndOfText, "special": true}},
		"pre_tokenizer": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
		"decoder":       map[string]any{"type": "ByteLevel"},
		"model":         map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	})
})

func gpt2HF(t testing.TB) *HF {
	t.Helper()
	data, err := gpt2TokenizerJSON()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseHF(data, Specials{EOS: EndOfText})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestHFMatchesTiktokenGPT2 encodes with GPT-2's full vocabulary through
// the tokenizer.json loader and through tiktoken-go, on the multilingual
// text, the package's test texts and the random whitespace-heavy strings.
func TestHFMatchesTiktokenGPT2(t *testing.T) {
	hf := gpt2HF(t)
	ref := mustNew(t, "gpt2")
	if hf.VocabSize() != ref.VocabSize() || hf.EOS() != ref.EOS() {
		t.Fatalf("VocabSize %d EOS %d, want %d %d", hf.VocabSize(), hf.EOS(), ref.VocabSize(), ref.EOS())
	}
	if n := len(hf.model.merges); n != gpt2EOS-256 {
		t.Fatalf("%d merges recovered, want %d (one per token beyond the bytes)", n, gpt2EOS-256)
	}
	_, text := readExpected(t)
	inputs := append([]string{text, EndOfText + " x"}, texts...)
	inputs = append(inputs, strings.Split(text, "\n")...)
	for _, c := range readPretokCases(t)["gpt2"] {
		inputs = append(inputs, c.in)
	}
	for _, s := range inputs {
		got, want := hf.Encode(s), ref.Encode(s)
		if !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, tiktoken %v", s, got, want)
		}
		if d := hf.Decode(want); d != ref.Decode(want) {
			t.Errorf("Decode(%v) = %q, tiktoken %q", want, d, ref.Decode(want))
		}
	}
}

func BenchmarkHFEncodeGPT2Vocab(b *testing.B) {
	_, text := readExpected(b)
	tok := gpt2HF(b)
	n := 0
	for b.Loop() {
		n += len(tok.Encode(text))
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
}
