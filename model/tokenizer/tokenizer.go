package tokenizer

import (
	"fmt"
	"slices"
	"strings"
)

// Tokenizer converts between text and token ids. Implementations are safe
// for concurrent use.
type Tokenizer interface {
	// Name is the name New knows the tokenizer by.
	Name() string
	// Encode tokenizes text. Special-token text in it is encoded as plain
	// text.
	Encode(text string) []int32
	// Decode turns ids back into text; see the package documentation for
	// special and out-of-vocabulary ids.
	Decode(ids []int32) string
	// VocabSize is the number of ids, special tokens included; every id
	// Encode returns is below it.
	VocabSize() int
	// EOS is the end-of-sequence id (<|endoftext|>).
	EOS() int32
	// Pad is the id that fills sequences out to a common length.
	Pad() int32
}

// EndOfText is the text form of the end-of-sequence token.
const EndOfText = "<|endoftext|>"

// invalidID is what Decode writes for an id outside the vocabulary.
const invalidID = "\uFFFD"

var constructors = map[string]func() (Tokenizer, error){
	"byte": func() (Tokenizer, error) { return byteTokenizer{}, nil },
	"gpt2": newGPT2,
}

// Names lists the names New accepts, sorted.
func Names() []string {
	names := make([]string, 0, len(constructors))
	for name := range constructors {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// New returns the tokenizer with the given name (see Names).
func New(name string) (Tokenizer, error) {
	ctor, ok := constructors[name]
	if !ok {
		return nil, fmt.Errorf("tokenizer: unknown tokenizer %q (known: %s)", name, strings.Join(Names(), ", "))
	}
	return ctor()
}
