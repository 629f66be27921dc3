package tasks

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// The paper's labelers also rated each response on a 1–7 Likert scale. The
// simulated labeler rates with an ordered-logit model on the same utility
// and noise as its comparisons: the rating is 1 plus the number of cut
// points c_1 < … < c_6 that u + ε exceeds, ε logistic with scale Noise,
// so P(rating > k) = σ((u − c_k)/Noise). The cut points split the
// utility's range [−StyleWeight, 1 + StyleWeight] into seven equal bands:
// an exact, cleanly stopped answer (u = 1 + StyleWeight) rates near 7, an
// empty or runaway response with no credit near 1.

// LikertLevels is the number of points on the rating scale.
const LikertLevels = 7

// likertCut is the k-th cut point (k = 1..6) for the labeler's utility range.
func (l Labeler) likertCut(k int) float64 {
	lo, hi := -l.StyleWeight, 1+l.StyleWeight
	return lo + float64(k)*(hi-lo)/LikertLevels
}

// ExpectedRating is the mean 1–7 rating the labeler gives response: the
// expected value of Rate, for means without sampling noise. A noise-free
// labeler (Noise 0) gives the band the utility falls in.
func (l Labeler) ExpectedRating(taskName, answer, response string) (float64, error) {
	t, err := ByName(taskName)
	if err != nil {
		return 0, err
	}
	u := l.Utility(t, answer, response)
	r := 1.0
	for k := 1; k < LikertLevels; k++ {
		d := u - l.likertCut(k)
		switch {
		case l.Noise > 0:
			r += sigmoid(d / l.Noise)
		case d > 0:
			r++
		}
	}
	return r, nil
}

// Rate draws the labeler's 1–7 rating of response (rng may be nil for a
// noise-free labeler).
func (l Labeler) Rate(taskName, answer, response string, rng *rand.Rand) (int, error) {
	t, err := ByName(taskName)
	if err != nil {
		return 0, err
	}
	u := l.Utility(t, answer, response)
	if l.Noise > 0 {
		if rng == nil {
			return 0, fmt.Errorf("rate: a noisy labeler needs a random source")
		}
		u += l.Noise * logistic(rng)
	}
	r := 1
	for k := 1; k < LikertLevels; k++ {
		if u > l.likertCut(k) {
			r++
		}
	}
	return r, nil
}

// logistic draws a standard logistic variate.
func logistic(rng *rand.Rand) float64 {
	p := rng.Float64()
	for p == 0 {
		p = rng.Float64()
	}
	return math.Log(p / (1 - p))
}
