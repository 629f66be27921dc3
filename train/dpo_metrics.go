package train

import "github.com/instructgo/instructgo/train/data"

// rewardStats sums the implicit-reward metrics TRL's DPO trainer logs over
// rankings, each ranking counting once: its best-ranked response is the
// "chosen" one and its worst the "rejected" one (a pair's two responses;
// for K > 2 the ends of the ranking, so the margin spans the whole
// ranking). It is part of the resume state, so the sums are exact.
type rewardStats struct {
	N            int     `json:"n"`
	Chosen       float64 `json:"chosen"`   // Σ r_chosen
	Rejected     float64 `json:"rejected"` // Σ r_rejected
	Correct      float64 `json:"correct"`  // rankings with r_chosen > r_rejected (a tie counts 0, as in TRL)
	LogpChosen   float64 `json:"logp_chosen"`
	LogpRejected float64 `json:"logp_rejected"`
}

// add adds the rankings of groups, with the rows' implicit rewards r and
// policy sequence log-probs logp.
func (s *rewardStats) add(groups []data.ComparisonGroup, r, logp []float64) {
	for _, g := range groups {
		c, l := g.Start+g.Ranking[0], g.Start+g.Ranking[g.K-1]
		s.N++
		s.Chosen += r[c]
		s.Rejected += r[l]
		s.LogpChosen += logp[c]
		s.LogpRejected += logp[l]
		if r[c] > r[l] {
			s.Correct++
		}
	}
}

// values are the sums in a fixed order, for summing over data-parallel
// ranks; addValues adds such sums.
func (s rewardStats) values() []float64 {
	return []float64{float64(s.N), s.Chosen, s.Rejected, s.Correct, s.LogpChosen, s.LogpRejected}
}

func (s *rewardStats) addValues(v []float64) {
	s.N += int(v[0])
	s.Chosen += v[1]
	s.Rejected += v[2]
	s.Correct += v[3]
	s.LogpChosen += v[4]
	s.LogpRejected += v[5]
}

// RewardMetrics are TRL's DPO metrics, means over rankings.
type RewardMetrics struct {
	Chosen       float64 `json:"rewards/chosen"`
	Rejected     float64 `json:"rewards/rejected"`
	Accuracy     float64 `json:"rewards/accuracies"`
	Margin       float64 `json:"rewards/margins"`
	LogpChosen   float64 `json:"logps/chosen"`
	LogpRejected float64 `json:"logps/rejected"`
}

// metrics returns the means (zeros for no rankings).
func (s rewardStats) metrics() RewardMetrics {
	n := float64(max(s.N, 1))
	return RewardMetrics{
		Chosen: s.Chosen / n, Rejected: s.Rejected / n, Accuracy: s.Correct / n, Margin: (s.Chosen - s.Rejected) / n,
		LogpChosen: s.LogpChosen / n, LogpRejected: s.LogpRejected / n,
	}
}
