package tasks

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// Group is one prompt's set of responses, a record of rm.jsonl: the
// prompt, the responses, once labelled the ranking (indices of Responses
// from best to worst), the task and the correct answer.
type Group struct {
	Prompt    string   `json:"prompt"`
	Responses []string `json:"responses"`
	Ranking   []int    `json:"ranking"`
	Task      string   `json:"task"`
	Answer    string   `json:"answer"`
	Kind      string   `json:"kind,omitempty"`
}

// Agreement is a labeler's measured consistency on a set of groups.
type Agreement struct {
	// WithTruth is the fraction of pairs the labeler orders like the
	// noise-free utility does, over the TruthPairs pairs whose utilities
	// differ (pairs of equally good responses have no true order).
	WithTruth  float64 `json:"with_truth"`
	TruthPairs int     `json:"truth_pairs"`
	// BetweenLabelers is the fraction of all Pairs on which two
	// independent draws of the labeler (two labelers with the same
	// preferences, as in the paper's inter-labeler agreement) agree.
	BetweenLabelers float64 `json:"between_labelers"`
	Pairs           int     `json:"pairs"`
}

// MeasureAgreement measures the labeler's agreement on groups by drawing
// rankings: a group's Ranking, when set, is the first labeler's (so the
// agreement of rankings already written can be measured), otherwise one is
// drawn; the second labeler's is always drawn. Pairs of identical
// responses (a policy's samples can repeat) are not comparisons and are
// left out.
func (l Labeler) MeasureAgreement(groups []Group, rng *rand.Rand) (Agreement, error) {
	var truthAgree, between float64
	var a Agreement
	for gi, g := range groups {
		t, err := ByName(g.Task)
		if err != nil {
			return Agreement{}, fmt.Errorf("group %d: %w", gi, err)
		}
		u := l.utilities(t, g.Answer, g.Responses)
		first := g.Ranking
		if first == nil {
			first = l.rankUtilities(u, rng)
		} else if err := checkRanking(first, len(u)); err != nil {
			return Agreement{}, fmt.Errorf("group %d: %w", gi, err)
		}
		p1, p2 := positions(first), positions(l.rankUtilities(u, rng))
		for i := range u {
			for j := i + 1; j < len(u); j++ {
				if g.Responses[i] == g.Responses[j] {
					continue // the same text twice is no comparison
				}
				a.Pairs++
				if (p1[i] < p1[j]) == (p2[i] < p2[j]) {
					between++
				}
				if u[i] != u[j] {
					a.TruthPairs++
					if (p1[i] < p1[j]) == (u[i] > u[j]) {
						truthAgree++
					}
				}
			}
		}
	}
	if a.TruthPairs > 0 {
		a.WithTruth = truthAgree / float64(a.TruthPairs)
	}
	if a.Pairs > 0 {
		a.BetweenLabelers = between / float64(a.Pairs)
	}
	return a, nil
}

// ExpectedAgreement is the agreement MeasureAgreement converges to on
// groups, computed without sampling: a pair whose utilities differ by d is
// ordered truly with probability p = σ(|d|/Noise) (the Plackett–Luce
// ranking's pairwise marginal is exactly Bradley–Terry), and two
// independent labelers agree on it with probability p² + (1−p)² (½ for a
// pair of equal utilities).
func (l Labeler) ExpectedAgreement(groups []Group) (Agreement, error) {
	diffs, err := l.pairGaps(groups)
	if err != nil {
		return Agreement{}, err
	}
	return expectedAgreement(diffs, l.Noise), nil
}

// pairGaps lists |u_i − u_j| for every pair of different responses of
// every group (a policy's samples can repeat; the same text twice is no
// comparison).
func (l Labeler) pairGaps(groups []Group) ([]float64, error) {
	var gaps []float64
	for gi, g := range groups {
		t, err := ByName(g.Task)
		if err != nil {
			return nil, fmt.Errorf("group %d: %w", gi, err)
		}
		u := l.utilities(t, g.Answer, g.Responses)
		for i := range u {
			for j := i + 1; j < len(u); j++ {
				if g.Responses[i] != g.Responses[j] {
					gaps = append(gaps, math.Abs(u[i]-u[j]))
				}
			}
		}
	}
	return gaps, nil
}

func expectedAgreement(gaps []float64, noise float64) Agreement {
	var truthAgree, between float64
	a := Agreement{Pairs: len(gaps)}
	for _, d := range gaps {
		if d == 0 {
			between += 0.5
			continue
		}
		p := 1.0
		if noise > 0 {
			p = sigmoid(d / noise)
		}
		a.TruthPairs++
		truthAgree += p
		between += p*p + (1-p)*(1-p)
	}
	if a.TruthPairs > 0 {
		a.WithTruth = truthAgree / float64(a.TruthPairs)
	}
	if a.Pairs > 0 {
		a.BetweenLabelers = between / float64(a.Pairs)
	}
	return a
}

// calibrateNoise returns the Noise at which a labeler with the given style
// weight has expected inter-labeler agreement target on groups (by
// bisection: agreement falls as the noise grows). target must lie between
// the agreement of a noise-free labeler and 0.5.
func calibrateNoise(groups []Group, styleWeight, target float64) (float64, error) {
	gaps, err := Labeler{StyleWeight: styleWeight}.pairGaps(groups)
	if err != nil {
		return 0, err
	}
	agree := func(noise float64) float64 { return expectedAgreement(gaps, noise).BetweenLabelers }
	lo, hi := 1e-4, 100.0 // agreement(lo) ≥ target ≥ agreement(hi)
	if aLo, aHi := agree(lo), agree(hi); target > aLo || target < aHi {
		return 0, fmt.Errorf("target agreement %.3f outside [%.3f, %.3f] reachable on these groups", target, aHi, aLo)
	}
	for range 60 {
		mid := math.Sqrt(lo * hi)
		if agree(mid) > target {
			lo = mid
		} else {
			hi = mid
		}
	}
	return math.Sqrt(lo * hi), nil
}

// positions inverts a ranking: pos[i] is response i's place (0 = best).
func positions(ranking []int) []int {
	pos := make([]int, len(ranking))
	for place, i := range ranking {
		pos[i] = place
	}
	return pos
}
