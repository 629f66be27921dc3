package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/instructgo/instructgo/train/data"
)

// randomGroups draws n rankings of K = kMin..9 rows with random rankings
// and margins, and N(0, 2²) rewards for their rows.
func randomGroups(rng *rand.Rand, n, kMin int) ([]data.ComparisonGroup, []float64) {
	var groups []data.ComparisonGroup
	row := 0
	for range n {
		k := kMin + rng.IntN(data.MaxResponses-kMin+1)
		groups = append(groups, data.ComparisonGroup{Start: row, K: k, Ranking: rng.Perm(k), Margin: rng.Float64() * float64(rng.IntN(2))})
		row += k
	}
	r := make([]float64, row)
	for i := range r {
		r[i] = 2 * rng.NormFloat64()
	}
	return groups, r
}

// directPreferenceLoss is the float64 reference of PreferenceLoss.Eval
// with weight w, written from the definitions without the code's
// rearrangements: the Plackett–Luce likelihood as a product of choice
// probabilities, the pairwise loss as log(1 + e^−d), IPO's square, and
// label smoothing as the mixture with the reversed ranking.
func directPreferenceLoss(p PreferenceLoss, groups []data.ComparisonGroup, r []float64, w float64) float64 {
	rankingLoss := func(g data.ComparisonGroup, order []int) float64 {
		x := make([]float64, len(order))
		for j, k := range order {
			x[j] = r[g.Start+k]
		}
		switch p.Form {
		case LossPlackettLuce:
			like := 1.0
			for j := range x {
				den := 0.0
				for _, v := range x[j:] {
					den += math.Exp(v)
				}
				like *= math.Exp(x[j]) / den
			}
			return -math.Log(like)
		case LossPairs:
			s, n := 0.0, 0
			for i := range x {
				for j := i + 1; j < len(x); j++ {
					s += math.Log(1 + math.Exp(-(x[i] - x[j] - g.Margin)))
					n++
				}
			}
			return s / float64(n)
		default: // IPO
			s, n := 0.0, 0
			for i := range x {
				for j := i + 1; j < len(x); j++ {
					h := (x[i] - x[j]) / p.Beta
					s += (h - 1/(2*p.Beta)) * (h - 1/(2*p.Beta))
					n++
				}
			}
			return s / float64(n)
		}
	}
	total := 0.0
	for _, g := range groups {
		rev := slices.Clone(g.Ranking)
		slices.Reverse(rev)
		eps := p.LabelSmoothing
		total += w * ((1-eps)*rankingLoss(g, g.Ranking) + eps*rankingLoss(g, rev))
	}
	return total
}

var preferenceLosses = []PreferenceLoss{
	{Form: LossPlackettLuce, Beta: 0.1},
	{Form: LossPlackettLuce, Beta: 0.5, LabelSmoothing: 0.2},
	{Form: LossPairs, Beta: 0.1},
	{Form: LossPairs, Beta: 1, LabelSmoothing: 0.1},
	{Form: LossIPO, Beta: 0.1},
	{Form: LossIPO, Beta: 2},
}

// TestPreferenceLossMatchesDirectFormula checks every form's loss against
// the direct float64 formula and its ∂loss/∂r against central differences,
// on random rewards and rankings of K = 2..9.
func TestPreferenceLossMatchesDirectFormula(t *testing.T) {
	for pi, p := range preferenceLosses {
		rng := rand.New(rand.NewPCG(uint64(pi), 31))
		groups, r := randomGroups(rng, 6, 2)
		const w = 0.3
		dr := make([]float64, len(r))
		loss, err := p.Eval(groups, r, w, dr)
		if err != nil {
			t.Fatal(err)
		}
		want := directPreferenceLoss(p, groups, r, w)
		if math.Abs(loss-want) > 1e-12*math.Max(1, math.Abs(want)) {
			t.Errorf("%+v: loss %.15g, direct formula %.15g", p, loss, want)
		}
		for i := range r {
			const h = 1e-5
			x := slices.Clone(r)
			x[i] = r[i] + h
			up := directPreferenceLoss(p, groups, x, w)
			x[i] = r[i] - h
			down := directPreferenceLoss(p, groups, x, w)
			fd := (up - down) / (2 * h)
			if math.Abs(fd-dr[i]) > 1e-6*math.Max(1, math.Abs(fd)) {
				t.Errorf("%+v: ∂loss/∂r[%d] = %.10g, finite difference %.10g", p, i, dr[i], fd)
			}
		}
		if slices.Equal(dr, make([]float64, len(dr))) {
			t.Errorf("%+v: zero gradient", p)
		}
	}
}

// TestPlackettLuceIsPairwiseForPairs: on K = 2 rankings the Plackett–Luce
// and pairwise forms are the same loss with the same gradient, with and
// without label smoothing (then conservative DPO's formula), and the
// pairwise form is KWayLoss.
func TestPlackettLuceIsPairwiseForPairs(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 5))
	groups, r := randomGroups(rng, 12, 2)
	var pairs []data.ComparisonGroup
	var r2 []float64
	for _, g := range groups {
		pairs = append(pairs, data.ComparisonGroup{Start: len(r2), K: 2, Ranking: rng.Perm(2)})
		r2 = append(r2, r[g.Start], r[g.Start+1])
	}
	for _, eps := range []float64{0, 0.1, 0.3} {
		pl, pw := make([]float64, len(r2)), make([]float64, len(r2))
		lpl, err := PreferenceLoss{Form: LossPlackettLuce, Beta: 0.1, LabelSmoothing: eps}.Eval(pairs, r2, 0.25, pl)
		if err != nil {
			t.Fatal(err)
		}
		lpw, err := PreferenceLoss{Form: LossPairs, Beta: 0.1, LabelSmoothing: eps}.Eval(pairs, r2, 0.25, pw)
		if err != nil {
			t.Fatal(err)
		}
		cdpo := 0.0
		for _, g := range pairs {
			h := r2[g.Start+g.Ranking[0]] - r2[g.Start+g.Ranking[1]]
			cdpo += 0.25 * ((1-eps)*-math.Log(1/(1+math.Exp(-h))) + eps*-math.Log(1/(1+math.Exp(h))))
		}
		if math.Abs(lpl-lpw) > 1e-13 || math.Abs(lpl-cdpo) > 1e-13 {
			t.Errorf("ε %g: Plackett–Luce %.16g, pairwise %.16g, cDPO %.16g", eps, lpl, lpw, cdpo)
		}
		for i := range pl {
			if math.Abs(pl[i]-pw[i]) > 1e-15 {
				t.Errorf("ε %g: ∂/∂r[%d] Plackett–Luce %.16g, pairwise %.16g", eps, i, pl[i], pw[i])
			}
		}
	}
	// The pairwise form is KWayLoss (margins included) in float64.
	r32 := make([]float32, len(r))
	r64 := make([]float64, len(r))
	for i, x := range r {
		r32[i] = float32(x)
		r64[i] = float64(r32[i])
	}
	d32, d64 := make([]float32, len(r)), make([]float64, len(r))
	lk, err := KWayLoss(groups, r32, 0.5, d32)
	if err != nil {
		t.Fatal(err)
	}
	lp, err := PreferenceLoss{Form: LossPairs, Beta: 0.1}.Eval(groups, r64, 0.5, d64)
	if err != nil {
		t.Fatal(err)
	}
	if lk != lp {
		t.Errorf("KWayLoss %.16g, pairwise form %.16g", lk, lp)
	}
	for i := range d32 {
		if d32[i] != float32(d64[i]) {
			t.Errorf("∂/∂r[%d]: KWayLoss %g, pairwise form %g", i, d32[i], d64[i])
		}
	}
}

// TestPreferenceLossRefusals: bad settings and groups that do not fit the
// rewards are errors, not panics.
func TestPreferenceLossRefusals(t *testing.T) {
	r := []float64{1, 2, 3}
	good := []data.ComparisonGroup{{Start: 0, K: 3, Ranking: []int{2, 0, 1}}}
	for _, p := range []PreferenceLoss{
		{Form: "dpo", Beta: 0.1},
		{Form: LossPlackettLuce, Beta: 0},
		{Form: LossPlackettLuce, Beta: math.Inf(1)},
		{Form: LossPairs, Beta: 0.1, LabelSmoothing: 0.5},
		{Form: LossPairs, Beta: 0.1, LabelSmoothing: -0.1},
		{Form: LossIPO, Beta: 0.1, LabelSmoothing: 0.1},
	} {
		if _, err := p.Eval(good, r, 1, make([]float64, 3)); err == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	for _, g := range [][]data.ComparisonGroup{
		{{Start: 1, K: 3, Ranking: []int{0, 1, 2}}},
		{{Start: 0, K: 3, Ranking: []int{0, 1, 1}}},
		{{Start: 0, K: 3, Ranking: []int{0, 1, 3}}},
		{{Start: 0, K: 1, Ranking: []int{0}}},
	} {
		for _, form := range []string{LossPlackettLuce, LossPairs, LossIPO} {
			if _, err := (PreferenceLoss{Form: form, Beta: 0.1}).Eval(g, r, 1, make([]float64, 3)); err == nil {
				t.Errorf("%s: group %+v accepted", form, g)
			}
		}
	}
	if _, err := (PreferenceLoss{Form: LossPlackettLuce, Beta: 0.1}).Eval(good, r, 1, make([]float64, 2)); err == nil {
		t.Error("too few gradients accepted")
	}
}
