//go:build cuda

package cuda

import (
	"fmt"
	"testing"

	"github.com/instructgo/instructgo/gpu/cpu"
)

func TestLayerNormParity(t *testing.T) {
	rng := newRNG(20)
	p := newOpsPair(t)
	for _, c := range []int{4, 33, 128, 768} {
		for _, n := range []int{1, 9, 130} {
			for _, off := range []int{0, 1} {
				name := fmt.Sprintf("N=%d C=%d off=%d", n, c, off)
				x := randn(rng, n*c, 1)
				for i := range x {
					x[i] += 20 // rows far from zero: the mean must not lose precision
				}
				gx, hx := p.f32(off, x, n, c)
				gw, hw := p.f32(off, randn(rng, c, 1), c)
				gb, hb := p.f32(off, randn(rng, c, 1), c)
				gout, hout := p.f32(off, make([]float32, n*c), n, c)
				gmean, hmean := p.f32(off, make([]float32, n), n)
				grstd, hrstd := p.f32(off, make([]float32, n), n)
				p.g.LayerNormForward(gout, gmean, grstd, gx, gw, gb)
				p.h.LayerNormForward(hout, hmean, hrstd, hx, hw, hb)
				closeTo(t, name+" out", p.get(gout), cpu.F32(hout), 1e-5)
				closeTo(t, name+" mean", p.get(gmean), cpu.F32(hmean), 1e-6)
				closeTo(t, name+" rstd", p.get(grstd), cpu.F32(hrstd), 1e-6)
				// Without statistics.
				gout2, _ := p.f32(off, make([]float32, n*c), n, c)
				p.g.LayerNormForward(gout2, nil, nil, gx, gw, gb)
				sameBits(t, name+" out without statistics", p.get(gout2), p.get(gout))

				// Backward accumulates into all three gradients.
				dy := randn(rng, n*c, 1)
				gdy, hdy := p.f32(off, dy, n, c)
				gdx, hdx := p.f32(off, randn(rng, n*c, 1), n, c)
				gdw, hdw := p.f32(off, randn(rng, c, 1), c)
				gdb, hdb := p.f32(off, randn(rng, c, 1), c)
				p.g.LayerNormBackward(gdx, gdw, gdb, gdy, gx, gw, gmean, grstd)
				p.h.LayerNormBackward(hdx, hdw, hdb, hdy, hx, hw, hmean, hrstd)
				closeTo(t, name+" dinp", p.get(gdx), cpu.F32(hdx), 2e-5)
				closeTo(t, name+" dweight", p.get(gdw), cpu.F32(hdw), 2e-5)
				closeTo(t, name+" dbias", p.get(gdb), cpu.F32(hdb), 1e-5)
			}
		}
	}
	p.noErr()
}

func TestLayerNormWideRow(t *testing.T) {
	// A row wider than 8 warps' shared memory: fewer warps per block.
	p := newOpsPair(t)
	rng := newRNG(21)
	const n, c = 5, 3000
	gx, hx := p.f32(0, randn(rng, n*c, 1), n, c)
	gw, hw := p.f32(0, randn(rng, c, 1), c)
	gb, hb := p.f32(0, randn(rng, c, 1), c)
	gout, hout := p.f32(0, make([]float32, n*c), n, c)
	gmean, hmean := p.f32(0, make([]float32, n), n)
	grstd, hrstd := p.f32(0, make([]float32, n), n)
	p.g.LayerNormForward(gout, gmean, grstd, gx, gw, gb)
	p.h.LayerNormForward(hout, hmean, hrstd, hx, hw, hb)
	closeTo(t, "out", p.get(gout), cpu.F32(hout), 1e-5)
	gdy, hdy := p.f32(0, randn(rng, n*c, 1), n, c)
	gdx, hdx := p.f32(0, make([]float32, n*c), n, c)
	gdw, hdw := p.f32(0, make([]float32, c), c)
	gdb, hdb := p.f32(0, make([]float32, c), c)
	p.g.LayerNormBackward(gdx, gdw, gdb, gdy, gx, gw, gmean, grstd)
	p.h.LayerNormBackward(hdx, hdw, hdb, hdy, hx, hw, hmean, hrstd)
	closeTo(t, "dinp", p.get(gdx), cpu.F32(hdx), 2e-5)
	closeTo(t, "dweight", p.get(gdw), cpu.F32(hdw), 2e-5)
	closeTo(t, "dbias", p.get(gdb), cpu.F32(hdb), 1e-5)
	p.noErr()
}
