//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// TestLogSoftmaxParity: the fused log-softmax (kernels/logsoftmax.cu) on
// float32 and bf16 logits. bf16 is held to the reference of
// bf16_reference_test.go with the float32 tolerances for its float32
// outputs (logp and entropy 1e-4, lse 1e-5 per row: they are computed from
// the same widened logits); its gradient, written over the bf16 logits, is
// within one bf16 ulp plus 1e-4 of its row's largest value (a value near a
// bf16 rounding boundary may round to the neighbour). Offsets 0 and 1 and
// odd V give every head, 8-wide body and tail split of a row.
func TestLogSoftmaxParity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(40)
	for _, dt := range []gpu.DType{gpu.Float32, gpu.BF16} {
		for _, tc := range []struct{ N, V, off int }{{1, 1, 0}, {5, 7, 1}, {9, 37, 1}, {33, 258, 0}, {4, 1000, 1}, {3, 50257, 0}} {
			for _, withEntropy := range []bool{false, true} {
				name := fmt.Sprintf("%v N=%d V=%d off=%d entropy=%v", dt, tc.N, tc.V, tc.off, withEntropy)
				N, V := tc.N, tc.V
				logits := randn(rng, N*V, 3)
				if V > 4 {
					// −Inf logits (masked tokens) in the first row, a large
					// offset in the last.
					logits[1], logits[3] = float32(math.Inf(-1)), float32(math.Inf(-1))
					for j := 0; j < V; j++ {
						logits[(N-1)*V+j] += 1000
					}
				}
				targets := make([]int32, N)
				for i := range targets {
					targets[i] = int32(rng.IntN(V))
				}
				targets[0] = -1 // an ignored row
				if N > 2 {
					targets[2] = -100
				}
				gz, hz := p.putAs(dt, tc.off, logits, N, V)
				gt, ht := p.i32(targets, N)
				glp, hlp := p.f32(0, randn(rng, N, 1), N)
				glse, hlse := p.f32(0, randn(rng, N, 1), N)
				var gent, hent *gpu.Tensor
				if withEntropy {
					gent, hent = p.f32(0, randn(rng, N, 1), N)
				}
				p.g.LogSoftmaxForward(glp, gent, glse, gz, gt)
				p.h.LogSoftmaxForward(hlp, hent, hlse, hz, ht)
				closeTo(t, name+" logp", p.get(glp), p.getH(hlp), 1e-4)
				// lse of the shifted last row is about 1000: compare row by row.
				gl, hl := p.get(glse), p.getH(hlse)
				for i := range hl {
					closeTo(t, fmt.Sprintf("%s lse[%d]", name, i), gl[i:i+1], hl[i:i+1], 1e-5)
				}
				if withEntropy {
					closeTo(t, name+" entropy", p.get(gent), p.getH(hent), 1e-4)
				}

				// Backward, in place over the logits.
				gdl, hdl := p.f32(0, randn(rng, N, 1), N)
				var gde, hde *gpu.Tensor
				if withEntropy {
					gde, hde = p.f32(0, randn(rng, N, 0.1), N)
				}
				p.g.LogSoftmaxBackward(gz, glse, gent, gt, gdl, gde)
				p.h.LogSoftmaxBackward(hz, hlse, hent, ht, hdl, hde)
				got, want := p.get(gz), p.getH(hz)
				if dt == gpu.BF16 {
					want = p.refOut(hz)
				}
				for i := 0; i < N; i++ {
					what := fmt.Sprintf("%s grad row %d", name, i)
					g, w := got[i*V:(i+1)*V], want[i*V:(i+1)*V]
					if dt == gpu.BF16 {
						closeBF16(t, what, g, w, 1, 1e-4*maxAbs(w))
					} else {
						closeTo(t, what, g, w, 1e-4)
					}
				}
				p.noErr()
			}
		}
	}
}

func TestLogSoftmaxUnalignedRows(t *testing.T) {
	// A view at offset 1 and an odd V: every row starts at a different
	// alignment, so every head/body/tail split of the kernels runs.
	p := newOpsPair(t)
	rng := newRNG(41)
	const N, V = 9, 37
	gz, hz := p.f32(1, randn(rng, N*V, 2), N, V)
	targets := make([]int32, N)
	for i := range targets {
		targets[i] = int32(rng.IntN(V))
	}
	gt, ht := p.i32(targets, N)
	glp, hlp := p.f32(0, make([]float32, N), N)
	glse, hlse := p.f32(0, make([]float32, N), N)
	gent, hent := p.f32(0, make([]float32, N), N)
	p.g.LogSoftmaxForward(glp, gent, glse, gz, gt)
	p.h.LogSoftmaxForward(hlp, hent, hlse, hz, ht)
	closeTo(t, "logp", p.get(glp), cpu.F32(hlp), 1e-5)
	closeTo(t, "lse", p.get(glse), cpu.F32(hlse), 1e-5)
	closeTo(t, "entropy", p.get(gent), cpu.F32(hent), 1e-4)
	gdl, hdl := p.f32(0, randn(rng, N, 1), N)
	gde, hde := p.f32(0, randn(rng, N, 1), N)
	p.g.LogSoftmaxBackward(gz, glse, gent, gt, gdl, gde)
	p.h.LogSoftmaxBackward(hz, hlse, hent, ht, hdl, hde)
	closeTo(t, "grad", p.get(gz), cpu.F32(hz), 1e-4)
	p.noErr()
}

func TestLogSoftmaxBadTarget(t *testing.T) {
	p := newOpsPair(t)
	const N, V = 3, 5
	gz, hz := p.f32(0, make([]float32, N*V), N, V)
	gt, ht := p.i32([]int32{0, 5, 7}, N)
	glp, hlp := p.f32(0, make([]float32, N), N)
	glse, hlse := p.f32(0, make([]float32, N), N)
	p.h.LogSoftmaxForward(hlp, nil, hlse, hz, ht)
	p.g.LogSoftmaxForward(glp, nil, glse, gz, gt)
	if p.h.Err() == nil {
		t.Fatal("cpu accepted target 5 = V")
	}
	wantErrContains(t, "target 5", p.g.Sync(), p.h.Err().Error())
}
