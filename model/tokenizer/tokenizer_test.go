package tokenizer

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"unicode/utf8"
)

func mustNew(t *testing.T, name string) Tokenizer {
	t.Helper()
	tok, err := New(name)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func TestNewUnknown(t *testing.T) {
	_, err := New("sentencepiece")
	if err == nil {
		t.Fatal("New(sentencepiece): no error")
	}
	for _, want := range []string{`"sentencepiece"`, "byte", "gpt2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if got := Names(); !slices.Equal(got, []string{"byte", "gpt2"}) {
		t.Errorf("Names() = %v", got)
	}
	for _, name := range Names() {
		if tok := mustNew(t, name); tok.Name() != name {
			t.Errorf("New(%q).Name() = %q", name, tok.Name())
		}
	}
}

var texts = []string{
	"",
	"Hello world",
	"The quick brown fox jumps over the lazy dog.\n\n  Indented\ttabs   and trailing spaces  ",
	"naïve café, Straße, Ελληνικά, русский, 日本語のテキスト, 한국어",
	"emoji 👩‍👩‍👧‍👦 and 🤖🚀 flags 🇫🇷",
	"code: func main() { fmt.Println(\"hi\") } // 'quotes' they're we'll",
	"numbers 1234567890 3.14159 -42",
}

func TestByte(t *testing.T) {
	tok := mustNew(t, "byte")
	if tok.VocabSize() != 258 || tok.EOS() != 256 || tok.Pad() != 257 {
		t.Errorf("byte: VocabSize %d EOS %d Pad %d, want 258 256 257", tok.VocabSize(), tok.EOS(), tok.Pad())
	}
	if got := tok.Encode("Hi é"); !slices.Equal(got, []int32{'H', 'i', ' ', 0xc3, 0xa9}) {
		t.Errorf("Encode(Hi é) = %v", got)
	}
	invalid := "ok \xff\xfe \xe6\x97 end" // invalid and truncated UTF-8
	for _, s := range append(texts, invalid, EndOfText) {
		ids := tok.Encode(s)
		if len(ids) != len(s) {
			t.Errorf("Encode(%q): %d ids for %d bytes", s, len(ids), len(s))
		}
		for _, id := range ids {
			if id < 0 || id > 255 {
				t.Errorf("Encode(%q) produced id %d", s, id)
			}
		}
		if got := tok.Decode(ids); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	}
	got := tok.Decode([]int32{'a', 256, 'b', 257, 257, -1, 258, 1 << 30, 0xe6})
	if want := "a" + EndOfText + "b" + "\uFFFD\uFFFD\uFFFD" + "\xe6"; got != want {
		t.Errorf("Decode with special and invalid ids = %q, want %q", got, want)
	}
}

func TestGPT2(t *testing.T) {
	tok := mustNew(t, "gpt2")
	if tok.VocabSize() != 50257 || tok.EOS() != 50256 || tok.Pad() != 50256 {
		t.Errorf("gpt2: VocabSize %d EOS %d Pad %d, want 50257 50256 50256", tok.VocabSize(), tok.EOS(), tok.Pad())
	}
	// Reference ids from GPT-2's tokenizer (tiktoken "gpt2" / Hugging Face).
	for _, c := range []struct {
		text string
		want []int32
	}{
		{"Hello world", []int32{15496, 995}},
		{"Hello, world!", []int32{15496, 11, 995, 0}},
		{" the", []int32{262}},
	} {
		if got := tok.Encode(c.text); !slices.Equal(got, c.want) {
			t.Errorf("Encode(%q) = %v, want %v", c.text, got, c.want)
		}
	}
	for _, s := range texts {
		ids := tok.Encode(s)
		for _, id := range ids {
			if id < 0 || int(id) >= tok.VocabSize() || id == tok.EOS() {
				t.Errorf("Encode(%q) produced id %d", s, id)
			}
		}
		if got := tok.Decode(ids); got != s {
			t.Errorf("Decode(Encode(%q)) = %q", s, got)
		}
	}
	if got := tok.Decode([]int32{15496, 50256, 995, -1, 50257}); got != "Hello"+EndOfText+" world\uFFFD\uFFFD" {
		t.Errorf("Decode with special and invalid ids = %q", got)
	}
}

// TestSpecialTextIsPlain checks that "<|endoftext|>" typed by a user is
// not turned into the end-of-sequence token, and survives a round trip.
func TestSpecialTextIsPlain(t *testing.T) {
	for _, name := range Names() {
		tok := mustNew(t, name)
		s := "before " + EndOfText + " after<|endoftext|>"
		ids := tok.Encode(s)
		if slices.Contains(ids, tok.EOS()) || slices.Contains(ids, tok.Pad()) {
			t.Errorf("%s: Encode(%q) = %v contains a special id", name, s, ids)
		}
		if got := tok.Decode(ids); got != s {
			t.Errorf("%s: round trip of %q gave %q", name, s, got)
		}
	}
	// Ordinary BPE of the special text, as tiktoken's encode_ordinary gives.
	if got, want := mustNew(t, "gpt2").Encode(EndOfText), []int32{27, 91, 437, 1659, 5239, 91, 29}; !slices.Equal(got, want) {
		t.Errorf("gpt2: Encode(%q) = %v, want %v", EndOfText, got, want)
	}
}

// TestGPT2SplitMultibyte checks that decoding token by token, which cuts
// multi-byte characters, keeps the raw bytes, so the pieces concatenate to
// the original text.
func TestGPT2SplitMultibyte(t *testing.T) {
	tok := mustNew(t, "gpt2")
	s := "日本語 🤖 ünïcode"
	ids := tok.Encode(s)
	var sb strings.Builder
	sawInvalid := false
	for _, id := range ids {
		piece := tok.Decode([]int32{id})
		sawInvalid = sawInvalid || !utf8.ValidString(piece)
		sb.WriteString(piece)
	}
	if sb.String() != s {
		t.Errorf("token-by-token decode = %q, want %q", sb.String(), s)
	}
	if !sawInvalid {
		t.Error("no token split a character; pick text that exercises partial bytes")
	}
}

func TestGPT2InvalidUTF8(t *testing.T) {
	tok := mustNew(t, "gpt2")
	ids := tok.Encode("ok \xff\xfe \xe6\x97 end")
	got := tok.Decode(ids)
	if !strings.HasPrefix(got, "ok ") || !strings.HasSuffix(got, " end") || !strings.Contains(got, "\uFFFD") {
		t.Errorf("invalid UTF-8 round trip gave %q", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	for _, name := range Names() {
		tok := mustNew(t, name)
		var wg sync.WaitGroup
		for g := range 4 {
			wg.Go(func() {
				for _, s := range texts[g%len(texts):] {
					if got := tok.Decode(tok.Encode(s)); got != s {
						t.Errorf("%s: concurrent round trip of %q gave %q", name, s, got)
					}
				}
			})
		}
		wg.Wait()
	}
}
