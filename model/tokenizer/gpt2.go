package tokenizer

import (
	"fmt"
	"strings"

	tiktoken "github.com/tiktoken-go/tokenizer"
)

// GPT-2 vocabulary facts.
const (
	gpt2VocabSize = 50257
	gpt2EOS       = 50256 // <|endoftext|>, the only special token
)

// gpt2 is GPT-2's BPE. tiktoken's r50k_base is exactly GPT-2's encoding
// (tiktoken-go's own "gpt2" entry does not resolve in v0.10.0). The codec
// has no special tokens in its vocabulary and never emits one, which is
// what keeps "<|endoftext|>" in user text plain; EOS is handled here.
type gpt2 struct {
	codec tiktoken.Codec
}

func newGPT2() (Tokenizer, error) {
	codec, err := tiktoken.Get(tiktoken.R50kBase)
	if err != nil {
		return nil, fmt.Errorf("tokenizer gpt2: %w", err)
	}
	// Leave invalid UTF-8 from Decode as raw bytes, so that decodings of
	// consecutive slices concatenate to the decoding of the whole.
	codec.SetErrorMode(tiktoken.ErrorModeNone)
	return gpt2{codec: codec}, nil
}

func (gpt2) Name() string   { return "gpt2" }
func (gpt2) VocabSize() int { return gpt2VocabSize }
func (gpt2) EOS() int32     { return gpt2EOS }
func (gpt2) Pad() int32     { return gpt2EOS }

// Encode applies GPT-2's BPE. The BPE splits text into Unicode characters
// first, so invalid UTF-8 sequences in text are encoded as U+FFFD.
func (t gpt2) Encode(text string) []int32 {
	ids, _, err := t.codec.Encode(text)
	if err != nil {
		// The codec fails only in its strict UTF-8 mode (not set here) or
		// on a regexp timeout (none is set): a bug, not bad input.
		panic(fmt.Sprintf("tokenizer gpt2: encode: %v", err))
	}
	out := make([]int32, len(ids))
	for i, id := range ids {
		out[i] = int32(id)
	}
	return out
}

func (t gpt2) Decode(ids []int32) string {
	var sb strings.Builder
	run := make([]uint, 0, len(ids))
	flush := func() {
		if len(run) == 0 {
			return
		}
		if s, err := t.codec.Decode(run); err == nil {
			sb.WriteString(s)
		} else {
			// Not expected for ids below gpt2EOS; decode one by one so
			// that only a bad id is replaced.
			for _, id := range run {
				s, err := t.codec.Decode([]uint{id})
				if err != nil {
					s = invalidID
				}
				sb.WriteString(s)
			}
		}
		run = run[:0]
	}
	for _, id := range ids {
		switch {
		case id >= 0 && id < gpt2EOS:
			run = append(run, uint(id))
		case id == gpt2EOS:
			flush()
			sb.WriteString(EndOfText)
		default:
			flush()
			sb.WriteString(invalidID)
		}
	}
	flush()
	return sb.String()
}
