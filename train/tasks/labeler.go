package tasks

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// Default labeler settings. DefaultNoise is the temperature at which two
// independent draws of the labeler agree on 73% of the comparisons of a
// policy's own outputs: the paper's inter-labeler agreement (72.6 ± 1.5%
// among training labelers) was measured on comparisons of model samples,
// and is agreement between two labelers, so that is the figure matched.
// It is calibrated on testdata/sft_samples.jsonl, 1000 rm.jsonl prompts
// with 4 to 9 samples each of the SFT model of the pipeline with ideal
// demonstrations (demo_habit 0; pairs of identical samples left out);
// there the labeler agrees with the noise-free order on about 82% of the
// pairs. (On the default pipeline's SFT samples, half of which carry the
// demonstrators' habit, two labelers agree on 75%.) The synthetic response sets of rm.jsonl
// hold many easy pairs (junk against the answer), on which the same
// labeler agrees with a second one on about 85%; calibrated on those
// instead (as before), the noise was 0.226 and two labelers agreed on only
// 60% of the comparisons of SFT samples, a far noisier labeler than the
// paper's. calibrateNoise recomputes DefaultNoise; the tests measure both
// agreements by sampling.
const (
	DefaultNoise       = 0.122
	DefaultStyleWeight = 0.1
	// TargetAgreement is the inter-labeler agreement DefaultNoise is
	// calibrated to.
	TargetAgreement = 0.73
)

// Labeler is a simulated human labeler. Its utility for a response is the
// task's score plus a mild style term; it ranks responses by sampling a
// Plackett–Luce ranking with weights exp(utility/Noise), so that for any
// two responses a and b it puts a first with the Bradley–Terry probability
// σ((u_a − u_b)/Noise) — in a full ranking as in a single comparison.
type Labeler struct {
	// Noise is the temperature of the choice model; 0 ranks by utility
	// without noise (ties in input order).
	Noise float64 `json:"noise"`
	// StyleWeight scales the style term (in [−1, 1]) added to the score.
	StyleWeight float64 `json:"style_weight"`
}

// DefaultLabeler returns the labeler with DefaultNoise and
// DefaultStyleWeight.
func DefaultLabeler() Labeler {
	return Labeler{Noise: DefaultNoise, StyleWeight: DefaultStyleWeight}
}

// Style rates how cleanly a response is written, apart from its content:
//
//	−1  empty or only white space, or overlong (trimmed length over
//	    2·len(answer) + 4: the model did not stop);
//	+1  clean: no leading or trailing white space and no line break or
//	    other control byte inside — a clean stop after the answer;
//	 0  otherwise.
func Style(answer, response string) float64 {
	t := trimSpace(response)
	if t == "" || len(t) > 2*len(answer)+4 {
		return -1
	}
	if t != response {
		return 0
	}
	for i := 0; i < len(t); i++ {
		if t[i] < ' ' || t[i] == 0x7f {
			return 0
		}
	}
	return 1
}

// Utility is what the labeler's noise-free preference maximises:
// t.Score(answer, response) + StyleWeight·Style(answer, response).
func (l Labeler) Utility(t Task, answer, response string) float64 {
	return t.Score(answer, response) + l.StyleWeight*Style(answer, response)
}

// Rank returns the indices of responses from best to worst as the labeler
// ranks them for a prompt of the named task with the given answer. rng
// draws the noise; it may be nil for a noise-free labeler (Noise 0).
func (l Labeler) Rank(taskName, answer string, responses []string, rng *rand.Rand) ([]int, error) {
	t, err := ByName(taskName)
	if err != nil {
		return nil, err
	}
	return l.rankUtilities(l.utilities(t, answer, responses), rng), nil
}

// Prefer compares two responses as the labeler does: 1 when it prefers a,
// 0 when it prefers b, 0.5 when their utilities are equal (identical
// responses, or equally good ones, count as a tie rather than a coin
// flip). Averaged over prompts it is the labeler's win rate of a over b.
// rng may be nil for a noise-free labeler.
func (l Labeler) Prefer(taskName, answer, a, b string, rng *rand.Rand) (float64, error) {
	t, err := ByName(taskName)
	if err != nil {
		return 0, err
	}
	ua, ub := l.Utility(t, answer, a), l.Utility(t, answer, b)
	switch {
	case ua == ub:
		return 0.5, nil
	case l.Noise <= 0:
		if ua > ub {
			return 1, nil
		}
		return 0, nil
	case rng.Float64() < sigmoid((ua-ub)/l.Noise):
		return 1, nil
	}
	return 0, nil
}

// PreferProbability is the probability that the labeler prefers a over b
// (0.5 for equal utilities): the expected value of Prefer, for win rates
// without sampling noise.
func (l Labeler) PreferProbability(taskName, answer, a, b string) (float64, error) {
	t, err := ByName(taskName)
	if err != nil {
		return 0, err
	}
	d := l.Utility(t, answer, a) - l.Utility(t, answer, b)
	switch {
	case d == 0:
		return 0.5, nil
	case l.Noise <= 0:
		if d > 0 {
			return 1, nil
		}
		return 0, nil
	}
	return sigmoid(d / l.Noise), nil
}

func (l Labeler) utilities(t Task, answer string, responses []string) []float64 {
	u := make([]float64, len(responses))
	for i, r := range responses {
		u[i] = l.Utility(t, answer, r)
	}
	return u
}

// rankUtilities samples a Plackett–Luce ranking with weights
// exp(u/Noise) by the Gumbel-max trick: sorting u/Noise + Gumbel noise in
// decreasing order gives exactly the sequential choice process (pick the
// best with probability ∝ weight, then the best of the rest, ...).
func (l Labeler) rankUtilities(u []float64, rng *rand.Rand) []int {
	keys := make([]float64, len(u))
	for i := range u {
		if l.Noise <= 0 {
			keys[i] = u[i]
			continue
		}
		keys[i] = u[i]/l.Noise + gumbel(rng)
	}
	order := make([]int, len(u))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case keys[a] > keys[b]:
			return -1
		case keys[a] < keys[b]:
			return 1
		}
		return 0
	})
	return order
}

// gumbel draws a standard Gumbel variate.
func gumbel(rng *rand.Rand) float64 {
	u := rng.Float64()
	if u == 0 {
		u = math.SmallestNonzeroFloat64
	}
	return -math.Log(-math.Log(u))
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// checkRanking reports whether ranking is a permutation of 0..n-1.
func checkRanking(ranking []int, n int) error {
	if len(ranking) != n {
		return fmt.Errorf("ranking has %d entries for %d responses", len(ranking), n)
	}
	seen := make([]bool, n)
	for _, i := range ranking {
		if i < 0 || i >= n || seen[i] {
			return fmt.Errorf("ranking %v is not a permutation of 0..%d", ranking, n-1)
		}
		seen[i] = true
	}
	return nil
}
