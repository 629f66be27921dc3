//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Parity of the Llama family's ops (kernels/rmsnorm.cu, rope.cu,
// swiglu.cu) with the cpu backend, in float32 and in bf16 (against the
// reference of bf16_reference_test.go). Tolerances, relative to the
// largest reference value:
//   - RMSNorm: as layernorm's (out 1e-5, rstd 1e-6, dinp and dweight
//     2e-5): double row sums on both, float32 products in another order;
//   - RoPE: 1e-6: both rotate by the cosine and sine of the same float32
//     angle, CUDA's sincosf within 2 ulps of the cpu's float64 ones, and
//     a fused multiply-add may round once less;
//   - SwiGLU: 2e-6: expf and the cpu's exp32 differ by an ulp or two.
// bf16 outputs may also land one bf16 ulp apart (two float32 values on
// either side of a rounding tie). Inputs sit at element offsets 0 and 1
// of their allocations, so both the vector and the scalar paths run.

func TestRMSNormParity(t *testing.T) {
	rng := newRNG(60)
	p := newOpsPair(t)
	for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
		for _, c := range []int{4, 33, 128, 768, 3000} {
			for _, n := range []int{1, 9, 130} {
				if c == 3000 && n > 9 {
					continue
				}
				for _, off := range []int{0, 1} {
					name := fmt.Sprintf("%v N=%d C=%d off=%d", dt, n, c, off)
					x := randn(rng, n*c, 1)
					for i := range x {
						x[i] += 2 // rows of uneven scale: the sum of squares matters
					}
					gx, hx := p.putAs(dt, off, x, n, c)
					gw, hw := p.putAs(dt, off, randn(rng, c, 1), c)
					gout, hout := p.putAs(dt, off, randn(rng, n*c, 1), n, c) // overwritten
					grs, hrs := p.f32(off, randn(rng, n, 1), n)
					p.g.RMSNormForward(gout, grs, gx, gw, 1e-5)
					p.h.RMSNormForward(hout, hrs, hx, hw, 1e-5)
					p.checkAs(dt, name+" out", gout, hout, 1e-5)
					closeTo(t, name+" rstd", p.get(grs), p.getH(hrs), 1e-6)
					gout2, _ := p.putAs(dt, off, make([]float32, n*c), n, c)
					p.g.RMSNormForward(gout2, nil, gx, gw, 1e-5)
					sameBits(t, name+" out without rstd", p.get(gout2), p.get(gout))

					// Backward accumulates into dinp and dweight.
					gdy, hdy := p.putAs(dt, off, randn(rng, n*c, 1), n, c)
					gdx, hdx := p.putAs(dt, off, randn(rng, n*c, 1), n, c)
					gdw, hdw := p.f32(off, randn(rng, c, 1), c)
					p.g.RMSNormBackward(gdx, gdw, gdy, gx, gw, grs)
					p.h.RMSNormBackward(hdx, hdw, hdy, hx, hw, hrs)
					p.checkAs(dt, name+" dinp", gdx, hdx, 2e-5)
					closeTo(t, name+" dweight", p.get(gdw), p.getH(hdw), 2e-5)
					// The weight sums are deterministic.
					gdw2, _ := p.f32(off, make([]float32, c), c)
					gdw3, _ := p.f32(off, make([]float32, c), c)
					p.g.RMSNormBackward(gdx, gdw2, gdy, gx, gw, grs)
					p.g.RMSNormBackward(gdx, gdw3, gdy, gx, gw, grs)
					sameBits(t, name+" dweight deterministic", p.get(gdw2), p.get(gdw3))
				}
			}
		}
	}
	p.noErr()
}

func TestRoPEParity(t *testing.T) {
	rng := newRNG(61)
	p := newOpsPair(t)
	llama3 := &gpu.RoPEScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}
	for _, tc := range []struct {
		B, T, H, KVH, hs int
		start            []int32
		theta            float64
		scaling          *gpu.RoPEScaling
	}{
		{2, 9, 4, 2, 32, nil, 10000, nil},
		{3, 5, 3, 1, 64, []int32{0, 100, -1}, 500000, llama3},
		{1, 17, 2, 2, 128, []int32{4000}, 500000, llama3},
		{2, 3, 6, 3, 6, []int32{7, 1}, 10000, nil},
		{2, 40, 8, 2, 64, []int32{3, 90000}, 500000, llama3},
	} {
		for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
			for _, off := range []int{0, 1} {
				name := fmt.Sprintf("%v %+v off=%d", dt, tc, off)
				W := (tc.H + 2*tc.KVH) * tc.hs
				inv, err := gpu.RoPEInvFreq(tc.hs, tc.theta, tc.scaling)
				if err != nil {
					t.Fatal(err)
				}
				gf, hf := p.f32(0, inv, tc.hs/2)
				var gst, hst *gpu.Tensor
				if tc.start != nil {
					gst, hst = p.i32(tc.start, tc.B)
				}
				x := randn(rng, tc.B*tc.T*W, 1)
				gx, hx := p.putAs(dt, off, x, tc.B, tc.T, W)
				before := p.get(gx)
				p.g.RoPEForward(gx, gf, gst, tc.H, tc.KVH)
				p.h.RoPEForward(hx, hf, hst, tc.H, tc.KVH)
				p.checkAs(dt, name+" forward", gx, hx, 1e-6)
				// Value heads and inactive sequences keep their bits.
				got, rot := p.get(gx), (tc.H+tc.KVH)*tc.hs
				for i := range got {
					b, col := i/(tc.T*W), i%W
					if (col >= rot || (tc.start != nil && tc.start[b] < 0)) && math.Float32bits(got[i]) != math.Float32bits(before[i]) {
						t.Fatalf("%s: element %d (sequence %d, column %d) changed from %v to %v", name, i, b, col, before[i], got[i])
					}
				}
				dy := randn(rng, tc.B*tc.T*W, 1)
				gd, hd := p.putAs(dt, off, dy, tc.B, tc.T, W)
				p.g.RoPEBackward(gd, gf, gst, tc.H, tc.KVH)
				p.h.RoPEBackward(hd, hf, hst, tc.H, tc.KVH)
				p.checkAs(dt, name+" backward", gd, hd, 1e-6)
			}
		}
	}
	p.noErr()
}

func TestSwiGLUParity(t *testing.T) {
	rng := newRNG(62)
	p := newOpsPair(t)
	for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
		for _, tc := range []struct {
			n, f   int
			spread float64
		}{{1, 1, 1}, {7, 33, 3}, {130, 256, 1}, {5, 40, 40}} {
			for _, off := range []int{0, 1} {
				name := fmt.Sprintf("%v N=%d F=%d spread=%g off=%d", dt, tc.n, tc.f, tc.spread, off)
				x := randn(rng, tc.n*2*tc.f, 1)
				for r := 0; r < tc.n; r++ {
					for j := 0; j < tc.f; j++ {
						x[r*2*tc.f+j] *= float32(tc.spread) // the gates
					}
				}
				gx, hx := p.putAs(dt, off, x, tc.n, 2*tc.f)
				gout, hout := p.putAs(dt, off, randn(rng, tc.n*tc.f, 1), tc.n, tc.f) // overwritten
				p.g.SwiGLUForward(gout, gx)
				p.h.SwiGLUForward(hout, hx)
				p.checkAs(dt, name+" out", gout, hout, 2e-6)
				gdy, hdy := p.putAs(dt, off, randn(rng, tc.n*tc.f, 1), tc.n, tc.f)
				gdx, hdx := p.putAs(dt, off, randn(rng, tc.n*2*tc.f, 1), tc.n, 2*tc.f) // overwritten
				p.g.SwiGLUBackward(gdx, gx, gdy)
				p.h.SwiGLUBackward(hdx, hx, hdy)
				p.checkAs(dt, name+" dinp", gdx, hdx, 2e-6)
			}
		}
	}
	p.noErr()
}
