package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
)

// MaxVocab bounds the ids of a tokenizer.json (Llama 3 has 128256, Qwen2
// 151665), so that a damaged file cannot size a huge table.
const MaxVocab = 1 << 22

// hfFile is the part of tokenizer.json instructgo reads. Of the
// post_processor only the token it puts before a text counts (bos.go).
type hfFile struct {
	AddedTokens []struct {
		ID         int    `json:"id"`
		Content    string `json:"content"`
		SingleWord bool   `json:"single_word"`
		LStrip     bool   `json:"lstrip"`
		RStrip     bool   `json:"rstrip"`
		Normalized bool   `json:"normalized"`
		Special    bool   `json:"special"`
	} `json:"added_tokens"`
	Normalizer    json.RawMessage `json:"normalizer"`
	PreTokenizer  json.RawMessage `json:"pre_tokenizer"`
	Decoder       json.RawMessage `json:"decoder"`
	PostProcessor json.RawMessage `json:"post_processor"`
	Model         struct {
		Type                    string            `json:"type"`
		Vocab                   map[string]int    `json:"vocab"`
		Merges                  []json.RawMessage `json:"merges"`
		UnkToken                *string           `json:"unk_token"`
		FuseUnk                 bool              `json:"fuse_unk"`
		ByteFallback            bool              `json:"byte_fallback"`
		IgnoreMerges            bool              `json:"ignore_merges"`
		Dropout                 *float64          `json:"dropout"`
		ContinuingSubwordPrefix *string           `json:"continuing_subword_prefix"`
		EndOfWordSuffix         *string           `json:"end_of_word_suffix"`
	} `json:"model"`
}

// ParseHF reads a tokenizer.json; sp names its special tokens (see
// ReadSpecials). It supports BPE models as Llama 2 and 3, Mistral, Qwen2
// and GPT-2 ship them, and refuses with an error what it does not
// support (Unigram and WordPiece models, BPE dropout, word suffixes,
// added tokens that strip spaces, unknown normalizers, pre-tokenizers and
// decoders).
func ParseHF(data []byte, sp Specials) (*HF, error) {
	t, err := parseHF(data)
	if err == nil {
		err = t.setSpecials(sp)
	}
	if err != nil {
		return nil, fmt.Errorf("tokenizer.json: %w", err)
	}
	return t, nil
}

// parseHF reads a tokenizer.json without resolving special tokens.
func parseHF(data []byte) (*HF, error) {
	var f hfFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, err
	}
	return buildHF(&f)
}

func buildHF(f *hfFile) (*HF, error) {
	mj := &f.Model
	switch {
	case mj.Type != "" && mj.Type != "BPE":
		return nil, fmt.Errorf("model type %q is not supported (only BPE)", mj.Type)
	case mj.Dropout != nil && *mj.Dropout != 0:
		return nil, fmt.Errorf("BPE dropout %g is not supported", *mj.Dropout)
	case mj.ContinuingSubwordPrefix != nil && *mj.ContinuingSubwordPrefix != "",
		mj.EndOfWordSuffix != nil && *mj.EndOfWordSuffix != "":
		return nil, fmt.Errorf("BPE continuing_subword_prefix and end_of_word_suffix are not supported")
	case len(mj.Vocab) == 0:
		return nil, fmt.Errorf("BPE model has no vocabulary")
	}
	t := &HF{bos: -1, start: -1}
	m := &bpe{vocab: make(map[string]int32, len(mj.Vocab)), unk: -1, fuseUnk: mj.FuseUnk,
		ignoreMerges: mj.IgnoreMerges, cache: map[string][]int32{}}
	t.model = m
	size := 0
	for tok, id := range mj.Vocab {
		if id < 0 || id >= MaxVocab {
			return nil, fmt.Errorf("vocabulary id %d of %q is outside 0..%d", id, tok, MaxVocab-1)
		}
		m.vocab[tok] = int32(id)
		size = max(size, id+1)
	}
	for _, a := range f.AddedTokens {
		if a.ID < 0 || a.ID >= MaxVocab {
			return nil, fmt.Errorf("added token %q: id %d is outside 0..%d", a.Content, a.ID, MaxVocab-1)
		}
		size = max(size, a.ID+1)
	}
	t.tokens, t.valid = make([]string, size), make([]bool, size)
	for tok, id := range m.vocab {
		if t.valid[id] {
			return nil, fmt.Errorf("vocabulary id %d is both %q and %q", id, t.tokens[id], tok)
		}
		t.tokens[id], t.valid[id] = tok, true
	}
	var err error
	if t.startText, err = templateStart(f.PostProcessor); err != nil {
		return nil, err
	}
	if t.norm, err = parseNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	var raw, normed []addedToken
	t.added = make(map[string]int32, len(f.AddedTokens))
	for _, a := range f.AddedTokens {
		switch {
		case a.Content == "":
			return nil, fmt.Errorf("added token %d is empty", a.ID)
		case a.SingleWord || a.LStrip || a.RStrip:
			return nil, fmt.Errorf("added token %q: single_word, lstrip and rstrip are not supported", a.Content)
		}
		at := addedToken{content: a.Content, id: int32(a.ID), special: a.Special}
		if a.Normalized {
			// Matched in normalized text, so in its normalized form,
			// which is also its token string (as in Hugging Face).
			if t.norm != nil {
				if at.content = t.norm(at.content); at.content == "" {
					return nil, fmt.Errorf("added token %q normalizes to nothing", a.Content)
				}
			}
			normed = append(normed, at)
		} else {
			raw = append(raw, at)
		}
		t.tokens[a.ID], t.valid[a.ID] = at.content, true
		t.added[a.Content] = at.id
	}
	t.raw, t.normed = newAddedMatcher(raw), newAddedMatcher(normed)

	if mj.UnkToken != nil {
		id, ok := m.vocab[*mj.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocabulary", *mj.UnkToken)
		}
		m.unk = id
	}
	if mj.ByteFallback {
		var ids [256]int32
		for b := range 256 {
			id, ok := m.vocab[fmt.Sprintf("<0x%02X>", b)]
			if !ok {
				return nil, fmt.Errorf("byte_fallback is set but <0x%02X> is not in the vocabulary", b)
			}
			ids[b] = id
		}
		m.byteIDs = &ids
	}
	if m.merges, err = parseMerges(mj.Merges, m.vocab); err != nil {
		return nil, err
	}
	if t.pre, err = parsePreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if t.dec, err = parseDecoder(f.Decoder); err != nil {
		return nil, err
	}
	return t, nil
}

// parseMerges reads the merges, highest priority first, in either form
// tokenizer.json uses: "a b" strings or ["a", "b"] pairs.
func parseMerges(raw []json.RawMessage, vocab map[string]int32) (map[uint64]merge, error) {
	merges := make(map[uint64]merge, len(raw))
	for rank, r := range raw {
		var a, b string
		var s string
		var pair []string
		switch {
		case json.Unmarshal(r, &s) == nil:
			var ok bool
			if a, b, ok = strings.Cut(s, " "); !ok {
				return nil, fmt.Errorf("merge %d %q: want two tokens separated by a space", rank, s)
			}
		case json.Unmarshal(r, &pair) == nil && len(pair) == 2:
			a, b = pair[0], pair[1]
		default:
			return nil, fmt.Errorf("merge %d: want \"a b\" or [\"a\", \"b\"], got %.40s", rank, r)
		}
		ia, oka := vocab[a]
		ib, okb := vocab[b]
		id, ok := vocab[a+b]
		if !oka || !okb || !ok {
			return nil, fmt.Errorf("merge %d (%q, %q): a token or the merged token is not in the vocabulary", rank, a, b)
		}
		k := pairKey(ia, ib)
		if _, dup := merges[k]; !dup { // the first (highest-priority) wins
			merges[k] = merge{rank: int32(rank), id: id}
		}
	}
	return merges, nil
}

// setSpecials resolves the special tokens' ids; EOS must exist, Pad
// defaults to EOS.
func (t *HF) setSpecials(sp Specials) error {
	t.special = sp
	id := func(role, text string) (int32, error) {
		v, ok := t.TokenID(text)
		if !ok {
			return 0, fmt.Errorf("%s %q is not a token of the tokenizer", role, text)
		}
		return v, nil
	}
	var err error
	if sp.EOS == "" {
		return fmt.Errorf("no eos_token given (tokenizer_config.json names it)")
	}
	if t.eos, err = id("eos_token", sp.EOS); err != nil {
		return err
	}
	t.pad = t.eos
	if sp.Pad != "" {
		if t.pad, err = id("pad_token", sp.Pad); err != nil {
			return err
		}
	}
	if sp.BOS != "" {
		if t.bos, err = id("bos_token", sp.BOS); err != nil {
			return err
		}
	} else if sp.AddBOS {
		return fmt.Errorf("add_bos_token is set but no bos_token is given")
	}
	return t.setStart(sp)
}
