package tasks

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Skill probes: the abilities pretrain.txt teaches by example alone
// (spelling a word, its length, its first and last letters, the number
// after a number, continuing a counting run), asked the way the paper
// measured its models on public datasets: a few-shot prompt of solved
// lines in pretrain.txt's own form, then a line cut just before its
// answer. No instruction task asks for these, so they measure what
// alignment keeps or loses of the pretrained model's skills (the
// alignment tax). The words and numbers come from the same vocabulary and
// ranges as the pretraining text, so a probe's line may also occur there:
// the probes test a skill the model was taught, not generalisation.

// SkillProbe is one few-shot question: the model continues Prompt, and
// its response is right when it starts with Answer followed by Stop (or
// ends there).
type SkillProbe struct {
	Skill  string `json:"skill"`
	Prompt string `json:"prompt"`
	Answer string `json:"answer"`
	Stop   string `json:"stop"`
}

// Score is 1 when the response up to the first Stop or line break is
// exactly the answer, else 0: exact match, as accuracy on a public
// dataset's short answers.
func (p SkillProbe) Score(response string) float64 {
	if i := strings.IndexAny(response, p.Stop+"\n"); i >= 0 {
		response = response[:i]
	}
	if response == p.Answer {
		return 1
	}
	return 0
}

// streamSkills draws the probes, apart from Synth's streams (synth.go).
const streamSkills = 200

// skillLine is one line of a skill: the text before the answer, the
// answer, and the rest of the line, which starts with the probe's stop.
type skillLine struct{ before, answer, after string }

// skill draws lines of one pretraining form.
type skill struct {
	name string
	draw func(rng *rand.Rand) skillLine
}

// skills lists the probed skills; each line form is one of pretrain.go's.
var skills = []skill{
	{"spell", func(rng *rand.Rand) skillLine {
		w := pick(rng, vocabulary)
		return skillLine{w + " is spelled ", spaced(w), fmt.Sprintf(". it has %d letters.", len(w))}
	}},
	{"length", func(rng *rand.Rand) skillLine {
		w := pick(rng, vocabulary)
		return skillLine{w + " is spelled " + spaced(w) + ". it has ", strconv.Itoa(len(w)), " letters."}
	}},
	{"first letter", func(rng *rand.Rand) skillLine {
		w := pick(rng, vocabulary)
		return skillLine{w + " starts with ", w[:1], " and ends with " + w[len(w)-1:] + "."}
	}},
	{"last letter", func(rng *rand.Rand) skillLine {
		w := pick(rng, vocabulary)
		return skillLine{w + " starts with " + w[:1] + " and ends with ", w[len(w)-1:], "."}
	}},
	{"successor", func(rng *rand.Rand) skillLine {
		a := rng.IntN(199)
		return skillLine{strconv.Itoa(a+1) + " comes before ", strconv.Itoa(a + 2), " and after " + strconv.Itoa(a) + "."}
	}},
	{"count on", func(rng *rand.Rand) skillLine {
		step := pick(rng, []int{1, 2, 5, 10})
		start, k := rng.IntN(100), 3+rng.IntN(4) // k numbers shown, then the answer, then one more
		run := make([]string, k+2)
		for i := range run {
			run[i] = strconv.Itoa(start + i*step)
		}
		return skillLine{strings.Join(run[:k], " ") + " ", run[k], " " + run[k+1]}
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
			out = append(out, SkillProbe{Skill: s.name, Prompt: b.String() + q.before, Answer: q.answer, Stop: q.after[:1]})
		}
	}
	return out, nil
}
