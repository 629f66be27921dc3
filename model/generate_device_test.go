package model

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// hostLoopGenerate is generation as it was before it moved to the device:
// after each Sample the host downloads the tokens, decides who stops and
// feeds the others through DecodeStep. It is the reference the
// device-resident loop must equal token for token.
func hostLoopGenerate(t *testing.T, m *Model, prompts [][]int32, opt GenerateOptions) []Generation {
	t.Helper()
	b := m.Backend()
	kv, err := m.NewKVCache(m.MaxBatch(), m.Cfg.MaxSeqLen)
	if err != nil {
		t.Fatal(err)
	}
	ctx, chunk := kv.MaxSeq(), m.MaxBatch()
	var out []Generation
	for k := 0; k*chunk < len(prompts); k++ {
		batch := prompts[k*chunk : min((k+1)*chunk, len(prompts))]
		seed := gpu.Mix64(opt.Seed, uint64(k))
		if err := m.Prefill(kv, batch); err != nil {
			t.Fatal(err)
		}
		B := len(batch)
		gens, active := make([]Generation, B), slices.Repeat([]bool{true}, B)
		sampled, feed := make([]int32, B), make([]int32, B)
		tok, err := b.Alloc(gpu.Int32, B)
		if err != nil {
			t.Fatal(err)
		}
		for step := 0; ; step++ {
			b.Sample(tok, m.NextLogits(), opt.Sampling, gpu.Mix64(seed, uint64(step)))
			if err := b.DownloadInt32(sampled, tok); err != nil {
				t.Fatal(err)
			}
			live := 0
			for i, tk := range sampled {
				feed[i] = -1
				if !active[i] {
					continue
				}
				g := &gens[i]
				switch {
				case tk == opt.EOS:
					g.Stop = StopEOS
				case len(g.Tokens)+1 == opt.MaxNew:
					g.Tokens, g.Stop = append(g.Tokens, tk), StopMaxNew
				case len(batch[i])+len(g.Tokens)+1 == ctx:
					g.Tokens, g.Stop = append(g.Tokens, tk), StopContext
				default:
					g.Tokens, feed[i] = append(g.Tokens, tk), tk
					live++
					continue
				}
				active[i] = false
			}
			if live == 0 {
				break
			}
			if err := m.DecodeStep(kv, feed); err != nil {
				t.Fatal(err)
			}
		}
		out = append(out, gens...)
	}
	return out
}

// TestGenerateOnDeviceMatchesHostLoop samples (temperature 1) from random
// models of each architecture with an EOS the models produce often, prompts
// of mixed lengths and a context they fill, so all three stops occur, and
// wants the device-resident loop to give the host loop's tokens and stops,
// on the cpu backend and on the cpu backend posing as a device (polling the
// live count every devicePollEvery tokens, decoding past the end).
func TestGenerateOnDeviceMatchesHostLoop(t *testing.T) {
	forConfigs(t, func(t *testing.T, cfg Config) {
		rng := rand.New(rand.NewPCG(21, 22))
		prompts := randomSeqs(rng, cfg.VocabSize, 1, 9, 3, 12, 2, 5, 14, 4, 7)
		for _, maxNew := range []int{3, 40} {
			opt := GenerateOptions{MaxNew: maxNew, Sampling: gpu.Sampling{Temperature: 1}, Seed: 77, EOS: 5}
			m, _ := newGenModel(t, cpu.New(2), cfg, 4, cfg.MaxSeqLen, 13)
			want := hostLoopGenerate(t, m, prompts, opt)
			stops := map[StopReason]bool{}
			for _, g := range want {
				stops[g.Stop] = true
			}
			if maxNew == 40 && (!stops[StopEOS] || !stops[StopContext]) || maxNew == 3 && !stops[StopMaxNew] {
				t.Fatalf("max new %d: the reference stopped only by %v: the case exercises too little", maxNew, stops)
			}
			for _, dev := range []bool{false, true} {
				var b gpu.Backend = cpu.New(2)
				if dev {
					b = cpu.NewCounting(2)
				}
				m, _ := newGenModel(t, b, cfg, 4, cfg.MaxSeqLen, 13)
				got, err := Generate(m, prompts, opt)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if !slices.Equal(got[i].Tokens, want[i].Tokens) || got[i].Stop != want[i].Stop {
						t.Fatalf("max new %d, device %v: prompt %d: %v (%v), host loop %v (%v)", maxNew, dev, i, got[i].Tokens, got[i].Stop, want[i].Tokens, want[i].Stop)
					}
				}
			}
		}
	})
}

// TestGenerateHostSyncsPerBatch counts the reads back of a generation on
// a device: one at the end of each batch, and one per devicePollEvery
// tokens decoded, where the host loop read once per token.
func TestGenerateHostSyncsPerBatch(t *testing.T) {
	cfg := genConfig()
	cfg.MaxSeqLen = 64
	rng := rand.New(rand.NewPCG(3, 4))
	prompts := randomSeqs(rng, cfg.VocabSize, 2, 3, 4, 5, 6, 7, 8, 9) // two batches of four
	b := cpu.NewCounting(2)
	m, _ := newGenModel(t, b, cfg, 4, cfg.MaxSeqLen, 5)
	const maxNew = 40
	before := b.HostSyncs()
	gens, err := Generate(m, prompts, GenerateOptions{MaxNew: maxNew, Sampling: gpu.Sampling{Temperature: 1}, Seed: 1, EOS: -1})
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range gens {
		if len(g.Tokens) != maxNew {
			t.Fatalf("prompt %d: %d tokens without an EOS, want %d", i, len(g.Tokens), maxNew)
		}
	}
	// Per batch: polls after tokens 16 and 32 (the 40th is the last, with
	// no poll), then the final read.
	polls := (maxNew - 1) / devicePollEvery
	if got, want := b.HostSyncs()-before, int64(2*(polls+1)); got != want {
		t.Fatalf("%d host syncs for 2 batches of %d tokens, want %d", got, maxNew, want)
	}
}

// TestGenerateBatchDoesNotChangeTokens decodes 11 prompts of mixed lengths
// in one batch (Batch 12 with a MaxBatch of 4: prefill in three parts,
// sampling in three seed groups) and wants the tokens of batches of 4, on
// the cpu backend and posing as a device.
func TestGenerateBatchDoesNotChangeTokens(t *testing.T) {
	forConfigs(t, func(t *testing.T, cfg Config) {
		rng := rand.New(rand.NewPCG(8, 9))
		prompts := randomSeqs(rng, cfg.VocabSize, 1, 9, 3, 12, 2, 5, 14, 4, 7, 2, 6)
		opt := GenerateOptions{MaxNew: 30, Sampling: gpu.Sampling{Temperature: 1}, Seed: 5, EOS: 5}
		for _, dev := range []bool{false, true} {
			var b gpu.Backend = cpu.New(2)
			if dev {
				b = cpu.NewCounting(2)
			}
			m, _ := newGenModel(t, b, cfg, 4, cfg.MaxSeqLen, 17)
			want, err := Generate(m, prompts, opt)
			if err != nil {
				t.Fatal(err)
			}
			for _, batch := range []int{8, 12, 100} {
				opt.Batch = batch
				got, err := Generate(m, prompts, opt)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want {
					if !slices.Equal(got[i].Tokens, want[i].Tokens) || got[i].Stop != want[i].Stop {
						t.Fatalf("batch %d, device %v: prompt %d: %v (%v), batches of 4: %v (%v)", batch, dev, i, got[i].Tokens, got[i].Stop, want[i].Tokens, want[i].Stop)
					}
				}
			}
			opt.Batch = 0
		}
	})
}

// refusingGraphs is a device whose graph capture is refused, as the cuda
// backend's with INSTRUCTGO_CUDA_GRAPHS=0.
type refusingGraphs struct{ *cpu.Counting }

func (refusingGraphs) BeginCapture() error { return errors.New("graphs are off") }
func (refusingGraphs) EndCapture() (gpu.Graph, error) {
	return nil, errors.New("not capturing")
}

// TestGenerateWithoutGraphs: a backend that refuses to capture decodes
// every step directly, with the tokens it would have had.
func TestGenerateWithoutGraphs(t *testing.T) {
	cfg := genConfig()
	prompts := randomSeqs(rand.New(rand.NewPCG(4, 4)), cfg.VocabSize, 3, 5, 2, 7, 1)
	opt := GenerateOptions{MaxNew: 9, Sampling: gpu.Sampling{Temperature: 1}, Seed: 3, EOS: -1}
	var gens [2][]Generation
	for i, b := range []gpu.Backend{cpu.New(2), refusingGraphs{cpu.NewCounting(2)}} {
		m, _ := newGenModel(t, b, cfg, 4, cfg.MaxSeqLen, 6)
		var err error
		if gens[i], err = Generate(m, prompts, opt); err != nil {
			t.Fatal(err)
		}
	}
	for i := range gens[0] {
		if !slices.Equal(gens[0][i].Tokens, gens[1][i].Tokens) {
			t.Fatalf("prompt %d: %v without graphs, %v on the cpu", i, gens[1][i].Tokens, gens[0][i].Tokens)
		}
	}
}

// TestGenerateSeedGroupSizeFreesTheMaxBatch: a model of MaxBatch 2 or 1
// given SeedGroupSize 4 samples the tokens a model of MaxBatch 4 (the same
// random weights) samples, from the first group or from group 1 on
// (SeedGroup0), in batches of a group or more; without it its groups are
// its MaxBatch and the tokens differ. A cache smaller than a group is
// refused.
func TestGenerateSeedGroupSizeFreesTheMaxBatch(t *testing.T) {
	forConfigs(t, func(t *testing.T, cfg Config) {
		rng := rand.New(rand.NewPCG(21, 22))
		prompts := randomSeqs(rng, cfg.VocabSize, 1, 9, 3, 12, 2, 5, 14, 4, 7, 2, 6)
		opt := GenerateOptions{MaxNew: 20, Sampling: gpu.Sampling{Temperature: 1.2}, Seed: 7, EOS: 5}
		whole, _ := newGenModel(t, cpu.New(2), cfg, 4, cfg.MaxSeqLen, 17)
		want, err := Generate(whole, prompts, opt)
		if err != nil {
			t.Fatal(err)
		}
		// diff is the first prompt whose generation differs from want's
		// (got holds prompts off..), "" if none does.
		diff := func(got []Generation, off int) string {
			for i, g := range got {
				if w := want[off+i]; !slices.Equal(g.Tokens, w.Tokens) || g.Stop != w.Stop {
					return fmt.Sprintf("prompt %d: %v (%v), MaxBatch 4: %v (%v)", off+i, g.Tokens, g.Stop, w.Tokens, w.Stop)
				}
			}
			return ""
		}
		for _, maxB := range []int{2, 1} {
			shard, _ := newGenModel(t, cpu.New(2), cfg, maxB, cfg.MaxSeqLen, 17)
			if got, err := Generate(shard, prompts, opt); err != nil {
				t.Fatal(err)
			} else if diff(got, 0) == "" {
				t.Fatalf("MaxBatch %d without a seed group size sampled MaxBatch 4's tokens: the test cannot tell the groups apart", maxB)
			}
			for _, c := range []struct{ g0, batch int }{{0, 0}, {0, 8}, {1, 0}, {1, 100}} {
				o := opt
				o.SeedGroupSize, o.SeedGroup0, o.Batch = 4, c.g0, c.batch
				got, err := Generate(shard, prompts[4*c.g0:], o)
				if err != nil {
					t.Fatal(err)
				}
				if d := diff(got, 4*c.g0); d != "" {
					t.Fatalf("MaxBatch %d with seed groups of 4 from group %d, batch %d: %s", maxB, c.g0, c.batch, d)
				}
			}
			small, err := shard.NewKVCache(2, cfg.MaxSeqLen)
			if err != nil {
				t.Fatal(err)
			}
			o := opt
			o.SeedGroupSize, o.Cache = 4, small
			if _, err := Generate(shard, prompts, o); err == nil || !strings.Contains(err.Error(), "seed group of 4") {
				t.Fatalf("a cache of 2 sequences for seed groups of 4: err %v", err)
			}
		}
	})
}
