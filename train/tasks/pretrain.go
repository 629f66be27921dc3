package tasks

import (
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
)

// Pretraining text. pretrain.txt is text in the tasks' domain — the same
// words, letters and numbers — but never an instruction with its answer,
// so the pretrained model knows the bytes and the words and SFT still has
// everything to teach. Each line is one of:
//
//   - sentences made of the vocabulary ("The busy baker can paint the
//     green boat."), some in capitals ("NOTE: THE DOG IS NEAR THE LAKE.")
//     so capital letters are familiar;
//   - a word spelled out ("apple is spelled a p p l e. it has 5 letters.",
//     "apple: a-p-p-l-e"), its first and last letters;
//   - numbers: counting runs ("14 15 16 17 18"), steps of 2, 5 or 10,
//     order facts ("31 comes before 32.", "8 is more than 3.");
//   - the alphabet, in lower or upper case, with or without spaces;
//   - lists of words ("words: river, tiger, sweet.").
//
// What it deliberately lacks: reversed or sorted words, sums, letter
// counts, repetitions and the prompts' phrasings.

// pretrainLine returns one line of pretraining text (without the newline).
func pretrainLine(rng *rand.Rand) string {
	switch x := rng.IntN(100); {
	case x < 40:
		n := 1 + rng.IntN(3)
		s := make([]string, n)
		for i := range s {
			s[i] = sentence(rng)
		}
		return strings.Join(s, " ")
	case x < 48:
		return strings.ToUpper(pick(rng, []string{"note: ", "sign: ", "news: ", ""}) + sentence(rng))
	case x < 68:
		return spelling(rng)
	case x < 83:
		return numbers(rng)
	case x < 88:
		return alphabet(rng)
	}
	n := 3 + rng.IntN(4)
	w := make([]string, n)
	for i := range w {
		w[i] = pick(rng, vocabulary)
	}
	return pick(rng, []string{"words: ", "list: ", "we saw "}) + strings.Join(w, ", ") + "."
}

// sentenceTemplates are filled by sentence: N a noun, A an adjective, V a
// verb, T a time.
var sentenceTemplates = []string{
	"the A N is near the N.",
	"a N and a N V in the N.",
	"we V the A N every T.",
	"my N is A and A.",
	"they V with the N by the N.",
	"I like to V in the A N.",
	"the A N can V the A N.",
	"her N was A this T.",
	"do not V the N, it is A.",
	"one N, two N and a A N.",
	"the N of the N is A.",
	"you can V a N on the N.",
}

var times = []string{"day", "week", "year", "morning", "night", "summer", "winter"}

// sentence fills a template and capitalises its first letter.
func sentence(rng *rand.Rand) string {
	var b strings.Builder
	for _, f := range strings.Fields(pick(rng, sentenceTemplates)) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		core := strings.TrimRight(f, ".,")
		switch core {
		case "N":
			b.WriteString(pick(rng, nouns))
		case "A":
			b.WriteString(pick(rng, adjectives))
		case "V":
			b.WriteString(pick(rng, verbs))
		case "T":
			b.WriteString(pick(rng, times))
		default:
			b.WriteString(core)
		}
		b.WriteString(f[len(core):])
	}
	s := b.String()
	return strings.ToUpper(s[:1]) + s[1:]
}

func spelling(rng *rand.Rand) string {
	w := pick(rng, vocabulary)
	spaced := strings.Join(strings.Split(w, ""), " ")
	switch rng.IntN(4) {
	case 0:
		return fmt.Sprintf("%s is spelled %s. it has %d letters.", w, spaced, len(w))
	case 1:
		return fmt.Sprintf("%s starts with %c and ends with %c.", w, w[0], w[len(w)-1])
	case 2:
		return fmt.Sprintf("%s has the letters %s.", w, strings.Join(strings.Split(w, ""), ", "))
	}
	return fmt.Sprintf("%s: %s", w, strings.Join(strings.Split(w, ""), "-"))
}

func numbers(rng *rand.Rand) string {
	switch rng.IntN(4) {
	case 0, 1:
		step := pick(rng, []int{1, 1, 1, 2, 5, 10})
		start := rng.IntN(100)
		n := 4 + rng.IntN(5)
		s := make([]string, n)
		for i := range s {
			s[i] = fmt.Sprint(start + i*step)
		}
		return strings.Join(s, " ")
	case 2:
		a := rng.IntN(199)
		return fmt.Sprintf("%d comes before %d and after %d.", a+1, a+2, a)
	}
	a, b := rng.IntN(200), rng.IntN(200)
	switch {
	case a > b:
		return fmt.Sprintf("%d is more than %d.", a, b)
	case a < b:
		return fmt.Sprintf("%d is less than %d.", a, b)
	}
	return fmt.Sprintf("%d is %d.", a, b)
}

func alphabet(rng *rand.Rand) string {
	abc := "abcdefghijklmnopqrstuvwxyz"
	if rng.IntN(2) == 0 {
		abc = strings.ToUpper(abc)
	}
	if rng.IntN(2) == 0 {
		return strings.Join(strings.Split(abc, ""), " ")
	}
	return abc
}

// WritePretrain writes pretraining text of at least n bytes (whole lines,
// each ending in a newline) drawn with rng, and returns the lines and
// bytes written.
func WritePretrain(w io.Writer, n int, rng *rand.Rand) (lines, bytes int, err error) {
	for bytes < n {
		line := pretrainLine(rng) + "\n"
		if _, err := io.WriteString(w, line); err != nil {
			return lines, bytes, err
		}
		lines++
		bytes += len(line)
	}
	return lines, bytes, nil
}
