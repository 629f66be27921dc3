package train

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
)

// KLEstimate is a policy's KL divergence from a reference model, measured
// the same way for every method so that methods compare: the mean over
// prompts of log π(y|x) − log π_ref(y|x), y one sample of the policy at
// temperature 1 (its end-of-sequence token included when it stopped at
// one). That is an unbiased estimate of the sequence-level KL(π‖π_ref) in
// nats per response; StdErr is its standard error over the prompts.
type KLEstimate struct {
	KL     float64 `json:"kl"`
	StdErr float64 `json:"stderr"`
	N      int     `json:"n"`
	// MeanTokens is the sampled responses' mean length in tokens.
	MeanTokens float64 `json:"mean_response_tokens"`
}

// MeasureKL samples one response of up to maxNew tokens from policy for
// each prompt (seeded) and scores it under policy and ref. Both models
// must share the tokenizer's vocabulary and hold policy's batch.
func MeasureKL(policy, ref *model.Model, tok tokenizer.Tokenizer, prompts []string, maxNew int, seed uint64) (KLEstimate, error) {
	if len(prompts) == 0 {
		return KLEstimate{}, fmt.Errorf("measure KL: no prompts")
	}
	if policy.Cfg.VocabSize != ref.Cfg.VocabSize {
		return KLEstimate{}, fmt.Errorf("measure KL: vocabularies of %d and %d", policy.Cfg.VocabSize, ref.Cfg.VocabSize)
	}
	ids, err := encodePrompts(policy, tok, prompts)
	if err != nil {
		return KLEstimate{}, fmt.Errorf("measure KL: %w", err)
	}
	gens, err := model.Generate(policy, ids, model.GenerateOptions{MaxNew: maxNew, Sampling: gpu.Sampling{Temperature: 1}, Seed: seed, EOS: tok.EOS()})
	if err != nil {
		return KLEstimate{}, fmt.Errorf("measure KL: %w", err)
	}
	cs := make([]data.ComparisonTokens, len(ids))
	tokens := 0
	for i, g := range gens {
		seq := append(append([]int32(nil), ids[i]...), g.Tokens...)
		if g.Stop == model.StopEOS {
			seq = append(seq, tok.EOS())
		}
		cs[i] = data.ComparisonTokens{Responses: [][]int32{seq}, PromptLen: len(ids[i]), Ranking: []int{0}, Source: i}
		tokens += len(seq) - len(ids[i])
	}
	rows := min(policy.MaxBatch(), ref.MaxBatch())
	budget := rows * min(policy.MaxSeq(), ref.MaxSeq())
	lp, err := SequenceLogProbs(policy, cs, tok.Pad(), rows, budget)
	if err != nil {
		return KLEstimate{}, fmt.Errorf("measure KL: the policy's log-probs: %w", err)
	}
	lr, err := SequenceLogProbs(ref, cs, tok.Pad(), rows, budget)
	if err != nil {
		return KLEstimate{}, fmt.Errorf("measure KL: the reference's log-probs: %w", err)
	}
	d := make([]float64, len(cs))
	est := KLEstimate{N: len(cs), MeanTokens: float64(tokens) / float64(len(cs))}
	for i := range d {
		d[i] = lp[i][0] - lr[i][0]
		est.KL += d[i] / float64(len(d))
	}
	est.StdErr = stdErr(d)
	return est, nil
}
