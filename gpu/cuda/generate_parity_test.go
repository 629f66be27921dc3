//go:build cuda

package cuda

import (
	"fmt"
	"slices"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
)

// TestDecodeAdvanceParity runs generation's bookkeeping on random states
// (a mix of active and stopped sequences, lengths up to the context,
// counts up to M−1, samples that hit EOS) on both backends, several steps
// in a row, and wants identical integers. B = 300 makes the block's
// threads stride.
func TestDecodeAdvanceParity(t *testing.T) {
	for _, B := range []int{3, 300} {
		const M, ctx, eos = 5, 12, 2
		p := newOpsPair(t)
		rng := newRNG(uint64(B))
		state := make([]int32, 3*B)
		for i := range B {
			state[B+i] = int32(rng.IntN(M))                    // generated so far
			state[i] = int32(1+rng.IntN(ctx-1)) + state[B+i]/2 // cached length, some at ctx−1
			state[i] = min(state[i], ctx-1)
			state[2*B+i] = gpu.DecodeActive
			if rng.IntN(4) == 0 {
				state[2*B+i] = int32(rng.IntN(3))
			}
		}
		gs, hs := p.i32(slices.Clone(state), 3, B)
		gids, hids := p.i32(make([]int32, 4*B), 4, B)
		gout, hout := p.i32(make([]int32, B*M), B, M)
		glive, hlive := p.i32([]int32{-5}, 1)
		for step := range 3 {
			smp := make([]int32, B)
			for i := range smp {
				smp[i] = int32(rng.IntN(8)) // EOS one time in eight
			}
			gsm, hsm := p.i32(smp, B)
			p.g.DecodeAdvance(gids, gs, gout, glive, gsm, eos, ctx)
			p.h.DecodeAdvance(hids, hs, hout, hlive, hsm, eos, ctx)
			p.noErr()
			for _, c := range []struct {
				name string
				g, h *gpu.Tensor
			}{{"ids", gids, hids}, {"state", gs, hs}, {"out", gout, hout}, {"live", glive, hlive}} {
				if got, want := p.getI32(c.g), cpu.I32(c.h); !slices.Equal(got, want) {
					t.Errorf("B=%d step %d: %s differ:\ncuda %v\ncpu  %v", B, step, c.name, got, want)
				}
			}
		}
		if live := cpu.I32(hlive)[0]; B > 100 && (live == 0 || int(live) == B) {
			t.Errorf("B=%d: %d sequences fed after three steps: the states exercise too little", B, live)
		}
	}
}

// TestDecodeAdvanceBadState wants the device error of an active sequence
// with no room left in out, naming it, as the cpu backend does.
func TestDecodeAdvanceBadState(t *testing.T) {
	p := newOpsPair(t)
	gs, hs := p.i32([]int32{3, 3, 1, 2, -1, -1}, 3, 2)
	gids, hids := p.i32(make([]int32, 8), 4, 2)
	gout, hout := p.i32(make([]int32, 4), 2, 2)
	glive, hlive := p.i32([]int32{0}, 1)
	gsm, hsm := p.i32([]int32{4, 5}, 2)
	p.h.DecodeAdvance(hids, hs, hout, hlive, hsm, -1, 8)
	p.g.DecodeAdvance(gids, gs, gout, glive, gsm, -1, 8)
	if p.h.Err() == nil {
		t.Fatal("cpu accepted a full output")
	}
	wantErrContains(t, fmt.Sprint("cuda"), p.g.Sync(), p.h.Err().Error())
}

// TestGenerateOnDeviceParity decodes greedily with a random GPT-2 on both
// backends (the tokens must agree: the model's logits agree to float32
// rounding and greedy choice is far from ties on random weights) and counts
// the cuda backend's host syncs: one poll of the live count per 16 tokens
// and one final read per batch of MaxBatch prompts, where the host loop
// before DecodeAdvance read once per token.
func TestGenerateOnDeviceParity(t *testing.T) {
	cfg := modelParityConfig()
	cfg.Dropout = 0
	rng := newRNG(41)
	init := model.InitGPT2(cfg, 41)
	prompts := make([][]int32, 6)
	for i := range prompts {
		prompts[i] = make([]int32, 1+rng.IntN(9))
		for j := range prompts[i] {
			prompts[i][j] = int32(rng.IntN(cfg.VocabSize))
		}
	}
	const maxNew = 20
	run := func(b gpu.Backend) []model.Generation {
		m, err := model.New(b, cfg, model.Options{MaxBatch: 4, MaxSeq: 32})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Upload(m.Params.All, init); err != nil {
			t.Fatal(err)
		}
		gens, err := model.Generate(m, prompts, model.GenerateOptions{MaxNew: maxNew, EOS: -1})
		if err != nil {
			t.Fatalf("%s: %v", b.Name(), err)
		}
		return gens
	}
	want := run(cpu.New(2))
	g := openTestBackend(t)
	before := g.HostSyncs()
	got := run(g)
	// Two batches (4 + 2 prompts) of 20 tokens: a poll after token 16 and a
	// final read each, plus model.New's and Upload's (none).
	if n := g.HostSyncs() - before; n != 2*2 {
		t.Errorf("%d host syncs for two batches of %d tokens, want 4", n, maxNew)
	}
	for i := range want {
		if !slices.Equal(got[i].Tokens, want[i].Tokens) || got[i].Stop != want[i].Stop {
			t.Errorf("prompt %d: cuda %v (%v), cpu %v (%v)", i, got[i].Tokens, got[i].Stop, want[i].Tokens, want[i].Stop)
		}
	}
}
