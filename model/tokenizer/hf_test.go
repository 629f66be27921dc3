package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The tokenizer.json files in testdata/hf were trained and saved by
// Hugging Face tokenizers (make_hf.py), which also wrote the ids it gives
// for multilingual.txt into expected.json.
var hfFiles = []string{"bl_gpt2.json", "bl_llama3.json", "bl_qwen2.json", "sp_llama2.json", "sp_metaspace.json"}

type hfExpected struct {
	Extra string `json:"extra"`
	Files map[string]struct {
		Plain   hfCase   `json:"plain"`
		Special hfCase   `json:"special"`
		Edges   []hfCase `json:"edges"`
	} `json:"files"`
}

// hfCase is a text (the multilingual one where absent), its ids and
// their decoding by Hugging Face tokenizers.
type hfCase struct {
	Text    string  `json:"text"`
	IDs     []int32 `json:"ids"`
	Decoded string  `json:"decoded"`
}

func readExpected(t testing.TB) (hfExpected, string) {
	t.Helper()
	var e hfExpected
	data, err := os.ReadFile(filepath.Join("testdata", "hf", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile(filepath.Join("testdata", "hf", "multilingual.txt"))
	if err != nil {
		t.Fatal(err)
	}
	return e, string(text) + e.Extra
}

// testSpecials are the special tokens of the test files, as their
// tokenizer_config.json would name them.
func testSpecials(name string) Specials {
	if strings.HasPrefix(name, "sp") {
		return Specials{BOS: "<s>", EOS: "</s>", AddBOS: true}
	}
	return Specials{EOS: "<|endoftext|>"}
}

func loadTestHF(t testing.TB, name string) *HF {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "hf", name))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := ParseHF(data, testSpecials(name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return tok
}

// TestHFMatchesTokenizers checks ids and decodings against those of
// Hugging Face tokenizers, special-token text plain and matched.
func TestHFMatchesTokenizers(t *testing.T) {
	exp, text := readExpected(t)
	for _, name := range hfFiles {
		tok := loadTestHF(t, name)
		for mode, enc := range map[string]func(string) []int32{"plain": tok.Encode, "special": tok.EncodeSpecial} {
			want := exp.Files[name].Plain
			if mode == "special" {
				want = exp.Files[name].Special
			}
			if len(want.IDs) == 0 {
				t.Fatalf("%s %s: no expected ids", name, mode)
			}
			got := enc(text)
			if !slices.Equal(got, want.IDs) {
				i := 0
				for i < min(len(got), len(want.IDs)) && got[i] == want.IDs[i] {
					i++
				}
				t.Errorf("%s %s: %d ids, want %d; first difference at %d: got %v want %v (after %q)", name, mode,
					len(got), len(want.IDs), i, got[i:min(i+6, len(got))], want.IDs[i:min(i+6, len(want.IDs))],
					tok.Decode(got[max(0, i-4):i]))
			}
			if dec := tok.Decode(want.IDs); dec != want.Decoded {
				t.Errorf("%s %s: Decode = %q, want %q", name, mode, dec, want.Decoded)
			}
		}
		edges := exp.Files[name].Edges
		if len(edges) < 10 {
			t.Fatalf("%s: %d edge cases", name, len(edges))
		}
		for _, c := range edges {
			if got := tok.EncodeSpecial(c.Text); !slices.Equal(got, c.IDs) {
				t.Errorf("%s: EncodeSpecial(%q) = %v, want %v", name, c.Text, got, c.IDs)
			}
			if got := tok.Decode(c.IDs); got != c.Decoded {
				t.Errorf("%s: Decode(%v) = %q, want %q", name, c.IDs, got, c.Decoded)
			}
		}
	}
}

// TestHFRoundTrip decodes the encoding back to the text: exactly for the
// byte-level files, after NFC for Qwen2's, and with the text's own "▁"
// read as spaces for the SentencePiece-style files (as SentencePiece
// does). Invalid UTF-8 survives through the byte alphabet and through byte
// fallback.
func TestHFRoundTrip(t *testing.T) {
	_, text := readExpected(t)
	invalid := "ok \xff\xfe \xe6\x97 end"
	for _, name := range hfFiles {
		tok := loadTestHF(t, name)
		want := text
		if strings.HasPrefix(name, "sp") {
			want = strings.ReplaceAll(text, "▁", " ")
		}
		if name == "bl_qwen2.json" {
			want = norm.NFC.String(text)
		} else if got := tok.Decode(tok.Encode(invalid)); got != invalid {
			t.Errorf("%s: round trip of invalid UTF-8 gave %q", name, got)
		}
		if got := tok.Decode(tok.Encode(text)); got != want {
			t.Errorf("%s: round trip differs:\n got %q\nwant %q", name, got, want)
		}
		for _, s := range texts {
			if name == "bl_qwen2.json" {
				s = norm.NFC.String(s)
			}
			ids := tok.Encode(s)
			if got := tok.Decode(ids); got != s {
				t.Errorf("%s: Decode(Encode(%q)) = %q", name, s, got)
			}
			for _, id := range ids {
				if id < 0 || int(id) >= tok.VocabSize() {
					t.Errorf("%s: Encode(%q) produced id %d", name, s, id)
				}
			}
		}
	}
}

// TestHFTokenByToken checks that byte-level decodings of single tokens,
// which cut multi-byte characters, concatenate to the text.
func TestHFTokenByToken(t *testing.T) {
	_, text := readExpected(t)
	tok := loadTestHF(t, "bl_llama3.json")
	var sb strings.Builder
	cut := false
	for _, id := range tok.Encode(text) {
		p := tok.Decode([]int32{id})
		cut = cut || !utf8.ValidString(p)
		sb.WriteString(p)
	}
	if sb.String() != text {
		t.Errorf("token-by-token decode differs from the text")
	}
	if !cut {
		t.Error("no token cut a character")
	}
}

func TestHFSpecialTokens(t *testing.T) {
	for _, name := range hfFiles {
		tok := loadTestHF(t, name)
		sp := testSpecials(name)
		eos, ok := tok.TokenID(sp.EOS)
		if !ok || tok.EOS() != eos || tok.Pad() != eos {
			t.Errorf("%s: EOS %d Pad %d, want %d (%s)", name, tok.EOS(), tok.Pad(), eos, sp.EOS)
		}
		if bos, ok := tok.BOS(); ok != (sp.BOS != "") || ok && tok.Decode([]int32{bos}) != sp.BOS {
			t.Errorf("%s: BOS %d %v", name, bos, ok)
		}
		s := "x" + sp.EOS + "y"
		if ids := tok.Encode(s); slices.Contains(ids, eos) {
			t.Errorf("%s: Encode(%q) = %v forged EOS", name, s, ids)
		}
		if ids := tok.EncodeSpecial(s); !slices.Contains(ids, eos) {
			t.Errorf("%s: EncodeSpecial(%q) = %v has no EOS", name, s, ids)
		}
		// The non-special added token is matched in both modes.
		tool, ok := tok.TokenID("<tool>")
		if !ok {
			if tool, ok = tok.TokenID("▁<tool>"); !ok {
				t.Fatalf("%s: no <tool> token", name)
			}
		}
		if ids := tok.Encode("use <tool> now"); !slices.Contains(ids, tool) {
			t.Errorf("%s: Encode did not match the added token <tool>: %v", name, ids)
		}
		if got := tok.Decode([]int32{-1, int32(tok.VocabSize())}); got != "\uFFFD\uFFFD" {
			t.Errorf("%s: Decode of invalid ids = %q", name, got)
		}
	}
	var _ SpecialEncoder = loadTestHF(t, "bl_gpt2.json")
}

func TestHFRefusals(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "hf", "bl_llama3.json"))
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(m map[string]any)) []byte {
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		f(m)
		out, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	model := func(m map[string]any) map[string]any { return m["model"].(map[string]any) }
	for _, c := range []struct {
		name string
		data []byte
		sp   Specials
		want string
	}{
		{"unigram", edit(func(m map[string]any) { model(m)["type"] = "Unigram" }), testSpecials("bl"), `"Unigram"`},
		{"dropout", edit(func(m map[string]any) { model(m)["dropout"] = 0.1 }), testSpecials("bl"), "dropout"},
		{"lookbehind", edit(func(m map[string]any) {
			m["pre_tokenizer"] = map[string]any{"type": "Split", "pattern": map[string]any{"Regex": `(?<=a)b`}, "behavior": "Isolated", "invert": false}
		}), testSpecials("bl"), "lookaround"},
		{"normalizer", edit(func(m map[string]any) { m["normalizer"] = map[string]any{"type": "BertNormalizer"} }), testSpecials("bl"), `"BertNormalizer"`},
		{"lstrip", edit(func(m map[string]any) { m["added_tokens"].([]any)[0].(map[string]any)["lstrip"] = true }), testSpecials("bl"), "lstrip"},
		{"bad merge", edit(func(m map[string]any) { model(m)["merges"] = []any{"Ġ zzzz"} }), testSpecials("bl"), "merge 0"},
		{"no eos", data, Specials{}, "eos_token"},
		{"unknown eos", data, Specials{EOS: "</s>"}, `"</s>"`},
		{"not json", []byte("{"), testSpecials("bl"), "tokenizer.json"},
	} {
		_, err := ParseHF(c.data, c.sp)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want one mentioning %s", c.name, err, c.want)
		}
	}
}

// TestHFNormalizedSpecials: special tokens marked normalized (as in some
// Llama conversions) are matched in normalized text, in their normalized
// form, and still found by their content.
func TestHFNormalizedSpecials(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "hf", "sp_llama2.json"))
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(data, &j); err != nil {
		t.Fatal(err)
	}
	for _, a := range j["added_tokens"].([]any) {
		a.(map[string]any)["normalized"] = true
	}
	if data, err = json.Marshal(j); err != nil {
		t.Fatal(err)
	}
	tok, err := ParseHF(data, testSpecials("sp"))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := os.ReadFile(filepath.Join("testdata", "hf", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Cases []hfCase `json:"sp_llama2_normalized_specials"`
	}
	if err := json.Unmarshal(raw, &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Cases) < 10 {
		t.Fatalf("%d cases", len(e.Cases))
	}
	for _, c := range e.Cases {
		if got := tok.EncodeSpecial(c.Text); !slices.Equal(got, c.IDs) {
			t.Errorf("EncodeSpecial(%.40q) = %v, want %v", c.Text, got, c.IDs)
		}
		if got := tok.Decode(c.IDs); got != c.Decoded {
			t.Errorf("Decode(%.40q's ids) = %q, want %q", c.Text, got, c.Decoded)
		}
	}
	if bos, ok := tok.BOS(); !ok || bos != 1 {
		t.Errorf("BOS = %d, %v; want 1", bos, ok)
	}
}
