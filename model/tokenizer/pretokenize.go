package tokenizer

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"
)

// piece is a stretch of text on its way to the BPE model. first marks the
// piece that starts at the beginning of the input (Metaspace's "first"
// prepend scheme looks at it).
type piece struct {
	text  string
	first bool
}

// preTokenizer cuts each piece into smaller ones; the BPE model encodes
// each result on its own, so no token spans two pieces.
type preTokenizer func(p piece, out []piece) []piece

// GPT-2's pattern, which a ByteLevel pre-tokenizer with use_regex applies.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

// parsePreTokenizer builds tokenizer.json's "pre_tokenizer": ByteLevel
// (GPT-2), Split with a regex in the "Isolated" behaviour (Llama 3 and
// Qwen2, before a ByteLevel without regex), Metaspace (SentencePiece-style
// models), and Sequences of them. It returns nil for none.
func parsePreTokenizer(raw json.RawMessage) (preTokenizer, error) {
	c, ok, err := parseComponent(raw, "pre_tokenizer")
	if err != nil || !ok {
		return nil, err
	}
	switch c.Type {
	case "ByteLevel":
		var pt *pattern
		if c.UseRegex == nil || *c.UseRegex {
			if pt, err = compilePattern(gpt2Pattern); err != nil {
				return nil, err
			}
		}
		addSpace := c.AddPrefixSpace
		return func(p piece, out []piece) []piece {
			text := p.text
			if addSpace && !strings.HasPrefix(text, " ") {
				text = " " + text
			}
			if pt == nil {
				return append(out, piece{byteLevelString(text), p.first})
			}
			var parts [32]string
			for i, s := range pt.split(text, parts[:0]) {
				out = append(out, piece{byteLevelString(s), p.first && i == 0})
			}
			return out
		}, nil
	case "Split":
		if c.Pattern == nil {
			return nil, fmt.Errorf("pre_tokenizer Split: no pattern")
		}
		if c.Behavior != "Isolated" || c.Invert {
			return nil, fmt.Errorf("pre_tokenizer Split: behavior %q invert %v is not supported (want Isolated, false)", c.Behavior, c.Invert)
		}
		var pt *pattern
		switch {
		case c.Pattern.Regex != nil:
			pt, err = compilePattern(*c.Pattern.Regex)
		case c.Pattern.String != nil:
			pt, err = compilePattern(regexp.QuoteMeta(*c.Pattern.String))
		}
		if err != nil {
			return nil, fmt.Errorf("pre_tokenizer Split: %w", err)
		}
		if pt == nil {
			return nil, fmt.Errorf("pre_tokenizer Split: empty pattern")
		}
		return func(p piece, out []piece) []piece {
			var parts [32]string
			for i, s := range pt.split(p.text, parts[:0]) {
				out = append(out, piece{s, p.first && i == 0})
			}
			return out
		}, nil
	case "Metaspace":
		return metaspace(c)
	case "Sequence":
		var seq []preTokenizer
		for i, r := range c.PreTokenizers {
			pt, err := parsePreTokenizer(r)
			if err != nil {
				return nil, fmt.Errorf("pre_tokenizer Sequence[%d]: %w", i, err)
			}
			if pt != nil {
				seq = append(seq, pt)
			}
		}
		return func(p piece, out []piece) []piece {
			cur := []piece{p}
			for _, pt := range seq {
				var nxt []piece
				for _, q := range cur {
					nxt = pt(q, nxt)
				}
				cur = nxt
			}
			return append(out, cur...)
		}, nil
	}
	return nil, fmt.Errorf("pre_tokenizer %q is not supported (known: ByteLevel, Split, Metaspace, Sequence)", c.Type)
}

// metaspace replaces spaces with the replacement character (▁), prepends
// one to the piece as its prepend scheme says ("always", "first": only at
// the start of the input, "never"; older files say add_prefix_space), and,
// with split, cuts before every replacement character.
func metaspace(c hfComponent) (preTokenizer, error) {
	repl := c.Replacement
	if repl == "" {
		repl = "▁"
	}
	scheme := c.PrependScheme
	if scheme == "" {
		scheme = "never"
		if c.AddPrefixSpace {
			scheme = "always"
		}
	}
	if scheme != "always" && scheme != "first" && scheme != "never" {
		return nil, fmt.Errorf("pre_tokenizer Metaspace: prepend_scheme %q is not supported", scheme)
	}
	split := c.Split == nil || *c.Split
	return func(p piece, out []piece) []piece {
		text := strings.ReplaceAll(p.text, " ", repl)
		if (scheme == "always" || scheme == "first" && p.first) && !strings.HasPrefix(text, repl) {
			text = repl + text
		}
		if !split {
			return append(out, piece{text, p.first})
		}
		first := p.first
		for text != "" {
			skip := len(repl) // a piece starts with one replacement or none
			if !strings.HasPrefix(text, repl) {
				_, skip = utf8.DecodeRuneInString(text)
			}
			i := strings.Index(text[skip:], repl)
			if i < 0 {
				out = append(out, piece{text, first})
				break
			}
			i += skip
			out = append(out, piece{text[:i], first})
			text, first = text[i:], false
		}
		return out
	}, nil
}
