package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Rotary position embeddings against Hugging Face's formula, written out
// here in float64: inv_freq = 1/theta^(2i/hs) with Llama 3's scaling, and
// apply_rotary_pos_emb's q·cos + rotate_half(q)·sin with
// cos = cat(cos(p·f), cos(p·f)) and rotate_half(x) = cat(−x[hs/2:], x[:hs/2]).

// llama32Scaling is Llama 3.2's rope_scaling (config.json of the 1B and 3B).
var llama32Scaling = &gpu.RoPEScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}

// hfInvFreq64 is transformers' inverse frequencies in float64, with the
// llama3 scaling when s is one (nil: none).
func hfInvFreq64(hs int, theta float64, s *gpu.RoPEScaling) []float64 {
	inv := make([]float64, hs/2)
	for i := range inv {
		inv[i] = 1 / math.Pow(theta, float64(2*i)/float64(hs))
	}
	if s == nil {
		return inv
	}
	L := float64(s.OriginalMaxPositions)
	lowWavelen, highWavelen := L/s.LowFreqFactor, L/s.HighFreqFactor
	for i, f := range inv {
		wavelen := 2 * math.Pi / f
		switch {
		case wavelen < highWavelen:
		case wavelen > lowWavelen:
			inv[i] = f / s.Factor
		default:
			smooth := (L/wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor)
			inv[i] = (1-smooth)*f/s.Factor + smooth*f
		}
	}
	return inv
}

// hfRotate64 is apply_rotary_pos_emb on one head x with the angles
// theta(i) of its first half: x·cos + rotate_half(x)·sin.
func hfRotate64(x []float64, theta func(i int) float64) []float64 {
	hs := len(x)
	half := hs / 2
	cos, sin := make([]float64, hs), make([]float64, hs)
	for i := range cos {
		a := theta(i % half)
		cos[i], sin[i] = math.Cos(a), math.Sin(a)
	}
	rot := make([]float64, 0, hs)
	for _, v := range x[half:] {
		rot = append(rot, -v)
	}
	rot = append(rot, x[:half]...)
	out := make([]float64, hs)
	for i := range out {
		out[i] = x[i]*cos[i] + rot[i]*sin[i]
	}
	return out
}

// ropeCase is one shape of the rotary tests.
type ropeCase struct {
	B, T, H, KVH, hs int
	start            []int32 // nil: 0
	theta            float64
	scaling          *gpu.RoPEScaling
}

func (c ropeCase) String() string {
	return fmt.Sprintf("B%dT%dH%dKVH%dhs%d start%v theta%g llama3=%v", c.B, c.T, c.H, c.KVH, c.hs, c.start, c.theta, c.scaling != nil)
}

func (c ropeCase) width() int { return (c.H + 2*c.KVH) * c.hs }

var ropeCases = []ropeCase{
	{2, 9, 4, 2, 32, nil, 10000, nil},
	{3, 5, 3, 1, 64, []int32{0, 100, -1}, 500000, llama32Scaling},
	{1, 17, 2, 2, 128, []int32{4000}, 500000, llama32Scaling},
	{2, 3, 6, 3, 6, []int32{7, 1}, 10000, nil},
	{2, 40, 8, 2, 64, []int32{3, 9000}, 500000, llama32Scaling},
	{2, 3, 2, 1, 16, []int32{5000, 50}, 500000, llama32Scaling},
}

// refRoPE64 is refRoPE64f on float32 inputs.
func refRoPE64(x []float32, c ropeCase, angle func(p, i int) float64) []float64 {
	return refRoPE64f(to64(x), c, angle)
}

// runRoPE applies RoPEForward (or Backward) to x on b and returns the
// result.
func runRoPE(t *testing.T, b *Backend, x, inv []float32, c ropeCase, backward bool) []float32 {
	t.Helper()
	qkv := tensorOf(t, b, x, c.B, c.T, c.width())
	f := tensorOf(t, b, inv, c.hs/2)
	var st *gpu.Tensor
	if c.start != nil {
		st = int32Of(t, b, c.start, c.B)
	}
	if backward {
		b.RoPEBackward(qkv, f, st, c.H, c.KVH)
	} else {
		b.RoPEForward(qkv, f, st, c.H, c.KVH)
	}
	assertNoErr(t, b)
	return append([]float32(nil), F32(qkv)...)
}

func TestRoPEMatchesHuggingFace(t *testing.T) {
	for ci, c := range ropeCases {
		t.Run(c.String(), func(t *testing.T) {
			inv32, err := gpu.RoPEInvFreq(c.hs, c.theta, c.scaling)
			if err != nil {
				t.Fatal(err)
			}
			inv64 := hfInvFreq64(c.hs, c.theta, c.scaling)
			x := randn(testRNG(uint64(300+ci)), c.B*c.T*c.width(), 1)
			for _, threads := range []int{1, 3} {
				got := runRoPE(t, New(threads), x, inv32, c, false)
				// Hugging Face's formula in float64. The op's angles are
				// float32 products of a float32 frequency (as transformers
				// forms them): each rounding moves θ by at most 2⁻²⁴·θ,
				// which moves a rotated pair by that much of its length.
				var thetaMax float64
				want := refRoPE64(x, c, func(p, i int) float64 {
					a := float64(p) * inv64[i]
					thetaMax = math.Max(thetaMax, a)
					return a
				})
				checkCloseLog(t, "vs Hugging Face in float64", got, want, 2*0x1p-24*thetaMax*math.Sqrt2+2e-7)
				// The contract's angles, θ = float32(p)·invFreq in float32,
				// then float64: float32 cos, sin and products only.
				want = refRoPE64(x, c, func(p, i int) float64 { return float64(float32(p) * inv32[i]) })
				checkCloseLog(t, "vs the contract's angles in float64", got, want, 2e-7)
				// Value heads, and inactive sequences, keep their bits.
				W, rot := c.width(), (c.H+c.KVH)*c.hs
				for i := range x {
					bi, col := i/(c.T*W), i%W
					if (col >= rot || (c.start != nil && c.start[bi] < 0)) && math.Float32bits(got[i]) != math.Float32bits(x[i]) {
						t.Fatalf("element %d (sequence %d, column %d) changed from %v to %v", i, bi, col, x[i], got[i])
					}
				}
			}
		})
	}
}

// TestRoPEBackward checks the backward against central finite differences
// of L = Σ dout·rope(x) (in float64, with the op's angles), and that the
// backward undoes the forward.
func TestRoPEBackward(t *testing.T) {
	for ci, c := range ropeCases {
		t.Run(c.String(), func(t *testing.T) {
			inv32, err := gpu.RoPEInvFreq(c.hs, c.theta, c.scaling)
			if err != nil {
				t.Fatal(err)
			}
			r := testRNG(uint64(400 + ci))
			x, dout := randn(r, c.B*c.T*c.width(), 1), randn(r, c.B*c.T*c.width(), 1)
			angle := func(p, i int) float64 { return float64(float32(p) * inv32[i]) }
			b := New(2)
			got := runRoPE(t, b, dout, inv32, c, true)
			if c.B*c.T*c.width() <= 1000 {
				// L is linear in x: the differences are exact up to
				// float64 rounding.
				x64 := to64(x)
				loss := func() float64 {
					var l float64
					y := refRoPE64f(x64, c, angle)
					for i, v := range y {
						l += float64(dout[i]) * v
					}
					return l
				}
				checkCloseLog(t, "dqkv vs finite differences", got, numGrad(x64, loss), 1e-6)
			}
			back := runRoPE(t, b, runRoPE(t, b, x, inv32, c, false), inv32, c, true)
			checkCloseLog(t, "backward(forward(x)) vs x", back, to64(x), 1e-6)
		})
	}
}

// refRoPE64f rotates the query and key heads of every active row of x
// [B,T,W] with hfRotate64, position start[b]+t, angles angle(p, i); value
// heads and inactive sequences are copied.
func refRoPE64f(x []float64, c ropeCase, angle func(p, i int) float64) []float64 {
	out := append([]float64(nil), x...)
	W := c.width()
	for b := 0; b < c.B; b++ {
		s0 := 0
		if c.start != nil {
			if c.start[b] < 0 {
				continue
			}
			s0 = int(c.start[b])
		}
		for t := 0; t < c.T; t++ {
			p := s0 + t
			row := out[(b*c.T+t)*W:]
			for h := 0; h < c.H+c.KVH; h++ {
				head := row[h*c.hs : (h+1)*c.hs]
				copy(head, hfRotate64(head, func(i int) float64 { return angle(p, i) }))
			}
		}
	}
	return out
}

// TestRoPEDecodeMatchesPrefill: rotating one new row per sequence at
// offset start[b] = t gives row t of the rotation of the whole sequence,
// bit for bit: decoding and prefill see the same positions.
func TestRoPEDecodeMatchesPrefill(t *testing.T) {
	c := ropeCase{B: 2, T: 11, H: 4, KVH: 1, hs: 64, theta: 500000, scaling: llama32Scaling}
	inv32, _ := gpu.RoPEInvFreq(c.hs, c.theta, c.scaling)
	x := randn(testRNG(5), c.B*c.T*c.width(), 1)
	b := New(2)
	full := runRoPE(t, b, x, inv32, c, false)
	W := c.width()
	for tt := 0; tt < c.T; tt++ {
		step := ropeCase{B: c.B, T: 1, H: c.H, KVH: c.KVH, hs: c.hs, start: []int32{int32(tt), int32(tt)}}
		row := make([]float32, 0, c.B*W)
		for bi := 0; bi < c.B; bi++ {
			row = append(row, x[(bi*c.T+tt)*W:(bi*c.T+tt+1)*W]...)
		}
		got := runRoPE(t, b, row, inv32, step, false)
		for bi := 0; bi < c.B; bi++ {
			for i := 0; i < W; i++ {
				if g, w := got[bi*W+i], full[(bi*c.T+tt)*W+i]; math.Float32bits(g) != math.Float32bits(w) {
					t.Fatalf("position %d, sequence %d, column %d: decode %v, prefill %v", tt, bi, i, g, w)
				}
			}
		}
	}
}
