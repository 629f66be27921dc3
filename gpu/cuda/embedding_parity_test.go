//go:build cuda

package cuda

import (
	"fmt"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// TestEmbeddingParity: the embeddings (kernels/embedding.cu) on float32
// and bf16 tables, bf16 against the reference of bf16_reference_test.go.
// The forward pass is bit for bit in both (one float32 addition of the same
// (widened) values, the same rounding); the float32 gradient tables dwte
// and dwpe are within 1e-6 (the same dout summed in another order). C = 8,
// 128, 768 run the vector paths at offset 0; C = 130 and offset 1 the
// scalar ones.
func TestEmbeddingParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(10)
	for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
		for _, tc := range []struct {
			B, T, C, V, maxT int
			positions        bool
		}{
			{2, 5, 8, 11, 7, false},
			{3, 17, 130, 258, 32, false}, // C not a multiple of 4
			{2, 64, 128, 1000, 64, true},
			{4, 100, 768, 3000, 128, false},
		} {
			for _, off := range []int{0, 1} {
				name := fmt.Sprintf("%v %+v off=%d", dt, tc, off)
				n := tc.B * tc.T
				tokens := make([]int32, n)
				for i := range tokens {
					switch {
					case i%tc.T >= tc.T-3:
						tokens[i] = 0 // a run of padding, as in right-padded batches
					case i%5 == 0:
						tokens[i] = int32(tc.V - 1)
					default:
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
				gwte, hwte := p.putAs(dt, off, randn(rng, tc.V*tc.C, 1), tc.V, tc.C)
				gwpe, hwpe := p.putAs(dt, off, randn(rng, tc.maxT*tc.C, 1), tc.maxT, tc.C)
				gout, hout := p.putAs(dt, off, randn(rng, n*tc.C, 1), tc.B, tc.T, tc.C)
				p.g.EmbeddingForward(gout, gtok, gpos, gwte, gwpe)
				p.h.EmbeddingForward(hout, htok, hpos, hwte, hwpe)
				want := p.getH(hout)
				if dt == gpu.BF16 {
					want = p.refOut(hout)
				}
				sameBits(t, name+" forward", p.get(gout), want)

				gd, hd := p.putAs(dt, off, randn(rng, n*tc.C, 1), tc.B, tc.T, tc.C)
				gdwte, hdwte := p.f32(off, randn(rng, tc.V*tc.C, 1), tc.V, tc.C) // += onto non-zero
				gdwpe, hdwpe := p.f32(off, randn(rng, tc.maxT*tc.C, 1), tc.maxT, tc.C)
				p.g.EmbeddingBackward(gdwte, gdwpe, gd, gtok, gpos)
				p.h.EmbeddingBackward(hdwte, hdwpe, hd, htok, hpos)
				closeTo(t, name+" dwte", p.get(gdwte), p.getH(hdwte), 1e-6)
				closeTo(t, name+" dwpe", p.get(gdwpe), p.getH(hdwpe), 1e-6)
				// Deterministic: the same scatter again adds the same sums.
				g2, _ := p.f32(off, make([]float32, tc.V*tc.C), tc.V, tc.C)
				g3, _ := p.f32(off, make([]float32, tc.V*tc.C), tc.V, tc.C)
				p.g.EmbeddingBackward(g2, nil, gd, gtok, gpos)
				p.g.EmbeddingBackward(g3, nil, gd, gtok, gpos)
				sameBits(t, name+" dwte deterministic", p.get(g2), p.get(g3))
				// One gradient at a time.
				gw, hw := p.f32(off, make([]float32, tc.maxT*tc.C), tc.maxT, tc.C)
				p.g.EmbeddingBackward(nil, gw, gd, gtok, gpos)
				p.h.EmbeddingBackward(nil, hw, hd, htok, hpos)
				closeTo(t, name+" dwpe alone", p.get(gw), p.getH(hw), 1e-6)
				p.noErr()
			}
		}
	}
}

func TestEmbeddingBadToken(t *testing.T) {
	p := newOpsPair(t)
	gtok, htok := p.i32([]int32{1, 2, 11, 3, -1, 0}, 2, 3)
	gwte, hwte := p.f32(0, make([]float32, 11*4), 11, 4)
	gwpe, hwpe := p.f32(0, make([]float32, 3*4), 3, 4)
	gout, hout := p.f32(0, make([]float32, 24), 2, 3, 4)
	p.h.EmbeddingForward(hout, htok, nil, hwte, hwpe)
	p.g.EmbeddingForward(gout, gtok, nil, gwte, gwpe)
	if p.h.Err() == nil {
		t.Fatal("cpu accepted token 11")
	}
	// The same message as the cpu backend's, at the next Sync.
	wantErrContains(t, "token 11", p.g.Sync(), p.h.Err().Error())
}

func TestEmbeddingBadPosition(t *testing.T) {
	p := newOpsPair(t)
	gtok, htok := p.i32([]int32{1, 2, 3, 3, 1, 0}, 2, 3)
	gpos, hpos := p.i32([]int32{0, 1, 2, 0, 3, 1}, 2, 3)
	gwte, hwte := p.f32(0, make([]float32, 11*4), 11, 4)
	gwpe, hwpe := p.f32(0, make([]float32, 3*4), 3, 4)
	gd, hd := p.f32(0, make([]float32, 24), 2, 3, 4)
	p.h.EmbeddingBackward(hwte, hwpe, hd, htok, hpos)
	p.g.EmbeddingBackward(gwte, gwpe, gd, gtok, gpos)
	if p.h.Err() == nil {
		t.Fatal("cpu accepted position 3")
	}
	wantErrContains(t, "position 3", p.g.Sync(), p.h.Err().Error())
}
