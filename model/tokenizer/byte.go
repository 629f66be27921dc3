package tokenizer

import "strings"

// byteTokenizer is the "byte" tokenizer: ids 0..255 are the bytes of the
// text, byteEOS and bytePad follow.
type byteTokenizer struct{}

const (
	byteEOS int32 = 256 // <|endoftext|>
	bytePad int32 = 257 // <|pad|>, decodes to nothing
)

func (byteTokenizer) Name() string   { return "byte" }
func (byteTokenizer) VocabSize() int { return 258 }
func (byteTokenizer) EOS() int32     { return byteEOS }
func (byteTokenizer) Pad() int32     { return bytePad }

// Encode returns one id per byte of text, so any string, valid UTF-8 or
// not, round-trips exactly.
func (byteTokenizer) Encode(text string) []int32 {
	ids := make([]int32, len(text))
	for i := range len(text) {
		ids[i] = int32(text[i])
	}
	return ids
}

func (byteTokenizer) Decode(ids []int32) string {
	var sb strings.Builder
	sb.Grow(len(ids))
	for _, id := range ids {
		switch {
		case id >= 0 && id < 256:
			sb.WriteByte(byte(id))
		case id == byteEOS:
			sb.WriteString(EndOfText)
		case id == bytePad:
		default:
			sb.WriteString(invalidID)
		}
	}
	return sb.String()
}
