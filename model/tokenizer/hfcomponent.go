package tokenizer

import (
	"bytes"
	"encoding/json"
	"fmt"
)

// hfComponent holds the fields of a tokenizer.json normalizer,
// pre-tokenizer or decoder that instructgo reads; Type says which
// component it is.
type hfComponent struct {
	Type string `json:"type"`
	// Sequence
	Normalizers   []json.RawMessage `json:"normalizers"`
	PreTokenizers []json.RawMessage `json:"pretokenizers"`
	Decoders      []json.RawMessage `json:"decoders"`
	// Prepend
	Prepend string `json:"prepend"`
	// Replace, Split
	Pattern *hfPattern `json:"pattern"`
	// Replace, Strip
	Content string `json:"content"`
	// Strip
	Start int `json:"start"`
	Stop  int `json:"stop"`
	// ByteLevel
	AddPrefixSpace bool  `json:"add_prefix_space"`
	UseRegex       *bool `json:"use_regex"`
	// Split
	Behavior string `json:"behavior"`
	Invert   bool   `json:"invert"`
	// Metaspace
	Replacement   string `json:"replacement"`
	PrependScheme string `json:"prepend_scheme"`
	Split         *bool  `json:"split"`
}

// hfPattern is a Replace or Split pattern: a literal string or a regex.
type hfPattern struct {
	String *string `json:"String"`
	Regex  *string `json:"Regex"`
}

// parseComponent decodes one component; ok is false for JSON null or an
// absent field.
func parseComponent(raw json.RawMessage, what string) (c hfComponent, ok bool, err error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return c, false, nil
	}
	if err := json.Unmarshal(raw, &c); err != nil {
		return c, false, fmt.Errorf("%s: %w", what, err)
	}
	return c, true, nil
}
