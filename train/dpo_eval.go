package train

import (
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train/data"
)

// DPOEval is a policy's implicit reward r = β·(log π − log π_ref) measured
// on held-out rankings.
type DPOEval struct {
	// Loss is the training loss (form, β, label smoothing), the mean over
	// the prompts.
	Loss float64 `json:"loss"`
	// Preference measures the implicit reward as a reward model is
	// measured (RMEval): accuracy over all C(K,2) pairs against the labels
	// and, for the built-in tasks, against the noise-free order (ties
	// count ½, so the starting policy, whose rewards are all 0, scores
	// exactly 0.5), the mean margin and the rewards' spread. Its loss is
	// the pairwise one, −log σ(r_w − r_l) averaged per prompt.
	Preference RMEval `json:"preference"`
	// Rewards are TRL's metrics: the best against the worst response of
	// each ranking (a tie counts 0).
	Rewards RewardMetrics `json:"rewards"`
	// TaskScore is the mean task score of the policy's greedy answers to
	// held-out prompts of the built-in tasks; nil without such prompts.
	TaskScore *float64           `json:"task_score,omitempty"`
	PerTask   map[string]float64 `json:"per_task,omitempty"`
}

// evalDPO measures the implicit reward of the policy m on the held-out
// comparisons val, whose reference log-probs are ref and noise-free
// utilities util (nil entries where unknown), forwarding them as
// SequenceLogProbs does. It leaves the task score to the caller.
func evalDPO(m *model.Model, val []data.ComparisonTokens, ref, util [][]float64, loss PreferenceLoss, pad int32, maxRows, budget int) (DPOEval, error) {
	logp, err := SequenceLogProbs(m, val, pad, maxRows, budget)
	if err != nil {
		return DPOEval{}, err
	}
	var lp, r []float64
	groups := make([]data.ComparisonGroup, len(val))
	for i, c := range val {
		groups[i] = data.ComparisonGroup{Start: len(r), K: len(c.Responses), Ranking: c.Ranking, Margin: c.Margin}
		for k := range c.Responses {
			lp = append(lp, logp[i][k])
			r = append(r, loss.Beta*(logp[i][k]-ref[i][k]))
		}
	}
	var ev DPOEval
	if ev.Loss, err = loss.Eval(groups, r, 1/float64(len(val)), make([]float64, len(r))); err != nil {
		return DPOEval{}, err
	}
	ev.Preference = measureRewards(val, r, util)
	var st rewardStats
	st.add(groups, r, lp)
	ev.Rewards = st.metrics()
	return ev, nil
}
