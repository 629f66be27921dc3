package tokenizer

import (
	"encoding/json"
	"fmt"
)

// The token at the start of a sequence. Hugging Face's tokenizer(text)
// puts one there in two ways: tokenizer_config.json's add_bos_token
// (Llama 2, Mistral: LlamaTokenizerFast builds its post-processor from
// it) and tokenizer.json's post_processor, a TemplateProcessing whose
// single-sequence template starts with a special token before $A (Llama
// 3's <|begin_of_text|>). Either turns it on here (an explicit
// add_bos_token false does not override the post-processor). Chat
// templates write their own (Llama 3's rendering starts with
// <|begin_of_text|>), so a text that already starts with the token does
// not get a second one, as apply_chat_template's tokenisation does not.

// templateStart returns the special token a tokenizer.json post_processor
// puts before the text of a single sequence ("" for none): a
// TemplateProcessing, or one inside a Sequence. Tokens after $A (an
// appended EOS) are not supported and refused.
func templateStart(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var p struct {
		Type       string            `json:"type"`
		Processors []json.RawMessage `json:"processors"`
		Single     []struct {
			SpecialToken *struct {
				ID string `json:"id"`
			} `json:"SpecialToken"`
			Sequence *struct {
				ID string `json:"id"`
			} `json:"Sequence"`
		} `json:"single"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", fmt.Errorf("post_processor: %w", err)
	}
	switch p.Type {
	case "Sequence":
		start := ""
		for _, q := range p.Processors {
			s, err := templateStart(q)
			if err != nil {
				return "", err
			}
			if s != "" {
				start = s
			}
		}
		return start, nil
	case "TemplateProcessing":
	default:
		return "", nil // ByteLevel and the others add no token before the text
	}
	var before []string
	seen := false
	for _, piece := range p.Single {
		switch {
		case piece.Sequence != nil:
			seen = true
		case piece.SpecialToken != nil && !seen:
			before = append(before, piece.SpecialToken.ID)
		case piece.SpecialToken != nil:
			return "", fmt.Errorf("post_processor: a token after the text (%q) is not supported", piece.SpecialToken.ID)
		}
	}
	switch len(before) {
	case 0:
		return "", nil
	case 1:
		return before[0], nil
	}
	return "", fmt.Errorf("post_processor: %d tokens before the text are not supported", len(before))
}

// setStart resolves the start token: the post-processor's, else BOS when
// add_bos_token is set.
func (t *HF) setStart(sp Specials) error {
	t.start = -1
	switch {
	case t.startText != "":
		id, ok := t.TokenID(t.startText)
		if !ok {
			return fmt.Errorf("post_processor: %q is not a token of the tokenizer", t.startText)
		}
		t.start = id
	case sp.AddBOS:
		t.start = t.bos
	}
	return nil
}

// StartID is the id Hugging Face's tokenizer(text) puts before a text (see
// above), if any.
func (t *HF) StartID() (int32, bool) { return t.start, t.start >= 0 }

// StartID is the start token of tok's tokenizer (HF.StartID; the
// built-in tokenizers have none).
func StartID(tok Tokenizer) (int32, bool) {
	if hf, ok := Base(tok).(*HF); ok {
		return hf.StartID()
	}
	return 0, false
}

// EncodeStart encodes text that starts a sequence (a prompt, a document):
// Encode, after the start token when tok's tokenizer has one and the
// encoding does not already begin with it.
func EncodeStart(tok Tokenizer, text string) []int32 {
	ids := tok.Encode(text)
	start, ok := StartID(tok)
	if !ok || (len(ids) > 0 && ids[0] == start) {
		return ids
	}
	return append([]int32{start}, ids...)
}
