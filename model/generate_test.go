package model

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// genConfig is a small LM with a context short enough to fill in a test.
func genConfig() Config {
	return Config{VocabSize: 23, MaxSeqLen: 16, NLayer: 2, NHead: 2, NEmbd: 16, Tokenizer: "byte"}
}

// genConfigs are genConfig and its Llama-family counterparts: Qwen2 with
// q/k/v biases and an untied head, and Llama with four query heads on one
// key/value head and a tied head (rope_theta small so that rotations
// differ visibly across 16 positions).
func genConfigs() []Config {
	g := genConfig()
	qwen := g
	qwen.Arch, qwen.NHead, qwen.KVHeads, qwen.Intermediate, qwen.RopeTheta, qwen.RMSNormEps, qwen.AttentionBias = ArchQwen2, 4, 2, 20, 100, 1e-6, true
	llama := qwen
	llama.Arch, llama.KVHeads, llama.AttentionBias, llama.TieEmbeddings = ArchLlama, 1, false, true
	return []Config{g, qwen, llama}
}

// forConfigs runs f as a subtest for each of genConfigs.
func forConfigs(t *testing.T, f func(t *testing.T, cfg Config)) {
	for _, cfg := range genConfigs() {
		name := cfg.Arch
		if name == "" {
			name = "gpt2"
		}
		t.Run(name, func(t *testing.T) { f(t, cfg) })
	}
}

// newGenModel returns an inference-only model (no training buffers) with
// random parameters drawn from seed, and those parameters.
func newGenModel(t testing.TB, b gpu.Backend, cfg Config, maxB, maxT int, seed uint64) (*Model, []float32) {
	t.Helper()
	m, err := New(b, cfg, Options{MaxBatch: maxB, MaxSeq: maxT})
	if err != nil {
		t.Fatal(err)
	}
	host := randomParams(cfg, rand.New(rand.NewPCG(seed, 7)))
	if err := b.Upload(m.Params.All, host); err != nil {
		t.Fatal(err)
	}
	return m, host
}

// refLogits runs the model's own full forward pass over the sequences
// (right-padded into one batch) and returns every position's logits,
// lnf·lm_headᵀ in float64: ref[b][t] are the logits that follow seqs[b][t].
func refLogits(t *testing.T, cfg Config, params []float32, seqs [][]int32) [][][]float64 {
	t.Helper()
	b := cpu.New(2)
	T := 0
	for _, s := range seqs {
		T = max(T, len(s))
	}
	B := len(seqs)
	m, _ := newGenModel(t, b, cfg, B, T, 0)
	if err := b.Upload(m.Params.All, params); err != nil {
		t.Fatal(err)
	}
	in := &Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T), ValidLen: make([]int32, B)}
	for i, s := range seqs {
		copy(in.Tokens[i*T:], s)
		in.ValidLen[i] = int32(len(s))
		for j := range T {
			in.Targets[i*T+j] = -1
		}
	}
	if err := m.Forward(in, false, 0); err != nil {
		t.Fatal(err)
	}
	C, V := cfg.NEmbd, cfg.VocabSize
	hidden := make([]float32, B*T*C)
	mustDownload(t, b, hidden, m.hidden())
	wte := make([]float32, V*C)
	mustDownload(t, b, wte, m.Params.LMHead)
	ref := make([][][]float64, B)
	for i, s := range seqs {
		for j := range s {
			h := hidden[(i*T+j)*C : (i*T+j+1)*C]
			row := make([]float64, V)
			for v := range row {
				for k, x := range h {
					row[v] += float64(x) * float64(wte[v*C+k])
				}
			}
			ref[i] = append(ref[i], row)
		}
	}
	return ref
}

// randomSeqs returns sequences of the given lengths with random ids.
func randomSeqs(rng *rand.Rand, vocab int, lens ...int) [][]int32 {
	out := make([][]int32, len(lens))
	for i, n := range lens {
		for range n {
			out[i] = append(out[i], int32(rng.IntN(vocab)))
		}
	}
	return out
}

func downloadLogits(t *testing.T, m *Model) []float32 {
	t.Helper()
	x := m.NextLogits()
	out := make([]float32, x.Len())
	mustDownload(t, m.Backend(), out, x)
	return out
}

// TestPrefillAndDecodeMatchFullForward is the KV cache's key property: the
// logits after Prefill and after each DecodeStep equal those a full forward
// pass over the whole sequence gives at that position, for prompts of
// different lengths in one right-padded batch and sequences that go
// inactive at different steps.
func TestPrefillAndDecodeMatchFullForward(t *testing.T) {
	forConfigs(t, checkPrefillAndDecode)
}

func checkPrefillAndDecode(t *testing.T, cfg Config) {
	rng := rand.New(rand.NewPCG(1, 2))
	promptLens := []int{5, 1, 9, 3}
	totalLens := []int{16, 7, 13, 16}
	for _, threads := range []int{1, 2} {
		b := cpu.New(threads)
		m, params := newGenModel(t, b, cfg, 4, 9, 3)
		seqs := randomSeqs(rng, cfg.VocabSize, totalLens...)
		ref := refLogits(t, cfg, params, seqs)
		kv, err := m.NewKVCache(4, cfg.MaxSeqLen)
		if err != nil {
			t.Fatal(err)
		}
		// Grouped-query attention caches only the key/value heads.
		if want := []int{4, cfg.KVHeadCount(), cfg.MaxSeqLen, cfg.HeadSize()}; !slices.Equal(kv.k[0].Shape(), want) {
			t.Fatalf("cache keys %v, want %v", kv.k[0].Shape(), want)
		}
		prompts := make([][]int32, len(seqs))
		for i, s := range seqs {
			prompts[i] = s[:promptLens[i]]
		}
		if err := m.Prefill(kv, prompts); err != nil {
			t.Fatal(err)
		}
		V := cfg.VocabSize
		got := downloadLogits(t, m)
		for i, n := range promptLens {
			assertRel(t, "prefill logits", got[i*V:(i+1)*V], ref[i][n-1], 1e-5)
		}
		feed := make([]int32, len(seqs))
		for step := 0; ; step++ {
			live := 0
			for i, s := range seqs {
				pos := promptLens[i] + step
				feed[i] = -1
				if pos < len(s) {
					feed[i] = s[pos]
					live++
				}
			}
			if live == 0 {
				break
			}
			if err := m.DecodeStep(kv, feed); err != nil {
				t.Fatal(err)
			}
			got := downloadLogits(t, m)
			for i, tok := range feed {
				if tok >= 0 {
					assertRel(t, "decode logits", got[i*V:(i+1)*V], ref[i][promptLens[i]+step], 1e-5)
				}
			}
		}
		if lens := kv.lengths(); !slices.Equal(lens, totalLens) {
			t.Fatalf("cache lengths %v, want %v", lens, totalLens)
		}
		// Every sequence is full or done: a step past the cache is an error,
		// and it leaves the backend usable.
		err = m.DecodeStep(kv, []int32{1, -1, -1, -1})
		if err == nil || !strings.Contains(err.Error(), "already holds 16 tokens") {
			t.Fatalf("decode past the cache: %v", err)
		}
		if b.Err() != nil {
			t.Fatalf("backend error after a rejected step: %v", b.Err())
		}
	}
}

// argmax is the lowest id of the largest value.
func argmax(x []float64) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

func TestGenerateGreedyFollowsReferenceArgmax(t *testing.T) {
	forConfigs(t, checkGreedyFollowsArgmax)
}

func checkGreedyFollowsArgmax(t *testing.T, cfg Config) {
	rng := rand.New(rand.NewPCG(3, 4))
	prompts := randomSeqs(rng, cfg.VocabSize, 4, 1, 12, 7, 2)
	opt := GenerateOptions{MaxNew: 6, EOS: -1}

	// MaxBatch 5 decodes all prompts in one batch; MaxBatch 2 in chunks of
	// 2, 2, 1. Greedy decoding must not care.
	b := cpu.New(2)
	m, params := newGenModel(t, b, cfg, 5, 12, 5)
	gens, err := Generate(m, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	m2, _ := newGenModel(t, cpu.New(1), cfg, 2, 12, 5)
	gens2, err := Generate(m2, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	again, err := Generate(m, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	var full [][]int32
	for i, g := range gens {
		if !slices.Equal(g.Tokens, gens2[i].Tokens) || !slices.Equal(g.Tokens, again[i].Tokens) || g.Stop != gens2[i].Stop {
			t.Fatalf("prompt %d: %v (%v), chunked %v (%v), again %v", i, g.Tokens, g.Stop, gens2[i].Tokens, gens2[i].Stop, again[i].Tokens)
		}
		// The 12-token prompt fills the 16-token context after 4 tokens.
		wantN, wantStop := opt.MaxNew, StopMaxNew
		if room := cfg.MaxSeqLen - len(prompts[i]); room < wantN {
			wantN, wantStop = room, StopContext
		}
		if len(g.Tokens) != wantN || g.Stop != wantStop {
			t.Fatalf("prompt %d: %d tokens (%v), want %d (%v)", i, len(g.Tokens), g.Stop, wantN, wantStop)
		}
		full = append(full, append(slices.Clone(prompts[i]), g.Tokens...))
	}
	ref := refLogits(t, cfg, params, full)
	for i, g := range gens {
		for j, tok := range g.Tokens {
			if want := argmax(ref[i][len(prompts[i])+j-1]); tok != want {
				t.Fatalf("prompt %d token %d: %d, want reference argmax %d", i, j, tok, want)
			}
		}
	}
}

func TestGenerateStopsAtEOS(t *testing.T) {
	cfg := genConfig()
	rng := rand.New(rand.NewPCG(5, 6))
	prompts := randomSeqs(rng, cfg.VocabSize, 3, 6, 2, 5)
	m, _ := newGenModel(t, cpu.New(2), cfg, 4, 8, 9)
	free, err := Generate(m, prompts, GenerateOptions{MaxNew: 8, EOS: -1})
	if err != nil {
		t.Fatal(err)
	}
	// Make the third token of prompt 0 the EOS; every sequence must then
	// stop at the first place it would have produced that token.
	eos := free[0].Tokens[2]
	gens, err := Generate(m, prompts, GenerateOptions{MaxNew: 8, EOS: eos})
	if err != nil {
		t.Fatal(err)
	}
	sawEOS := false
	for i, g := range gens {
		want, stop := free[i].Tokens, free[i].Stop
		if j := slices.Index(want, eos); j >= 0 {
			want, stop = want[:j], StopEOS
			sawEOS = true
		}
		if !slices.Equal(g.Tokens, want) || g.Stop != stop {
			t.Fatalf("prompt %d: %v (%v), want %v (%v)", i, g.Tokens, g.Stop, want, stop)
		}
	}
	if !sawEOS || gens[0].Stop != StopEOS || len(gens[0].Tokens) > 2 {
		t.Fatalf("prompt 0 did not stop at EOS %d: %v (%v)", eos, gens[0].Tokens, gens[0].Stop)
	}
}

func TestGenerateSamplingIsSeededAndRespectsTopK(t *testing.T) {
	cfg := genConfig()
	rng := rand.New(rand.NewPCG(7, 8))
	prompts := randomSeqs(rng, cfg.VocabSize, 2, 5, 3, 4, 1, 6, 2)
	m, params := newGenModel(t, cpu.New(2), cfg, 3, 8, 11)
	opt := GenerateOptions{MaxNew: 7, EOS: -1, Seed: 99, Sampling: gpu.Sampling{Temperature: 1.5, TopK: 4}}
	a, err := Generate(m, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Generate(m, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	opt.Seed = 100
	c, err := Generate(m, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	differs := false
	var full [][]int32
	for i := range a {
		if !slices.Equal(a[i].Tokens, b[i].Tokens) {
			t.Fatalf("prompt %d: seed 99 gave %v then %v", i, a[i].Tokens, b[i].Tokens)
		}
		differs = differs || !slices.Equal(a[i].Tokens, c[i].Tokens)
		full = append(full, append(slices.Clone(prompts[i]), a[i].Tokens...))
	}
	if !differs {
		t.Fatal("seeds 99 and 100 sampled identical completions for every prompt")
	}
	ref := refLogits(t, cfg, params, full)
	for i, g := range a {
		for j, tok := range g.Tokens {
			row := ref[i][len(prompts[i])+j-1]
			higher := 0
			for _, v := range row {
				if v > row[tok] {
					higher++
				}
			}
			if higher >= 4 {
				t.Fatalf("prompt %d token %d: %d has %d higher logits, outside the top 4", i, j, tok, higher)
			}
		}
	}
}

func TestGenerateReusesACache(t *testing.T) {
	cfg := genConfig()
	rng := rand.New(rand.NewPCG(9, 10))
	prompts := randomSeqs(rng, cfg.VocabSize, 3, 8, 5)
	m, _ := newGenModel(t, cpu.New(2), cfg, 3, 8, 13)
	want, err := Generate(m, prompts, GenerateOptions{MaxNew: 5, EOS: -1})
	if err != nil {
		t.Fatal(err)
	}
	kv, err := m.NewKVCache(2, 12) // smaller than the model: chunks of 2, context 12
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		got, err := Generate(m, prompts, GenerateOptions{MaxNew: 5, EOS: -1, Cache: kv})
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			w := want[i].Tokens[:min(len(want[i].Tokens), 12-len(prompts[i]))]
			if !slices.Equal(got[i].Tokens, w) {
				t.Fatalf("prompt %d with a reused cache: %v, want %v", i, got[i].Tokens, w)
			}
		}
		if got[1].Stop != StopContext {
			t.Fatalf("8-token prompt in a 12-token cache stopped with %v after %v", got[1].Stop, got[1].Tokens)
		}
	}
}

func TestGenerateRejectsBadInput(t *testing.T) {
	cfg := genConfig()
	b := cpu.New(1)
	m, _ := newGenModel(t, b, cfg, 2, 8, 1)
	other, _ := newGenModel(t, b, cfg, 2, 8, 1)
	otherKV, err := other.NewKVCache(2, 8)
	if err != nil {
		t.Fatal(err)
	}
	ok := []int32{1, 2, 3}
	cases := []struct {
		name    string
		prompts [][]int32
		opt     GenerateOptions
		want    string
	}{
		{"empty prompt", [][]int32{ok, {}}, GenerateOptions{MaxNew: 2}, "prompt 1 is empty"},
		{"id outside vocabulary", [][]int32{{1, 23}}, GenerateOptions{MaxNew: 2}, "outside the vocabulary"},
		{"negative id", [][]int32{ok, {-2}}, GenerateOptions{MaxNew: 2}, "prompt 1"},
		{"prompt fills the context", [][]int32{make([]int32, 16)}, GenerateOptions{MaxNew: 2}, "no room"},
		{"prompt beyond the buffers", [][]int32{make([]int32, 9)}, GenerateOptions{MaxNew: 2}, "buffers hold (8)"},
		{"no new tokens", [][]int32{ok}, GenerateOptions{}, "max new tokens 0"},
		{"EOS outside vocabulary", [][]int32{ok}, GenerateOptions{MaxNew: 2, EOS: 23}, "EOS id 23"},
		{"bad temperature", [][]int32{ok}, GenerateOptions{MaxNew: 2, Sampling: gpu.Sampling{Temperature: -1}}, "temperature"},
		{"bad top-p", [][]int32{ok}, GenerateOptions{MaxNew: 2, Sampling: gpu.Sampling{Temperature: 1, TopP: 2}}, "top-p"},
		{"another model's cache", [][]int32{ok}, GenerateOptions{MaxNew: 2, Cache: otherKV}, "not made by this model"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Generate(m, tc.prompts, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
	// None of that reached the backend: it still generates.
	if _, err := Generate(m, [][]int32{ok}, GenerateOptions{MaxNew: 2, EOS: -1}); err != nil {
		t.Fatalf("generate after rejected inputs: %v", err)
	}
	if gens, err := Generate(m, nil, GenerateOptions{MaxNew: 2}); err != nil || len(gens) != 0 {
		t.Fatalf("no prompts: %v, %v", gens, err)
	}

	scalar := cfg
	scalar.ScalarHead = true
	sm, err := New(b, scalar, Options{MaxBatch: 1, MaxSeq: 4})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Generate(sm, [][]int32{ok}, GenerateOptions{MaxNew: 2}); err == nil || !strings.Contains(err.Error(), "scalar-head") {
		t.Fatalf("scalar-head model: %v", err)
	}
	if _, err := sm.NewKVCache(1, 4); err == nil {
		t.Fatal("kv cache for a scalar-head model: no error")
	}
	kv, err := m.NewKVCache(1, 8)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.DecodeStep(kv, []int32{1}); err == nil || !strings.Contains(err.Error(), "Prefill first") {
		t.Fatalf("decode before prefill: %v", err)
	}
	if err := m.Prefill(kv, [][]int32{ok, ok}); err == nil {
		t.Fatal("prefill of 2 prompts into a cache of 1: no error")
	}
	if _, err := m.NewKVCache(1, 17); err == nil {
		t.Fatal("kv cache longer than the context: no error")
	}
}

// BenchmarkGenerateTiny decodes 64 tokens for B prompts of 16 tokens with
// the tiny config (random GPT-2 init, greedy), reporting decoded tokens per
// second and the latency of one decoding step (one token for each of the B
// sequences; the prefill is amortised over the 64 steps).
func BenchmarkGenerateTiny(bm *testing.B) {
	for _, B := range []int{1, 16, 64} {
		bm.Run(fmt.Sprintf("batch=%d", B), func(bm *testing.B) { benchGenerate(bm, "tiny", B, 16, 64) })
	}
}

func benchGenerate(bm *testing.B, config string, B, P, N int) {
	cfg, err := ConfigByName(config)
	if err != nil {
		bm.Fatal(err)
	}
	b := cpu.New(0)
	m, err := New(b, cfg, Options{MaxBatch: B, MaxSeq: P})
	if err != nil {
		bm.Fatal(err)
	}
	if err := b.Upload(m.Params.All, InitGPT2(cfg, 1)); err != nil {
		bm.Fatal(err)
	}
	prompts := randomSeqs(rand.New(rand.NewPCG(1, 1)), 256, slices.Repeat([]int{P}, B)...)
	kv, err := m.NewKVCache(B, P+N)
	if err != nil {
		bm.Fatal(err)
	}
	opt := GenerateOptions{MaxNew: N, EOS: -1, Cache: kv}
	bm.ResetTimer()
	start := time.Now()
	for range bm.N {
		gens, err := Generate(m, prompts, opt)
		if err != nil {
			bm.Fatal(err)
		}
		if len(gens[0].Tokens) != N {
			bm.Fatalf("%d tokens, want %d", len(gens[0].Tokens), N)
		}
	}
	sec := time.Since(start).Seconds()
	bm.ReportMetric(float64(bm.N*B*N)/sec, "tokens/s")
	bm.ReportMetric(sec/float64(bm.N*N)*1e3, "ms/step")
}

// TestGenerateSeedGroup0ContinuesTheGroups: generating the prompts from
// seed group g on with SeedGroup0 g samples the tokens one call over all
// the prompts does (how data-parallel ranks share a rollout).
func TestGenerateSeedGroup0ContinuesTheGroups(t *testing.T) {
	cfg := genConfig()
	rng := rand.New(rand.NewPCG(9, 10))
	prompts := randomSeqs(rng, cfg.VocabSize, 2, 5, 3, 4, 1, 6, 2, 3)
	m, _ := newGenModel(t, cpu.New(2), cfg, 3, 8, 11)
	opt := GenerateOptions{MaxNew: 6, EOS: -1, Seed: 5, Sampling: gpu.Sampling{Temperature: 1.3}}
	all, err := Generate(m, prompts, opt)
	if err != nil {
		t.Fatal(err)
	}
	opt.SeedGroup0 = 1
	tail, err := Generate(m, prompts[3:], opt)
	if err != nil {
		t.Fatal(err)
	}
	for i, g := range tail {
		if !slices.Equal(g.Tokens, all[3+i].Tokens) {
			t.Errorf("prompt %d: %v from seed group 1 on, %v in one call", 3+i, g.Tokens, all[3+i].Tokens)
		}
	}
	opt.SeedGroup0 = 0 // the groups' seeds differ: the tail's tokens change
	shifted, err := Generate(m, prompts[3:], opt)
	if err != nil {
		t.Fatal(err)
	}
	same := true
	for i, g := range shifted {
		same = same && slices.Equal(g.Tokens, all[3+i].Tokens)
	}
	if same {
		t.Error("the tail sampled with group 0's seeds gave the same tokens: the test cannot tell the groups apart")
	}
}
