package data

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/model/tokenizer"
)

// testHF loads a byte-level tokenizer.json that Hugging Face tokenizers
// saved, with the ChatML and Llama 3 control tokens.
func testHF(t *testing.T) *tokenizer.HF {
	t.Helper()
	data, err := os.ReadFile("../../model/tokenizer/testdata/hf/bl_llama3.json")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.ParseHF(data, tokenizer.Specials{EOS: "<|endoftext|>"})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// TestChatTemplateRecords reads conversational records with a model's
// chat template: the tokens of prompt + completion + EOS are the
// template's rendering of the whole conversation, up to its end of turn.
func TestChatTemplateRecords(t *testing.T) {
	hf := testHF(t)
	conv := []tokenizer.Message{
		{Role: "system", Content: "Sei kurz."},
		{Role: "user", Content: "Was ist 2+2? 数字で。"},
		{Role: "assistant", Content: "Vier (四)."},
	}
	sft := `{"messages": [{"role": "system", "content": "Sei kurz."}, {"role": "user", "content": "Was ist 2+2? 数字で。"}, {"role": "assistant", "content": "Vier (四)."}]}
{"prompt": [{"role": "system", "content": "Sei kurz."}, {"role": "user", "content": "Was ist 2+2? 数字で。"}], "completion": [{"role": "assistant", "content": "Vier (四)."}]}
`
	pair := `{"prompt": [{"role": "system", "content": "Sei kurz."}, {"role": "user", "content": "Was ist 2+2? 数字で。"}], "chosen": [{"role": "assistant", "content": "Vier (四)."}], "rejected": [{"role": "assistant", "content": "Fünf."}]}` + "\n"
	prompt := `{"prompt": [{"role": "system", "content": "Sei kurz."}, {"role": "user", "content": "Was ist 2+2? 数字で。"}]}` + "\n"
	for _, name := range []string{"chatml", "llama3"} {
		tmpl, err := tokenizer.ChatTemplateByName(name)
		if err != nil {
			t.Fatal(err)
		}
		tok, err := tokenizer.WithChat(hf, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := tmpl.Render(conv, false)
		if err != nil {
			t.Fatal(err)
		}
		want, err := tokenizer.EncodeChat(hf, whole)
		if err != nil {
			t.Fatal(err)
		}
		// The sequence ends at the end of turn; ChatML writes a newline
		// after it.
		eot := len(want) - 1
		for eot > 0 && want[eot] != tok.EOS() {
			eot--
		}
		want = want[:eot+1]

		opt := ReadOptions{Chat: tmpl}
		exs, _, err := ReadSFTFrom(strings.NewReader(sft), "sft.jsonl", opt)
		if err != nil {
			t.Fatal(err)
		}
		toks, _ := TokenizeSFT(exs, tok, 1024)
		for i, st := range toks {
			if !slices.Equal(st.Tokens, want) {
				t.Errorf("%s: SFT record %d: tokens %v, want %v", name, i, st.Tokens, want)
			}
		}
		cs, _, err := ReadComparisonsFrom(strings.NewReader(pair), "rm.jsonl", opt)
		if err != nil {
			t.Fatal(err)
		}
		ct, _ := TokenizeComparisons(cs, tok, 1024)
		if len(ct) != 1 || !slices.Equal(ct[0].Responses[0], want) {
			t.Errorf("%s: comparison's chosen sequence %v, want %v", name, ct, want)
		}
		ps, _, err := ReadPromptsFrom(strings.NewReader(prompt), "prompts.jsonl", opt)
		if err != nil {
			t.Fatal(err)
		}
		gen, _ := tmpl.Render(conv[:2], true)
		if len(ps) != 1 || ps[0].Prompt != tokenizer.String(gen) || !ps[0].Conversational {
			t.Errorf("%s: prompt %+v, want %q", name, ps, tokenizer.String(gen))
		}

		// A message holding a control token is a bad line naming it.
		bad := `{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "x` + tmpl.EndOfTurn() + `"}]}` + "\n"
		_, _, err = ReadSFTFrom(strings.NewReader(bad), "bad.jsonl", opt)
		if err == nil || !strings.Contains(err.Error(), tmpl.EndOfTurn()) || !strings.Contains(err.Error(), "bad.jsonl:1") {
			t.Errorf("%s: control token in content: error %v", name, err)
		}
	}
}
