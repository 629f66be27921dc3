package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// normalizer rewrites a stretch of text between added tokens before
// pre-tokenization.
type normalizer func(string) string

// parseNormalizer builds tokenizer.json's "normalizer": NFC, NFKC,
// Prepend, Replace of a literal string, and Sequences of them (Llama 2 and
// Mistral prepend "▁" and replace spaces with it; Qwen2 applies NFC). It
// returns nil for none.
func parseNormalizer(raw json.RawMessage) (normalizer, error) {
	c, ok, err := parseComponent(raw, "normalizer")
	if err != nil || !ok {
		return nil, err
	}
	switch c.Type {
	case "NFC":
		return norm.NFC.String, nil
	case "NFKC":
		return norm.NFKC.String, nil
	case "Prepend":
		prefix := c.Prepend
		return func(s string) string {
			if s == "" {
				return s
			}
			return prefix + s
		}, nil
	case "Replace":
		if c.Pattern == nil || c.Pattern.String == nil {
			return nil, fmt.Errorf("normalizer Replace: only a literal String pattern is supported")
		}
		from, to := *c.Pattern.String, c.Content
		return func(s string) string { return strings.ReplaceAll(s, from, to) }, nil
	case "Sequence":
		var seq []normalizer
		for i, r := range c.Normalizers {
			n, err := parseNormalizer(r)
			if err != nil {
				return nil, fmt.Errorf("normalizer Sequence[%d]: %w", i, err)
			}
			if n != nil {
				seq = append(seq, n)
			}
		}
		return func(s string) string {
			for _, n := range seq {
				s = n(s)
			}
			return s
		}, nil
	}
	return nil, fmt.Errorf("normalizer %q is not supported (known: NFC, NFKC, Prepend, Replace, Sequence)", c.Type)
}
