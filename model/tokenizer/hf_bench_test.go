package tokenizer

import (
	"testing"
)

// BenchmarkHFEncode measures Encode on testdata/hf/multilingual.txt in
// tokens per second, for each test tokenizer.json and for the built-in
// gpt2 (tiktoken-go), for comparison.
func BenchmarkHFEncode(b *testing.B) {
	_, text := readExpected(b)
	for _, name := range hfFiles {
		tok := loadTestHF(b, name)
		b.Run(name, func(b *testing.B) {
			n := 0
			for b.Loop() {
				n += len(tok.Encode(text))
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "tokens/s")
		})
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
