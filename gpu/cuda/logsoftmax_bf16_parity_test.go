//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// bf16 parity of the fused log-softmax (kernels/logsoftmax.cu) with bf16
// logits against the reference of bf16_reference_test.go. The float32
// outputs keep the float32 test's tolerances (logp and entropy 1e-4, lse
// 1e-5 per row): they are computed from the same widened logits. The
// gradient, written over the bf16 logits, is within one bf16 ulp plus 1e-4
// of its row's largest value (the float32 tolerance: the exponentials and
// the row's sums differ by float32 roundings, and a value near a bf16
// rounding boundary rounds to the neighbour). Offsets 0 and 1 and odd V
// give every head, 8-wide body and tail split of a row.

func TestLogSoftmaxBF16Parity(t *testing.T) {
	p := newOpsPair(t)
	rng := newRNG(146)
	for _, tc := range []struct{ N, V, off int }{{1, 1, 0}, {5, 7, 1}, {9, 37, 1}, {33, 258, 0}, {4, 1000, 1}, {3, 50257, 0}} {
		for _, withEntropy := range []bool{false, true} {
			name := fmt.Sprintf("N=%d V=%d off=%d entropy=%v", tc.N, tc.V, tc.off, withEntropy)
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
			gz, hz := p.bf16In(tc.off, logits, N, V)
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
			gl, hl := p.get(glse), p.getH(hlse)
			for i := range hl {
				closeTo(t, fmt.Sprintf("%s lse[%d]", name, i), gl[i:i+1], hl[i:i+1], 1e-5)
			}
			if withEntropy {
				closeTo(t, name+" entropy", p.get(gent), p.getH(hent), 1e-4)
			}

			// Backward, in place over the bf16 logits.
			gdl, hdl := p.f32(0, randn(rng, N, 1), N)
			var gde, hde *gpu.Tensor
			if withEntropy {
				gde, hde = p.f32(0, randn(rng, N, 0.1), N)
			}
			p.g.LogSoftmaxBackward(gz, glse, gent, gt, gdl, gde)
			p.h.LogSoftmaxBackward(hz, hlse, hent, ht, hdl, hde)
			got, want := p.get(gz), p.refOut(hz)
			for i := 0; i < N; i++ {
				row := want[i*V : (i+1)*V]
				closeBF16(t, fmt.Sprintf("%s grad row %d", name, i), got[i*V:(i+1)*V], row, 1, 1e-4*maxAbs(row))
			}
			p.noErr()
		}
	}
}
