//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// Parity of the ops of ops_*.go against the cpu backend: the same random
// inputs go to both backends and the outputs are compared with stated
// tolerances, relative to the largest magnitude of the cpu's output:
//   - elementwise ops: 2e-6 (one or two float roundings; GELU's exp differs
//     by an ulp between the backends);
//   - dropout masks and outputs, row gathers, greedy and seeded sampling on
//     well-separated logits: exact;
//   - reductions (SumSquares, Dot, bias and layernorm parameter sums): 1e-5;
//   - attention and log-softmax: 1e-4.
// Inputs live at an element offset of 0 and of 1 inside a larger allocation,
// so both the float4 paths and the scalar fallbacks of the kernels run.
// Like every cuda test, these run only where a GPU is present.

// opsPair is a cuda backend and a cpu backend that get the same inputs.
type opsPair struct {
	t *testing.T
	g *Backend
	h *cpu.Backend
}

func newOpsPair(t *testing.T) *opsPair {
	t.Helper()
	return &opsPair{t: t, g: openTestBackend(t), h: cpu.New(2)}
}

// f32 puts vals on both backends: on cuda as a view at element offset off
// of a larger allocation, on cpu as a tensor of its own.
func (p *opsPair) f32(off int, vals []float32, shape ...int) (g, h *gpu.Tensor) {
	p.t.Helper()
	g = devView(p.t, p.g, off, vals, shape...)
	h, err := p.h.Alloc(gpu.Float32, shape...)
	if err != nil {
		p.t.Fatal(err)
	}
	copy(cpu.F32(h), vals)
	return g, h
}

// i32 puts Int32 vals on both backends.
func (p *opsPair) i32(vals []int32, shape ...int) (g, h *gpu.Tensor) {
	p.t.Helper()
	g, err := p.g.Alloc(gpu.Int32, shape...)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := p.g.UploadInt32(g, vals); err != nil {
		p.t.Fatal(err)
	}
	h, err = p.h.Alloc(gpu.Int32, shape...)
	if err != nil {
		p.t.Fatal(err)
	}
	copy(cpu.I32(h), vals)
	return g, h
}

// get downloads a cuda tensor.
func (p *opsPair) get(g *gpu.Tensor) []float32 {
	p.t.Helper()
	return download(p.t, p.g, g)
}

// getI32 downloads a cuda Int32 tensor.
func (p *opsPair) getI32(g *gpu.Tensor) []int32 {
	p.t.Helper()
	out := make([]int32, g.Len())
	if err := p.g.DownloadInt32(out, g); err != nil {
		p.t.Fatal(err)
	}
	return out
}

// noErr fails the test when either backend recorded an error.
func (p *opsPair) noErr() {
	p.t.Helper()
	if err := p.g.Sync(); err != nil {
		p.t.Fatalf("cuda: %v", err)
	}
	if err := p.h.Err(); err != nil {
		p.t.Fatalf("cpu: %v", err)
	}
}

// randn returns n normal draws times std, never exactly zero.
func randn(rng *rand.Rand, n int, std float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		for x[i] == 0 {
			x[i] = float32(rng.NormFloat64() * std)
		}
	}
	return x
}

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)) }

// relDiff is max|got−want| / max(max|want|, 1e-30), NaN when any value is
// NaN on one side only, and 0 when both are NaN at the same places.
func relDiff(got, want []float32) float64 {
	var maxDiff, maxRef float64
	for i := range want {
		g, w := float64(got[i]), float64(want[i])
		if math.IsNaN(g) != math.IsNaN(w) || math.IsInf(g, 0) != math.IsInf(w, 0) {
			return math.NaN()
		}
		if math.IsNaN(w) || math.IsInf(w, 0) {
			continue
		}
		maxDiff = math.Max(maxDiff, math.Abs(g-w))
		maxRef = math.Max(maxRef, math.Abs(w))
	}
	return maxDiff / math.Max(maxRef, 1e-30)
}

// closeTo fails unless relDiff(got, want) ≤ tol.
func closeTo(t *testing.T, what string, got, want []float32, tol float64) {
	t.Helper()
	closeToScale(t, what, got, want, tol, 0)
}

// closeToScale is closeTo with differences relative to at least floor: for
// outputs that may cancel to rounding noise (a gradient that is 0 in exact
// arithmetic), floor is the scale of the computation.
func closeToScale(t *testing.T, what string, got, want []float32, tol, floor float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	e := relDiff(got, want)
	if ref := maxAbs(want); ref < floor && !math.IsNaN(e) {
		e *= ref / floor
	}
	if !(e <= tol) {
		i := worst(got, want)
		t.Errorf("%s: relative difference %.3g > %.3g (worst at %d: cuda %v, cpu %v)", what, e, tol, i, got[i], want[i])
	}
}

// maxAbs is the largest finite |x|.
func maxAbs(x []float32) float64 {
	var m float64
	for _, v := range x {
		if f := math.Abs(float64(v)); f > m && !math.IsInf(f, 0) {
			m = f
		}
	}
	return m
}

// worst is the index of the largest absolute difference (or a NaN mismatch).
func worst(got, want []float32) int {
	best, bi := -1.0, 0
	for i := range want {
		d := math.Abs(float64(got[i]) - float64(want[i]))
		if math.IsNaN(float64(got[i])) != math.IsNaN(float64(want[i])) {
			return i
		}
		if d > best {
			best, bi = d, i
		}
	}
	return bi
}

// sameBits fails unless got and want are identical bit for bit.
func sameBits(t *testing.T, what string, got, want []float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Errorf("%s: element %d is %v (%#x), cpu %v (%#x)", what, i, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
			return
		}
	}
}

// wantErrContains fails unless err mentions every fragment.
func wantErrContains(t *testing.T, what string, err error, frags ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	for _, f := range frags {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("%s: error %q does not mention %q", what, err, f)
		}
	}
}

// ewSizes are lengths around the kernels' float4 and block boundaries.
var ewSizes = []int{1, 3, 4, 7, 1000, 4099, 70001}

func TestElementwiseParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(1)
	for _, n := range ewSizes {
		for _, off := range []int{0, 1} {
			name := fmt.Sprintf("n=%d off=%d", n, off)
			x, y := randn(rng, n, 1), randn(rng, n, 2)

			gx, hx := p.f32(off, x, n)
			p.g.Fill(gx, 0.375)
			p.h.Fill(hx, 0.375)
			sameBits(t, name+" fill", p.get(gx), cpu.F32(hx))

			gx, hx = p.f32(off, x, n)
			gy, hy := p.f32(off, y, n)
			p.g.Copy(gx, gy)
			p.h.Copy(hx, hy)
			sameBits(t, name+" copy", p.get(gx), cpu.F32(hx))

			gx, hx = p.f32(off, x, n)
			p.g.Scale(gx, -1.7)
			p.h.Scale(hx, -1.7)
			sameBits(t, name+" scale", p.get(gx), cpu.F32(hx))

			gx, hx = p.f32(off, x, n)
			p.g.Axpy(gx, 0.3, gy)
			p.h.Axpy(hx, 0.3, hy)
			closeTo(t, name+" axpy", p.get(gx), cpu.F32(hx), 2e-7)

			gx, hx = p.f32(off, x, n)
			p.g.Lerp(gx, gy, 0.008)
			p.h.Lerp(hx, hy, 0.008)
			closeTo(t, name+" lerp", p.get(gx), cpu.F32(hx), 2e-7)
		}
	}
	p.noErr()
}

// TestAddGeluParity: Add and GELU on float32 and bf16 activations, bf16
// against the reference of bf16_reference_test.go. Add is bit for bit in
// both (one float32 addition of the same widened inputs, the same
// rounding); GELU forward and backward are within 2e-6 of the largest
// output, plus one bf16 ulp in bf16: the kernels' expf and Go's exp may
// differ by a float32 ulp, which moves a value near a bf16 rounding
// boundary to the neighbouring bf16 value. Offsets 0 and 1 run the vector
// paths and the scalar ones.
func TestAddGeluParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(141)
	for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
		for _, n := range ewSizes {
			for _, off := range []int{0, 1} {
				name := fmt.Sprintf("%v n=%d off=%d", dt, n, off)
				x, y := randn(rng, n, 1), randn(rng, n, 2)
				gx, hx := p.putAs(dt, off, x, n)
				gy, hy := p.putAs(dt, off, y, n)
				gz, hz := p.putAs(dt, off, randn(rng, n, 1), n)
				p.g.Add(gz, gx, gy)
				p.h.Add(hz, hx, hy)
				p.sameAs(dt, name+" add", gz, hz)
				p.g.Add(gx, gx, gy) // in place
				p.h.Add(hx, hx, hy)
				p.sameAs(dt, name+" add in place", gx, hx)

				// GELU over a wide range, including the clamped tails.
				gin := randn(rng, n, 4)
				gx, hx = p.putAs(dt, off, gin, n)
				gz, hz = p.putAs(dt, off, randn(rng, n, 1), n)
				p.g.GeluForward(gz, gx)
				p.h.GeluForward(hz, hx)
				p.checkAs(dt, name+" gelu", gz, hz, 2e-6)
				p.g.GeluForward(gx, gx)
				p.h.GeluForward(hx, hx)
				p.checkAs(dt, name+" gelu in place", gx, hx, 2e-6)

				gx, hx = p.putAs(dt, off, gin, n)
				gd, hd := p.putAs(dt, off, y, n)
				p.g.GeluBackward(gd, gx, gd) // dinp aliases dout
				p.h.GeluBackward(hd, hx, hd)
				p.checkAs(dt, name+" gelu backward", gd, hd, 2e-6)
			}
		}
	}
	p.noErr()
}

func TestGeluSpecialValues(t *testing.T) {
	p := newOpsPair(t)
	x := []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1)), 1e30, -1e30, 0, 9, -9, 9.5, -9.5}
	gx, hx := p.f32(0, x, len(x))
	gz, hz := p.f32(0, make([]float32, len(x)), len(x))
	p.g.GeluForward(gz, gx)
	p.h.GeluForward(hz, hx)
	closeTo(t, "gelu special", p.get(gz), cpu.F32(hz), 2e-6)
	gd, hd := p.f32(0, []float32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}, len(x))
	p.g.GeluBackward(gd, gx, gd)
	p.h.GeluBackward(hd, hx, hd)
	closeTo(t, "gelu backward special", p.get(gd), cpu.F32(hd), 2e-6)
	p.noErr()
}

// TestDropoutParity: dropout on float32 and bf16 activations, bit for bit
// (the same mask, one float32 multiplication, the same rounding).
func TestDropoutParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(2)
	for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
		for _, n := range ewSizes {
			for _, off := range []int{0, 1} {
				for _, prob := range []float32{0, 0.1, 0.5, 0.9} {
					seed := rng.Uint64()
					name := fmt.Sprintf("%v n=%d off=%d p=%g", dt, n, off, prob)
					x := randn(rng, n, 1)
					gx, hx := p.putAs(dt, off, x, n)
					gz, hz := p.putAs(dt, off, randn(rng, n, 1), n)
					p.g.Dropout(gz, gx, prob, seed)
					p.h.Dropout(hz, hx, prob, seed)
					p.sameAs(dt, name+" dropout", gz, hz)
					p.g.Dropout(gx, gx, prob, seed) // in place
					p.h.Dropout(hx, hx, prob, seed)
					p.sameAs(dt, name+" dropout in place", gx, hx)
					gd, hd := p.putAs(dt, off, x, n)
					p.g.DropoutBackward(gd, gd, prob, seed)
					p.h.DropoutBackward(hd, hd, prob, seed)
					p.sameAs(dt, name+" dropout backward", gd, hd)
				}
			}
		}
	}
	p.noErr()
}

func TestReductionParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(3)
	for _, n := range append(ewSizes, 1<<20+3) {
		for _, off := range []int{0, 1} {
			name := fmt.Sprintf("n=%d off=%d", n, off)
			x, y := randn(rng, n, 1), randn(rng, n, 1)
			gx, hx := p.f32(off, x, n)
			gy, hy := p.f32(off, y, n)
			gs, hs := p.f32(0, []float32{7}, 1)
			p.g.SumSquares(gs, gx)
			p.h.SumSquares(hs, hx)
			first := p.get(gs)
			closeTo(t, name+" sum squares", first, cpu.F32(hs), 1e-5)
			p.g.SumSquares(gs, gx)
			sameBits(t, name+" sum squares is deterministic", p.get(gs), first)
			p.g.Dot(gs, gx, gy)
			p.h.Dot(hs, hx, hy)
			// A dot product of random signs cancels: compare against its scale.
			got, want := p.get(gs)[0], cpu.F32(hs)[0]
			if d := math.Abs(float64(got - want)); d > 1e-5*math.Sqrt(float64(n)) {
				t.Errorf("%s dot: cuda %v, cpu %v", name, got, want)
			}
		}
	}
	p.noErr()
}

// TestBiasParity: AddBias on float32 and bf16 activations (bit for bit),
// BiasBackward into a float32 dbias that starts non-zero (1e-5: the same
// (widened) values summed in another order). C = 8, 64, 768 run the vector
// paths; 1, 3, 130 one element at a time.
func TestBiasParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(4)
	for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
		for _, c := range []int{1, 3, 8, 64, 130, 768} {
			for _, n := range []int{1, 5, 300, 4100} {
				for _, off := range []int{0, 1} {
					name := fmt.Sprintf("%v N=%d C=%d off=%d", dt, n, c, off)
					gx, hx := p.putAs(dt, off, randn(rng, n*c, 1), n, c)
					gb, hb := p.putAs(dt, off, randn(rng, c, 1), c)
					p.g.AddBias(gx, gb)
					p.h.AddBias(hx, hb)
					p.sameAs(dt, name+" add bias", gx, hx)
					// dout is the output above (in bf16 the reference's
					// input is cuda's rounded output).
					gdb, hdb := p.f32(off, randn(rng, c, 1), c)
					if dt == gpu.BF16 {
						hx = p.refF32(p.get(gx), n, c)
					}
					p.g.BiasBackward(gdb, gx)
					p.h.BiasBackward(hdb, hx)
					closeTo(t, name+" bias backward", p.get(gdb), p.getH(hdb), 1e-5)
				}
			}
		}
	}
	// Rank-3 activations read as rows of the last dimension.
	x, bias := randn(rng, 2*3*5, 1), randn(rng, 5, 1)
	gx, hx := p.f32(0, x, 2, 3, 5)
	gb, hb := p.f32(0, bias, 5)
	p.g.BiasBackward(gb, gx)
	p.h.BiasBackward(hb, hx)
	closeTo(t, "rank-3 bias backward", p.get(gb), cpu.F32(hb), 1e-5)
	p.noErr()
}

func TestGatherScatterParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(5)
	const B, T, C = 3, 7, 130
	seq := randn(rng, B*T*C, 1)
	gseq, hseq := p.f32(1, seq, B, T, C)
	gidx, hidx := p.i32([]int32{6, 0, 3}, B)
	gout, hout := p.f32(0, make([]float32, B*C), B, C)
	p.g.GatherRows(gout, gseq, gidx)
	p.h.GatherRows(hout, hseq, hidx)
	sameBits(t, "gather rows", p.get(gout), cpu.F32(hout))
	dout := randn(rng, B*C, 1)
	gd, hd := p.f32(1, dout, B, C)
	p.g.ScatterAddRows(gseq, gd, gidx)
	p.h.ScatterAddRows(hseq, hd, hidx)
	sameBits(t, "scatter-add rows", p.get(gseq), cpu.F32(hseq))
	p.noErr()

	// An index outside [0,T) is an error at the next Sync, with the cpu
	// backend's message (the lowest failing index).
	bad, hbad := p.i32([]int32{1, 7, -2}, B)
	p.g.GatherRows(gout, gseq, bad)
	p.h.GatherRows(hout, hseq, hbad)
	wantErrContains(t, "gather rows idx 7", p.g.Sync(), p.h.Err().Error())
}

func TestAdamWParity(t *testing.T) {
	rng := newRNG(6)
	cases := []struct {
		name   string
		normSq float32 // negative: no normSq tensor
		h      gpu.AdamW
	}{
		{"no clip", -1, gpu.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1, Step: 1}},
		{"clip", 400, gpu.AdamW{LR: 3e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.01, Step: 7, MaxNorm: 1}},
		{"under the clip", 0.25, gpu.AdamW{LR: 3e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, Step: 2, MaxNorm: 1}},
		{"grad scale", 9, gpu.AdamW{LR: 1e-2, Beta1: 0.8, Beta2: 0.99, Eps: 1e-6, Step: 100, MaxNorm: 1, GradScale: 0.25}},
		{"zero norm", 0, gpu.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: 3, MaxNorm: 1}},
		{"infinite norm", float32(math.Inf(1)), gpu.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: 3, MaxNorm: 1}},
		{"NaN norm", float32(math.NaN()), gpu.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: 3, MaxNorm: 1}},
	}
	p := newOpsPair(t)
	for _, c := range cases {
		for _, n := range []int{5, 4099} {
			for _, off := range []int{0, 1} {
				name := fmt.Sprintf("%s n=%d off=%d", c.name, n, off)
				params, grads := randn(rng, n, 0.5), randn(rng, n, 1)
				m, v := randn(rng, n, 0.1), make([]float32, n)
				for i := range v {
					v[i] = float32(rng.Float64() * 0.01)
				}
				gp, hp := p.f32(off, params, n)
				gg, hg := p.f32(off, grads, n)
				gm, hm := p.f32(off, m, n)
				gv, hv := p.f32(off, v, n)
				var gn, hn *gpu.Tensor
				if c.normSq >= 0 || math.IsNaN(float64(c.normSq)) {
					gn, hn = p.f32(0, []float32{c.normSq}, 1)
				}
				p.g.AdamW(gp, nil, gg, gm, gv, gn, c.h)
				p.h.AdamW(hp, nil, hg, hm, hv, hn, c.h)
				closeTo(t, name+" params", p.get(gp), cpu.F32(hp), 2e-6)
				closeTo(t, name+" m", p.get(gm), cpu.F32(hm), 2e-6)
				closeTo(t, name+" v", p.get(gv), cpu.F32(hv), 2e-6)
			}
		}
	}
	p.noErr()
}

func TestOpErrors(t *testing.T) {
	g := openTestBackend(t)
	x, _ := g.Alloc(gpu.Float32, 4)
	y, _ := g.Alloc(gpu.Float32, 5)
	g.Axpy(x, 1, y)
	wantErrContains(t, "axpy lengths", g.Err(), "axpy: x is")
	// After an error every op does nothing and the error stays.
	g.Fill(x, 1)
	wantErrContains(t, "sticky", g.Sync(), "axpy")
}
