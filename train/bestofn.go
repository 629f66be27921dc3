package train

import (
	"fmt"
	"math/rand/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/tasks"
)

// BestOfN measures what PPO can get out of a reward model before PPO runs:
// how well the reward model picks among the policy's own samples. For each
// prompt it draws N responses at the rollout temperature and compares the
// task score of a random one, of the one the reward model scores highest,
// and of the one the labeler's noise-free utility ranks first (the ideal
// reward). PPO with a KL budget behaves much like sampling best-of-n, so
// a reward model whose pick is no better than a random sample cannot lead
// PPO anywhere useful, and the ideal pick bounds what even a perfect
// reward model could give at that n.
type BestOfN struct {
	N           int     `json:"n"`
	Temperature float64 `json:"temperature"`
	Prompts     int     `json:"prompts"`
	// Task scores: the greedy response, one sample, the reward model's
	// pick and the ideal pick among the N samples.
	Greedy float64 `json:"greedy_score"`
	Sample float64 `json:"sample_score"`
	ByRM   float64 `json:"rm_pick_score"`
	Ideal  float64 `json:"ideal_pick_score"`
	// The labeler's expected preference for each pick over the greedy
	// response (a tie counts half): the win rate PPO's greedy policy
	// would need to match.
	SampleWin float64 `json:"sample_win_vs_greedy"`
	RMWin     float64 `json:"rm_pick_win_vs_greedy"`
	IdealWin  float64 `json:"ideal_pick_win_vs_greedy"`
	// PairAccuracy is the reward model's agreement with the noise-free
	// utility on pairs of samples of the same prompt whose utilities
	// differ (ties in the reward count half); Pairs is their number.
	PairAccuracy float64 `json:"rm_pair_accuracy"`
	Pairs        int     `json:"pairs"`
	// PairAccuracyByTask is PairAccuracy on each task's prompts: which
	// tasks the reward model can judge.
	PairAccuracyByTask map[string]float64 `json:"rm_pair_accuracy_by_task"`
}

// BestOfNOptions control MeasureBestOfN.
type BestOfNOptions struct {
	N           int     // samples per prompt (≥ 2)
	Temperature float32 // sampling temperature (> 0)
	MaxNew      int
	Seed        uint64
	Labeler     tasks.Labeler
}

// CheckPolicyReward reports a policy and reward model that cannot work
// together (in PPO or MeasureBestOfN): the policy must be a language model,
// the reward model have a scalar head, and both use one tokenizer. Callers
// may check the configs before loading the weights.
func CheckPolicyReward(policy, rm model.Config) error {
	switch {
	case policy.ScalarHead:
		return fmt.Errorf("the policy is a scalar-head model; it needs a language model")
	case !rm.ScalarHead:
		return fmt.Errorf("the reward model has no scalar head")
	case policy.Tokenizer != rm.Tokenizer || policy.VocabSize != rm.VocabSize:
		return fmt.Errorf("policy and reward model use different tokenizers (%s/%d vs %s/%d)",
			policy.Tokenizer, policy.VocabSize, rm.Tokenizer, rm.VocabSize)
	}
	return nil
}

// MeasureBestOfN samples opt.N responses of policy to each prompt, scores
// them with the reward model rm (read at the final token, EOS appended
// when the response stopped, as PPO does) and with the prompts' task
// scorers, and reports the picks (see BestOfN). greedy is policy's greedy
// evaluation of the same prompts (EvalTasks with zero sampling).
func MeasureBestOfN(policy, rm *model.Model, tok tokenizer.Tokenizer, prompts []TaskPrompt, greedy TaskEval, opt BestOfNOptions) (BestOfN, error) {
	switch {
	case opt.N < 2:
		return BestOfN{}, fmt.Errorf("best-of-n: n = %d, want at least 2", opt.N)
	case !(opt.Temperature > 0):
		return BestOfN{}, fmt.Errorf("best-of-n: temperature %g must be positive", opt.Temperature)
	case len(greedy.Samples) != len(prompts) || len(prompts) == 0:
		return BestOfN{}, fmt.Errorf("best-of-n: %d greedy samples for %d prompts", len(greedy.Samples), len(prompts))
	}
	if err := CheckPolicyReward(policy.Cfg, rm.Cfg); err != nil {
		return BestOfN{}, fmt.Errorf("best-of-n: %w", err)
	}
	samples := make([]TaskEval, opt.N)
	rewards := make([][]float64, opt.N)
	for k := range opt.N {
		ev, err := EvalTasks(policy, tok, prompts, EvalOptions{MaxNew: opt.MaxNew, Sampling: gpu.Sampling{Temperature: opt.Temperature}, Seed: gpu.Mix64(opt.Seed, uint64(k))})
		if err != nil {
			return BestOfN{}, fmt.Errorf("best-of-n: sample %d: %w", k, err)
		}
		r, err := RewardOfSamples(rm, tok, ev)
		if err != nil {
			return BestOfN{}, fmt.Errorf("best-of-n: sample %d: %w", k, err)
		}
		samples[k], rewards[k] = ev, r
	}
	return bestOfN(prompts, greedy, samples, rewards, opt)
}

// RewardOfSamples scores each response of ev with the reward model rm:
// the prompt followed by the response, and EOS when the response stopped
// there (or is empty), as the rollouts score them; a sequence longer than
// rm's context loses its prompt's start, as reward-model training does.
func RewardOfSamples(rm *model.Model, tok tokenizer.Tokenizer, ev TaskEval) ([]float64, error) {
	seqs := make([][]int32, len(ev.Samples))
	for i, s := range ev.Samples {
		seq := append(tokenizer.EncodeStart(tok, s.Prompt), tok.Encode(s.Response)...)
		if s.EOS || len(s.Response) == 0 {
			seq = append(seq, tok.EOS())
		}
		if over := len(seq) - rm.MaxSeq(); over > 0 {
			seq = seq[over:]
		}
		seqs[i] = seq
	}
	return ScoreSequences(rm, seqs, tok.EOS(), 4096) // padding is masked: any id does
}

// bestOfN computes the report from the samples (samples[k].Samples[i] is
// sample k of prompt i) and their rewards (rewards[k][i]).
func bestOfN(prompts []TaskPrompt, greedy TaskEval, samples []TaskEval, rewards [][]float64, opt BestOfNOptions) (BestOfN, error) {
	P := len(prompts)
	rep := BestOfN{N: opt.N, Temperature: float64(opt.Temperature), Prompts: P, Greedy: greedy.Score}
	pick := func(choose func(i int) int) TaskEval {
		ev := TaskEval{Samples: make([]TaskSample, P)}
		for i := range P {
			ev.Samples[i] = samples[choose(i)].Samples[i]
			ev.Score += ev.Samples[i].Score / float64(P)
		}
		return ev
	}
	rng := rand.New(rand.NewPCG(opt.Seed, 0xb0))
	utility := make([][]float64, P)
	for i, p := range prompts {
		t, err := tasks.ByName(p.Task)
		if err != nil {
			return BestOfN{}, fmt.Errorf("best-of-n: prompt %d: %w", i, err)
		}
		utility[i] = make([]float64, opt.N)
		for k := range opt.N {
			utility[i][k] = opt.Labeler.Utility(t, p.Answer, samples[k].Samples[i].Response)
		}
	}
	argmax := func(v func(k int) float64) int {
		best := 0
		for k := 1; k < opt.N; k++ {
			if v(k) > v(best) {
				best = k
			}
		}
		return best
	}
	random := pick(func(int) int { return rng.IntN(opt.N) })
	byRM := pick(func(i int) int { return argmax(func(k int) float64 { return rewards[k][i] }) })
	ideal := pick(func(i int) int { return argmax(func(k int) float64 { return utility[i][k] }) })
	rep.Sample, rep.ByRM, rep.Ideal = random.Score, byRM.Score, ideal.Score
	for _, w := range []struct {
		ev  TaskEval
		out *float64
	}{{random, &rep.SampleWin}, {byRM, &rep.RMWin}, {ideal, &rep.IdealWin}} {
		var err error
		if *w.out, err = WinRate(w.ev, greedy, opt.Labeler); err != nil {
			return BestOfN{}, fmt.Errorf("best-of-n: %w", err)
		}
	}
	agree := 0.0
	taskAgree, taskPairs := map[string]float64{}, map[string]int{}
	for i, p := range prompts {
		for a := range opt.N {
			for b := a + 1; b < opt.N; b++ {
				du := utility[i][a] - utility[i][b]
				if du == 0 {
					continue
				}
				rep.Pairs++
				taskPairs[p.Task]++
				var right float64
				switch dr := rewards[a][i] - rewards[b][i]; {
				case dr == 0:
					right = 0.5
				case (dr > 0) == (du > 0):
					right = 1
				}
				agree += right
				taskAgree[p.Task] += right
			}
		}
	}
	if rep.Pairs > 0 {
		rep.PairAccuracy = agree / float64(rep.Pairs)
	}
	rep.PairAccuracyByTask = make(map[string]float64, len(taskPairs))
	for task, n := range taskPairs {
		rep.PairAccuracyByTask[task] = taskAgree[task] / float64(n)
	}
	return rep, nil
}
