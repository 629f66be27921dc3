//go:build cuda

package cuda

import (
	"fmt"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// bf16 checks of the elementwise ops beyond those that TestAddGeluParity,
// TestDropoutParity and TestBiasParity run for both dtypes.

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
