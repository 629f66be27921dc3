package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
)

func generateCommand() *cli.Command {
	return &cli.Command{
		Name:      "generate",
		Usage:     "continue prompts with a trained model (KV-cached batched decoding)",
		UsageText: "instructgo [global options] generate --model DIR (--prompt TEXT ... | --prompts FILE.jsonl) [options]",
		Description: "Loads a checkpoint directory and continues each prompt: those given with --prompt first,\n" +
			"then the {\"prompt\": ...} records of --prompts, in order. A completion ends at the end-of-text\n" +
			"token (not printed), after --max-new tokens, or when prompt and completion fill the model's\n" +
			"context. The default --temperature 0 is greedy decoding, so output is reproducible; with a\n" +
			"temperature > 0 tokens are sampled (after --top-k and --top-p), reproducibly for a given\n" +
			"--seed and --batch. Text output shows each prompt and its completion under headers; --json\n" +
			"prints one object per line: {\"prompt\", \"completion\", \"stopped_at_eos\", \"stop\", \"tokens\",\n" +
			"\"prompt_tokens\"} (the ids of the completion and of the prompt).",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "model", Usage: "checkpoint directory (config.json, model.safetensors)"},
			// KeepSpace: a prompt's white space is part of it (the built-in
			// tasks' prompts end with a line break).
			&cli.StringSliceFlag{Name: "prompt", Usage: "prompt text, taken as given: white space and commas included (repeat for several)", KeepSpace: true},
			&cli.StringFlag{Name: "prompts", Usage: "JSONL file of {\"prompt\": ...} records"},
			&cli.IntFlag{Name: "max-new", Value: 64, Usage: "most tokens to generate per prompt"},
			&cli.Float64Flag{Name: "temperature", Value: 0, Usage: "sampling temperature; 0 is greedy (the most likely token, reproducible)"},
			&cli.IntFlag{Name: "top-k", Value: 0, Usage: "sample only among the k most likely tokens (0: no limit)"},
			&cli.Float64Flag{Name: "top-p", Value: 1, Usage: "sample only within the nucleus of this probability (1: no limit)"},
			&cli.Uint64Flag{Name: "seed", Value: 1, Usage: "sampling seed"},
			&cli.IntFlag{Name: "batch", Value: 16, Usage: "prompts decoded together"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object per completion instead of text"},
		},
		Action: runGenerate,
	}
}

// generation is one line of generate --json.
type generation struct {
	Prompt       string  `json:"prompt"`
	Completion   string  `json:"completion"`
	StoppedAtEOS bool    `json:"stopped_at_eos"`
	Stop         string  `json:"stop"` // eos, max_new or context
	Tokens       []int32 `json:"tokens"`
	PromptTokens []int32 `json:"prompt_tokens"`
}

func runGenerate(c *cli.Context) (err error) {
	if err := noArgs(c); err != nil {
		return err
	}
	dir := c.String("model")
	if dir == "" {
		return usageErrorf("generate needs --model DIR")
	}
	maxNew, batch := c.Int("max-new"), c.Int("batch")
	s := gpu.Sampling{Temperature: float32(c.Float64("temperature")), TopK: c.Int("top-k"), TopP: float32(c.Float64("top-p"))}
	switch {
	case maxNew < 1:
		return usageErrorf("invalid --max-new %d: want at least 1", maxNew)
	case batch < 1:
		return usageErrorf("invalid --batch %d: want at least 1", batch)
	case c.Float64("temperature") < 0:
		return usageErrorf("invalid --temperature %g: want 0 (greedy) or more", c.Float64("temperature"))
	case s.TopK < 0:
		return usageErrorf("invalid --top-k %d: want 0 (no limit) or more", s.TopK)
	case !(c.Float64("top-p") > 0 && c.Float64("top-p") <= 1):
		return usageErrorf("invalid --top-p %g: want a probability in (0, 1]", c.Float64("top-p"))
	}
	if err := s.Validate(); err != nil {
		return usageErrorf("%v", err)
	}
	if len(c.StringSlice("prompt")) == 0 && c.String("prompts") == "" {
		return usageErrorf("generate needs at least one --prompt TEXT or a --prompts FILE")
	}

	cfg, err := model.ReadConfig(dir)
	if err != nil {
		return err
	}
	if cfg.ScalarHead {
		return fmt.Errorf("generate: %s is a scalar-head model (reward or value), not a language model", dir)
	}
	tok, err := modelTokenizer(c, dir, cfg.Tokenizer)
	if err != nil {
		return fmt.Errorf("generate: %s: %w", dir, err)
	}
	texts := c.StringSlice("prompt")
	if path := c.String("prompts"); path != "" {
		more, err := readPrompts(path, tok)
		if err != nil {
			return err
		}
		texts = append(texts, more...)
	}
	if len(texts) == 0 {
		return usageErrorf("generate needs at least one --prompt TEXT or a --prompts FILE")
	}
	if tok.VocabSize() > cfg.VocabSize {
		return fmt.Errorf("generate: tokenizer %s has %d ids, more than the model's vocabulary of %d", tok.Name(), tok.VocabSize(), cfg.VocabSize)
	}
	prompts := make([][]int32, len(texts))
	longest := 0
	for i, text := range texts {
		ids := tokenizer.EncodeStart(tok, text)
		switch {
		case len(ids) == 0:
			return usageErrorf("prompt %d is empty", i+1)
		case len(ids) >= cfg.MaxSeqLen:
			return usageErrorf("prompt %d has %d tokens; %s leaves no room to generate", i+1, len(ids), cfg.Context())
		}
		prompts[i] = ids
		longest = max(longest, len(ids))
	}

	b, prec, err := openBackendPrecision(c)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := b.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close backend: %w", cerr)
		}
	}()
	// The model's own buffers only serve the prefill of the prompts; the
	// KV cache Generate allocates holds prompt and completion.
	m, err := model.Load(b, dir, model.Options{MaxBatch: min(batch, len(prompts)), MaxSeq: longest, Precision: prec, AllowNonFinite: c.Bool(flagAllowNonFinite)})
	if err != nil {
		return err
	}
	log := logger(c)
	log.Info().Str("model", dir).Int("prompts", len(prompts)).Int("max_new", maxNew).
		Float32("temperature", s.Temperature).Int("top_k", s.TopK).Float32("top_p", s.TopP).
		Msg("generating")
	start := time.Now()
	gens, err := model.Generate(m, prompts, model.GenerateOptions{MaxNew: maxNew, Sampling: s, Seed: c.Uint64("seed"), EOS: tok.EOS()})
	if err != nil {
		return err
	}
	n := 0
	for _, g := range gens {
		n += len(g.Tokens)
	}
	sec := time.Since(start).Seconds()
	log.Info().Int("tokens", n).Float64("seconds", sec).Float64("tokens_per_s", float64(n)/max(sec, 1e-9)).Msg("generated")

	w := bufio.NewWriter(c.App.Writer)
	enc := json.NewEncoder(w)
	for i, g := range gens {
		completion := tok.Decode(g.Tokens)
		if c.Bool("json") {
			err = enc.Encode(generation{
				Prompt: texts[i], Completion: completion, StoppedAtEOS: g.Stop == model.StopEOS,
				Stop: g.Stop.String(), Tokens: append([]int32{}, g.Tokens...), PromptTokens: prompts[i],
			})
		} else {
			if i > 0 {
				fmt.Fprintln(w)
			}
			fmt.Fprintf(w, "=== prompt %d ===\n%s\n=== completion %d (%d tokens, %s) ===\n%s\n",
				i+1, texts[i], i+1, len(g.Tokens), stopText(g.Stop), completion)
		}
		if err != nil {
			return fmt.Errorf("write output: %w", err)
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("write output: %w", err)
	}
	return nil
}

// stopText says in words why a completion ended.
func stopText(r model.StopReason) string {
	switch r {
	case model.StopEOS:
		return "stopped at end of text"
	case model.StopContext:
		return "context full"
	}
	return "max new tokens"
}

// readPrompts reads the prompts of a JSONL file (train/data's prompt
// records: a bad line is an error naming file:line), conversations
// rendered for tok.
func readPrompts(path string, tok tokenizer.Tokenizer) ([]string, error) {
	recs, _, err := data.ReadPrompts(path, data.ReadOptions{}.ChatFor(tok))
	if err != nil {
		return nil, err
	}
	out := make([]string, len(recs))
	for i, r := range recs {
		out[i] = r.Prompt
	}
	return out, nil
}
