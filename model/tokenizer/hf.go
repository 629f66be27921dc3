package tokenizer

import (
	"strings"
)

// HFName is what Name returns for a tokenizer read from a tokenizer.json.
const HFName = "tokenizer.json"

// HF is a tokenizer read from a Hugging Face tokenizer.json: a BPE model
// behind its normalizer and pre-tokenizer, with added tokens matched
// before either runs, and its decoder chain. Load it with LoadDir or
// ParseHF. It is safe for concurrent use.
type HF struct {
	model   *bpe
	norm    normalizer   // nil: none
	pre     preTokenizer // nil: the whole stretch is one word
	dec     decoder      // nil: tokens are concatenated
	tokens  []string     // by id: the vocabulary and the added tokens
	valid   []bool       // by id: whether tokens holds an entry
	raw     *addedMatcher
	normed  *addedMatcher    // added tokens matched in normalized text
	added   map[string]int32 // added tokens by their content
	special Specials
	bos     int32 // -1: none
	// start is the id put before a sequence's text (bos.go), −1: none;
	// startText is the post_processor's token for it.
	start     int32
	startText string
	eos       int32
	pad       int32
	// files are the bytes of tokenizer.json and tokenizer_config.json,
	// by name, when loaded from a directory (see WriteFiles).
	files map[string][]byte
}

// SpecialEncoder is a Tokenizer that can also encode text in which
// special tokens are written out (chat templates need this).
type SpecialEncoder interface {
	Tokenizer
	// EncodeSpecial is Encode, except that the text of a special token
	// (such as "<|im_start|>") becomes that token.
	EncodeSpecial(text string) []int32
	// TokenID returns the id of a token of the vocabulary or an added
	// token, given its text.
	TokenID(text string) (int32, bool)
}

func (t *HF) Name() string   { return HFName }
func (t *HF) VocabSize() int { return len(t.tokens) }
func (t *HF) EOS() int32     { return t.eos }
func (t *HF) Pad() int32     { return t.pad }

// BOS is the beginning-of-sequence id, if the tokenizer has one.
func (t *HF) BOS() (int32, bool) { return t.bos, t.bos >= 0 }

// Specials is what tokenizer_config.json (or the caller) said about the
// special tokens and the chat template.
func (t *HF) Specials() Specials { return t.special }

// TokenID returns the id of a token given its text: an added token's
// content as tokenizer.json writes it, or a vocabulary entry as the model
// stores it (for byte-level models, in the byte alphabet).
func (t *HF) TokenID(text string) (int32, bool) {
	if id, ok := t.added[text]; ok {
		return id, true
	}
	id, ok := t.model.vocab[text]
	return id, ok
}

// Encode tokenizes text with special-token text kept plain (Hugging Face's
// encode_special_tokens); added tokens that are not special are still
// matched. No BOS is added: EncodeStart adds it where Hugging Face would.
func (t *HF) Encode(text string) []int32 { return t.encode(text, true) }

// EncodeSpecial tokenizes text, matching special tokens written in it, as
// Hugging Face's encode(text, add_special_tokens=False) does.
func (t *HF) EncodeSpecial(text string) []int32 { return t.encode(text, false) }

func (t *HF) encode(text string, plainSpecial bool) []int32 {
	out := make([]int32, 0, len(text)/3+1)
	var pieces []piece
	t.raw.split(text, plainSpecial, func(seg string, id int32, start int) {
		if id >= 0 {
			out = append(out, id)
			return
		}
		if t.norm != nil {
			seg = t.norm(seg)
		}
		t.normed.split(seg, plainSpecial, func(sub string, id int32, subStart int) {
			if id >= 0 {
				out = append(out, id)
				return
			}
			p := piece{text: sub, first: start == 0 && subStart == 0}
			if t.pre == nil {
				out = t.model.encodeWord(p.text, out)
				return
			}
			pieces = t.pre(p, pieces[:0])
			for _, q := range pieces {
				out = t.model.encodeWord(q.text, out)
			}
		})
	})
	return out
}

// Decode runs the ids' token strings through the tokenizer.json's decoder
// chain, special tokens included as their text; an id outside the
// vocabulary decodes to U+FFFD. For SentencePiece-style tokenizers the
// chain removes the space the normalizer put before the first word, so
// decoding a slice that starts mid-text drops its leading space.
func (t *HF) Decode(ids []int32) string {
	toks := make([]string, len(ids))
	for i, id := range ids {
		if id >= 0 && int(id) < len(t.tokens) && t.valid[id] {
			toks[i] = t.tokens[id]
		} else {
			toks[i] = invalidID
		}
	}
	if t.dec != nil {
		toks = t.dec(toks)
	}
	return strings.Join(toks, "")
}
