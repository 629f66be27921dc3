package train

import (
	"fmt"
	"math"
	"slices"

	"github.com/instructgo/instructgo/train/data"
)

// The forms of a preference loss (PreferenceLoss.Form).
const (
	// LossPlackettLuce is the Plackett–Luce negative log-likelihood of a
	// whole ranking: DPO on K-way rankings (Rafailov et al. 2023, App. A.3).
	LossPlackettLuce = "pl"
	// LossPairs is the mean over a ranking's C(K,2) (better, worse) pairs
	// of the Bradley–Terry loss −log σ(r_w − r_l): KWayLoss's form.
	LossPairs = "pairs"
	// LossIPO is IPO (Azar et al. 2023): the mean over the pairs of
	// (h − 1/(2β))², h the difference of the two log-ratios.
	LossIPO = "ipo"
)

// PreferenceLoss is the loss of ranked responses as a function of their
// implicit rewards r_i = β·(log π(y_i|x) − log π_ref(y_i|x)), the rule DPO
// and the methods after it share. For K = 2 the Plackett–Luce and pairwise
// forms are the same loss, −log σ(r_w − r_l).
//
// Label smoothing ε is conservative DPO's label noise: the ranking is taken
// to be reversed with probability ε, so the loss is (1−ε)·loss(ranking) +
// ε·loss(reversed ranking). In the pairwise form that flips every pair
// (cDPO's (1−ε)·(−log σ(h)) + ε·(−log σ(−h)) per pair); in the
// Plackett–Luce form the reversed ranking is the whole alternative, the
// same for K = 2. IPO has no smoothing (its target margin already bounds
// the rewards) and refuses one.
type PreferenceLoss struct {
	Form           string  `json:"form"`
	Beta           float64 `json:"beta"`
	LabelSmoothing float64 `json:"label_smoothing"`
}

// Validate reports a loss that cannot be computed.
func (p PreferenceLoss) Validate() error {
	switch {
	case p.Form != LossPlackettLuce && p.Form != LossPairs && p.Form != LossIPO:
		return fmt.Errorf("loss %q: want %q, %q or %q", p.Form, LossPlackettLuce, LossPairs, LossIPO)
	case !(p.Beta > 0) || math.IsInf(p.Beta, 0):
		return fmt.Errorf("beta %g must be positive and finite", p.Beta)
	case !(p.LabelSmoothing >= 0 && p.LabelSmoothing < 0.5):
		return fmt.Errorf("label smoothing %g must be in [0, 0.5)", p.LabelSmoothing)
	case p.Form == LossIPO && p.LabelSmoothing > 0:
		return fmt.Errorf("IPO takes no label smoothing")
	}
	return nil
}

// Eval returns weight × the summed loss of the groups (rankings of rows of
// r) and adds ∂(that)/∂r to dr. With weight 1/(prompts in the step) it is
// the mean over prompts, each prompt counting once. Only the pairwise form
// reads the groups' margins (as KWayLoss does); DPO drops the records'
// margins when it reads them (see DPO).
func (p PreferenceLoss) Eval(groups []data.ComparisonGroup, r []float64, weight float64, dr []float64) (float64, error) {
	if err := p.Validate(); err != nil {
		return 0, err
	}
	var form func([]data.ComparisonGroup, []float64, float64, []float64) (float64, error)
	switch p.Form {
	case LossIPO:
		return ipoLoss(groups, r, p.Beta, weight, dr)
	case LossPairs:
		form = pairwiseLoss
	default:
		form = plackettLuceLoss
	}
	eps := p.LabelSmoothing
	loss, err := form(groups, r, (1-eps)*weight, dr)
	if err != nil || eps == 0 {
		return loss, err
	}
	flipped, err := form(reversed(groups), r, eps*weight, dr)
	return loss + flipped, err
}

// plackettLuceLoss is weight × Σ over the groups of the Plackett–Luce
// negative log-likelihood of the group's ranking σ (best first) under the
// rewards r: the probability of drawing the best response first among all,
// then the second among the rest, and so on,
//
//	−Σ_{j<K−1} [ r_σ(j) − log Σ_{k≥j} exp r_σ(k) ],
//
// with its gradient added to dr: ∂/∂r_σ(m) = −[m < K−1] + Σ_{j ≤ min(m, K−2)}
// softmax_{k≥j}(r_σ)_m. It is not normalised by K−1: a ranking of K
// responses says K−1 choices.
func plackettLuceLoss(groups []data.ComparisonGroup, r []float64, weight float64, dr []float64) (float64, error) {
	if err := checkGroups(groups, len(r), len(dr)); err != nil {
		return 0, err
	}
	loss := 0.0
	for _, g := range groups {
		x := make([]float64, g.K) // the rewards in ranking order
		for j, k := range g.Ranking {
			x[j] = r[g.Start+k]
		}
		lse := make([]float64, g.K) // lse[j] = log Σ_{k≥j} exp x[k]
		lse[g.K-1] = x[g.K-1]
		for j := g.K - 2; j >= 0; j-- {
			lse[j] = logAddExp(x[j], lse[j+1])
		}
		for j := 0; j < g.K-1; j++ {
			loss += weight * (lse[j] - x[j])
		}
		for m := range g.K {
			grad := 0.0
			if m < g.K-1 {
				grad = -1
			}
			for j := 0; j <= min(m, g.K-2); j++ {
				grad += math.Exp(x[m] - lse[j])
			}
			dr[g.Start+g.Ranking[m]] += weight * grad
		}
	}
	return loss, nil
}

// ipoLoss is weight × Σ over the groups of the mean over the group's C(K,2)
// (w, l) pairs of (h − 1/(2β))², h = (r_w − r_l)/β the difference of the
// two responses' log-ratios log π/π_ref, with its gradient added to dr.
// The log-ratios are sums over the response tokens (TRL averages them per
// token for IPO; here every form reads the same sums).
func ipoLoss(groups []data.ComparisonGroup, r []float64, beta, weight float64, dr []float64) (float64, error) {
	if err := checkGroups(groups, len(r), len(dr)); err != nil {
		return 0, err
	}
	target := 1 / (2 * beta)
	loss := 0.0
	for _, g := range groups {
		pairs := g.Pairs()
		w := weight / float64(len(pairs))
		for _, p := range pairs {
			d := (r[p[0]]-r[p[1]])/beta - target
			loss += w * d * d
			gd := w * 2 * d / beta // ∂/∂r_w; ∂/∂r_l is its negative
			dr[p[0]] += gd
			dr[p[1]] -= gd
		}
	}
	return loss, nil
}

// reversed returns the groups with their rankings reversed (worst first).
func reversed(groups []data.ComparisonGroup) []data.ComparisonGroup {
	out := slices.Clone(groups)
	for i := range out {
		out[i].Ranking = slices.Clone(out[i].Ranking)
		slices.Reverse(out[i].Ranking)
	}
	return out
}

// logAddExp is log(eᵃ + eᵇ) without overflow.
func logAddExp(a, b float64) float64 {
	if a < b {
		a, b = b, a
	}
	return a + math.Log1p(math.Exp(b-a))
}
