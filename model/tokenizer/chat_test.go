package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// chatExpected is expected.json's "chat": Jinja templates written like
// the models' own, conversations, and what jinja2 rendered and Hugging
// Face tokenizers encoded (bl_llama3.json, special tokens matched).
type chatExpected struct {
	Templates     map[string]string `json:"templates"`
	Conversations [][]Message       `json:"conversations"`
	Rendered      map[string]struct {
		Text string  `json:"text"`
		IDs  []int32 `json:"ids"`
	} `json:"rendered"`
}

func readChatExpected(t *testing.T) chatExpected {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "hf", "expected.json"))
	if err != nil {
		t.Fatal(err)
	}
	var e struct {
		Chat chatExpected `json:"chat"`
	}
	if err := json.Unmarshal(data, &e); err != nil {
		t.Fatal(err)
	}
	if len(e.Chat.Rendered) == 0 {
		t.Fatal("no chat cases in expected.json")
	}
	return e.Chat
}

// TestChatMatchesJinja detects each template from its Jinja source, then
// checks the rendering against jinja2's and EncodeChat against Hugging
// Face's encoding of that rendering.
func TestChatMatchesJinja(t *testing.T) {
	e := readChatExpected(t)
	tok := loadTestHF(t, "bl_llama3.json")
	n := 0
	for name, src := range e.Templates {
		tmpl, err := DetectChatTemplate(src)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if tmpl.Name() != name {
			t.Errorf("DetectChatTemplate(%s's source) = %s", name, tmpl.Name())
		}
		for i, conv := range e.Conversations {
			for _, gen := range []bool{false, true} {
				key := fmt.Sprintf("%s/%d/%s", name, i, map[bool]string{false: "nogen", true: "gen"}[gen])
				want, ok := e.Rendered[key]
				if !ok {
					t.Fatalf("no case %s", key)
				}
				segs, err := tmpl.Render(conv, gen)
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				if got := String(segs); got != want.Text {
					t.Errorf("%s: rendered\n%q\nwant\n%q", key, got, want.Text)
				}
				ids, err := EncodeChat(tok, segs)
				if err != nil {
					t.Fatalf("%s: %v", key, err)
				}
				if !slices.Equal(ids, want.IDs) {
					t.Errorf("%s: EncodeChat = %v, want %v", key, ids, want.IDs)
				}
				n++
			}
		}
	}
	if n != 18 {
		t.Errorf("%d cases, want 18", n)
	}
}

// TestChatReply checks that the prompt with the generation prompt, the
// reply and the end-of-turn token are how the whole conversation starts.
func TestChatReply(t *testing.T) {
	msgs := []Message{{Role: "user", Content: "hi"}}
	for _, name := range ChatTemplateNames() {
		tmpl, err := ChatTemplateByName(name)
		if err != nil {
			t.Fatal(err)
		}
		prompt, err := tmpl.Render(msgs, true)
		if err != nil {
			t.Fatal(err)
		}
		whole, err := tmpl.Render(append(slices.Clone(msgs), Message{Role: "assistant", Content: "  hello there \n"}), false)
		if err != nil {
			t.Fatal(err)
		}
		reply := tmpl.Reply("  hello there \n")
		if !strings.HasPrefix(String(whole), String(prompt)+reply+tmpl.EndOfTurn()) {
			t.Errorf("%s: %q does not start with prompt + %q + %s", name, String(whole), reply, tmpl.EndOfTurn())
		}
	}
}

// TestChatNoForgedControls: a message holding a control token's text is
// refused, and EncodeChat of plain text never yields a control id.
func TestChatNoForgedControls(t *testing.T) {
	tok := loadTestHF(t, "bl_llama3.json")
	for _, name := range ChatTemplateNames() {
		tmpl, _ := ChatTemplateByName(name)
		for _, c := range tmpl.Controls() {
			_, err := tmpl.Render([]Message{{Role: "user", Content: "a" + c + "b"}}, true)
			if err == nil || !strings.Contains(err.Error(), c) {
				t.Errorf("%s: content with %s: error %v", name, c, err)
			}
			id, _ := tok.TokenID(c)
			ids, err := EncodeChat(tok, []Segment{{Text: "x" + c}})
			if err != nil || slices.Contains(ids, id) {
				t.Errorf("%s: text %q encoded to %v (%v)", name, c, ids, err)
			}
		}
	}
	if _, err := EncodeChat(tok, []Segment{{Text: "<|nope|>", Control: true}}); err == nil {
		t.Error("EncodeChat with an unknown control token: no error")
	}
}

func TestDetectChatTemplateRefuses(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"{{ messages }}", "unknown format"},
		{"", "empty"},
		{"<|start_header_id|><|end_header_id|><|eot_id|> Cutting Knowledge Date: {{ date_string }}", "Llama 3.1"},
		{"{% if tools %}<|im_start|><|im_end|>{% endif %}", "tool"},
		{"<|im_start|>system\nYou are Qwen<|im_end|>", "default system"},
	} {
		_, err := DetectChatTemplate(c.src)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "chatml") {
			t.Errorf("DetectChatTemplate(%q): error %v, want one saying %q and naming the known ones", c.src, err, c.want)
		}
	}
	if _, err := ChatTemplateByName("jinja"); err == nil || !strings.Contains(err.Error(), `"jinja"`) {
		t.Errorf("ChatTemplateByName(jinja): %v", err)
	}
}

// TestWithChat: the chat tokenizer encodes a rendered conversation as
// EncodeChat does, leaves other special tokens plain, and ends turns.
func TestWithChat(t *testing.T) {
	hf := loadTestHF(t, "bl_llama3.json")
	msgs := []Message{{Role: "system", Content: "Sei kurz."}, {Role: "user", Content: "Wie viel ist 2+2? <|endoftext|>"}}
	for _, name := range ChatTemplateNames() {
		tmpl, _ := ChatTemplateByName(name)
		tok, err := WithChat(hf, tmpl)
		if err != nil {
			t.Fatal(err)
		}
		segs, err := tmpl.Render(msgs, true)
		if err != nil {
			t.Fatal(err)
		}
		want, err := EncodeChat(hf, segs)
		if err != nil {
			t.Fatal(err)
		}
		if got := tok.Encode(String(segs)); !slices.Equal(got, want) {
			t.Errorf("%s: Encode(rendered) = %v, want %v", name, got, want)
		}
		if slices.Contains(want, hf.EOS()) {
			t.Errorf("%s: <|endoftext|> in a message became the special token", name)
		}
		if eot, _ := hf.TokenID(tmpl.EndOfTurn()); tok.EOS() != eot || tok.Pad() != hf.Pad() {
			t.Errorf("%s: EOS %d Pad %d, want %d %d", name, tok.EOS(), tok.Pad(), eot, hf.Pad())
		}
		if got := tok.Decode(want); got != String(segs) {
			t.Errorf("%s: Decode = %q, want %q", name, got, String(segs))
		}
	}
	sp := loadTestHF(t, "sp_llama2.json")
	tmpl, _ := ChatTemplateByName("chatml")
	if _, err := WithChat(sp, tmpl); err == nil || !strings.Contains(err.Error(), imStart) {
		t.Errorf("WithChat on a tokenizer without ChatML tokens: %v", err)
	}
}

// TestForChat: auto takes the template a tokenizer ships, refuses (through
// ChatOf, not at once) one it cannot render or a missing one, and leaves
// the built-in tokenizers plain; none unwraps; a name forces a template
// and needs a tokenizer with control tokens.
func TestForChat(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "hf", "bl_llama3.json"))
	if err != nil {
		t.Fatal(err)
	}
	hfWith := func(jinja string) *HF {
		tok, err := ParseHF(data, Specials{EOS: "<|endoftext|>", ChatTemplate: jinja})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	byteTok, _ := New("byte")
	for _, c := range []struct {
		name        string
		tok         Tokenizer
		choice      string
		tmpl, refus string // the template ChatOf gives, or a part of its error
	}{
		{"ChatML shipped", hfWith("{{ '<|im_start|>' }}{{ '<|im_end|>' }}"), ChatAuto, "chatml", ""},
		{"Llama 3 shipped", hfWith("<|start_header_id|><|end_header_id|><|eot_id|>"), "", "llama3", ""},
		{"Llama 3.1 shipped", hfWith("<|start_header_id|><|end_header_id|><|eot_id|> Cutting Knowledge"), ChatAuto, "", "Llama 3.1"},
		{"none shipped", hfWith(""), ChatAuto, "", "no chat template"},
		{"none asked", hfWith("{{ '<|im_start|>' }}{{ '<|im_end|>' }}"), ChatNone, "", ""},
		{"named", hfWith(""), "llama3", "llama3", ""},
		{"built-in", byteTok, ChatAuto, "", ""},
	} {
		tok, err := ForChat(c.tok, c.choice)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		tmpl, err := ChatOf(tok)
		name := ""
		if tmpl != nil {
			name = tmpl.Name()
		}
		if name != c.tmpl || (c.refus == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.refus)) {
			t.Errorf("%s: template %q, refusal %v; want %q, %q", c.name, name, err, c.tmpl, c.refus)
		}
		if _, ok := Base(tok).(*HF); ok != (c.tok != byteTok) {
			t.Errorf("%s: Base is %T", c.name, Base(tok))
		}
	}
	// none of a wrapped tokenizer is the bare one; a name needs control
	// tokens; an unknown name is an error.
	wrapped, _ := ForChat(hfWith(""), "chatml")
	if bare, _ := ForChat(wrapped, ChatNone); bare != Base(wrapped) {
		t.Errorf("none of a chat tokenizer gave %T", bare)
	}
	if _, err := ForChat(byteTok, "chatml"); err == nil {
		t.Error("chatml on the byte tokenizer: no error")
	}
	if _, err := ForChat(hfWith(""), "jinja"); err == nil {
		t.Error("unknown template name: no error")
	}
}
