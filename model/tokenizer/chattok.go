package tokenizer

import "fmt"

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
