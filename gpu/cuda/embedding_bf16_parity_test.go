//go:build cuda

package cuda

import (
	"fmt"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// bf16 parity of the embeddings (kernels/embedding.cu) against the
// reference of bf16_reference_test.go. The forward pass is bit for bit (one
// float32 addition of the same widened values, the same rounding); the
// float32 gradient tables dwte and dwpe are within 1e-6, as in float32 (the
// same widened dout summed in another order). C = 8, 128, 768 run the
// 16-byte (8 bf16) paths at offset 0; C = 130 and offset 1 the scalar ones.

func TestEmbeddingBF16Parity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(145)
	for _, tc := range []struct {
		B, T, C, V, maxT int
		positions        bool
	}{
		{2, 5, 8, 11, 7, false},
		{3, 17, 130, 258, 32, false},
		{2, 64, 128, 1000, 64, true},
		{4, 100, 768, 3000, 128, false},
	} {
		for _, off := range []int{0, 1} {
			name := fmt.Sprintf("%+v off=%d", tc, off)
			n := tc.B * tc.T
			tokens := make([]int32, n)
			for i := range tokens {
				if i%tc.T >= tc.T-3 {
					tokens[i] = 0 // a run of padding
				} else {
					tokens[i] = int32(rng.IntN(tc.V))
				}
			}
			gtok, htok := p.i32(tokens, tc.B, tc.T)
			var gpos, hpos *gpu.Tensor
			if tc.positions {
				pos := make([]int32, n)
				for i := range pos {
					pos[i] = int32(rng.IntN(tc.maxT))
				}
				gpos, hpos = p.i32(pos, tc.B, tc.T)
			}
			gwte, hwte := p.bf16In(off, randn(rng, tc.V*tc.C, 1), tc.V, tc.C)
			gwpe, hwpe := p.bf16In(off, randn(rng, tc.maxT*tc.C, 1), tc.maxT, tc.C)
			gout, hout := p.bf16In(off, randn(rng, n*tc.C, 1), tc.B, tc.T, tc.C)
			p.g.EmbeddingForward(gout, gtok, gpos, gwte, gwpe)
			p.h.EmbeddingForward(hout, htok, hpos, hwte, hwpe)
			sameBits(t, name+" forward", p.get(gout), p.refOut(hout))

			gd, hd := p.bf16In(off, randn(rng, n*tc.C, 1), tc.B, tc.T, tc.C)
			gdwte, hdwte := p.f32(off, randn(rng, tc.V*tc.C, 1), tc.V, tc.C) // += onto non-zero
			gdwpe, hdwpe := p.f32(off, randn(rng, tc.maxT*tc.C, 1), tc.maxT, tc.C)
			p.g.EmbeddingBackward(gdwte, gdwpe, gd, gtok, gpos)
			p.h.EmbeddingBackward(hdwte, hdwpe, hd, htok, hpos)
			closeTo(t, name+" dwte", p.get(gdwte), p.getH(hdwte), 1e-6)
			closeTo(t, name+" dwpe", p.get(gdwpe), p.getH(hdwpe), 1e-6)
			p.noErr()
		}
	}
}
