package tasks

import (
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// skillReference solves a probe's question from its text alone, with
// regular expressions independent of the generator: the answer it
// should carry.
func skillReference(t *testing.T, skill, before string) string {
	t.Helper()
	match := func(pattern string) []string {
		m := regexp.MustCompile(pattern).FindStringSubmatch(before)
		if m == nil {
			t.Fatalf("%s: %q does not match %s", skill, before, pattern)
		}
		return m
	}
	atoi := func(s string) int {
		n, err := strconv.Atoi(s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	switch skill {
	case "spell":
		w := match(`^([a-z]+) is spelled $`)[1]
		var letters []string
		for _, r := range w {
			letters = append(letters, string(r))
		}
		return strings.Join(letters, " ")
	case "length":
		m := match(`^([a-z]+) is spelled ([a-z ]+)\. it has $`)
		if strings.ReplaceAll(m[2], " ", "") != m[1] {
			t.Fatalf("length: %q spells another word", before)
		}
		return strconv.Itoa(len(m[1]))
	case "first letter":
		return string(match(`^([a-z]+) starts with $`)[1][0])
	case "last letter":
		m := match(`^([a-z]+) starts with ([a-z]) and ends with $`)
		if m[2][0] != m[1][0] {
			t.Fatalf("last letter: %q gives a wrong first letter", before)
		}
		return m[1][len(m[1])-1:]
	case "successor":
		return strconv.Itoa(atoi(match(`^(\d+) comes before $`)[1]) + 1)
	case "count on":
		f := strings.Fields(match(`^((?:\d+ )+)$`)[1])
		if len(f) < 3 {
			t.Fatalf("count on: %q has fewer than 3 numbers", before)
		}
		step := atoi(f[1]) - atoi(f[0])
		for i := 2; i < len(f); i++ {
			if atoi(f[i])-atoi(f[i-1]) != step {
				t.Fatalf("count on: %q is not an arithmetic run", before)
			}
		}
		return strconv.Itoa(atoi(f[len(f)-1]) + step)
	}
	t.Fatalf("no reference for skill %q", skill)
	return ""
}

// openSkills are the skills with more than one right answer: the rest
// of a word (any that makes a word of the vocabulary).
var openSkills = map[string]bool{"word ending": true}

// rightChoice tells whether choice rightly continues before: for an open
// skill by its rule, otherwise by the reference answer.
func rightChoice(t *testing.T, skill, before, choice string) bool {
	t.Helper()
	switch skill {
	case "word ending":
		if !strings.HasPrefix(before, "words: ") {
			t.Fatalf("word ending: %q is no list of words", before)
		}
		return slices.Contains(Vocabulary(), before[strings.LastIndex(before, " ")+1:]+choice)
	}
	return choice == skillReference(t, skill, before)
}

// TestSkillProbes checks random probes against the reference: the
// question's answer, the shots (solved lines of the same skill, each
// right, none the question itself), and the counts.
func TestSkillProbes(t *testing.T) {
	const perSkill, shots = 40, 3
	probes, err := SkillProbes(perSkill, shots, 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(probes) != perSkill*len(SkillNames()) {
		t.Fatalf("%d probes, want %d", len(probes), perSkill*len(SkillNames()))
	}
	seen := map[string]int{}
	for _, p := range probes {
		seen[p.Skill]++
		lines := strings.Split(p.Prompt, "\n")
		if len(lines) != shots+1 {
			t.Fatalf("%s probe %q: %d lines, want %d", p.Skill, p.Prompt, len(lines), shots+1)
		}
		q := lines[shots]
		if len(p.Choices) != SkillChoices || p.Answer < 0 || p.Answer >= len(p.Choices) {
			t.Fatalf("%s: %q has choices %q, answer %d", p.Skill, q, p.Choices, p.Answer)
		}
		for k, c := range p.Choices {
			if right := rightChoice(t, p.Skill, q, c); right != (k == p.Answer) || slices.Contains(p.Choices[:k], c) {
				t.Errorf("%s: %q: choice %d %q right %v, answer %d (%q)", p.Skill, q, k, c, right, p.Answer, p.Choices)
			}
		}
		for _, shot := range lines[:shots] {
			if openSkills[p.Skill] { // the line up to its last word, then a right one
				cut := strings.LastIndex(shot, " ") + 1
				if p.Skill == "word ending" {
					cut += 2 // the fewest letters the question shows
				}
				if !strings.HasSuffix(shot, p.Stop) || !rightChoice(t, p.Skill, shot[:cut], strings.TrimSuffix(shot[cut:], p.Stop)) {
					t.Errorf("%s: shot %q is not solved", p.Skill, shot)
				}
				continue
			}
			before, rest := splitAtAnswer(t, p.Skill, shot)
			if before == q {
				t.Errorf("%s: a shot asks the question itself: %q", p.Skill, shot)
			}
			want := skillReference(t, p.Skill, before)
			if !strings.HasPrefix(rest, want+p.Stop) {
				t.Errorf("%s: shot %q does not continue %q with %q", p.Skill, shot, before, want+p.Stop)
			}
		}
	}
	for _, s := range SkillNames() {
		if seen[s] != perSkill {
			t.Errorf("skill %q: %d probes", s, seen[s])
		}
	}
	if again, _ := SkillProbes(perSkill, shots, 7); !reflect.DeepEqual(again, probes) {
		t.Error("the same seed draws other probes")
	}
	if _, err := SkillProbes(0, 1, 1); err == nil {
		t.Error("no probes per skill accepted")
	}
}

// splitAtAnswer cuts a solved line before its answer by its skill's
// form (the reference's patterns, with the answer captured).
func splitAtAnswer(t *testing.T, skill, line string) (before, rest string) {
	t.Helper()
	pattern := map[string]string{
		"spell":        `^([a-z]+ is spelled )(.*)$`,
		"length":       `^([a-z]+ is spelled [a-z ]+\. it has )(.*)$`,
		"first letter": `^([a-z]+ starts with )(.*)$`,
		"last letter":  `^([a-z]+ starts with [a-z] and ends with )(.*)$`,
		"successor":    `^(\d+ comes before )(.*)$`,
		"count on":     `^((?:\d+ )+)(\d+)$`,
	}[skill]
	m := regexp.MustCompile(pattern).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("%s: shot %q does not match %s", skill, line, pattern)
	}
	if skill == "count on" { // the answer is the run's last number but one
		f := strings.Fields(line)
		return strings.Join(f[:len(f)-2], " ") + " ", f[len(f)-2] + " " + f[len(f)-1]
	}
	return m[1], m[2]
}

// TestSkillProbeScore scores random log-probs with a known argmax: 1
// when the answer's is the highest, 0 otherwise or on a tie.
func TestSkillProbeScore(t *testing.T) {
	probes, err := SkillProbes(20, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	answers := map[int]int{}
	for _, p := range probes {
		answers[p.Answer]++
		logps := make([]float64, len(p.Choices))
		for k := range logps {
			logps[k] = -20 * rng.Float64()
		}
		best := rng.IntN(len(logps))
		logps[best] = 0.5
		want := 0.0
		if best == p.Answer {
			want = 1
		}
		if got, err := p.Score(logps); err != nil || got != want {
			t.Errorf("%s: best choice %d, answer %d: score %v (%v), want %v", p.Skill, best, p.Answer, got, err, want)
		}
		other := (p.Answer + 1 + rng.IntN(len(logps)-1)) % len(logps)
		logps[p.Answer], logps[other] = 1, 1
		if got, _ := p.Score(logps); got != 0 {
			t.Errorf("%s: a tie scored %v", p.Skill, got)
		}
		if _, err := p.Score(logps[1:]); err == nil {
			t.Error("too few log-probs accepted")
		}
	}
	// The answer's place is drawn: every place occurs.
	if len(answers) != SkillChoices {
		t.Errorf("answers at places %v", answers)
	}
}
