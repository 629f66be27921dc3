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
// A Hugging Face model directory brings its own: ForModel loads its
// tokenizer.json (with tokenizer_config.json for BOS, EOS, pad,
// add_bos_token and the chat template) when it has one, else the built-in
// tokenizer named by config.json. The loader (HF) runs BPE models the way
// Hugging Face tokenizers does, checked id for id against it
// (testdata/hf): byte-level BPE as GPT-2, Llama 3 and Qwen2 ship it (their
// Split regexes, whose `\s+(?!\S)` lookahead Go's regexp lacks, are
// rewritten exactly, see pattern.go) and SentencePiece-style BPE with
// <0xNN> byte fallback as Llama 2 and Mistral ship it (Prepend/Replace
// normalizers or a Metaspace pre-tokenizer). Unigram and WordPiece models
// and the rarer components are refused with an error naming them. It is
// our own code: the pure-Go ports we looked at get whitespace wrong or
// lack byte fallback, and the Rust library needs cgo.
//
// Chat templates (chat.go) render conversations the way the models'
// Jinja chat_template does, for ChatML, Qwen2 and Llama 3, recognised from
// tokenizer_config.json by DetectChatTemplate; Jinja is not interpreted,
// and an unknown template is refused with an error quoting it. EncodeChat
// and WithChat encode a rendering with the control tokens as ids and the
// messages as plain text, and end assistant turns with the template's
// end-of-turn token. ForChat is the one place that decides, from the
// tokenizer and a choice (auto, none, a name), which template a run's
// conversations get; ChatOf reads the decision back, and Base unwraps.
//
// A sequence's start gets the token Hugging Face's tokenizer(text) puts
// there (EncodeStart, bos.go): BOS from add_bos_token (Llama 2, Mistral)
// or the post_processor's template (Llama 3); Encode never adds it.
//
// Special tokens are never produced from user text: Encode treats the text
// "<|endoftext|>" like any other characters, so a prompt cannot forge an end
// of sequence. Callers append EOS themselves where a sequence ends. HF
// tokenizers also have EncodeSpecial (SpecialEncoder), which matches
// special tokens written in the text, for text a chat template made.
//
// Decode never fails: it maps <|endoftext|> to its text form, the byte
// tokenizer's pad token to nothing, and any id outside the vocabulary to
// U+FFFD (the Unicode replacement character). Decoding a slice that cuts a
// multi-byte character in two keeps the raw bytes, so the result may be
// invalid UTF-8; concatenating the decodings of consecutive slices gives
// the decoding of the whole (for SentencePiece-style HF tokenizers, except
// that each decoding drops one leading space, as Hugging Face's does).
//
// It imports the standard library, github.com/tiktoken-go/tokenizer,
// golang.org/x/text (NFC for Qwen2), internal/readfile and
// internal/atomicfile.
package tokenizer
