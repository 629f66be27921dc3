package tasks

import (
	"math"
	"math/rand/v2"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-4 }

func TestLevenshtein(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"kitten", "sitting", 3},
		{"elppa", "elpa", 1}, {"ab", "ba", 2}, {"flaw", "lawn", 2}, {"same", "same", 0},
	} {
		if got := levenshtein(c.a, c.b); got != c.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
		if got := levenshtein(c.b, c.a); got != c.want {
			t.Errorf("levenshtein(%q, %q) = %d, want %d (symmetry)", c.b, c.a, got, c.want)
		}
	}
}

// TestTaskScores checks every task's scorer on hand-worked cases: the
// answer itself, clear misses, and partial credit.
func TestTaskScores(t *testing.T) {
	for _, c := range []struct {
		task, answer, response string
		want                   float64
	}{
		// reverse: 1 − edit distance / longer length.
		{"reverse", "elppa", "elppa", 1},
		{"reverse", "elppa", "  elppa\n", 1}, // surrounding white space is style, not content
		{"reverse", "elppa", "elpa", 0.8},    // one letter missing
		{"reverse", "elppa", "elppx", 0.8},   // one letter wrong
		{"reverse", "elppa", "lepap", 0.4},   // two swaps: 3 edits (drop e, insert e, replace)
		{"reverse", "elppa", "elppa ok", 0.625},
		{"reverse", "elppa", "", 0},
		{"reverse", "tac", "dog", 0},
		// sort
		{"sort", "aelpp", "aelpp", 1},
		{"sort", "aelpp", "aelp", 0.8},
		{"sort", "aelpp", "apple", 0.2}, // the input echoed: 4 edits
		{"sort", "dgo", "xyz", 0},
		// add: ½ text + ½ exp(−|error|/5)·(number bytes / response bytes).
		{"add", "133", "133", 1},
		{"add", "133", "132", 0.5*2/3 + 0.5*math.Exp(-0.2)}, // off by one ≈ 0.74
		{"add", "133", "123", 0.5*2/3 + 0.5*math.Exp(-2)},   // tens digit wrong ≈ 0.40
		{"add", "133", "133 apples", 0.5*0.3 + 0.5*0.3},     // junk after the number
		{"add", "133", "13", 0.5*2/3 + 0.5*math.Exp(-120.0/5)},
		{"add", "133", "many", 0},
		{"add", "7", "70", 0.5*0.5 + 0.5*math.Exp(-63.0/5)},
		// upper: case counts.
		{"upper", "RED HAT", "RED HAT", 1},
		{"upper", "RED HAT", "red hat", 1 - 6.0/7}, // only the space matches
		{"upper", "RED HAT", "RED", 3.0 / 7},       // first word only
		{"upper", "RED HAT", "RED HAt", 6.0 / 7},   // one letter wrong
		{"upper", "APPLE", "APPLE\n", 1},           // trailing newline is style
		// count: exp(−|error|/1.5)·(number bytes / response bytes).
		{"count", "2", "2", 1},
		{"count", "2", "3", math.Exp(-1 / 1.5)}, // off by one ≈ 0.51
		{"count", "2", "1", math.Exp(-1 / 1.5)},
		{"count", "2", "5", math.Exp(-3 / 1.5)}, // off by three ≈ 0.14
		{"count", "0", "none", 0},
		{"count", "2", "2 times", 1.0 / 7},
		{"count", "1", "11", math.Exp(-10 / 1.5)},
		// repeat
		{"repeat", "cat cat cat", "cat cat cat", 1},
		{"repeat", "cat cat cat", "cat cat", 7.0 / 11},          // one copy short
		{"repeat", "cat cat cat", "cat cat cat cat", 11.0 / 15}, // one copy too many
		{"repeat", "cat cat cat", "cat", 3.0 / 11},
		{"repeat", "cat cat cat", "dog", 0},
		// word
		{"word", "tiger", "tiger", 1},
		{"word", "tiger", "tige", 0.8},
		{"word", "tiger", "lion", 0.2},      // another word: 4 edits (the i is shared)
		{"word", "fox", "red fox", 3.0 / 7}, // phrase copied instead of one word
	} {
		got, err := ScoreRecord(c.task, c.answer, c.response)
		if err != nil {
			t.Fatal(err)
		}
		if !near(got, c.want) {
			t.Errorf("%s: score(%q, %q) = %.4f, want %.4f", c.task, c.answer, c.response, got, c.want)
		}
	}
}

func TestScoreRecordUnknownTask(t *testing.T) {
	if _, err := ScoreRecord("translate", "x", "x"); err == nil {
		t.Fatal("ScoreRecord accepted an unknown task")
	}
}

// TestScoresInUnitInterval is a property test: random answers and
// responses, printable or not, never score outside [0, 1], and only
// responses equal to the answer (up to surrounding white space) score 1.
func TestScoresInUnitInterval(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	randomString := func() string {
		b := make([]byte, rng.IntN(12))
		for i := range b {
			switch rng.IntN(4) {
			case 0:
				b[i] = byte('0' + rng.IntN(10))
			case 1:
				b[i] = byte(rng.IntN(256))
			case 2:
				b[i] = " -\n"[rng.IntN(3)]
			default:
				b[i] = byte('a' + rng.IntN(26))
			}
		}
		return string(b)
	}
	for _, task := range Tasks() {
		for range 3000 {
			answer := task.Generate(rng).Answer
			if rng.IntN(3) == 0 {
				answer = randomString()
			}
			response := randomString()
			if rng.IntN(4) == 0 {
				response = letterEdit(answer, rng)
			}
			s := task.Score(answer, response)
			if !(s >= 0 && s <= 1) {
				t.Fatalf("%s: score(%q, %q) = %v, outside [0, 1]", task.Name(), answer, response, s)
			}
			if s == 1 && trimSpace(response) != answer {
				t.Fatalf("%s: score(%q, %q) = 1 for a response that is not the answer", task.Name(), answer, response)
			}
		}
	}
}

func FuzzScore(f *testing.F) {
	f.Add("133", "132")
	f.Add("elppa", "elppa ok")
	f.Add("0", "-99999999999999999999999")
	f.Add("", "\xff")
	f.Fuzz(func(t *testing.T, answer, response string) {
		for _, task := range Tasks() {
			s := task.Score(answer, response)
			if !(s >= 0 && s <= 1) {
				t.Fatalf("%s: score(%q, %q) = %v", task.Name(), answer, response, s)
			}
			if a := trimSpace(answer); task.Score(a, a) != 1 {
				t.Fatalf("%s: score(%q, itself) = %v, want 1", task.Name(), a, task.Score(a, a))
			}
		}
	})
}
