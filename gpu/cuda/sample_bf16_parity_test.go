//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// bf16 parity of Sample (kernels/sample.cu) with bf16 logits: the kernel
// widens them exactly, so it must draw exactly the tokens the cpu backend
// draws from the float32 logits of the same values (the logits of
// separated, rounded to bf16, are still coarse enough that no cumulative
// weight falls within rounding of a boundary).

func TestSampleBF16Parity(t *testing.T) {
	p := newOpsPair(t)
	settings := []gpu.Sampling{
		{},
		{Temperature: 1},
		{Temperature: 0.7, TopK: 40},
		{Temperature: 1, TopP: 0.9},
		{Temperature: 1.3, TopK: 100, TopP: 0.8},
	}
	for _, v := range []int{3, 258, 50257} {
		n := 24
		if v == 50257 {
			n = 4
		}
		logits := separated(n, v, uint64(v)+14)
		logits[0], logits[1] = float32(math.Inf(-1)), float32(math.Inf(-1))
		for _, s := range settings {
			for seed := uint64(1); seed <= 3; seed++ {
				name := fmt.Sprintf("V=%d %+v seed=%d", v, s, seed)
				gz, hz := p.bf16In(1, logits, n, v)
				gtok, htok := p.i32(make([]int32, n), n)
				p.g.Sample(gtok, gz, s, seed)
				p.h.Sample(htok, hz, s, seed)
				got := p.getI32(gtok)
				want := make([]int32, n)
				if err := p.h.DownloadInt32(want, htok); err != nil {
					t.Fatal(err)
				}
				p.noErr()
				for i := range want {
					if got[i] != want[i] {
						t.Errorf("%s: row %d: cuda drew %d, cpu %d", name, i, got[i], want[i])
					}
				}
				if s.Temperature == 0 {
					break
				}
			}
		}
	}
}
