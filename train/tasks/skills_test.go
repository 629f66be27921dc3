package tasks

import (
	"math/rand/v2"
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
		if got := skillReference(t, p.Skill, q); got != p.Answer {
			t.Errorf("%s: %q answered %q, reference %q", p.Skill, q, p.Answer, got)
		}
		for _, shot := range lines[:shots] {
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
	if again, _ := SkillProbes(perSkill, shots, 7); !slices.Equal(again, probes) {
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

// TestSkillProbeScore scores random responses with known answers: the
// answer followed by its stop, a line break or nothing is right; a
// changed answer, one with anything before it or running on without the
// stop is wrong.
func TestSkillProbeScore(t *testing.T) {
	probes, err := SkillProbes(20, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	junk := func() string { return strconv.Itoa(rng.IntN(1000)) + " x" }
	for _, p := range probes {
		for _, r := range []string{p.Answer, p.Answer + p.Stop + junk(), p.Answer + "\n" + junk()} {
			if s := p.Score(r); s != 1 {
				t.Errorf("%s %q: response %q scored %v, want 1", p.Skill, p.Answer, r, s)
			}
		}
		changed := []byte(p.Answer)
		changed[rng.IntN(len(changed))] ^= 1 + byte(rng.IntN(3))
		for _, r := range []string{string(changed) + p.Stop, " " + p.Answer, p.Answer + "0" + p.Stop, "", p.Stop + p.Answer} {
			if s := p.Score(r); s != 0 {
				t.Errorf("%s %q: response %q scored %v, want 0", p.Skill, p.Answer, r, s)
			}
		}
	}
}
