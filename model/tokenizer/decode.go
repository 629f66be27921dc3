package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"
)

// decoder turns the token strings of a sequence into text, as
// tokenizer.json's "decoder" chain does: each step maps the list of
// strings to a new list, and the result is their concatenation.
type decoder func(tokens []string) []string

// parseDecoder builds tokenizer.json's "decoder": ByteLevel (GPT-2's byte
// alphabet back to bytes), Replace of a literal string, ByteFallback
// (<0xNN> tokens to bytes), Fuse, Strip, Metaspace, and Sequences of them.
// It returns nil for none (tokens are concatenated).
//
// Where Hugging Face writes U+FFFD for bytes that are not valid UTF-8
// (ByteLevel, ByteFallback), these keep the raw bytes, so that decodings
// of consecutive slices concatenate to the decoding of the whole.
func parseDecoder(raw json.RawMessage) (decoder, error) {
	c, ok, err := parseComponent(raw, "decoder")
	if err != nil || !ok {
		return nil, err
	}
	switch c.Type {
	case "ByteLevel":
		return func(tokens []string) []string {
			var buf []byte
			for _, t := range tokens {
				var ok bool
				if buf, ok = byteLevelBytes(t, buf); !ok {
					buf = append(buf, t...)
				}
			}
			return []string{string(buf)}
		}, nil
	case "Replace":
		if c.Pattern == nil || c.Pattern.String == nil {
			return nil, fmt.Errorf("decoder Replace: only a literal String pattern is supported")
		}
		from, to := *c.Pattern.String, c.Content
		return func(tokens []string) []string {
			for i, t := range tokens {
				tokens[i] = strings.ReplaceAll(t, from, to)
			}
			return tokens
		}, nil
	case "ByteFallback":
		return func(tokens []string) []string {
			for i, t := range tokens {
				if b, ok := byteToken(t); ok {
					tokens[i] = string([]byte{b})
				}
			}
			return tokens
		}, nil
	case "Fuse":
		return func(tokens []string) []string { return []string{strings.Join(tokens, "")} }, nil
	case "Strip":
		cut := c.Content
		start, stop := c.Start, c.Stop
		return func(tokens []string) []string {
			for i, t := range tokens {
				for n := 0; n < start && strings.HasPrefix(t, cut); n++ {
					t = t[len(cut):]
				}
				for n := 0; n < stop && strings.HasSuffix(t, cut); n++ {
					t = t[:len(t)-len(cut)]
				}
				tokens[i] = t
			}
			return tokens
		}, nil
	case "Metaspace":
		repl := c.Replacement
		if repl == "" {
			repl = "▁"
		}
		strip := c.PrependScheme != "never" && (c.PrependScheme != "" || c.AddPrefixSpace)
		return func(tokens []string) []string {
			for i, t := range tokens {
				t = strings.ReplaceAll(t, repl, " ")
				if i == 0 && strip {
					t = strings.TrimPrefix(t, " ")
				}
				tokens[i] = t
			}
			return tokens
		}, nil
	case "Sequence":
		var seq []decoder
		for i, r := range c.Decoders {
			d, err := parseDecoder(r)
			if err != nil {
				return nil, fmt.Errorf("decoder Sequence[%d]: %w", i, err)
			}
			if d != nil {
				seq = append(seq, d)
			}
		}
		return func(tokens []string) []string {
			for _, d := range seq {
				tokens = d(tokens)
			}
			return tokens
		}, nil
	}
	return nil, fmt.Errorf("decoder %q is not supported (known: ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, Sequence)", c.Type)
}

// byteToken reads a byte-fallback token "<0xNN>" (two upper-case hex
// digits, as SentencePiece writes them).
func byteToken(t string) (byte, bool) {
	if len(t) != 6 || t[:3] != "<0x" || t[5] != '>' {
		return 0, false
	}
	var b byte
	for _, c := range []byte(t[3:5]) {
		switch {
		case c >= '0' && c <= '9':
			b = b<<4 | (c - '0')
		case c >= 'A' && c <= 'F':
			b = b<<4 | (c - 'A' + 10)
		default:
			return 0, false
		}
	}
	return b, true
}
