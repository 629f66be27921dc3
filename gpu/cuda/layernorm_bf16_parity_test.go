//go:build cuda

package cuda

import (
	"fmt"
	"testing"
)

// bf16 parity of layer normalisation (kernels/layernorm.cu) against the
// reference of bf16_reference_test.go. Tolerances:
//   - out and dinp (bf16): one bf16 ulp plus the float32 test's tolerance
//     times the largest output (1e-5 and 2e-5): the row sums run in another
//     order, and a float32 value near a bf16 rounding boundary may round to
//     the neighbour;
//   - mean and rstd (float32): 1e-6, as in float32 (double sums over the
//     same widened inputs);
//   - dweight, dbias (float32): 2e-5 and 1e-5, as in float32.
// C = 24, 128, 768 run the 16-byte (8 bf16) paths at offset 0; C = 4, 33
// and offset 1 the scalar ones; C = 3000 has fewer warps per block.

func TestLayerNormBF16Parity(t *testing.T) {
	rng := newRNG(144)
	p := newOpsPair(t)
	for _, c := range []int{4, 24, 33, 128, 768, 3000} {
		for _, n := range []int{1, 9, 130} {
			if c == 3000 && n > 9 {
				continue
			}
			for _, off := range []int{0, 1} {
				name := fmt.Sprintf("N=%d C=%d off=%d", n, c, off)
				x := randn(rng, n*c, 1)
				for i := range x {
					x[i] += 3 // rows away from zero
				}
				gx, hx := p.bf16In(off, x, n, c)
				gw, hw := p.bf16In(off, randn(rng, c, 1), c)
				gb, hb := p.bf16In(off, randn(rng, c, 1), c)
				gout, hout := p.bf16In(off, randn(rng, n*c, 1), n, c)
				gmean, hmean := p.f32(off, randn(rng, n, 1), n)
				grstd, hrstd := p.f32(off, randn(rng, n, 1), n)
				p.g.LayerNormForward(gout, gmean, grstd, gx, gw, gb)
				p.h.LayerNormForward(hout, hmean, hrstd, hx, hw, hb)
				want := p.refOut(hout)
				closeBF16(t, name+" out", p.get(gout), want, 1, 1e-5*maxAbs(want))
				closeTo(t, name+" mean", p.get(gmean), p.getH(hmean), 1e-6)
				closeTo(t, name+" rstd", p.get(grstd), p.getH(hrstd), 1e-6)

				// Backward accumulates into all three gradients: dinp (bf16)
				// and dweight, dbias (float32) start non-zero.
				gdy, hdy := p.bf16In(off, randn(rng, n*c, 1), n, c)
				gdx, hdx := p.bf16In(off, randn(rng, n*c, 1), n, c)
				gdw, hdw := p.f32(off, randn(rng, c, 1), c)
				gdb, hdb := p.f32(off, randn(rng, c, 1), c)
				p.g.LayerNormBackward(gdx, gdw, gdb, gdy, gx, gw, gmean, grstd)
				p.h.LayerNormBackward(hdx, hdw, hdb, hdy, hx, hw, hmean, hrstd)
				want = p.refOut(hdx)
				closeBF16(t, name+" dinp", p.get(gdx), want, 1, 2e-5*maxAbs(want))
				closeTo(t, name+" dweight", p.get(gdw), p.getH(hdw), 2e-5)
				closeTo(t, name+" dbias", p.get(gdb), p.getH(hdb), 1e-5)
				// The parameter sums are deterministic.
				gdw2, _ := p.f32(off, make([]float32, c), c)
				gdw3, _ := p.f32(off, make([]float32, c), c)
				gdx2, _ := p.bf16In(off, randn(rng, n*c, 1), n, c)
				p.g.LayerNormBackward(gdx2, gdw2, gdb, gdy, gx, gw, gmean, grstd)
				p.g.LayerNormBackward(gdx2, gdw3, gdb, gdy, gx, gw, gmean, grstd)
				sameBits(t, name+" dweight deterministic", p.get(gdw2), p.get(gdw3))
			}
		}
	}
	p.noErr()
}
