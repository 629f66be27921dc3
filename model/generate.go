package model

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
)

// GenerateOptions control Generate.
type GenerateOptions struct {
	// MaxNew is the most tokens generated per prompt (≥ 1).
	MaxNew int
	// Sampling picks each token; the zero value is greedy decoding.
	Sampling gpu.Sampling
	// Seed makes sampling reproducible: step s of the k-th chunk of
	// prompts samples with seed Mix64(Mix64(Seed, k), s), row b of the
	// chunk being sequence b. The tokens of a prompt therefore depend on
	// the seed, the model's MaxBatch (which fixes the chunks) and the
	// prompt's place in the list.
	Seed uint64
	// EOS is the end-of-sequence id; a sequence stops when it samples it.
	// Negative: never stop early.
	EOS int32
	// Cache, when set, is used instead of allocating a cache for the call
	// (so repeated calls, e.g. PPO rollouts, allocate nothing). It bounds
	// the chunk size and the length of prompt plus completion.
	Cache *KVCache
}

// StopReason says why a sequence stopped.
type StopReason int

const (
	// StopMaxNew: it generated MaxNew tokens.
	StopMaxNew StopReason = iota
	// StopEOS: it sampled the end-of-sequence token.
	StopEOS
	// StopContext: prompt and completion filled the context.
	StopContext
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
// batches of up to MaxBatch prompts at a time with a KV cache: one Prefill
// per batch, then one DecodeStep per token. A sequence stops at EOS, after
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
	ctx := m.Cfg.MaxSeqLen
	if opt.Cache != nil {
		if err := m.checkCache(opt.Cache); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
		ctx = opt.Cache.maxS
	}
	longest := 0
	for i, p := range prompts {
		switch {
		case len(p) == 0:
			return nil, fmt.Errorf("generate: prompt %d is empty", i)
		case len(p) >= ctx:
			return nil, fmt.Errorf("generate: prompt %d has %d tokens, leaving no room in a context of %d", i, len(p), ctx)
		case len(p) > m.maxT:
			return nil, fmt.Errorf("generate: prompt %d has %d tokens, more than the model's buffers hold (%d)", i, len(p), m.maxT)
		}
		if err := m.checkIDs(p); err != nil {
			return nil, fmt.Errorf("generate: prompt %d: %w", i, err)
		}
		longest = max(longest, len(p))
	}
	kv := opt.Cache
	if kv == nil {
		var err error
		ctx = min(ctx, longest+opt.MaxNew)
		if kv, err = m.NewKVCache(min(len(prompts), m.maxB), ctx); err != nil {
			return nil, fmt.Errorf("generate: %w", err)
		}
	}
	chunk := min(m.maxB, kv.maxB)
	out := make([]Generation, 0, len(prompts))
	for k := 0; k*chunk < len(prompts); k++ {
		batch := prompts[k*chunk : min((k+1)*chunk, len(prompts))]
		gens, err := m.generateBatch(kv, batch, opt, ctx, gpu.Mix64(opt.Seed, uint64(k)))
		if err != nil {
			return nil, fmt.Errorf("generate: prompts %d..%d: %w", k*chunk, k*chunk+len(batch)-1, err)
		}
		out = append(out, gens...)
	}
	return out, nil
}

// generateBatch decodes one batch of prompts that fits kv, with prompt plus
// completion limited to ctx tokens.
func (m *Model) generateBatch(kv *KVCache, prompts [][]int32, opt GenerateOptions, ctx int, seed uint64) ([]Generation, error) {
	if err := m.Prefill(kv, prompts); err != nil {
		return nil, err
	}
	B := len(prompts)
	gens := make([]Generation, B)
	active := make([]bool, B)
	for i := range active {
		active[i] = true
	}
	sampled := make([]int32, B)
	feed := make([]int32, B)
	b, tok := m.b, kv.cur.sampled
	for step := 0; ; step++ {
		b.Sample(tok, m.next, opt.Sampling, gpu.Mix64(seed, uint64(step)))
		if err := b.DownloadInt32(sampled, tok); err != nil {
			return nil, fmt.Errorf("sample: %w", err)
		}
		live := 0
		for i, t := range sampled {
			feed[i] = -1
			if !active[i] {
				continue
			}
			g := &gens[i]
			switch {
			case t == opt.EOS:
				g.Stop = StopEOS
			case len(g.Tokens)+1 == opt.MaxNew:
				g.Tokens = append(g.Tokens, t)
				g.Stop = StopMaxNew
			case len(prompts[i])+len(g.Tokens)+1 == ctx:
				g.Tokens = append(g.Tokens, t)
				g.Stop = StopContext
			default:
				g.Tokens = append(g.Tokens, t)
				feed[i] = t
				live++
				continue
			}
			active[i] = false
		}
		if live == 0 {
			return gens, nil
		}
		if err := m.DecodeStep(kv, feed); err != nil {
			return nil, err
		}
	}
}
