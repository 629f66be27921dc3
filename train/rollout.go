package train

import (
	"fmt"
	"math"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
)

// The rollout machinery the RL methods share (PPO, GRPO, RLOO): sampling
// episodes with the policy, laying them out as rows, scoring their tokens
// with the policy and the frozen reference and their responses with the
// reward model or the built-in tasks' scorers.

// rollout is one batch of episodes laid out [E, T]: prompt + response,
// right-padded; action positions p predict token p+1 of the response.
type rollout struct {
	E, T          int
	tokens        []int32 // E·T
	targets       []int32 // E·T, the next token at action positions, −1 elsewhere
	validLen      []int32 // E
	mask          []float32
	lastIdx       []int32   // E, the last action position
	rawScores     []float32 // the reward model's, before penalties
	scores        []float32
	responseLen   []int     // actions, EOS included
	generated     [][]int32 // the sampled tokens, without EOS
	eos           []bool
	oldLogp, ref  []float32
	values        []float32
	adv, returns  []float32 // after GAE and whitening (host copies)
	klSum, entSum float64
}

// rolloutSampling is how a rollout samples its responses.
type rolloutSampling struct {
	maxNew      int // tokens per response at most
	temperature float32
	seed        uint64
	eos, pad    int32 // eos ends a response (−1: never); pad fills the rows
}

// generateRollout samples a response to each prompt with the policy (up to
// s.maxNew tokens, stopping at eos) and lays the episodes out as a
// rollout, right-padded.
func generateRollout(policy *model.Model, prompts [][]int32, s rolloutSampling) (*rollout, int, error) {
	eos, pad := s.eos, s.pad
	gens, err := model.Generate(policy, prompts, model.GenerateOptions{
		MaxNew: s.maxNew, Sampling: gpu.Sampling{Temperature: s.temperature}, Seed: s.seed, EOS: eos,
	})
	if err != nil {
		return nil, 0, err
	}
	stop := eos // the action that ends an episode
	if stop < 0 {
		stop = pad
	}
	E := len(prompts)
	ro := &rollout{E: E, validLen: make([]int32, E), lastIdx: make([]int32, E), scores: make([]float32, E),
		responseLen: make([]int, E), eos: make([]bool, E), generated: make([][]int32, E)}
	seqs := make([][]int32, E)
	genTokens := 0
	for i, g := range gens {
		s := append(append([]int32(nil), prompts[i]...), g.Tokens...)
		ro.generated[i] = g.Tokens
		ro.eos[i] = g.Stop == model.StopEOS
		if ro.eos[i] {
			s = append(s, stop) // stopping is an action the policy learns
		}
		if len(s) == len(prompts[i]) { // nothing generated (context full): one pad action keeps the shapes valid
			s = append(s, stop)
		}
		seqs[i] = s
		ro.responseLen[i] = len(s) - len(prompts[i])
		genTokens += len(g.Tokens)
		ro.T = max(ro.T, len(s))
	}
	T := ro.T
	ro.tokens, ro.targets = make([]int32, E*T), make([]int32, E*T)
	ro.mask = make([]float32, E*T)
	for i, s := range seqs {
		for j := range T {
			ro.targets[i*T+j] = -1
			ro.tokens[i*T+j] = pad
		}
		copy(ro.tokens[i*T:], s)
		ro.validLen[i] = int32(len(s))
		for p := len(prompts[i]) - 1; p < len(s)-1; p++ {
			ro.targets[i*T+p] = s[p+1]
			ro.mask[i*T+p] = 1
		}
		ro.lastIdx[i] = int32(len(s) - 2)
	}
	return ro, genTokens, nil
}

// finishScores turns the raw scores into the episodes' scores: the
// missing-EOS penalty, then the optional clip.
func (ro *rollout) finishScores(missingEOSPenalty, clip float32) {
	for i, s := range ro.rawScores {
		if !ro.eos[i] {
			s -= missingEOSPenalty
		}
		if c := clip; c > 0 {
			s = max(-c, min(c, s))
		}
		ro.scores[i] = s
	}
}

// responses decodes each episode's response, without its EOS.
func (ro *rollout) responses(tok tokenizer.Tokenizer) []string {
	out := make([]string, ro.E)
	for i, g := range ro.generated {
		out[i] = tok.Decode(g)
	}
	return out
}

// forwardAll runs a model over the rollout; see ForwardRows.
func forwardAll(m *model.Model, ro *rollout, scalar bool) ([]float32, error) {
	return ForwardRows(m, ro.tokens, ro.targets, ro.validLen, ro.E, ro.T, scalar)
}

// ForwardRows runs m without dropout over E right-padded rows of T tokens
// (validLen[i] of row i real) in chunks of its MaxBatch and returns the
// per-position outputs [E·T]: the log-prob of each position's target for a
// language model (targets −1 where there is none), the value for a scalar
// head (targets unused). It is how PPO scores a rollout with its four
// models; the benchmarks time the same code.
func ForwardRows(m *model.Model, tokens, targets, validLen []int32, E, T int, scalar bool) ([]float32, error) {
	out := make([]float32, E*T)
	for lo := 0; lo < E; lo += m.MaxBatch() {
		hi := min(E, lo+m.MaxBatch())
		in := &model.Batch{B: hi - lo, T: T, Tokens: tokens[lo*T : hi*T], ValidLen: validLen[lo:hi]}
		src := m.Values
		if !scalar {
			in.Targets = targets[lo*T : hi*T]
			src = m.LogProbs
		}
		if err := m.Forward(in, false, 0); err != nil {
			return nil, err
		}
		if err := m.Backend().Download(out[lo*T:hi*T], src()); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lastQuarterMean is the mean of the last quarter of xs (at least one
// value; 0 for none).
func lastQuarterMean(xs []float64) float64 {
	n := len(xs)
	if n == 0 {
		return 0
	}
	k := max(1, n/4)
	mean := 0.0
	for _, x := range xs[n-k:] {
		mean += x / float64(k)
	}
	return mean
}

// rolloutTaskScore is the mean ground-truth score of the responses to
// prompts of a built-in task (nil when there are none); prompts without a
// task, or naming one that is not built in, are left out.
func rolloutTaskScore(recs []data.Prompt, responses []string) *float64 {
	total, n := 0.0, 0
	for i, r := range recs {
		if r.Task == "" {
			continue
		}
		s, err := tasks.ScoreRecord(r.Task, r.Answer, responses[i])
		if err != nil {
			continue
		}
		total += s
		n++
	}
	if n == 0 {
		return nil
	}
	mean := total / float64(n)
	return &mean
}

// scoreLogProbs sets the rollout's per-token log-probs of its response
// tokens under the policy (oldLogp, the sampling policy's) and under the
// frozen reference.
func (ro *rollout) scoreLogProbs(policy, ref *model.Model) error {
	var err error
	if ro.oldLogp, err = forwardAll(policy, ro, false); err != nil {
		return fmt.Errorf("policy log-probs: %w", err)
	}
	if ro.ref, err = forwardAll(ref, ro, false); err != nil {
		return fmt.Errorf("reference log-probs: %w", err)
	}
	return nil
}

// rewardModelScores returns the reward model's score of each episode, read
// at its final token (EOS included).
func (ro *rollout) rewardModelScores(rm *model.Model) ([]float32, error) {
	rewards, err := forwardAll(rm, ro, true)
	if err != nil {
		return nil, fmt.Errorf("reward model: %w", err)
	}
	out := make([]float32, ro.E)
	for i := range ro.E {
		out[i] = rewards[i*ro.T+int(ro.validLen[i])-1]
	}
	return out, nil
}

// taskScores returns the built-in task scorer's score of each episode's
// response (the verifiable reward); a prompt without a built-in task is an
// error.
func taskScores(recs []data.Prompt, responses []string) ([]float32, error) {
	out := make([]float32, len(recs))
	for i, r := range recs {
		s, err := tasks.ScoreRecord(r.Task, r.Answer, responses[i])
		if err != nil {
			return nil, fmt.Errorf("task reward of the prompt at %s: %w", r.Source.Where(), err)
		}
		out[i] = float32(s)
	}
	return out, nil
}

// sequenceKL returns, per episode, the sum over its response tokens of the
// KL estimate between the sampling policy and the reference: k1 = log π −
// log π_ref, or k3 = (ρ−1) − log ρ with ρ = π_ref/π (estimator gpu.KLK1
// or gpu.KLK3), in float64.
func (ro *rollout) sequenceKL(estimator int) []float64 {
	out := make([]float64, ro.E)
	for i, m := range ro.mask {
		if m == 0 {
			continue
		}
		d := float64(ro.oldLogp[i]) - float64(ro.ref[i])
		if estimator == gpu.KLK3 {
			d = math.Expm1(-d) + d
		}
		out[i/ro.T] += d
	}
	return out
}

// rolloutPrompts are an RL run's prompts, tokenised, with the rollout's
// row length T (the longest prompt, the new tokens and the stop action)
// and the policy's config.
type rolloutPrompts struct {
	prompts []data.Prompt
	ids     [][]int32
	T       int
	policy  model.Config
}

// readRolloutPrompts reads the prompts and checks that their rollouts fit
// the policy's context.
func readRolloutPrompts(path, policy string, maxNew int, tok tokenizer.Tokenizer) (*rolloutPrompts, error) {
	prompts, _, err := data.ReadPrompts(path, data.ReadOptions{}.ChatFor(tok))
	if err != nil {
		return nil, err
	}
	rp := &rolloutPrompts{prompts: prompts, ids: make([][]int32, len(prompts))}
	maxPrompt := 0
	for i, p := range prompts {
		rp.ids[i] = tokenizer.EncodeStart(tok, p.Prompt)
		maxPrompt = max(maxPrompt, len(rp.ids[i]))
	}
	if rp.policy, err = model.ReadConfig(policy); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	rp.T = maxPrompt + maxNew + 1
	if rp.T > rp.policy.MaxSeqLen {
		return nil, fmt.Errorf("prompts of up to %d tokens plus %d new ones exceed the policy's context of %d", maxPrompt, maxNew, rp.policy.MaxSeqLen)
	}
	return rp, nil
}

// loadNoDropout loads the checkpoint in dir with opt's precision and
// loading policy for rows of at most T tokens, rows at a time, without
// dropout: the RL methods compare the log-probs of the sampling policy,
// the training policy and the reference, which dropout would make differ.
func loadNoDropout(b gpu.Backend, dir string, rows, T int, train bool, opt RunOptions) (*model.Model, error) {
	c, err := model.ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	host, err := model.LoadHostWith(dir, c, opt.load())
	if err != nil {
		return nil, err
	}
	c.Dropout = 0
	m, err := model.New(b, c, opt.models(rows, T, train))
	if err != nil {
		return nil, err
	}
	return m, m.SetParams(host)
}
