package tasks

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// sampleGroups draws n unlabelled rm.jsonl-like groups, the tasks taking
// turns.
func sampleGroups(n int, seed uint64) []Group {
	rng := rand.New(rand.NewPCG(seed, 77))
	groups := make([]Group, n)
	for i := range groups {
		groups[i] = newGroup(registry[i%len(registry)], rng)
	}
	return groups
}

func TestStyle(t *testing.T) {
	for _, c := range []struct {
		answer, response string
		want             float64
	}{
		{"elppa", "elppa", 1},
		{"elppa", "elpa", 1}, // style ignores content
		{"elppa", "elppa\n", 0},
		{"elppa", " elppa", 0},
		{"elppa", "elppa\nnote", 0},
		{"elppa", "", -1},
		{"elppa", " \n", -1},
		{"elppa", "elppa elppa elppa", -1}, // 17 > 2·5+4: did not stop
		{"elppa", "elppa elppa", 1},
	} {
		if got := Style(c.answer, c.response); got != c.want {
			t.Errorf("Style(%q, %q) = %v, want %v", c.answer, c.response, got, c.want)
		}
	}
}

func TestRankIsPermutation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, l := range []Labeler{DefaultLabeler(), {Noise: 0, StyleWeight: 0.1}, {Noise: 5}} {
		for _, g := range sampleGroups(200, 9) {
			r, err := l.Rank(g.Task, g.Answer, g.Responses, rng)
			if err != nil {
				t.Fatal(err)
			}
			if err := checkRanking(r, len(g.Responses)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if _, err := DefaultLabeler().Rank("nope", "a", []string{"a"}, rng); err == nil {
		t.Error("Rank accepted an unknown task")
	}
}

func TestNoiseFreeRankingSortsByUtility(t *testing.T) {
	l := Labeler{StyleWeight: 0.1}
	rng := rand.New(rand.NewPCG(1, 1))
	responses := []string{"elpa", "elppa\n", "apple", "elppa", " "}
	r, err := l.Rank("reverse", "elppa", responses, rng)
	if err != nil {
		t.Fatal(err)
	}
	// utilities 0.9, 1.0, 0.3, 1.1, -0.1
	if want := []int{3, 1, 0, 2, 4}; !slices.Equal(r, want) {
		t.Errorf("noise-free ranking %v, want %v", r, want)
	}
}

// TestPlackettLuceMarginalIsBradleyTerry checks the property the
// agreement figures rest on: in a sampled full ranking, a comes before b
// with probability σ((u_a − u_b)/Noise), whatever the other responses.
func TestPlackettLuceMarginalIsBradleyTerry(t *testing.T) {
	l := Labeler{Noise: 0.3}
	u := []float64{0.9, 0.5, 0.45, 0.1, 0}
	rng := rand.New(rand.NewPCG(2, 2))
	const n = 40000
	before := 0
	for range n {
		pos := positions(l.rankUtilities(u, rng))
		if pos[1] < pos[2] {
			before++
		}
	}
	want := sigmoid((u[1] - u[2]) / l.Noise)
	if got := float64(before) / n; math.Abs(got-want) > 0.01 {
		t.Errorf("P(1 before 2) = %.4f, want σ(Δu/T) = %.4f", got, want)
	}
}

func TestPrefer(t *testing.T) {
	l := DefaultLabeler()
	rng := rand.New(rand.NewPCG(3, 3))
	if p, _ := l.Prefer("add", "12", "12", "12", rng); p != 0.5 {
		t.Errorf("identical responses: Prefer = %v, want 0.5", p)
	}
	if p, _ := (Labeler{}).Prefer("add", "12", "12", "13", rng); p != 1 {
		t.Errorf("noise-free labeler prefers the wrong answer: %v", p)
	}
	if _, err := l.Prefer("nope", "1", "1", "2", rng); err == nil {
		t.Error("Prefer accepted an unknown task")
	}
	// The win rate converges to the Bradley–Terry probability.
	const n = 20000
	var wins float64
	for range n {
		p, err := l.Prefer("reverse", "elppa", "elppa", "elpa", rng)
		if err != nil {
			t.Fatal(err)
		}
		wins += p
	}
	want, _ := l.PreferProbability("reverse", "elppa", "elppa", "elpa")
	if near := math.Abs(wins/n - want); near > 0.015 {
		t.Errorf("win rate %.4f, want %.4f", wins/n, want)
	}
	if want < 0.75 || want > 0.9 {
		t.Errorf("P(answer over one letter short) = %.3f: the labeler should see a 0.2 score gap, noisily", want)
	}
}

// sftSamples reads testdata/sft_samples.jsonl: 1000 rm.jsonl prompts, each
// with 4 to 9 samples of the SFT model of the pipeline with ideal
// demonstrations (demo_habit 0, the default when the file was written), by
//
//	instructgo data label --policy runs/pipeline/sft --prompts runs/pipeline/data/rm.jsonl \
//	    --limit 1000 --out train/tasks/testdata/sft_samples.jsonl
//
// The comparisons the paper's labelers agreed on were of model outputs
// like these.
func sftSamples(t *testing.T) []Group {
	t.Helper()
	groups := readJSONL[Group](t, "testdata", "sft_samples.jsonl")
	if len(groups) != 1000 {
		t.Fatalf("%d groups in testdata/sft_samples.jsonl", len(groups))
	}
	return groups
}

// TestDefaultNoiseIsCalibrated recalibrates the temperature on the SFT
// model's samples and checks it matches DefaultNoise.
func TestDefaultNoiseIsCalibrated(t *testing.T) {
	noise, err := calibrateNoise(sftSamples(t), DefaultStyleWeight, TargetAgreement)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(noise-DefaultNoise) > 0.005 {
		t.Errorf("calibrated noise %.4f, DefaultNoise %.4f", noise, DefaultNoise)
	}
	if _, err := calibrateNoise(sampleGroups(10, 1), DefaultStyleWeight, 0.99); err == nil {
		t.Error("calibrateNoise accepted an unreachable target")
	}
}

// TestMeasuredAgreement measures, by sampling rankings, the agreement the
// package documents on the SFT model's samples: about 0.73 between two
// labelers (the paper's inter-labeler agreement) and about 0.82 with the
// noise-free order, and that the written rankings agree as much.
func TestMeasuredAgreement(t *testing.T) {
	groups := sftSamples(t)
	written, err := DefaultLabeler().MeasureAgreement(groups, rand.New(rand.NewPCG(3, 3)))
	if err != nil || math.Abs(written.BetweenLabelers-TargetAgreement) > 0.015 {
		t.Errorf("the written rankings agree with a second labeler on %.4f (%v), want %.2f ± 0.015", written.BetweenLabelers, err, TargetAgreement)
	}
	for i := range groups {
		groups[i].Ranking = nil // both labelers drawn
	}
	l := DefaultLabeler()
	got, err := l.MeasureAgreement(groups, rand.New(rand.NewPCG(4, 4)))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := l.ExpectedAgreement(groups)
	t.Logf("measured %+v, expected %+v", got, want)
	if math.Abs(got.BetweenLabelers-TargetAgreement) > 0.015 {
		t.Errorf("inter-labeler agreement %.4f, want %.2f ± 0.015", got.BetweenLabelers, TargetAgreement)
	}
	if math.Abs(got.WithTruth-0.82) > 0.015 {
		t.Errorf("agreement with the true order %.4f, want 0.82 ± 0.015", got.WithTruth)
	}
	if math.Abs(got.WithTruth-want.WithTruth) > 0.01 || math.Abs(got.BetweenLabelers-want.BetweenLabelers) > 0.01 {
		t.Errorf("measured %+v far from expected %+v", got, want)
	}
	if got.Pairs < 10000 || got.TruthPairs > got.Pairs {
		t.Errorf("pair counts %+v", got)
	}
	// A noise-free labeler agrees with the truth always.
	exact, _ := Labeler{StyleWeight: DefaultStyleWeight}.MeasureAgreement(groups[:100], rand.New(rand.NewPCG(5, 5)))
	if exact.WithTruth != 1 {
		t.Errorf("noise-free labeler: agreement with truth %v", exact.WithTruth)
	}
	// A written ranking is used as is: reversing the noise-free ranking
	// disagrees with the truth on every pair.
	g := groups[0]
	g.Ranking, _ = Labeler{StyleWeight: DefaultStyleWeight}.Rank(g.Task, g.Answer, g.Responses, nil)
	slices.Reverse(g.Ranking)
	if a, _ := l.MeasureAgreement([]Group{g}, rand.New(rand.NewPCG(6, 6))); a.WithTruth != 0 {
		t.Errorf("reversed ranking agrees with the truth on %.2f of pairs", a.WithTruth)
	}
}
