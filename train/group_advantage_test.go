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

// The per-token layout: every response token of episode i carries w_i·A_i
// and w_i, other positions 0; w is 1/|o_i| for GRPO, 1/MaxNew for Dr.
// GRPO and 1 for RLOO, whose rewards lose β·Σ k1 first.
func TestGroupTokenAdvantages(t *testing.T) {
	const E, T = 4, 6
	ro := &rollout{E: E, T: T, mask: make([]float32, E*T), oldLogp: make([]float32, E*T), ref: make([]float32, E*T),
		scores: []float32{0.2, 0.9, 0.4, 0.4}, responseLen: []int{2, 4, 3, 1}}
	rng := rand.New(rand.NewPCG(8, 9))
	kl := make([]float64, E)
	for i := range E {
		for p := 1; p <= ro.responseLen[i]; p++ {
			k := i*T + p
			ro.mask[k] = 1
			ro.oldLogp[k] = float32(-rng.Float64())
			ro.ref[k] = float32(-rng.Float64())
			kl[i] += float64(ro.oldLogp[k]) - float64(ro.ref[k])
		}
	}
	for _, tc := range []struct {
		method string
		dr     bool
	}{{MethodGRPO, false}, {MethodGRPO, true}, {MethodRLOO, false}} {
		cfg := DefaultGRPO()
		cfg.Method, cfg.DrGRPO, cfg.Group, cfg.PromptsPerIter, cfg.MaxNew, cfg.KLCoef = tc.method, tc.dr, 2, 2, 10, 0.3
		g := &groupTrainer{cfg: cfg}
		var rec GroupMetrics
		adv, weight, err := g.advantages(ro, &rec)
		if err != nil {
			t.Fatal(err)
		}
		rewards := make([]float64, E)
		for i, s := range ro.scores {
			rewards[i] = float64(s)
			if tc.method == MethodRLOO {
				rewards[i] -= 0.3 * kl[i]
			}
		}
		var a []float64
		if tc.method == MethodRLOO {
			a, _ = rlooAdvantages(rewards, 2)
		} else {
			a, _ = grpoAdvantages(rewards, 2, tc.dr)
		}
		for k := range E * T {
			i := k / T
			w := 0.0
			if ro.mask[k] != 0 {
				switch {
				case tc.method == MethodRLOO:
					w = 1
				case tc.dr:
					w = 0.1
				default:
					w = 1 / float64(ro.responseLen[i])
				}
			}
			if math.Abs(float64(weight[k])-w) > 1e-6 || math.Abs(float64(adv[k])-w*a[i]) > 1e-6 {
				t.Errorf("%s dr=%v position %d: weight %v adv %v, want %v and %v", tc.method, tc.dr, k, weight[k], adv[k], w, w*a[i])
			}
		}
		if rec.FlatGroups != 0.5 {
			t.Errorf("%s: flat groups %v, want 0.5 (the second group's rewards are equal)", tc.method, rec.FlatGroups)
		}
	}
}
