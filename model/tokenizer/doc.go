// Package tokenizer turns text into token ids and back for the models of
// this project. Two tokenizers are built in, chosen by name with New:
//
//   - "byte": one token per byte (ids 0..255), plus <|endoftext|> (256,
//     end of sequence) and <|pad|> (257); for small models trained from
//     scratch.
//   - "gpt2": GPT-2's byte-level BPE (vocabulary 50257, <|endoftext|> =
//     50256, also used for padding as Hugging Face GPT-2 does), through
//     github.com/tiktoken-go/tokenizer, which embeds the vocabulary.
//
// Special tokens are never produced from user text: Encode treats the text
// "<|endoftext|>" like any other characters, so a prompt cannot forge an end
// of sequence. Callers append EOS themselves where a sequence ends.
//
// Decode never fails: it maps <|endoftext|> to its text form, the byte
// tokenizer's pad token to nothing, and any id outside the vocabulary to
// U+FFFD (the Unicode replacement character). Decoding a slice that cuts a
// multi-byte character in two keeps the raw bytes, so the result may be
// invalid UTF-8; concatenating the decodings of consecutive slices gives
// the decoding of the whole.
//
// It imports only the standard library and github.com/tiktoken-go/tokenizer.
package tokenizer
