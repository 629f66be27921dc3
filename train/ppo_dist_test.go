package train

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
)

// rankOf is rank r of n made-up ranks (only Rank and Size answer).
type rankOf struct {
	gpu.Single
	r, n int
}

func (c rankOf) Rank() int { return c.r }
func (c rankOf) Size() int { return c.n }

// Shards are whole seed groups, in rank order, covering the rollout.
func TestEpisodeShardWholeGroups(t *testing.T) {
	for _, tc := range []struct{ E, group, size int }{{27, 9, 2}, {24, 12, 2}, {16, 8, 3}, {40, 8, 3}, {9, 9, 2}} {
		next := 0
		for r := range tc.size {
			lo, hi, g0 := episodeShard(rankOf{r: r, n: tc.size}, tc.E, tc.group)
			if lo != next || hi < lo || lo != min(tc.E, g0*tc.group) || (hi < tc.E && hi%tc.group != 0) {
				t.Fatalf("E %d, groups of %d, %d ranks: rank %d has [%d, %d) from group %d after %d", tc.E, tc.group, tc.size, r, lo, hi, g0, next)
			}
			next = hi
		}
		if next != tc.E {
			t.Fatalf("E %d, groups of %d, %d ranks: the shards end at %d", tc.E, tc.group, tc.size, next)
		}
	}
}

// randomEpisodes are E sampled episodes of random prompts and responses,
// some ended by EOS (id 1), with random raw scores.
func randomEpisodes(rng *rand.Rand, E int) (*episodes, []float32) {
	ep := &episodes{}
	scores := make([]float32, E)
	for i := range E {
		p := make([]int32, 1+rng.IntN(4))
		for j := range p {
			p[j] = 2 + rng.Int32N(50)
		}
		g := model.Generation{Tokens: make([]int32, rng.IntN(6)), Stop: model.StopMaxNew}
		for j := range g.Tokens {
			g.Tokens[j] = 2 + rng.Int32N(50)
		}
		s := append(slices.Clone(p), g.Tokens...)
		if len(g.Tokens) == 0 || rng.IntN(2) == 0 {
			g.Stop = model.StopEOS
			s = append(s, 1)
		}
		ep.prompts, ep.seqs, ep.gens = append(ep.prompts, p), append(ep.seqs, s), append(ep.gens, g)
		ep.T = max(ep.T, len(s))
		scores[i] = float32(rng.NormFloat64())
	}
	return ep, scores
}

// slice is episodes lo..hi of ep.
func (ep *episodes) slice(lo, hi int) *episodes {
	return &episodes{prompts: ep.prompts[lo:hi], seqs: ep.seqs[lo:hi], gens: ep.gens[lo:hi], T: ep.T}
}

// Gathering two ranks' rows gives the rollout one process lays out.
func TestGatherRolloutIsTheLayout(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	const E, lo, pad = 11, 4, 0
	ep, scores := randomEpisodes(rng, E)
	T := ep.T + 2 // the ranks' common T may exceed this rank's longest
	want := ep.layout(T, pad)
	want.rawScores = scores
	loc0, loc1 := ep.slice(0, lo).layout(T, pad), ep.slice(lo, E).layout(T, pad)
	loc0.rawScores, loc1.rawScores = scores[:lo], scores[lo:]
	comm := twoRanks{other: func([]float64) []float64 { return packRows(loc1, lo, E) }}
	got, err := gatherRollout(comm, loc0, 0, E)
	if err != nil {
		t.Fatal(err)
	}
	if got.E != E || got.T != T || !slices.Equal(got.tokens, want.tokens) || !slices.Equal(got.targets, want.targets) ||
		!slices.Equal(got.mask, want.mask) || !slices.Equal(got.validLen, want.validLen) || !slices.Equal(got.lastIdx, want.lastIdx) ||
		!slices.Equal(got.responseLen, want.responseLen) || !slices.Equal(got.eos, want.eos) || !slices.Equal(got.rawScores, want.rawScores) {
		t.Fatalf("gathered rollout differs from the layout:\ngot  %+v\nwant %+v", got, want)
	}
}

// The global statistics sum the sums and weigh the shares and means by
// each rank's token count.
func TestGlobalStatsWeighsShares(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	const steps = 3
	rank := func() []float64 {
		s := make([]float64, steps*ppoStatWidth)
		for i := range s {
			s[i] = rng.Float64()
		}
		for i := range steps {
			s[i*ppoStatWidth+statPolicy+3] = float64(1 + rng.IntN(20)) // token counts
			s[i*ppoStatWidth+statValue+2] = s[i*ppoStatWidth+statPolicy+3]
		}
		return s
	}
	s0, s1 := rank(), rank()
	s1[statPolicy+3], s1[statValue+2] = 0, 0 // rank 1 has no token in step 0
	weighted := func(s []float64) []float64 {
		w := slices.Clone(s)
		for i := range steps {
			x := w[i*ppoStatWidth:]
			x[statPolicy+1] *= x[statPolicy+3]
			x[statPolicy+2] *= x[statPolicy+3]
			x[statValue+1] *= x[statValue+2]
		}
		return w
	}
	got := slices.Clone(s0)
	if err := globalStats(twoRanks{other: func([]float64) []float64 { return weighted(s1) }}, got, steps, ppoStatWidth, ppoStatShares); err != nil {
		t.Fatal(err)
	}
	for i := range steps {
		a, b, g := s0[i*ppoStatWidth:], s1[i*ppoStatWidth:], got[i*ppoStatWidth:]
		n := a[statPolicy+3] + b[statPolicy+3]
		want := map[int]float64{
			statPolicy: a[statPolicy] + b[statPolicy], statEntropy: a[statEntropy] + b[statEntropy],
			statValue: a[statValue] + b[statValue], statPtx: a[statPtx] + b[statPtx], statPolicy + 3: n,
			statPolicy + 1: (a[statPolicy+1]*a[statPolicy+3] + b[statPolicy+1]*b[statPolicy+3]) / n,
			statPolicy + 2: (a[statPolicy+2]*a[statPolicy+3] + b[statPolicy+2]*b[statPolicy+3]) / n,
			statValue + 1:  (a[statValue+1]*a[statValue+2] + b[statValue+1]*b[statValue+2]) / n,
		}
		for k, w := range want {
			if math.Abs(g[k]-w) > 1e-12 {
				t.Errorf("step %d statistic %d: %v, want %v", i, k, g[k], w)
			}
		}
	}
}
