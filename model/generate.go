package model

import (
	"fmt"
	"time"

	"github.com/instructgo/instructgo/gpu"
)

// GenerateOptions control Generate.
type GenerateOptions struct {
	// MaxNew is the most tokens generated per prompt (≥ 1).
	MaxNew int
	// Sampling picks each token; the zero value is greedy decoding.
	Sampling gpu.Sampling
	// Seed makes sampling reproducible: step s of the k-th seed group of
	// prompts samples with seed Mix64(Mix64(Seed, k), s), row b of the
	// group being sequence b. The tokens of a prompt therefore depend on
	// the seed, the seed group size and the prompt's place in the list.
	Seed uint64
	// SeedGroupSize is how many prompts a seed group holds (0: the
	// model's MaxBatch, or the cache's if smaller). Given, it frees the
	// tokens from the model's MaxBatch: a model sized for a data-parallel
	// rank's shard decodes the groups of the global configuration and
	// samples what one process would. A group is decoded in one batch
	// (the prefill still runs the model's MaxBatch rows at a time), so
	// the cache, given or allocated, holds at least a group.
	SeedGroupSize int
	// SeedGroup0 is the index of the first prompts' seed group: the k-th
	// group of this call samples as group SeedGroup0+k. A data-parallel
	// rank that generates the prompts from group g of a longer list on
	// passes g, so each prompt samples the tokens it would in one call
	// over the whole list.
	SeedGroup0 int
	// EOS is the end-of-sequence id; a sequence stops when it samples it.
	// Negative: never stop early.
	EOS int32
	// Cache, when set, is used instead of allocating a cache for the call
	// (so repeated calls, e.g. PPO rollouts, allocate nothing). It bounds
	// the chunk size and the length of prompt plus completion.
	Cache *KVCache
	// Batch is how many sequences decode together (0 or less than the
	// model's MaxBatch: MaxBatch): on a GPU, all of a rollout's prompts in
	// one batch use it far better. The prefill still runs MaxBatch prompts
	// at a time, and sampling seeds go by seed groups, so the tokens do not
	// depend on Batch (but for the backend's rounding of a larger batch).
	Batch int
	// Stats, when set, receives what the decoding loop cost the host.
	Stats *GenerateStats
}

// GenerateStats is what a Generate call's decoding loop cost the host: the
// decoding steps (one token sampled per sequence of a batch) and the wall
// time spent queueing them (sampling, DecodeAdvance, the step's network or
// its graph), reads back excluded. On
// a GPU that is the host's share of a step, which must stay far below the
// device's time for the device never to wait; on the cpu backend the ops
// run while they are queued, so it is the whole step.
type GenerateStats struct {
	Steps int
	Host  time.Duration
}

// StopReason says why a sequence stopped.
type StopReason int

const (
	// StopMaxNew: it generated MaxNew tokens.
	StopMaxNew StopReason = gpu.DecodeStopMaxNew
	// StopEOS: it sampled the end-of-sequence token.
	StopEOS StopReason = gpu.DecodeStopEOS
	// StopContext: prompt and completion filled the context.
	StopContext StopReason = gpu.DecodeStopContext
)

func (r StopReason) String() string {
	switch r {
	case StopMaxNew:
		return "max_new"
	case StopEOS:
		return "eos"
	case StopContext:
		return "context"
	}
	return fmt.Sprintf("StopReason(%d)", int(r))
}

// Generation is one prompt's completion.
type Generation struct {
	// Tokens are the generated ids, without the prompt and without the
	// EOS that ended them.
	Tokens []int32
	// Stop says why generation ended.
	Stop StopReason
}

// Generate continues each prompt with up to opt.MaxNew tokens, decoding
// batches of opt.Batch prompts (at least the model's MaxBatch and a seed
// group) at a time
// with a KV cache: one Prefill per batch, then one decoding step per token,
// kept on the device (see generateBatch). A sequence stops at EOS, after
// MaxNew tokens, or when prompt and completion fill the context (the
// cache's length, at most Cfg.MaxSeqLen); the others of its batch go on.
// Prompts must be non-empty, hold ids of the vocabulary, fit the model's
// MaxSeq and leave room for at least one token. The model may have been
// allocated without training buffers.
func Generate(m *Model, prompts [][]int32, opt GenerateOptions) ([]Generation, error) {
	if m.Cfg.ScalarHead {
		return nil, fmt.Errorf("generate: a scalar-head model has no language-model head")
	}
	if opt.MaxNew < 1 {
		return nil, fmt.Errorf("generate: max new tokens %d, want at least 1", opt.MaxNew)
	}
	if err := opt.Sampling.Validate(); err != nil {
		return nil, fmt.Errorf("generate: %w", err)
	}
	if int(opt.EOS) >= m.Cfg.VocabSize {
		return nil, fmt.Errorf("generate: EOS id %d outside the vocabulary of %d", opt.EOS, m.Cfg.VocabSize)
	}
	if len(prompts) == 0 {
		return nil, nil
	}
	ctx, ctxName := m.Cfg.MaxSeqLen, m.Cfg.Context()
	if opt.Cache != nil {
		if err := m.checkCache(opt.Cache); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		ctx = opt.Cache.maxS
		ctxName = fmt.Sprintf("the cache's %d tokens", ctx)
	}
	longest := 0
	for i, p := range prompts {
		switch {
		case len(p) == 0:
			return nil, fmt.Errorf("generate: prompt %d is empty", i)
		case len(p) >= ctx:
			return nil, fmt.Errorf("generate: prompt %d has %d tokens, leaving no room in %s", i, len(p), ctxName)
		case len(p) > m.maxT:
			return nil, fmt.Errorf("generate: prompt %d has %d tokens, more than the model's buffers hold (%d)", i, len(p), m.maxT)
		}
		if err := m.checkIDs(p); err != nil {
			return nil, fmt.Errorf("generate: prompt %d: %w", i, err)
		}
		longest = max(longest, len(p))
	}
	if opt.SeedGroupSize < 0 {
		return nil, fmt.Errorf("generate: seed group size %d, want 0 (the model's MaxBatch) or more", opt.SeedGroupSize)
	}
	kv := opt.Cache
	if kv == nil {
		var err error
		ctx = min(ctx, longest+opt.MaxNew)
		if kv, err = m.NewKVCache(min(len(prompts), max(m.maxB, opt.Batch, opt.SeedGroupSize)), ctx); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
	}
	// Seeds go by groups of SeedGroupSize, by default the model's MaxBatch
	// (or the cache's, if smaller); a decoding batch is a whole number of
	// groups.
	group := min(m.maxB, kv.maxB)
	if opt.SeedGroupSize > 0 {
		group = opt.SeedGroupSize
		if n := min(group, len(prompts)); n > kv.maxB {
			return nil, fmt.Errorf("generate: a seed group of %d prompts does not fit the cache of %d sequences", n, kv.maxB)
		}
	}
	chunk := group * max(1, min(kv.maxB, opt.Batch)/group)
	out := make([]Generation, 0, len(prompts))
	for lo := 0; lo < len(prompts); lo += chunk {
		batch := prompts[lo:min(lo+chunk, len(prompts))]
		gens, err := m.generateBatch(kv, batch, opt, ctx, opt.SeedGroup0+lo/group, group)
		if err != nil {
			return nil, fmt.Errorf("generate: prompts %d..%d: %w", lo, lo+len(batch)-1, err)
		}
		out = append(out, gens...)
	}
	return out, nil
}

// devicePollEvery is how many tokens Generate decodes on a gpu.Device
// between reads of the count of live sequences: each read waits for the
// device to drain, so it is made rarely; the steps decoded after every
// sequence stopped change nothing. Other backends read it every token.
const devicePollEvery = 16

// generateBatch decodes one batch of prompts that fits kv, with prompt plus
// completion limited to ctx tokens; its rows sample in groups of group
// rows, the first being seed group g0. The tokens, their positions, each
// sequence's length and why it stopped stay on the device
// (Backend.DecodeAdvance): the host reads them back once, at the end, and
// the count of live sequences every devicePollEvery tokens.
func (m *Model) generateBatch(kv *KVCache, prompts [][]int32, opt GenerateOptions, ctx, g0, group int) ([]Generation, error) {
	if err := m.Prefill(kv, prompts); err != nil {
		return nil, err
	}
	B := len(prompts)
	M := min(opt.MaxNew, ctx) // a sequence never generates ctx tokens, so M < MaxNew never stops one early
	host := make([]int32, 1+3*B+B*M)
	for i, p := range prompts {
		host[1+i], host[1+2*B+i] = int32(len(p)), gpu.DecodeActive
	}
	b, d := m.b, &kv.cur
	all := kv.gen.MustView(0, len(host))
	live, state, out := kv.gen.MustView(0, 1), kv.gen.MustView(1, 3, B), kv.gen.MustView(1+3*B, B, M)
	if err := b.UploadInt32(all, host); err != nil {
		return nil, fmt.Errorf("upload state: %w", err)
	}
	poll := 1
	if _, ok := b.(gpu.Device); ok {
		poll = devicePollEvery
	}
	ids := kv.ids.MustView(0, 4, B)
	// Each seed group's sampled tokens and logits, viewed once for every step.
	type sampleGroup struct {
		tokens, logits *gpu.Tensor
		seed           uint64
	}
	V := m.Cfg.VocabSize
	var groups []sampleGroup
	for lo := 0; lo < B; lo += group {
		n := min(group, B-lo)
		groups = append(groups, sampleGroup{d.sampled.MustView(lo, n), d.logits.MustView(lo*V, n, V), gpu.Mix64(opt.Seed, uint64(g0+lo/group))})
	}
	var queued time.Duration
	steps := 0
	for step := 0; step < M; step++ {
		steps++
		t0 := time.Now()
		for _, g := range groups {
			b.Sample(g.tokens, g.logits, opt.Sampling, gpu.Mix64(g.seed, uint64(step)))
		}
		b.DecodeAdvance(ids, state, out, live, d.sampled, opt.EOS, ctx)
		queued += time.Since(t0)
		if step == M-1 {
			break // every sequence has stopped
		}
		if (step+1)%poll == 0 {
			if err := b.DownloadInt32(host[:1], live); err != nil {
				return nil, fmt.Errorf("decode: %w", err)
			}
			if host[0] == 0 {
				break
			}
		}
		t1 := time.Now()
		if err := m.decodeNetwork(kv); err != nil {
			return nil, fmt.Errorf("decode: %w", err)
		}
		queued += time.Since(t1)
	}
	if opt.Stats != nil {
		opt.Stats.Host += queued
		opt.Stats.Steps += steps
	}
	if err := b.DownloadInt32(host, all); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	gens := make([]Generation, B)
	for i := range gens {
		n, g, stop := host[1+i], host[1+B+i], host[1+2*B+i]
		if stop == gpu.DecodeActive {
			return nil, fmt.Errorf("decode: sequence %d still active after %d tokens", i, g)
		}
		gens[i] = Generation{Tokens: append([]int32(nil), host[1+3*B+i*M:1+3*B+i*M+int(g)]...), Stop: StopReason(stop)}
		kv.lens[i] = int(n)
	}
	return gens, nil
}
