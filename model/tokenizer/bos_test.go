package tokenizer

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// withPostProcessor returns the test file name with its post_processor
// replaced by pp.
func withPostProcessor(t *testing.T, name string, pp json.RawMessage) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "hf", name))
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]json.RawMessage
	if err := json.Unmarshal(data, &j); err != nil {
		t.Fatal(err)
	}
	j["post_processor"] = pp
	out, err := json.Marshal(j)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestHFEncodeStartMatchesTokenizers: EncodeStart gives the ids of Hugging
// Face's tokenizer(text) (add_special_tokens) with Llama 3's post-processor
// and Llama 2's, from expected.json (make_hf.py), and Llama 2's through
// add_bos_token alone; a tokenizer with neither adds nothing.
func TestHFEncodeStartMatchesTokenizers(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "hf", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var exp struct {
		Start map[string]struct {
			PostProcessor json.RawMessage `json:"post_processor"`
			Cases         []hfCase        `json:"cases"`
		} `json:"start"`
	}
	if err := json.Unmarshal(raw, &exp); err != nil {
		t.Fatal(err)
	}
	if len(exp.Start) != 2 {
		t.Fatalf("expected.json has %d start cases, want 2 (run make_hf.py)", len(exp.Start))
	}
	for name, e := range exp.Start {
		sp := testSpecials(name)
		sp.AddBOS = false // the post-processor alone
		viaPP, err := ParseHF(withPostProcessor(t, name, e.PostProcessor), sp)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		toks := map[string]Tokenizer{"post_processor": viaPP}
		if strings.HasPrefix(name, "sp") {
			toks["add_bos_token"] = loadTestHF(t, name) // testSpecials sets AddBOS
		}
		for how, tok := range toks {
			for _, c := range e.Cases {
				if got := EncodeStart(tok, c.Text); !slices.Equal(got, c.IDs) {
					t.Errorf("%s (%s): %q: %v, tokenizers %v", name, how, c.Text, got, c.IDs)
				}
			}
		}
		plain := loadTestHF(t, name)
		plain.start = -1
		if _, ok := StartID(plain); ok {
			t.Fatalf("%s: a start token without post-processor or add_bos_token", name)
		}
		if got, want := EncodeStart(plain, "Hello world"), plain.Encode("Hello world"); !slices.Equal(got, want) {
			t.Errorf("%s without a start token: %v, want %v", name, got, want)
		}
	}
	if _, ok := StartID(byteTokenizer{}); ok {
		t.Error("the byte tokenizer has a start token")
	}
}

// TestEncodeStartChatTemplate: a Llama 3 rendering, which starts with
// <|begin_of_text|> itself, gets no second one; a ChatML rendering on the
// same tokenizer gets it.
func TestEncodeStartChatTemplate(t *testing.T) {
	pp := json.RawMessage(`{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]}`)
	hf, err := ParseHF(withPostProcessor(t, "bl_llama3.json", pp), testSpecials("bl_llama3.json"))
	if err != nil {
		t.Fatal(err)
	}
	bot, _ := hf.TokenID("<|begin_of_text|>")
	for _, name := range []string{"llama3", "chatml"} {
		tmpl, err := ChatTemplateByName(name)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := WithChat(hf, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		segs, err := tmpl.Render([]Message{{Role: "user", Content: "hi"}}, true)
		if err != nil {
			t.Fatal(err)
		}
		want, err := EncodeChat(hf, segs)
		if err != nil {
			t.Fatal(err)
		}
		if want[0] != bot {
			want = append([]int32{bot}, want...)
		}
		if got := EncodeStart(tok, String(segs)); !slices.Equal(got, want) {
			t.Errorf("%s: %v, want %v", name, got, want)
		}
	}
}

// TestHFTemplateStart reads the start token of post-processors and refuses
// what it cannot follow.
func TestHFTemplateStart(t *testing.T) {
	for _, c := range []struct{ pp, want, err string }{
		{``, "", ""},
		{`null`, "", ""},
		{`{"type": "ByteLevel", "trim_offsets": false}`, "", ""},
		{`{"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A"}}]}`, "", ""},
		{`{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}]}`, "<s>", ""},
		{`{"type": "Sequence", "processors": [{"type": "ByteLevel"}, {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<|begin_of_text|>"}}, {"Sequence": {"id": "A"}}]}]}`, "<|begin_of_text|>", ""},
		{`{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"Sequence": {"id": "A"}}, {"SpecialToken": {"id": "</s>"}}]}`, "", "after the text"},
		{`{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>"}}, {"SpecialToken": {"id": "<x>"}}, {"Sequence": {"id": "A"}}]}`, "", "2 tokens before"},
		{`{"type": "TemplateProcessing", "single": 3}`, "", "post_processor"},
	} {
		got, err := templateStart(json.RawMessage(c.pp))
		if got != c.want || (c.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: %q, %v; want %q, error with %q", c.pp, got, err, c.want, c.err)
		}
	}
	// A start token missing from the vocabulary is refused at load.
	pp := json.RawMessage(`{"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<nope>"}}, {"Sequence": {"id": "A"}}]}`)
	if _, err := ParseHF(withPostProcessor(t, "bl_gpt2.json", pp), testSpecials("bl_gpt2.json")); err == nil || !strings.Contains(err.Error(), "<nope>") {
		t.Errorf("unknown start token: %v", err)
	}
}
