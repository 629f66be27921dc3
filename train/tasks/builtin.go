package tasks

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// builtinTasks lists the task family. Every task has three phrasings, so a
// model must read the instruction and not only the shape of the input:
// several phrasings share words ("write ... in reverse", "write ... in upper
// case", "write ... 3 times") and the same kind of input serves several
// tasks.
func builtinTasks() []Task {
	return []Task{
		&task{
			name:        "reverse",
			description: "write a word backwards; score: edit similarity to the reversed word",
			phrasings:   []string{"reverse: %s\n", "spell %s backwards\n", "write %s in reverse\n"},
			generate: func(rng *rand.Rand) ([]any, string, string) {
				w := pickWord(rng, vocabulary, 3, 7)
				return []any{w}, w, reverse(w)
			},
			score: textSimilarity,
		},
		&task{
			name:        "sort",
			description: "write the letters of a word in alphabetical order; score: edit similarity to the sorted letters",
			phrasings:   []string{"sort the letters: %s\n", "alphabetize: %s\n", "letters of %s in order\n"},
			generate: func(rng *rand.Rand) ([]any, string, string) {
				w := pickWord(rng, vocabulary, 3, 7)
				return []any{w}, w, sortLetters(w)
			},
			score: textSimilarity,
		},
		&task{
			name:        "add",
			description: "add two numbers from 0 to 99; score: half edit similarity, half closeness exp(-|error|/5) of the leading number times its share of the response",
			phrasings:   []string{"add: %d + %d\n", "what is %d plus %d?\n", "sum of %d and %d:\n"},
			generate: func(rng *rand.Rand) ([]any, string, string) {
				a, b := rng.IntN(100), rng.IntN(100)
				return []any{a, b}, strconv.Itoa(a) + " + " + strconv.Itoa(b), strconv.Itoa(a + b)
			},
			score: func(answer, response string) float64 { return numberScore(answer, response, 5, 0.5) },
		},
		&task{
			name:        "upper",
			description: "write one or two words in capital letters; score: edit similarity to the upper-case text",
			phrasings:   []string{"uppercase: %s\n", "in capitals: %s\n", "write %s in upper case\n"},
			generate: func(rng *rand.Rand) ([]any, string, string) {
				p := pickWord(rng, nouns, 3, 7)
				if rng.IntN(5) < 2 {
					p = pickWord(rng, adjectives, 3, 6) + " " + p
				}
				return []any{p}, p, strings.ToUpper(p)
			},
			score: textSimilarity,
		},
		&task{
			name:        "count",
			description: "count how often a letter occurs in one or two words; score: closeness exp(-|error|/1.5) of the leading number, times its share of the response",
			phrasings:   []string{"count the letter %s in: %s\n", "how many %s in %s?\n", "how often is %s in %s?\n"},
			generate: func(rng *rand.Rand) ([]any, string, string) {
				text := pickWord(rng, vocabulary, 3, 7)
				if rng.IntN(3) == 0 {
					text += " " + pickWord(rng, vocabulary, 3, 6)
				}
				letter := countLetter(rng, text)
				return []any{letter, text}, text, strconv.Itoa(strings.Count(text, letter))
			},
			score: func(answer, response string) float64 { return numberScore(answer, response, 1.5, 0) },
		},
		&task{
			name:        "repeat",
			description: "write a word 2 to 4 times, separated by spaces; score: edit similarity to the repeated word",
			phrasings:   []string{"repeat %s %d times\n", "say %s %d times\n", "write %s %d times\n"},
			generate: func(rng *rand.Rand) ([]any, string, string) {
				n := 2 + rng.IntN(3)
				w := pickWord(rng, vocabulary, 3, min(7, (MaxAnswerBytes+1)/n-1))
				return []any{w, n}, w, strings.TrimSuffix(strings.Repeat(w+" ", n), " ")
			},
			score: textSimilarity,
		},
		&task{
			name:        "word",
			description: "copy the k-th word of a phrase of 3 to 5 words; score: edit similarity to that word",
			phrasings:   []string{"word %[1]s of: %[3]s\n", "copy the %[2]s word: %[3]s\n", "say word number %[1]s: %[3]s\n"},
			generate: func(rng *rand.Rand) ([]any, string, string) {
				n := 3 + rng.IntN(3)
				words := make([]string, 0, n)
				for len(words) < n {
					w := pickWord(rng, vocabulary, 3, 6)
					if !slices.Contains(words, w) {
						words = append(words, w)
					}
				}
				k := rng.IntN(n)
				phrase := strings.Join(words, " ")
				return []any{strconv.Itoa(k + 1), ordinals[k], phrase}, phrase, words[k]
			},
			score: textSimilarity,
		},
	}
}

var ordinals = []string{"first", "second", "third", "fourth", "fifth"}

// pickWord draws a word of minLen to maxLen bytes from list (which must
// hold one).
func pickWord(rng *rand.Rand, list []string, minLen, maxLen int) string {
	for {
		w := list[rng.IntN(len(list))]
		if len(w) >= minLen && len(w) <= maxLen {
			return w
		}
	}
}

// countLetter picks the letter a count instance asks about: three times in
// four a letter of text (so letters that occur often are asked about
// often), otherwise a letter that text lacks (answer 0).
func countLetter(rng *rand.Rand, text string) string {
	if rng.IntN(4) > 0 {
		for {
			c := text[rng.IntN(len(text))]
			if c != ' ' {
				return string(c)
			}
		}
	}
	for {
		c := string(rune('a' + rng.IntN(26)))
		if !strings.Contains(text, c) {
			return c
		}
	}
}

func reverse(s string) string {
	b := []byte(s)
	slices.Reverse(b)
	return string(b)
}

func sortLetters(s string) string {
	b := []byte(s)
	slices.Sort(b)
	return string(b)
}
