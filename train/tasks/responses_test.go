package tasks

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestResponses(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 8))
	for _, task := range Tasks() {
		var withAnswer, partial, total int
		var spread float64
		const sets = 400
		for range sets {
			inst := task.Generate(rng)
			k := MinResponses + rng.IntN(MaxResponses-MinResponses+1)
			rs := Responses(inst, k, rng)
			if len(rs) != k {
				t.Fatalf("%s: %d responses, want %d", task.Name(), len(rs), k)
			}
			seen := map[string]bool{}
			lo, hi := 1.0, 0.0
			for _, r := range rs {
				if r == "" || seen[r] {
					t.Fatalf("%s: responses %q hold an empty or repeated one", task.Name(), rs)
				}
				seen[r] = true
				s := task.Score(inst.Answer, r)
				lo, hi = min(lo, s), max(hi, s)
				if s > 0.05 && s < 0.95 {
					partial++
				}
				total++
			}
			spread += hi - lo
			if seen[inst.Answer] {
				withAnswer++
			}
		}
		// Varied quality: some sets lack the answer, each set spans good
		// and bad responses, and many earn partial credit.
		frac, spread, partialFrac := float64(withAnswer)/sets, spread/sets, float64(partial)/float64(total)
		t.Logf("%s: answer in %.2f of sets, mean spread %.2f, partial credit %.2f", task.Name(), frac, spread, partialFrac)
		if frac < 0.4 || frac > 0.95 || spread < 0.6 || partialFrac < 0.25 {
			t.Errorf("%s: answer in %.2f of sets, mean spread %.2f, partial credit %.2f of responses", task.Name(), frac, spread, partialFrac)
		}
	}
}

func TestResponsesDeterministic(t *testing.T) {
	inst := Instance{Task: "count", Prompt: "how many x in box?\n", Answer: "1", Input: "box"}
	a := Responses(inst, 9, rand.New(rand.NewPCG(1, 1)))
	b := Responses(inst, 9, rand.New(rand.NewPCG(1, 1)))
	if !slices.Equal(a, b) {
		t.Fatalf("same seed, different responses: %q, %q", a, b)
	}
}
