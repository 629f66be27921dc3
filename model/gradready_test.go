package model

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/instructgo/instructgo/gpu/cpu"
)

// OnGradsReady reports, for GPT-2 and Llama-family models (tied, untied,
// with biases, with a scalar head), ranges that cover the gradient buffer
// exactly once, in GradRanges' order, each block's as soon as its backward
// has run (two ranges: the layout puts the decayed tensors first), and
// each range final when reported: its values then are, bit for bit, those
// after Backward returns (gradients accumulating onto random ones).
func TestOnGradsReadyReportsFinalRanges(t *testing.T) {
	tied := llamaTestConfig()
	tied.TieEmbeddings = true
	qwen := llamaTestConfig()
	qwen.Arch, qwen.AttentionBias = ArchQwen2, true
	cases := []struct {
		name   string
		cfg    Config
		scalar bool
	}{
		{"gpt2", testConfig(), false},
		{"gpt2-scalar", testConfig(), true},
		{"llama-untied", llamaTestConfig(), false},
		{"llama-tied", tied, false},
		{"qwen2-bias-scalar", qwen, true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			cfg := tc.cfg
			cfg.ScalarHead = tc.scalar
			const B, T = 2, 6
			b := cpu.New(1)
			m, err := New(b, cfg, Options{MaxBatch: B, MaxSeq: T, Train: true})
			if err != nil {
				t.Fatal(err)
			}
			copy(cpu.F32(m.Params.All), randomParams(cfg, rng))
			grads := cpu.F32(m.Grads.All)
			copy(grads, randVec(rng, len(grads)))

			ranges := m.GradRanges()
			covered := make([]int, len(grads))
			for _, r := range ranges {
				for j := r.Lo; j < r.Hi; j++ {
					covered[j]++
				}
			}
			for j, n := range covered {
				if n != 1 {
					t.Fatalf("element %d of %d is in %d ranges", j, len(grads), n)
				}
			}
			if want := 2*cfg.NLayer + 1; len(ranges) < want {
				t.Errorf("%d ranges, want at least %d (two per block)", len(ranges), want)
			}

			in := randomBatch(cfg, rng, B, T, true)
			if tc.scalar {
				in.Targets = nil
			}
			if err := m.Forward(in, true, 5); err != nil {
				t.Fatal(err)
			}
			var got []GradRange
			var seen [][]float32
			m.OnGradsReady = func(lo, hi int) {
				got = append(got, GradRange{lo, hi})
				seen = append(seen, slices.Clone(grads[lo:hi]))
			}
			if err := m.Backward(upload(t, b, randVec(rng, B*T), B*T), nil); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, ranges) {
				t.Fatalf("reported %v, want GradRanges %v", got, ranges)
			}
			for k, r := range got {
				final := grads[r.Lo:r.Hi]
				if !slices.Equal(seen[k], final) {
					t.Fatalf("range %v changed after it was reported final", r)
				}
			}
		})
	}
}
