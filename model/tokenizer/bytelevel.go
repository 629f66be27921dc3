package tokenizer

// GPT-2's byte-level alphabet: every byte is written as one printable
// character, so that BPE vocabularies hold only printable strings. Bytes
// that are printable in Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
// themselves; the other 68 take the characters U+0100, U+0101, ... in byte
// order.
var (
	byteToRune [256]rune
	runeToByte = map[rune]byte{}
)

func init() {
	next := rune(256)
	for b := range 256 {
		r := rune(b)
		if !(b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF) {
			r = next
			next++
		}
		byteToRune[b] = r
		runeToByte[r] = byte(b)
	}
}

// byteLevelString writes the bytes of s in the byte-level alphabet.
func byteLevelString(s string) string {
	rs := make([]rune, len(s))
	for i := range len(s) {
		rs[i] = byteToRune[s[i]]
	}
	return string(rs)
}

// byteLevelBytes maps a byte-level token back to its bytes; ok is false
// when a character is outside the alphabet (an added token such as
// "<|endoftext|>" whose characters all are in it maps to itself).
func byteLevelBytes(tok string, dst []byte) ([]byte, bool) {
	n := len(dst)
	for _, r := range tok {
		b, ok := runeToByte[r]
		if !ok {
			return dst[:n], false
		}
		dst = append(dst, b)
	}
	return dst, true
}
