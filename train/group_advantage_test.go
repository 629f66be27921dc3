package train

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestGroupAdvantages(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const G, groups = 5, 4
	rewards := make([]float64, G*groups)
	for i := range rewards {
		rewards[i] = rng.NormFloat64()
	}
	grpo, err := grpoAdvantages(rewards, G, false)
	if err != nil {
		t.Fatal(err)
	}
	dr, _ := grpoAdvantages(rewards, G, true)
	rloo, _ := rlooAdvantages(rewards, G)
	for g := range groups {
		rs := rewards[g*G : (g+1)*G]
		// The reference, written out per member: the group's statistics
		// by definition, the leave-one-out mean by summing the others.
		var mean, ss float64
		for _, r := range rs {
			mean += r / G
		}
		for _, r := range rs {
			ss += (r - mean) * (r - mean)
		}
		sd := math.Sqrt(ss / (G - 1))
		var sumA, sumSq float64
		for i, r := range rs {
			others := 0.0
			for j, o := range rs {
				if j != i {
					others += o
				}
			}
			k := g*G + i
			check := func(name string, got, want float64) {
				if math.Abs(got-want) > 1e-12*(1+math.Abs(want)) {
					t.Errorf("%s advantage of episode %d: %v, want %v", name, k, got, want)
				}
			}
			check("grpo", grpo[k], (r-mean)/(sd+groupStdEps))
			check("dr-grpo", dr[k], r-mean)
			check("rloo", rloo[k], r-others/(G-1))
			sumA += grpo[k]
			sumSq += grpo[k] * grpo[k]
		}
		// Normalised within the group: mean 0, (nearly) unit variance.
		if math.Abs(sumA) > 1e-9 || math.Abs(sumSq/(G-1)-1) > 1e-3 {
			t.Errorf("group %d: GRPO advantages sum %v, variance %v", g, sumA, sumSq/(G-1))
		}
	}
	flat := []float64{0.5, 0.5, 0.5, 1, 0, 1}
	if a, _ := grpoAdvantages(flat, 3, false); a[0] != 0 || a[1] != 0 || a[2] != 0 || a[3] <= 0 || a[4] >= 0 {
		t.Errorf("GRPO advantages %v of rewards %v", a, flat)
	}
	if n := flatGroups(flat, 3); n != 1 {
		t.Errorf("%d flat groups in %v, want 1", n, flat)
	}
	if _, err := grpoAdvantages(rewards[:7], G, false); err == nil {
		t.Error("7 rewards in groups of 5 accepted")
	}
	if _, err := rlooAdvantages(rewards[:2], 1); err == nil {
		t.Error("groups of 1 accepted by RLOO")
	}
}
