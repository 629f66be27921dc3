package tokenizer

import (
	"testing"
)

// BenchmarkHFEncode measures Encode on testdata/hf/multilingual.txt in
// tokens per second: "warm" with the word cache filled by earlier
// iterations (running text repeats its words), "cold" with it emptied
// before each iteration. gpt2 (tiktoken-go) is the built-in tokenizer on
// the same text, for comparison.
func BenchmarkHFEncode(b *testing.B) {
	_, text := readExpected(b)
	for _, name := range hfFiles {
		tok := loadTestHF(b, name)
		for _, cold := range []bool{false, true} {
			mode := map[bool]string{false: "warm", true: "cold"}[cold]
			b.Run(name+"/"+mode, func(b *testing.B) {
				n := 0
				for b.Loop() {
					if cold {
						b.StopTimer()
						tok.model.mu.Lock()
						clear(tok.model.cache)
						tok.model.mu.Unlock()
						b.StartTimer()
					}
					n += len(tok.Encode(text))
				}
				b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
			})
		}
	}
	b.Run("gpt2-tiktoken", func(b *testing.B) {
		tok, err := New("gpt2")
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for b.Loop() {
			n += len(tok.Encode(text))
		}
		b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
	})
}
