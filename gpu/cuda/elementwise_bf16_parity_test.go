//go:build cuda

package cuda

import (
	"fmt"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// bf16 parity of the elementwise and bias ops (kernels/elementwise.cu)
// against the reference of bf16_reference_test.go. Tolerances:
//   - Add, AddBias, Dropout: bit for bit (one float32 operation on the same
//     widened inputs, then the same rounding);
//   - GELU forward and backward: one bf16 ulp plus the float32 tolerance of
//     the float32 test (2e-6 of the largest output): the kernels' expf and
//     Go's exp may differ by a float32 ulp, which moves a value near a bf16
//     rounding boundary to the neighbouring bf16 value;
//   - BiasBackward (float32 output): 1e-5, as in float32 (the sums run over
//     the same widened values in another order).
// Offsets 0 and 1 run the 16-byte (8 bf16) paths and the scalar ones.

func TestElementwiseBF16Parity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(141)
	for _, n := range ewSizes {
		for _, off := range []int{0, 1} {
			name := fmt.Sprintf("n=%d off=%d", n, off)
			x, y := randn(rng, n, 1), randn(rng, n, 2)

			gx, hx := p.bf16In(off, x, n)
			gy, hy := p.bf16In(off, y, n)
			gz, hz := p.bf16In(off, randn(rng, n, 1), n)
			p.g.Add(gz, gx, gy)
			p.h.Add(hz, hx, hy)
			sameBits(t, name+" add", p.get(gz), p.refOut(hz))
			p.g.Add(gx, gx, gy) // in place
			p.h.Add(hx, hx, hy)
			sameBits(t, name+" add in place", p.get(gx), p.refOut(hx))

			// GELU over a wide range, including the clamped tails.
			gin := randn(rng, n, 4)
			gx, hx = p.bf16In(off, gin, n)
			gz, hz = p.bf16In(off, randn(rng, n, 1), n)
			p.g.GeluForward(gz, gx)
			p.h.GeluForward(hz, hx)
			want := p.refOut(hz)
			closeBF16(t, name+" gelu", p.get(gz), want, 1, 2e-6*maxAbs(want))
			p.g.GeluForward(gx, gx)
			p.h.GeluForward(hx, hx)
			want = p.refOut(hx)
			closeBF16(t, name+" gelu in place", p.get(gx), want, 1, 2e-6*maxAbs(want))

			gx, hx = p.bf16In(off, gin, n)
			gd, hd := p.bf16In(off, y, n)
			p.g.GeluBackward(gd, gx, gd) // dinp aliases dout
			p.h.GeluBackward(hd, hx, hd)
			want = p.refOut(hd)
			closeBF16(t, name+" gelu backward", p.get(gd), want, 1, 2e-6*maxAbs(want))
		}
	}
	p.noErr()
}

func TestDropoutBF16Parity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(142)
	for _, n := range ewSizes {
		for _, off := range []int{0, 1} {
			for _, prob := range []float32{0, 0.1, 0.5, 0.9} {
				seed := rng.Uint64()
				name := fmt.Sprintf("n=%d off=%d p=%g", n, off, prob)
				x := randn(rng, n, 1)
				gx, hx := p.bf16In(off, x, n)
				gz, hz := p.bf16In(off, randn(rng, n, 1), n)
				p.g.Dropout(gz, gx, prob, seed)
				p.h.Dropout(hz, hx, prob, seed)
				sameBits(t, name+" dropout", p.get(gz), p.refOut(hz))
				p.g.Dropout(gx, gx, prob, seed) // in place
				p.h.Dropout(hx, hx, prob, seed)
				sameBits(t, name+" dropout in place", p.get(gx), p.refOut(hx))
				gd, hd := p.bf16In(off, x, n)
				p.g.DropoutBackward(gd, gd, prob, seed)
				p.h.DropoutBackward(hd, hd, prob, seed)
				sameBits(t, name+" dropout backward", p.get(gd), p.refOut(hd))
			}
		}
	}
	p.noErr()
}

func TestBiasBF16Parity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(143)
	// C = 8, 64, 768: 16-byte vectors of 8 bf16; 1, 3, 130: one at a time.
	for _, c := range []int{1, 3, 8, 64, 130, 768} {
		for _, n := range []int{1, 5, 300, 4100} {
			for _, off := range []int{0, 1} {
				name := fmt.Sprintf("N=%d C=%d off=%d", n, c, off)
				gx, hx := p.bf16In(off, randn(rng, n*c, 1), n, c)
				gb, hb := p.bf16In(off, randn(rng, c, 1), c)
				p.g.AddBias(gx, gb)
				p.h.AddBias(hx, hb)
				sameBits(t, name+" add bias", p.get(gx), p.refOut(hx))
				// BiasBackward accumulates into a float32 dbias that starts
				// non-zero; dout is the bf16 output above.
				gdb, hdb := p.f32(off, randn(rng, c, 1), c)
				hx = p.refF32(p.get(gx), n, c)
				p.g.BiasBackward(gdb, gx)
				p.h.BiasBackward(hdb, hx)
				closeTo(t, name+" bias backward", p.get(gdb), p.getH(hdb), 1e-5)
			}
		}
	}
	p.noErr()
}

// TestBF16MixedDtypesRefused: an activation-class call whose tensors mix
// float32 and bf16 is an error that names the odd tensor.
func TestBF16MixedDtypesRefused(t *testing.T) {
	g := openTestBackend(t)
	a, _ := g.Alloc(gpu.BF16, 8)
	b, _ := g.Alloc(gpu.Float32, 8)
	g.Add(a, a, b)
	wantErrContains(t, "add bf16 + float32", g.Err(), "add: b is float32, want bf16")
}

// TestGatherScatterBF16Parity: the row gather copies bf16 elements (bit for
// bit); the scatter-add widens, adds in float32 and rounds once (bit for
// bit: one float32 addition of the same widened values).
func TestGatherScatterBF16Parity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(142)
	const B, T, C = 3, 5, 37
	gi, hi := p.i32([]int32{4, 0, 2}, B)
	for _, off := range []int{0, 1} {
		gs, hs := p.bf16In(off, randn(rng, B*T*C, 1), B, T, C)
		gr, hr := p.bf16In(off, randn(rng, B*C, 1), B, C)
		p.g.GatherRows(gr, gs, gi)
		p.h.GatherRows(hr, hs, hi)
		sameBits(t, fmt.Sprintf("gather off=%d", off), p.get(gr), p.refOut(hr))
		gd, hd := p.bf16In(off, randn(rng, B*C, 2), B, C)
		p.g.ScatterAddRows(gs, gd, gi)
		p.h.ScatterAddRows(hs, hd, hi)
		sameBits(t, fmt.Sprintf("scatter-add off=%d", off), p.get(gs), p.refOut(hs))
	}
	p.noErr()
}
