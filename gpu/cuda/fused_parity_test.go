//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// Parity of the fused ops against the cpu backend, float32 and bf16:
//   - CrossEntropy (kernels/logsoftmax.cu): the log-softmax tolerances,
//     logp 1e-4 and lse 1e-5 per row, the gradient 1e-4 per row, relative
//     to the row's largest value (float32 exponentials and sums in another
//     order); in bf16 the gradient gets one bf16 ulp on top (a value near a
//     rounding boundary rounds to the neighbour), the float32 outputs keep
//     their tolerances (computed from the same widened logits);
//   - AddLayerNormForward (kernels/layernorm.cu): the sum is one float32
//     addition (and in bf16 one rounding), so it is exact; the normalised
//     output and the statistics have LayerNormForward's tolerances (1e-5,
//     1e-6; in bf16 the output one bf16 ulp more).
// The bf16 reference follows bf16_reference_test.go: the inputs rounded to
// bf16, the cpu backend's float32 ops, the outputs rounded; for
// AddLayerNormForward the stored sum is rounded before the normalisation
// reads it, as the contract says. Offsets 0 and 1 and odd widths run the
// kernels' vector and scalar paths.

// ceInputs draws logits and targets for the cross-entropy tests: −Inf logits
// (masked tokens) in the first row, a large offset in the last, the first
// row ignored and, with N > 2, row 2 ignored with another negative id.
func ceInputs(seed uint64, N, V int) ([]float32, []int32, []float32) {
	rng := newRNG(seed)
	logits := randn(rng, N*V, 3)
	if V > 4 {
		logits[1], logits[3] = float32(math.Inf(-1)), float32(math.Inf(-1))
		for j := 0; j < V; j++ {
			logits[(N-1)*V+j] += 1000
		}
	}
	targets := make([]int32, N)
	for i := range targets {
		targets[i] = int32(rng.IntN(V))
	}
	targets[0] = -1
	if N > 2 {
		targets[2] = -100
	}
	return logits, targets, randn(rng, N, 1)
}

// ceSizes give every head, vector body and tail split of a row (V odd, off
// 1) and GPT-2's vocabulary.
var ceSizes = []struct{ N, V, off int }{{1, 1, 0}, {5, 7, 1}, {9, 37, 1}, {33, 258, 0}, {4, 1000, 1}, {3, 50257, 0}}

// TestCrossEntropyParity: the fused cross-entropy on float32 and bf16
// logits (bf16 against the reference of bf16_reference_test.go, its
// gradient within one bf16 ulp more).
func TestCrossEntropyParity(t *testing.T) {
	p := newOpsPair(t)
	for di, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
		for ci, tc := range ceSizes {
			name := fmt.Sprintf("%v N=%d V=%d off=%d", dt, tc.N, tc.V, tc.off)
			N, V := tc.N, tc.V
			logits, targets, dlogp := ceInputs(uint64(150+20*di+ci), N, V)
			rng := newRNG(uint64(160 + 20*di + ci))
			gz, hz := p.putAs(dt, tc.off, logits, N, V)
			gt, ht := p.i32(targets, N)
			gdl, hdl := p.f32(0, dlogp, N)
			glp, hlp := p.f32(0, randn(rng, N, 1), N)
			glse, hlse := p.f32(0, randn(rng, N, 1), N)
			// The entropy in every other case (nil: not computed).
			var gent, hent *gpu.Tensor
			if ci%2 == 0 {
				gent, hent = p.f32(0, randn(rng, N, 1), N)
			}
			p.g.CrossEntropy(glp, gent, glse, gz, gt, gdl)
			p.h.CrossEntropy(hlp, hent, hlse, hz, ht, hdl)
			if gent != nil { // as in the log-softmax parity test
				closeTo(t, name+" entropy", p.get(gent), p.getH(hent), 1e-4)
			}
			ulps := 0.0
			if dt == gpu.BF16 {
				ulps = 1
			}
			checkCrossEntropy(t, p, name, N, V, glp, glse, gz, p.getH(hlp), p.getH(hlse), p.wantAs(dt, hz), ulps)
			p.noErr()
		}
	}
}

// checkCrossEntropy compares the cuda outputs with the reference's
// (wantLogp, wantLse, wantGrad), the gradient within ulps bf16 ulps plus
// 1e-4 of its row's largest value, and checks that the ignored rows have a
// zero gradient.
func checkCrossEntropy(t *testing.T, p *opsPair, name string, N, V int, glp, glse, gz *gpu.Tensor, wantLogp, wantLse, wantGrad []float32, ulps float64) {
	t.Helper()
	closeTo(t, name+" logp", p.get(glp), wantLogp, 1e-4)
	gl := p.get(glse)
	for i := range wantLse {
		// lse of the shifted last row is about 1000: row by row.
		closeTo(t, fmt.Sprintf("%s lse[%d]", name, i), gl[i:i+1], wantLse[i:i+1], 1e-5)
	}
	got := p.get(gz)
	for i := 0; i < N; i++ {
		row, want := got[i*V:(i+1)*V], wantGrad[i*V:(i+1)*V]
		closeBF16(t, fmt.Sprintf("%s gradient row %d", name, i), row, want, ulps, 1e-4*maxAbs(want))
		if i == 0 || i == 2 { // ignored rows
			for j, v := range row {
				if v != 0 {
					t.Fatalf("%s: ignored row %d has gradient %v at %d", name, i, v, j)
				}
			}
		}
	}
}

// lnSizes cover the vector paths (C a multiple of 8, offset 0), the scalar
// ones (C = 4 in bf16, 33, offset 1) and a row wider than the block.
var lnSizes = []struct{ n, c int }{{1, 4}, {9, 33}, {130, 128}, {9, 768}, {5, 3000}}

// addLNInputs draws a residual stream away from zero, a branch output and
// the LayerNorm's parameters.
func addLNInputs(seed uint64, n, c int) (a, b, w, bias []float32) {
	rng := newRNG(seed)
	a = randn(rng, n*c, 1)
	for i := range a {
		a[i] += 3
	}
	return a, randn(rng, n*c, 0.5), randn(rng, c, 1), randn(rng, c, 1)
}

func TestAddLayerNormParity(t *testing.T) {
	p := newOpsPair(t)
	for si, sz := range lnSizes {
		for _, off := range []int{0, 1} {
			n, c := sz.n, sz.c
			name := fmt.Sprintf("N=%d C=%d off=%d", n, c, off)
			av, bv, wv, biasv := addLNInputs(uint64(190+si), n, c)
			rng := newRNG(uint64(200 + si))
			ga, ha := p.f32(off, av, n, c)
			gb, hb := p.f32(off, bv, n, c)
			gw, hw := p.f32(off, wv, c)
			gbias, hbias := p.f32(off, biasv, c)
			gres, hres := p.f32(off, randn(rng, n*c, 1), n, c)
			gout, hout := p.f32(off, randn(rng, n*c, 1), n, c)
			gmean, hmean := p.f32(off, randn(rng, n, 1), n)
			grstd, hrstd := p.f32(off, randn(rng, n, 1), n)
			p.g.AddLayerNormForward(gres, gout, gmean, grstd, ga, gb, gw, gbias)
			p.h.AddLayerNormForward(hres, hout, hmean, hrstd, ha, hb, hw, hbias)
			sameBits(t, name+" sum", p.get(gres), p.getH(hres))
			closeTo(t, name+" out", p.get(gout), p.getH(hout), 1e-5)
			closeTo(t, name+" mean", p.get(gmean), p.getH(hmean), 1e-6)
			closeTo(t, name+" rstd", p.get(grstd), p.getH(hrstd), 1e-6)
			// Without statistics, the same outputs.
			gres2, _ := p.f32(off, randn(rng, n*c, 1), n, c)
			gout2, _ := p.f32(off, randn(rng, n*c, 1), n, c)
			p.g.AddLayerNormForward(gres2, gout2, nil, nil, ga, gb, gw, gbias)
			sameBits(t, name+" sum without statistics", p.get(gres2), p.get(gres))
			sameBits(t, name+" out without statistics", p.get(gout2), p.get(gout))
			p.noErr()
		}
	}
}

func TestAddLayerNormBF16Parity(t *testing.T) {
	p := newOpsPair(t)
	for si, sz := range lnSizes {
		for _, off := range []int{0, 1} {
			n, c := sz.n, sz.c
			name := fmt.Sprintf("N=%d C=%d off=%d", n, c, off)
			av, bv, wv, biasv := addLNInputs(uint64(210+si), n, c)
			rng := newRNG(uint64(220 + si))
			ga, _ := p.bf16In(off, av, n, c)
			gb, _ := p.bf16In(off, bv, n, c)
			gw, hw := p.bf16In(off, wv, c)
			gbias, hbias := p.bf16In(off, biasv, c)
			gres, _ := p.bf16In(off, randn(rng, n*c, 1), n, c)
			gout, _ := p.bf16In(off, randn(rng, n*c, 1), n, c)
			gmean, hmean := p.f32(off, randn(rng, n, 1), n)
			grstd, hrstd := p.f32(off, randn(rng, n, 1), n)
			p.g.AddLayerNormForward(gres, gout, gmean, grstd, ga, gb, gw, gbias)
			// The reference: the bf16 inputs added in float32, the sum
			// rounded as stored, then the cpu's float32 LayerNormForward of
			// it, its output rounded.
			ra, rb := roundBF16s(av), roundBF16s(bv)
			sum := make([]float32, n*c)
			for i := range sum {
				sum[i] = gpu.RoundBF16(ra[i] + rb[i])
			}
			hsum := p.refF32(sum, n, c)
			hout := p.refF32(make([]float32, n*c), n, c)
			p.h.LayerNormForward(hout, hmean, hrstd, hsum, hw, hbias)
			sameBits(t, name+" sum", p.get(gres), sum)
			want := p.refOut(hout)
			closeBF16(t, name+" out", p.get(gout), want, 1, 1e-5*maxAbs(want))
			closeTo(t, name+" mean", p.get(gmean), p.getH(hmean), 1e-6)
			closeTo(t, name+" rstd", p.get(grstd), p.getH(hrstd), 1e-6)
			p.noErr()
		}
	}
}

func TestCrossEntropyBadTarget(t *testing.T) {
	p := newOpsPair(t)
	const N, V = 3, 5
	logits := randn(newRNG(230), N*V, 1)
	gz, hz := p.f32(0, logits, N, V)
	gt, ht := p.i32([]int32{0, 5, 7}, N)
	gdl, hdl := p.f32(0, randn(newRNG(231), N, 1), N)
	glp, hlp := p.f32(0, make([]float32, N), N)
	glse, hlse := p.f32(0, make([]float32, N), N)
	p.h.CrossEntropy(hlp, nil, hlse, hz, ht, hdl)
	p.g.CrossEntropy(glp, nil, glse, gz, gt, gdl)
	if p.h.Err() == nil {
		t.Fatal("cpu accepted target 5 = V")
	}
	wantErrContains(t, "target 5", p.g.Sync(), p.h.Err().Error())
}
