package tasks

import (
	"math"
	"math/rand/v2"
	"testing"
)

// TestLikertRating: the expected rating is the mean of sampled ratings
// (20000 draws each, within 4 standard errors), it rises with the
// response's utility, and a noise-free labeler gives the extreme bands to
// an exact clean answer (7) and an empty response (1).
func TestLikertRating(t *testing.T) {
	l := DefaultLabeler()
	rng := rand.New(rand.NewPCG(3, 4))
	responses := []string{"", "word", "WOR", "WORD\n", "WORD"} // rising utility for the answer "WORD"
	prev := 0.0
	for _, resp := range responses {
		want, err := l.ExpectedRating("upper", "WORD", resp)
		if err != nil {
			t.Fatal(err)
		}
		if !(want > prev && want >= 1 && want <= LikertLevels) {
			t.Errorf("%q: expected rating %.3f after %.3f", resp, want, prev)
		}
		prev = want
		const n = 20000
		var sum, sq float64
		for range n {
			r, err := l.Rate("upper", "WORD", resp, rng)
			if err != nil {
				t.Fatal(err)
			}
			if r < 1 || r > LikertLevels {
				t.Fatalf("rating %d", r)
			}
			sum += float64(r)
			sq += float64(r * r)
		}
		mean := sum / n
		se := math.Sqrt((sq/n - mean*mean) / n)
		if math.Abs(mean-want) > 4*se+1e-12 {
			t.Errorf("%q: sampled mean rating %.4f ± %.4f, expected %.4f", resp, mean, se, want)
		}
	}
	exact := Labeler{StyleWeight: DefaultStyleWeight}
	for resp, want := range map[string]float64{"WORD": 7, "": 1} {
		got, err := exact.ExpectedRating("upper", "WORD", resp)
		r, err2 := exact.Rate("upper", "WORD", resp, nil)
		if err != nil || err2 != nil || got != want || float64(r) != want {
			t.Errorf("noise-free rating of %q: %v and %d, want %v (%v, %v)", resp, got, r, want, err, err2)
		}
	}
	if _, err := l.Rate("upper", "WORD", "WORD", nil); err == nil {
		t.Error("a noisy labeler rated without a random source")
	}
}
