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
	seedGroup   int   // prompts per seed group (model.GenerateOptions.SeedGroupSize; 0: the policy's MaxBatch)
	seedGroup0  int   // the first prompts' seed group (model.GenerateOptions.SeedGroup0)
	eos, pad    int32 // eos ends a response (−1: never); pad fills the rows
	batch       int   // sequences decoded together (see model.GenerateOptions.Batch)
	stats       *model.GenerateStats
}

// generateRollout samples a response to each prompt with the policy (up to
// s.maxNew tokens, stopping at eos) and lays the episodes out as a
// rollout, right-padded to the longest.
func generateRollout(policy *model.Model, prompts [][]int32, s rolloutSampling) (*rollout, int, error) {
	ep, err := sampleEpisodes(policy, prompts, s)
	if err != nil {
		return nil, 0, err
	}
	return ep.layout(ep.T, s.pad), ep.genTokens, nil
}

// episodes are sampled responses before their layout: each episode's
// tokens (prompt, response and stop action), and T, the longest.
type episodes struct {
	prompts   [][]int32
	seqs      [][]int32
	gens      []model.Generation
	T         int
	genTokens int
}

// sampleEpisodes samples a response to each prompt with the policy (up to
// s.maxNew tokens, stopping at eos).
func sampleEpisodes(policy *model.Model, prompts [][]int32, s rolloutSampling) (*episodes, error) {
	eos, pad := s.eos, s.pad
	gens, err := model.Generate(policy, prompts, model.GenerateOptions{
		MaxNew: s.maxNew, Sampling: gpu.Sampling{Temperature: s.temperature}, Seed: s.seed, SeedGroupSize: s.seedGroup, SeedGroup0: s.seedGroup0,
		EOS: eos, Batch: s.batch, Stats: s.stats,
	})
	if err != nil {
		return nil, err
	}
	stop := eos // the action that ends an episode
	if stop < 0 {
		stop = pad
	}
	ep := &episodes{prompts: prompts, seqs: make([][]int32, len(prompts)), gens: gens}
	for i, g := range gens {
		s := append(append([]int32(nil), prompts[i]...), g.Tokens...)
		if g.Stop == model.StopEOS {
			s = append(s, stop) // stopping is an action the policy learns
		}
		if len(s) == len(prompts[i]) { // nothing generated (context full): one pad action keeps the shapes valid
			s = append(s, stop)
		}
		ep.seqs[i] = s
		ep.genTokens += len(g.Tokens)
		ep.T = max(ep.T, len(s))
	}
	return ep, nil
}

// layout lays the episodes out as a rollout of rows of T ≥ ep.T tokens,
// right-padded with pad.
func (ep *episodes) layout(T int, pad int32) *rollout {
	E := len(ep.seqs)
	ro := &rollout{E: E, T: T, validLen: make([]int32, E), lastIdx: make([]int32, E), scores: make([]float32, E),
		responseLen: make([]int, E), eos: make([]bool, E), generated: make([][]int32, E)}
	ro.tokens, ro.targets = make([]int32, E*T), make([]int32, E*T)
	ro.mask = make([]float32, E*T)
	for i, s := range ep.seqs {
		ro.generated[i] = ep.gens[i].Tokens
		ro.eos[i] = ep.gens[i].Stop == model.StopEOS
		ro.responseLen[i] = len(s) - len(ep.prompts[i])
		for j := range T {
			ro.targets[i*T+j] = -1
			ro.tokens[i*T+j] = pad
		}
		copy(ro.tokens[i*T:], s)
		ro.validLen[i] = int32(len(s))
		for p := len(ep.prompts[i]) - 1; p < len(s)-1; p++ {
			ro.targets[i*T+p] = s[p+1]
			ro.mask[i*T+p] = 1
		}
		ro.lastIdx[i] = int32(len(s) - 2)
	}
	return ro
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

// forwardInto runs m without dropout over the rollout's rows in chunks of
// its MaxBatch and leaves the per-position outputs in dst [E·T] on the
// device: the log-prob of each position's target for a language model
// (targets −1 where there is none), the value for a scalar head.
func forwardInto(m *model.Model, ro *rollout, scalar bool, dst *gpu.Tensor) error {
	T := ro.T
	return forwardChunks(m, ro.tokens, ro.targets, ro.validLen, ro.E, T, scalar, func(lo, hi int, o *gpu.Tensor) error {
		m.Backend().Copy(dst.MustView(lo*T, (hi-lo)*T), o)
		return nil
	})
}

// forwardChunks runs the forward passes over E right-padded rows of T
// tokens (validLen[i] of row i real), one per chunk of rows
// lo..hi, and hands use each chunk's outputs [(hi−lo)·T] on the device.
func forwardChunks(m *model.Model, tokens, targets, validLen []int32, E, T int, scalar bool, use func(lo, hi int, out *gpu.Tensor) error) error {
	for lo := 0; lo < E; lo += m.MaxBatch() {
		hi := min(E, lo+m.MaxBatch())
		in := &model.Batch{B: hi - lo, T: T, Tokens: tokens[lo*T : hi*T], ValidLen: validLen[lo:hi]}
		src := m.Values
		if !scalar {
			in.Targets = targets[lo*T : hi*T]
			src = m.LogProbs
		}
		if err := m.Forward(in, false, 0); err != nil {
			return err
		}
		if err := use(lo, hi, src().MustReshape((hi-lo)*T)); err != nil {
			return err
		}
	}
	return nil
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
	total, n := rolloutTaskScoreSum(recs, responses)
	if n == 0 {
		return nil
	}
	mean := total / float64(n)
	return &mean
}

// rolloutTaskScoreSum is rolloutTaskScore's sum and count of the scores
// (data-parallel ranks add them up before dividing).
func rolloutTaskScoreSum(recs []data.Prompt, responses []string) (total float64, n int) {
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
	return total, n
}

// rolloutScorer scores rollouts of up to E episodes of T tokens on the
// device, in tensors allocated once: the policy's and the reference's
// per-token log-probs stay there for the update to read, and the reward
// model's score of each episode is gathered there (at its final token, EOS
// included) and read back, the scoring's one read. PPO, GRPO, RLOO and
// rejection sampling score with it.
type rolloutScorer struct {
	b                         gpu.Backend
	maxE, maxT                int
	oldLogp, refLogp, rewards *gpu.Tensor // [E·T]; rewards: the reward model's per-token outputs, then scratch
	rowEnd                    *gpu.Tensor // Int32 [E]: each row's final token
	score                     *gpu.Tensor // [E]
}

func newRolloutScorer(b gpu.Backend, E, T int) (*rolloutScorer, error) {
	s := &rolloutScorer{b: b, maxE: E, maxT: T}
	var err error
	for _, t := range []**gpu.Tensor{&s.oldLogp, &s.refLogp, &s.rewards} {
		if err == nil {
			*t, err = b.Alloc(gpu.Float32, E*T)
		}
	}
	if err == nil {
		s.rowEnd, err = b.Alloc(gpu.Int32, E)
	}
	if err == nil {
		s.score, err = b.Alloc(gpu.Float32, E)
	}
	if err != nil {
		return nil, fmt.Errorf("rollout tensors: %w", err)
	}
	return s, nil
}

// fits reports a rollout larger than the scorer's tensors.
func (s *rolloutScorer) fits(ro *rollout) error {
	if ro.E > s.maxE || ro.E*ro.T > s.maxE*s.maxT {
		return fmt.Errorf("a rollout of %d×%d tokens exceeds the %d×%d allocated", ro.E, ro.T, s.maxE, s.maxT)
	}
	return nil
}

// logProbs leaves the rollout's per-token log-probs of its response tokens
// under the policy (the sampling policy's) in oldLogp and under the frozen
// reference in refLogp, [E·T] prefixes.
func (s *rolloutScorer) logProbs(policy, ref *model.Model, ro *rollout) error {
	return s.logProbsAt(policy, ref, ro, 0)
}

// logProbsAt is logProbs writing from element off of oldLogp and refLogp
// (a data-parallel rank's rows of a larger rollout).
func (s *rolloutScorer) logProbsAt(policy, ref *model.Model, ro *rollout, off int) error {
	if err := s.fits(ro); err != nil {
		return err
	}
	n := ro.E * ro.T
	if off < 0 || off+n > s.maxE*s.maxT {
		return fmt.Errorf("log-probs of %d tokens from %d exceed the %d allocated", n, off, s.maxE*s.maxT)
	}
	if err := forwardInto(policy, ro, false, s.oldLogp.MustView(off, n)); err != nil {
		return fmt.Errorf("policy log-probs: %w", err)
	}
	if err := forwardInto(ref, ro, false, s.refLogp.MustView(off, n)); err != nil {
		return fmt.Errorf("reference log-probs: %w", err)
	}
	return nil
}

// readLogProbs copies the log-probs logProbs left on the device into
// ro.oldLogp and ro.ref, for the methods that use them on the host.
func (s *rolloutScorer) readLogProbs(ro *rollout) error {
	n := ro.E * ro.T
	ro.oldLogp, ro.ref = make([]float32, n), make([]float32, n)
	if err := s.b.Download(ro.oldLogp, s.oldLogp.MustView(0, n)); err != nil {
		return err
	}
	return s.b.Download(ro.ref, s.refLogp.MustView(0, n))
}

// rewardModel returns the reward model's score of each episode.
func (s *rolloutScorer) rewardModel(rm *model.Model, ro *rollout) ([]float32, error) {
	if err := s.fits(ro); err != nil {
		return nil, err
	}
	b, E, T := s.b, ro.E, ro.T
	if err := forwardInto(rm, ro, true, s.rewards.MustView(0, E*T)); err != nil {
		return nil, fmt.Errorf("reward model: %w", err)
	}
	end := make([]int32, E)
	for i, v := range ro.validLen {
		end[i] = v - 1
	}
	if err := b.UploadInt32(s.rowEnd.MustView(0, E), end); err != nil {
		return nil, err
	}
	b.GatherRows(s.score.MustView(0, E, 1), s.rewards.MustView(0, E, T, 1), s.rowEnd.MustView(0, E))
	out := make([]float32, E)
	if err := b.Download(out, s.score.MustView(0, E)); err != nil {
		return nil, fmt.Errorf("reward model: %w", err)
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
		return nil, fmt.Errorf("prompts of up to %d tokens plus %d new ones (and a stop token) exceed the policy's: %s", maxPrompt, maxNew, rp.policy.Context())
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
