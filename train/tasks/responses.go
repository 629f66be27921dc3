package tasks

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// MinResponses and MaxResponses bound K, the number of responses a prompt
// gets in rm.jsonl (the paper's 4 to 9).
const (
	MinResponses = 4
	MaxResponses = 9
)

// responseKind is one way of making a response; weight is its share of the
// draws.
type responseKind struct {
	name   string
	weight float64
	make   func(inst Instance, rng *rand.Rand) string
}

// responseKinds are the kinds of responses the generator mixes, from the
// correct answer to noise. Near misses get the largest share: they are
// what separates a good policy from a fair one, and what a reward model
// must learn to rank by the task's structure.
var responseKinds = []responseKind{
	{"correct", 1.5, func(inst Instance, _ *rand.Rand) string { return inst.Answer }},
	{"style", 1.5, styleFlaw},
	{"near", 4, nearMiss},
	{"wrong-task", 1.5, wrongTask},
	{"empty", 0.4, func(_ Instance, rng *rand.Rand) string { return pick(rng, []string{" ", "\n", "?", "..."}) }},
	{"random", 1, randomResponse},
}

// Responses returns k distinct, non-empty responses to inst of varied
// quality, in random order: the correct answer, the answer with a style
// flaw (white space or junk after it, repeated), near misses (one or two
// letters wrong, swapped or missing, a partial answer, a number off by a
// little), answers to another task on the same input, empty-ish answers
// and random words or numbers. Not every set holds the correct answer.
func Responses(inst Instance, k int, rng *rand.Rand) []string {
	var total float64
	for _, kind := range responseKinds {
		total += kind.weight
	}
	seen := map[string]bool{"": true}
	out := make([]string, 0, k)
	add := func(r string) {
		if !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	for tries := 0; len(out) < k && tries < 50*k; tries++ {
		x := rng.Float64() * total
		for _, kind := range responseKinds {
			if x -= kind.weight; x < 0 {
				add(kind.make(inst, rng))
				break
			}
		}
	}
	for len(out) < k { // short answers have few variants: fill with words
		add(randomWords(rng, 1+rng.IntN(3)))
	}
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// newGroup draws an unlabelled rm.jsonl group for a fresh instance of t:
// K uniform in MinResponses..MaxResponses.
func newGroup(t Task, rng *rand.Rand) Group {
	inst := t.Generate(rng)
	k := MinResponses + rng.IntN(MaxResponses-MinResponses+1)
	return groupFor(inst, k, rng)
}

// groupFor draws k responses to inst. An instance of an opt-in family has
// its answer and its decoy among them (each in place of a drawn response),
// so that every ranking of the family compares declining with answering.
func groupFor(inst Instance, k int, rng *rand.Rand) Group {
	rs := Responses(inst, k, rng)
	if inst.Decoy != "" {
		for _, must := range []string{inst.Answer, inst.Decoy} {
			if slices.Contains(rs, must) {
				continue
			}
			for {
				if i := rng.IntN(len(rs)); rs[i] != inst.Answer && rs[i] != inst.Decoy {
					rs[i] = must
					break
				}
			}
		}
	}
	return Group{Prompt: inst.Prompt, Responses: rs, Task: inst.Task, Answer: inst.Answer, Kind: inst.Kind}
}

// styleFlaw is the answer with something around it: white space or a line
// break, a full stop, a word or a repetition after it, or a lead-in.
func styleFlaw(inst Instance, rng *rand.Rand) string {
	a := inst.Answer
	switch rng.IntN(8) {
	case 0:
		return a + "\n"
	case 1:
		return a + " "
	case 2:
		return " " + a
	case 3:
		return a + "."
	case 4:
		return a + " " + randomWords(rng, 1)
	case 5:
		return a + "\n" + randomWords(rng, 1+rng.IntN(3))
	case 6:
		return a + " " + a
	}
	return pick(rng, []string{"it is ", "answer: ", "ok, "}) + a
}

// nearMiss changes the answer a little: numbers by a small amount or one
// digit, text by one or two letter edits or, for several words, by a word.
func nearMiss(inst Instance, rng *rand.Rand) string {
	a := inst.Answer
	if isNumber(a) {
		return numberMiss(a, rng)
	}
	if strings.Contains(a, " ") && rng.IntN(3) == 0 {
		return wordMiss(a, rng)
	}
	r := letterEdit(a, rng)
	if rng.IntN(10) < 3 {
		r = letterEdit(r, rng)
	}
	return r
}

func numberMiss(a string, rng *rand.Rand) string {
	v, _ := strconv.Atoi(a)
	switch rng.IntN(4) {
	case 0:
		return strconv.Itoa(max(0, v+pick(rng, []int{-2, -1, 1, 2})))
	case 1:
		if v < 10 { // a one-digit answer: a little further off
			return strconv.Itoa(max(0, v+pick(rng, []int{-3, -1, 1, 3})))
		}
		return strconv.Itoa(max(0, v+pick(rng, []int{-10, 10})))
	case 2:
		return letterEdit(a, rng) // may leave digits or not
	}
	b := []byte(a) // a digit replaced
	b[rng.IntN(len(b))] = byte('0' + rng.IntN(10))
	return string(b)
}

// wordMiss drops or repeats one word of a multi-word answer.
func wordMiss(a string, rng *rand.Rand) string {
	words := strings.Fields(a)
	i := rng.IntN(len(words))
	if rng.IntN(2) == 0 {
		words = append(words[:i:i], words[i+1:]...)
	} else {
		words = append(words[:i+1:i+1], words[i:]...)
	}
	return strings.Join(words, " ")
}

// letterEdit applies one edit to s: a letter replaced (in the case of the
// letter it replaces), two neighbours swapped, a letter dropped or added,
// or the tail cut off (a partial answer).
func letterEdit(s string, rng *rand.Rand) string {
	if s == "" {
		return randomLetter(rng, false)
	}
	b := []byte(s)
	i := rng.IntN(len(b))
	switch rng.IntN(5) {
	case 0:
		b[i] = randomLetter(rng, isUpper(b[i]))[0]
	case 1:
		if len(b) > 1 {
			j := min(i+1, len(b)-1)
			if j == i {
				i--
			}
			b[i], b[j] = b[j], b[i]
		}
	case 2:
		if len(b) > 1 {
			b = append(b[:i:i], b[i+1:]...)
		}
	case 3:
		b = append(b[:i:i], append([]byte(randomLetter(rng, isUpper(b[i]))), b[i:]...)...)
	default:
		if len(b) > 1 {
			b = b[:1+rng.IntN(len(b)-1)]
		}
	}
	return string(b)
}

// wrongTask answers another instruction on the same input: the input
// echoed, upper-cased, reversed, sorted, or one of its words.
func wrongTask(inst Instance, rng *rand.Rand) string {
	in := inst.Input
	words := strings.Fields(in)
	candidates := []string{
		in, strings.ToUpper(in), reverse(in), sortLetters(strings.ReplaceAll(in, " ", "")),
		words[0], words[len(words)-1], strings.ToLower(inst.Answer), reverse(inst.Answer),
	}
	for range len(candidates) {
		if c := pick(rng, candidates); c != inst.Answer {
			return c
		}
	}
	return randomResponse(inst, rng)
}

// randomResponse is noise: a random number for a numeric answer (with as
// many digits, at most), else one or two random words.
func randomResponse(inst Instance, rng *rand.Rand) string {
	if isNumber(inst.Answer) {
		if len(inst.Answer) == 1 {
			return strconv.Itoa(rng.IntN(10))
		}
		return strconv.Itoa(rng.IntN(200))
	}
	return randomWords(rng, 1+rng.IntN(2))
}

func randomWords(rng *rand.Rand, n int) string {
	w := make([]string, n)
	for i := range w {
		w[i] = pick(rng, vocabulary)
	}
	return strings.Join(w, " ")
}

func randomLetter(rng *rand.Rand, upper bool) string {
	c := byte('a' + rng.IntN(26))
	if upper {
		c -= 'a' - 'A'
	}
	return string(c)
}

func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }

// isNumber reports whether s is a non-empty string of decimal digits.
func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func pick[T any](rng *rand.Rand, xs []T) T { return xs[rng.IntN(len(xs))] }
