package tasks

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestVocabulary(t *testing.T) {
	seen := map[string]bool{}
	for _, w := range vocabulary {
		if seen[w] {
			t.Errorf("word %q listed twice", w)
		}
		seen[w] = true
		if len(w) < 3 || len(w) > 7 || strings.Trim(w, "abcdefghijklmnopqrstuvwxyz") != "" {
			t.Errorf("word %q: want 3 to 7 lower-case letters", w)
		}
	}
	if len(vocabulary) < 250 {
		t.Errorf("vocabulary has %d words, want a few hundred", len(vocabulary))
	}
}

func TestRegistry(t *testing.T) {
	names := Names()
	if len(names) < 6 {
		t.Fatalf("%d tasks, want at least 6", len(names))
	}
	for _, name := range names {
		task, err := ByName(name)
		if err != nil || task.Name() != name {
			t.Fatalf("ByName(%q) = %v, %v", name, task, err)
		}
		if task.Description() == "" || len(phrasings(task)) < 2 {
			t.Errorf("%s: description %q, %d phrasings", name, task.Description(), len(phrasings(task)))
		}
	}
	if _, err := ByName("nope"); err == nil || !strings.Contains(err.Error(), "reverse") {
		t.Errorf("ByName(nope) error %v, want one listing the tasks", err)
	}
}

// TestGeneratedInstances checks, for many instances of every task, the
// limits and format of prompt and answer, that the answer scores 1, that
// it is right (recomputed here from the prompt), and that every phrasing
// is used.
func TestGeneratedInstances(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, task := range Tasks() {
		used := map[string]bool{}
		for range 2000 {
			inst := task.Generate(rng)
			p, a := inst.Prompt, inst.Answer
			if inst.Task != task.Name() || len(p) > MaxPromptBytes || len(a) > MaxAnswerBytes || a == "" {
				t.Fatalf("%s: instance %+v breaks the limits", task.Name(), inst)
			}
			if !strings.HasSuffix(p, "\n") || strings.Count(p, "\n") != 1 || strings.Contains(p, "%!") {
				t.Fatalf("%s: malformed prompt %q", task.Name(), p)
			}
			if s := task.Score(a, a); s != 1 {
				t.Fatalf("%s: the answer %q scores %v", task.Name(), a, s)
			}
			if want := solve(t, task.Name(), p); want != a {
				t.Fatalf("%s: prompt %q has answer %q, want %q", task.Name(), p, a, want)
			}
			for _, ph := range phrasings(task) {
				head, _, _ := strings.Cut(ph, "%")
				if strings.HasPrefix(p, head) {
					used[ph] = true
				}
			}
		}
		if len(used) != len(phrasings(task)) {
			t.Errorf("%s: phrasings used %v of %v", task.Name(), used, phrasings(task))
		}
	}
}

// solve answers a prompt independently of the generators, from the
// prompt text alone.
func solve(t *testing.T, task, prompt string) string {
	t.Helper()
	p := strings.TrimSuffix(prompt, "\n")
	after := func(sep string) string { _, s, _ := strings.Cut(p, sep); return s }
	fields := strings.Fields(p)
	switch task {
	case "reverse":
		w := fields[1] // "reverse: w", "spell w backwards", "write w in reverse"
		r := []rune(w)
		slices.Reverse(r)
		return string(r)
	case "sort":
		w := fields[len(fields)-1]
		if strings.HasPrefix(p, "letters of") {
			w = fields[2]
		}
		r := []rune(w)
		slices.Sort(r)
		return string(r)
	case "add":
		var nums []int
		for _, f := range strings.FieldsFunc(p, func(r rune) bool { return r < '0' || r > '9' }) {
			n, _ := strconv.Atoi(f)
			nums = append(nums, n)
		}
		return strconv.Itoa(nums[0] + nums[1])
	case "upper":
		if strings.HasPrefix(p, "write ") {
			return strings.ToUpper(strings.TrimSuffix(strings.TrimPrefix(p, "write "), " in upper case"))
		}
		return strings.ToUpper(after(": "))
	case "count":
		var letter, text string
		switch {
		case strings.HasPrefix(p, "count the letter "):
			letter, text = fields[3], after(": ")
		case strings.HasPrefix(p, "how often is "):
			letter, text = fields[3], strings.TrimSuffix(after(" in "), "?")
		default: // how many x in text?
			letter, text = fields[2], strings.TrimSuffix(after(" in "), "?")
		}
		return strconv.Itoa(strings.Count(text, letter))
	case "repeat":
		n, _ := strconv.Atoi(fields[2])
		return strings.Join(slices.Repeat([]string{fields[1]}, n), " ")
	case "word":
		var k int
		switch {
		case strings.HasPrefix(p, "word "): // word K of: ...
			k, _ = strconv.Atoi(fields[1])
		case strings.HasPrefix(p, "copy the "): // copy the ORDINAL word: ...
			k = slices.Index([]string{"first", "second", "third", "fourth", "fifth"}, fields[2]) + 1
		default: // say word number K: ...
			k, _ = strconv.Atoi(strings.TrimSuffix(fields[3], ":"))
		}
		return strings.Fields(after(": "))[k-1]
	}
	t.Fatalf("no solver for task %s", task)
	return ""
}

func TestGenerateIsDeterministic(t *testing.T) {
	for _, task := range Tasks() {
		a, b := rand.New(rand.NewPCG(5, 6)), rand.New(rand.NewPCG(5, 6))
		for range 50 {
			if x, y := task.Generate(a), task.Generate(b); x != y {
				t.Fatalf("%s: same seed gave %+v and %+v", task.Name(), x, y)
			}
		}
	}
}
