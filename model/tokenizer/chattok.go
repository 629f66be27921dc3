package tokenizer

import (
	"fmt"
	"strings"
)

// chatTokenizer encodes text a chat template rendered: the template's
// control tokens written in the text become their ids, every other
// special token stays plain text, and EOS is the template's end of turn.
type chatTokenizer struct {
	SpecialEncoder
	tmpl     *ChatTemplate
	controls *addedMatcher
	eos      int32
}

// WithChat returns tok for conversations rendered by tmpl: Encode matches
// tmpl's control tokens (so a rendered prompt such as
// "<|im_start|>user\n...<|im_start|>assistant\n" gets their ids) and EOS is
// tmpl's end-of-turn token, which ends an assistant reply and stops
// generation. Texts given to its Encode must come from the template, whose
// Render refuses contents holding control tokens; plain text holding them
// gets them too.
func WithChat(tok SpecialEncoder, tmpl *ChatTemplate) (Tokenizer, error) {
	var controls []addedToken
	for _, c := range tmpl.controls {
		id, ok := tok.TokenID(c)
		if !ok {
			return nil, fmt.Errorf("chat template %s: control token %s is not in the tokenizer's vocabulary", tmpl.name, c)
		}
		controls = append(controls, addedToken{content: c, id: id})
	}
	eos, _ := tok.TokenID(tmpl.end)
	return &chatTokenizer{SpecialEncoder: tok, tmpl: tmpl, controls: newAddedMatcher(controls), eos: eos}, nil
}

func (t *chatTokenizer) EOS() int32 { return t.eos }

// ChatTemplate is the template the tokenizer encodes for.
func (t *chatTokenizer) ChatTemplate() *ChatTemplate { return t.tmpl }

func (t *chatTokenizer) Encode(text string) []int32 {
	var out []int32
	t.controls.split(text, false, func(seg string, id int32, _ int) {
		if id >= 0 {
			out = append(out, id)
		} else {
			out = append(out, t.SpecialEncoder.Encode(seg)...)
		}
	})
	return out
}

// Base is the tokenizer under a chat wrapper.
func (t *chatTokenizer) Base() Tokenizer { return t.SpecialEncoder }

// The choices of ForChat besides a template name.
const (
	ChatAuto = "auto" // the template the tokenizer ships
	ChatNone = "none" // plain "role: content" lines
)

// ForChat returns tok set up for conversations (messages data) as choice
// says. It is the one place that decides how they are rendered and
// encoded; readers take the decision back with ChatOf.
//
//   - ChatAuto (or ""): a Hugging Face tokenizer's own template
//     (tokenizer_config.json's chat_template, DetectChatTemplate) through
//     WithChat. A Hugging Face tokenizer without a template, or with one
//     this package cannot render, refuses messages data when it meets
//     some (ChatOf's error), so that plain-text data still runs. The
//     built-in tokenizers render messages as plain lines.
//   - ChatNone: plain lines (train/data's template) for every tokenizer.
//   - a name of ChatTemplateNames: that template, which the tokenizer's
//     vocabulary must hold the control tokens of.
//
// A template's tokenizer ends sequences with the end-of-turn token
// (WithChat), for plain prompt/completion data too.
func ForChat(tok Tokenizer, choice string) (Tokenizer, error) {
	base := Base(tok)
	switch choice {
	case ChatNone:
		return base, nil
	case ChatAuto, "":
		hf, ok := base.(*HF)
		if !ok {
			return base, nil
		}
		jinja := hf.Specials().ChatTemplate
		if jinja == "" {
			return noChat{hf, fmt.Errorf("the model's tokenizer has no chat template (tokenizer_config.json chat_template); pass --chat-template none to render messages as plain \"role: content\" lines, or a template name (%s)", strings.Join(ChatTemplateNames(), ", "))}, nil
		}
		tmpl, err := DetectChatTemplate(jinja)
		if err == nil {
			var wrapped Tokenizer
			if wrapped, err = WithChat(hf, tmpl); err == nil {
				return wrapped, nil
			}
		}
		return noChat{hf, fmt.Errorf("the model's %w; pass --chat-template none or a template name", err)}, nil
	}
	tmpl, err := ChatTemplateByName(choice)
	if err != nil {
		return nil, err
	}
	enc, ok := base.(SpecialEncoder)
	if !ok {
		return nil, fmt.Errorf("chat template %s: the %s tokenizer has no control tokens (it needs a Hugging Face tokenizer.json)", choice, base.Name())
	}
	return WithChat(enc, tmpl)
}

// noChat is a tokenizer that refuses to render conversations, saying why.
type noChat struct {
	Tokenizer
	why error
}

func (t noChat) Base() Tokenizer { return t.Tokenizer }

// ChatOf returns how tok (from ForChat) renders conversations: with the
// returned template, as plain lines (nil, nil), or not at all (the error
// says why and what to pass instead).
func ChatOf(tok Tokenizer) (*ChatTemplate, error) {
	switch t := tok.(type) {
	case *chatTokenizer:
		return t.tmpl, nil
	case noChat:
		return nil, t.why
	}
	return nil, nil
}

// Base returns the tokenizer under ForChat's wrappers (tok itself when it
// has none): the *HF whose files a checkpoint copies, for one.
func Base(tok Tokenizer) Tokenizer {
	for {
		w, ok := tok.(interface{ Base() Tokenizer })
		if !ok {
			return tok
		}
		tok = w.Base()
	}
}
