//go:build cuda

package cuda

import (
	"fmt"
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// separated returns n·v logits whose values are distinct multiples of a
// coarse step (plus repeats to exercise ties in greedy decoding), so that
// cumulative weights never fall within rounding of a boundary and the two
// backends must draw the same tokens.
func separated(n, v int, seed uint64) []float32 {
	rng := newRNG(seed)
	z := make([]float32, n*v)
	for i := range z {
		z[i] = float32(math.Round(rng.NormFloat64()*3*64) / 64)
	}
	return z
}

func TestSampleParity(t *testing.T) {
	p := newOpsPair(t)
	settings := []gpu.Sampling{
		{},                           // greedy
		{Temperature: 1},             // plain
		{Temperature: 0.7, TopK: 40}, // top-k
		{Temperature: 1, TopP: 0.9},  // nucleus
		{Temperature: 1.3, TopK: 100, TopP: 0.8},
		{Temperature: 0.5, TopK: 1},     // top-1 = greedy
		{Temperature: 2, TopK: 1 << 30}, // k ≥ V: no limit
		{Temperature: 1, TopP: 1},       // no nucleus
		{Temperature: 1, TopP: 0.001},   // the nucleus is the top token
	}
	for _, v := range []int{3, 258, 50257} {
		n := 48
		if v == 50257 {
			n = 6
		}
		logits := separated(n, v, uint64(v))
		// Masked tokens and a row whose maximum is repeated (greedy takes
		// the lowest id).
		logits[0], logits[1] = float32(math.Inf(-1)), float32(math.Inf(-1))
		if v > 10 {
			for j := 0; j < v; j++ {
				logits[v+j] = -5
			}
			logits[v+7], logits[v+3] = 9, 9
		}
		for _, s := range settings {
			for seed := uint64(1); seed <= 4; seed++ {
				name := fmt.Sprintf("V=%d %+v seed=%d", v, s, seed)
				gz, hz := p.f32(0, logits, n, v)
				gtok, htok := p.i32(make([]int32, n), n)
				p.g.Sample(gtok, gz, s, seed)
				p.h.Sample(htok, hz, s, seed)
				got, want := p.getI32(gtok), cpu.I32(htok)
				p.noErr()
				for i := range want {
					if got[i] != want[i] {
						t.Errorf("%s: row %d: cuda drew %d, cpu %d", name, i, got[i], want[i])
					}
				}
				if s.Temperature == 0 {
					break // greedy ignores the seed
				}
			}
		}
	}
}

func TestSampleTies(t *testing.T) {
	// Equal logits everywhere: top-k takes the lowest ids, the nucleus the
	// lowest ids needed, and the draw is the same on both backends.
	const n, v = 8, 300
	logits := make([]float32, n*v)
	for i := range logits {
		logits[i] = 1.5
	}
	p := newOpsPair(t)
	for _, s := range []gpu.Sampling{{}, {Temperature: 1, TopK: 10}, {Temperature: 1, TopP: 0.3}, {Temperature: 1, TopK: 50, TopP: 0.5}} {
		gz, hz := p.f32(0, logits, n, v)
		gtok, htok := p.i32(make([]int32, n), n)
		p.g.Sample(gtok, gz, s, 99)
		p.h.Sample(htok, hz, s, 99)
		got, want := p.getI32(gtok), cpu.I32(htok)
		p.noErr()
		for i := range want {
			if got[i] != want[i] {
				t.Errorf("%+v: row %d: cuda drew %d, cpu %d", s, i, got[i], want[i])
			}
		}
	}
}

func TestSampleBadRow(t *testing.T) {
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
		for _, s := range []gpu.Sampling{{}, {Temperature: 1, TopK: 3}} {
			p := newOpsPair(t)
			logits := []float32{1, 2, 3, 4, 5, 6, 7, bad, 9, 10}
			gz, hz := p.f32(0, logits, 2, 5)
			gtok, htok := p.i32(make([]int32, 2), 2)
			p.h.Sample(htok, hz, s, 1)
			p.g.Sample(gtok, gz, s, 1)
			if p.h.Err() == nil {
				t.Fatalf("cpu accepted %v", bad)
			}
			wantErrContains(t, fmt.Sprint(bad), p.g.Sync(), p.h.Err().Error())
		}
	}
	// Every logit −Inf.
	p := newOpsPair(t)
	inf := float32(math.Inf(-1))
	gz, _ := p.f32(0, []float32{0, 1, inf, inf}, 2, 2)
	gtok, _ := p.i32(make([]int32, 2), 2)
	p.g.Sample(gtok, gz, gpu.Sampling{Temperature: 1}, 1)
	wantErrContains(t, "all −Inf", p.g.Sync(), "row 1")
}
