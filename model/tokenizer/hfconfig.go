package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/internal/readfile"
)

// The files of a Hugging Face model directory the tokenizer reads.
const (
	HFTokenizerFile = "tokenizer.json"
	HFConfigFile    = "tokenizer_config.json"
)

// maxHFFile bounds the size of tokenizer.json (Llama 3's is 9 MB) and
// tokenizer_config.json.
const maxHFFile = 64 << 20

// Specials are a tokenizer.json's special tokens by their text and how to
// use them, as tokenizer_config.json gives them.
type Specials struct {
	BOS, EOS, Pad string
	// AddBOS and AddEOS say whether the model expects BOS before, and EOS
	// after, every encoded text (add_bos_token, add_eos_token).
	AddBOS, AddEOS bool
	// ChatTemplate is the Jinja chat template the model ships, if any
	// (see DetectChatTemplate).
	ChatTemplate string
}

// tokenizerConfig is the part of tokenizer_config.json instructgo reads.
// A token is a string or an object with "content" (AddedToken).
type tokenizerConfig struct {
	BOS          json.RawMessage `json:"bos_token"`
	EOS          json.RawMessage `json:"eos_token"`
	Pad          json.RawMessage `json:"pad_token"`
	AddBOS       *bool           `json:"add_bos_token"`
	AddEOS       *bool           `json:"add_eos_token"`
	ChatTemplate json.RawMessage `json:"chat_template"`
}

// ParseSpecials reads tokenizer_config.json. A missing add_bos_token is
// false. A chat_template given as a list of named templates yields the one
// named "default".
func ParseSpecials(data []byte) (Specials, error) {
	var c tokenizerConfig
	if err := json.Unmarshal(data, &c); err != nil {
		return Specials{}, fmt.Errorf("%s: %w", HFConfigFile, err)
	}
	var sp Specials
	for _, f := range []struct {
		raw  json.RawMessage
		dst  *string
		name string
	}{{c.BOS, &sp.BOS, "bos_token"}, {c.EOS, &sp.EOS, "eos_token"}, {c.Pad, &sp.Pad, "pad_token"}} {
		s, err := tokenText(f.raw)
		if err != nil {
			return Specials{}, fmt.Errorf("%s: %s: %w", HFConfigFile, f.name, err)
		}
		*f.dst = s
	}
	sp.AddBOS = c.AddBOS != nil && *c.AddBOS
	sp.AddEOS = c.AddEOS != nil && *c.AddEOS
	if len(c.ChatTemplate) > 0 && string(c.ChatTemplate) != "null" {
		var s string
		if json.Unmarshal(c.ChatTemplate, &s) != nil {
			var named []struct{ Name, Template string }
			if err := json.Unmarshal(c.ChatTemplate, &named); err != nil {
				return Specials{}, fmt.Errorf("%s: chat_template: want a string or a list of {name, template}", HFConfigFile)
			}
			for _, n := range named {
				if n.Name == "default" {
					s = n.Template
				}
			}
		}
		sp.ChatTemplate = s
	}
	return sp, nil
}

// tokenText reads a special token: null, a string, or {"content": ...}.
func tokenText(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var obj struct {
		Content string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return "", fmt.Errorf("want a string or {\"content\": ...}")
	}
	return obj.Content, nil
}

// LoadDir reads dir/tokenizer.json with dir/tokenizer_config.json. Where
// the latter is missing or names no eos_token (as in the hub's GPT-2), the
// BOS, EOS and pad ids of the model's config.json stand in.
func LoadDir(dir string) (*HF, error) {
	data, err := readfile.Bounded(filepath.Join(dir, HFTokenizerFile), maxHFFile)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := parseHF(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", filepath.Join(dir, HFTokenizerFile), err)
	}
	cfg, err := readfile.Bounded(filepath.Join(dir, HFConfigFile), maxHFFile)
	var sp Specials
	switch {
	case err == nil:
		if sp, err = ParseSpecials(cfg); err != nil {
			return nil, fmt.Errorf("tokenizer %s: %w", dir, err)
		}
	case errors.Is(err, fs.ErrNotExist):
		cfg = nil
	default:
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	if sp.EOS == "" {
		if err := t.specialsFromModelConfig(dir, &sp); err != nil {
			return nil, fmt.Errorf("tokenizer %s: %w", dir, err)
		}
	}
	if err := t.setSpecials(sp); err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", dir, err)
	}
	t.files = map[string][]byte{HFTokenizerFile: data}
	if cfg != nil {
		t.files[HFConfigFile] = cfg
	}
	return t, nil
}

// specialsFromModelConfig fills sp's empty BOS, EOS and Pad from the
// bos_token_id, eos_token_id and pad_token_id of dir/config.json (a
// number, or a list whose first entry counts).
func (t *HF) specialsFromModelConfig(dir string, sp *Specials) error {
	data, err := readfile.Bounded(filepath.Join(dir, "config.json"), maxHFFile)
	if err != nil {
		return fmt.Errorf("no eos_token in %s, and no config.json to take eos_token_id from: %w", HFConfigFile, err)
	}
	var c struct {
		BOS json.RawMessage `json:"bos_token_id"`
		EOS json.RawMessage `json:"eos_token_id"`
		Pad json.RawMessage `json:"pad_token_id"`
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return fmt.Errorf("config.json: %w", err)
	}
	for _, f := range []struct {
		raw  json.RawMessage
		dst  *string
		name string
	}{{c.BOS, &sp.BOS, "bos_token_id"}, {c.EOS, &sp.EOS, "eos_token_id"}, {c.Pad, &sp.Pad, "pad_token_id"}} {
		if *f.dst != "" || len(f.raw) == 0 || string(f.raw) == "null" {
			continue
		}
		var id int
		var ids []int
		switch {
		case json.Unmarshal(f.raw, &id) == nil:
		case json.Unmarshal(f.raw, &ids) == nil && len(ids) > 0:
			id = ids[0]
		default:
			return fmt.Errorf("config.json: %s: want a number or a list of numbers", f.name)
		}
		if id < 0 || id >= len(t.tokens) || !t.valid[id] {
			return fmt.Errorf("config.json: %s %d is not a token of the tokenizer", f.name, id)
		}
		*f.dst = t.tokens[id]
	}
	return nil
}

// WriteFiles writes the tokenizer.json and tokenizer_config.json (if there
// was one) the tokenizer was loaded from into dir, unchanged, so that a checkpoint
// saved there has the same tokenizer. A tokenizer made by ParseHF has no
// files to write: that is an error.
func (t *HF) WriteFiles(dir string) error {
	if t.files == nil {
		return fmt.Errorf("tokenizer: not loaded from a directory, no files to write")
	}
	for name, data := range t.files {
		err := atomicfile.Write(filepath.Join(dir, name), func(w io.Writer) error {
			_, err := w.Write(data)
			return err
		})
		if err != nil {
			return fmt.Errorf("tokenizer: %w", err)
		}
	}
	return nil
}

// ForModel returns the tokenizer of a model directory: its tokenizer.json
// (with tokenizer_config.json) when it has one, else the built-in
// tokenizer called name (config.json's instructgo_tokenizer, "byte" or
// "gpt2"). dir may be empty for a model that has no directory yet.
func ForModel(dir, name string) (Tokenizer, error) {
	if dir != "" {
		_, err := os.Stat(filepath.Join(dir, HFTokenizerFile))
		switch {
		case err == nil:
			return LoadDir(dir)
		case !errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("tokenizer: %w", err)
		}
	}
	return New(name)
}
