package tasks

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
)

// Skill probes: the abilities pretrain.txt teaches by example alone
// (spelling a word, its length, its first and last letters, the number
// after a number, continuing a counting run, the rest of a word), asked the way the paper
// measured its models on public datasets: a few-shot prompt of solved
// lines in pretrain.txt's own form, then a line cut just before its
// answer, and the answer is chosen among SkillChoices continuations of
// the same form by the model's likelihood (as multiple-choice datasets are
// scored), which measures a weak model's knowledge where its greedy text
// would not. No instruction task asks for these, so they measure what
// alignment keeps or loses of the pretrained model's skills (the
// alignment tax). The words and numbers come from the same vocabulary and
// ranges as the pretraining text, so a probe's line may also occur there:
// the probes test a skill the model was taught, not generalisation.

// SkillChoices is the number of continuations of a probe, the answer
// among them: chance is 1/SkillChoices.
const SkillChoices = 4

// SkillProbe is one few-shot question: the model continues Prompt with
// one of Choices, each followed by Stop (the text that ends the answer in
// the pretraining form); Choices[Answer] is right. The wrong choices are
// of the same form (other lines' answers; for a word's rest, other words'
// endings that make no word), of the answer's length when possible, so
// that no choice is favoured for being shorter.
type SkillProbe struct {
	Skill   string   `json:"skill"`
	Prompt  string   `json:"prompt"`
	Choices []string `json:"choices"`
	Answer  int      `json:"answer"`
	Stop    string   `json:"stop"`
}

// Score is 1 when the choice with the highest log-probability (logps[k]
// of Choices[k] and its stop after the prompt) is the answer, else 0; a
// tie is not a pick. logps must have a value per choice.
func (p SkillProbe) Score(logps []float64) (float64, error) {
	if len(logps) != len(p.Choices) {
		return 0, fmt.Errorf("skill probe: %d log-probs for %d choices", len(logps), len(p.Choices))
	}
	for k, l := range logps {
		if k != p.Answer && !(l < logps[p.Answer]) {
			return 0, nil
		}
	}
	return 1, nil
}

// streamSkills draws the probes, apart from Synth's streams (synth.go).
const streamSkills = 200

// skillLine is one line of a skill: the text before the answer, the
// answer, and the rest of the line, which starts with the probe's stop.
type skillLine struct{ before, answer, after string }

// skill draws lines of one pretraining form; wrong, when set, draws a
// wrong answer to the line q ("" for a draw to reject); by default
// another line's answer is one.
type skill struct {
	name  string
	draw  func(rng *rand.Rand) skillLine
	wrong func(rng *rand.Rand, q skillLine) string
}

// skills lists the probed skills; each line form is one of pretrain.go's.
// The last asks what a language model learns first: the rest of a word of
// the vocabulary in a list of words (the tiny model's only skill clearly
// above chance).
var skills = []skill{
	{"spell", func(rng *rand.Rand) skillLine {
		w := pick(rng, vocabulary)
		return skillLine{w + " is spelled ", spaced(w), fmt.Sprintf(". it has %d letters.", len(w))}
	}, nil},
	{"length", func(rng *rand.Rand) skillLine {
		w := pick(rng, vocabulary)
		return skillLine{w + " is spelled " + spaced(w) + ". it has ", strconv.Itoa(len(w)), " letters."}
	}, nil},
	{"first letter", func(rng *rand.Rand) skillLine {
		w := pick(rng, vocabulary)
		return skillLine{w + " starts with ", w[:1], " and ends with " + w[len(w)-1:] + "."}
	}, nil},
	{"last letter", func(rng *rand.Rand) skillLine {
		w := pick(rng, vocabulary)
		return skillLine{w + " starts with " + w[:1] + " and ends with ", w[len(w)-1:], "."}
	}, nil},
	{"successor", func(rng *rand.Rand) skillLine {
		a := rng.IntN(199)
		return skillLine{strconv.Itoa(a+1) + " comes before ", strconv.Itoa(a + 2), " and after " + strconv.Itoa(a) + "."}
	}, nil},
	{"count on", func(rng *rand.Rand) skillLine {
		step := pick(rng, []int{1, 2, 5, 10})
		start, k := rng.IntN(100), 3+rng.IntN(4) // k numbers shown, then the answer, then one more
		run := make([]string, k+2)
		for i := range run {
			run[i] = strconv.Itoa(start + i*step)
		}
		return skillLine{strings.Join(run[:k], " ") + " ", run[k], " " + run[k+1]}
	}, nil},
	{"word ending", func(rng *rand.Rand) skillLine {
		w := pickWord(rng, vocabulary, 5, 7)
		k := 2 + rng.IntN(len(w)-3) // at least 2 letters shown and 2 to guess
		list := []string{pick(rng, vocabulary), pick(rng, vocabulary), w[:k]}
		return skillLine{"words: " + strings.Join(list, ", "), w[k:], "."}
	}, func(rng *rand.Rand, q skillLine) string {
		// Another word's ending that makes no word of the vocabulary.
		w := pickWord(rng, vocabulary, 5, 7)
		end := w[2+rng.IntN(len(w)-3):]
		if slices.Contains(vocabulary, q.before[strings.LastIndex(q.before, " ")+1:]+end) {
			return ""
		}
		return end
	}},
}

// spaced writes a word's letters separated by spaces, as pretrain.txt
// spells it.
func spaced(w string) string { return strings.Join(strings.Split(w, ""), " ") }

// SkillNames lists the probed skills in a fixed order.
func SkillNames() []string {
	names := make([]string, len(skills))
	for i, s := range skills {
		names[i] = s.name
	}
	return names
}

// SkillProbes draws perSkill probes of every skill from seed, each after
// shots solved lines of the same skill (none with the probe's own
// question), one a line.
func SkillProbes(perSkill, shots int, seed uint64) ([]SkillProbe, error) {
	if perSkill <= 0 || shots < 0 {
		return nil, fmt.Errorf("skill probes: %d per skill and %d shots: want a positive count and shots ≥ 0", perSkill, shots)
	}
	rng := newStream(seed, streamSkills)
	var out []SkillProbe
	for _, s := range skills {
		for range perSkill {
			q := s.draw(rng)
			var b strings.Builder
			for added := 0; added < shots; {
				ex := s.draw(rng)
				if ex.before == q.before {
					continue
				}
				b.WriteString(ex.before + ex.answer + ex.after + "\n")
				added++
			}
			choices := wrongAnswers(s, q, rng)
			answer := rng.IntN(len(choices) + 1)
			choices = slices.Insert(choices, answer, q.answer)
			out = append(out, SkillProbe{Skill: s.name, Prompt: b.String() + q.before, Choices: choices, Answer: answer, Stop: q.after[:1]})
		}
	}
	return out, nil
}

// wrongAnswers draws SkillChoices − 1 distinct wrong answers to q, of
// its answer's length when a few tries find them.
func wrongAnswers(s skill, q skillLine, rng *rand.Rand) []string {
	answer := q.answer
	var out []string
	for tries := 0; len(out) < SkillChoices-1; tries++ {
		var a string
		if s.wrong != nil {
			a = s.wrong(rng, q)
		} else {
			a = s.draw(rng).answer
		}
		if a == "" || a == answer || slices.Contains(out, a) || (len(a) != len(answer) && tries < 200) {
			continue
		}
		out = append(out, a)
	}
	return out
}
