package tasks

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
)

// The default Synth output must stay byte for byte what it was before the
// opt-in families and prompt kinds: these digests are of the files written
// by commit 828bbc3 (before them), for the default configuration and for a
// small one with another seed.
func TestSynthDefaultOutputUnchanged(t *testing.T) {
	small := SynthConfig{Seed: 7, NSFT: 50, NRM: 40, NPPO: 30, NEval: 20, PretrainBytes: 5000, DemoHabit: 0.5}
	for _, c := range []struct {
		cfg  SynthConfig
		want map[string]string
	}{
		{DefaultSynthConfig(), map[string]string{
			EvalFile:     "90430ff705db8ac4a548d5ded913cd923f85d617b7630c64a119f42924702093",
			PPOFile:      "cb01622d500953cc90b356110a4db75545a212752c37b73a5a4247cf1d0a2eb0",
			PretrainFile: "c0ddc02b6a1661658c9a321ad08dd69110b77cfd9239d7c3a9861f142efaccef",
			RMFile:       "df5af8f6842b036831439dd827874de0ef457d96083cde4a8328a05091c5397c",
			SFTFile:      "25d65579f061836c760d06bf8e7c050e7cb6cc367446602437f950346530deaa",
		}},
		{small, map[string]string{
			EvalFile:     "20cfd83ff3d7a3cb37fb7b5c6bc344aeb72e2f5fbc80643bd17ecd79976e1aac",
			PPOFile:      "9bed141e6d840dff849533422140f4dffe7b25ffd76cad3191602088bc03e355",
			PretrainFile: "71b0a51d17e14c69d0cbf18cdb41ccec45cf78f42b1746db53ac6419234e46bd",
			RMFile:       "e2c88f712c6f21016dea869b52854f167bcd8854d024db6ce5afdf3a7baa60ef",
			SFTFile:      "beaef1de51ffe6abecb8bad1ab035bc5464f4aa872595b266412b51aa89fe7d3",
		}},
	} {
		dir := t.TempDir()
		if _, err := Synth(dir, c.cfg); err != nil {
			t.Fatal(err)
		}
		for name, data := range readFiles(t, dir) {
			sum := sha256.Sum256(data)
			if got := hex.EncodeToString(sum[:]); got != c.want[name] {
				t.Errorf("seed %d: %s has sha256 %s, want %s", c.cfg.Seed, name, got, c.want[name])
			}
		}
	}
}

// familyConfig is smallConfig with both families and all three kinds.
func familyConfig(seed uint64) SynthConfig {
	c := smallConfig(seed)
	c.NSFT, c.NRM, c.NEval = 450, 450, 180
	c.Families, c.PromptKinds = FamilyNames(), PromptKinds()
	return c
}

func TestSynthFamiliesDeterministic(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	for _, run := range []struct {
		dir  string
		seed uint64
	}{{a, 1}, {b, 1}, {c, 2}} {
		if _, err := Synth(run.dir, familyConfig(run.seed)); err != nil {
			t.Fatal(err)
		}
	}
	fa, fb, fc := readFiles(t, a), readFiles(t, b), readFiles(t, c)
	for _, name := range synthFiles {
		if string(fa[name]) != string(fb[name]) {
			t.Errorf("%s differs between two runs with the same seed", name)
		}
		if name != PretrainFile && string(fa[name]) == string(fc[name]) {
			t.Errorf("%s is the same for seeds 1 and 2", name)
		}
	}
}

// With families and kinds every file holds each family as often as each
// task, every kind about a third of the time, records carry their kind (the
// one KindOf reads from the prompt), rankings of family prompts compare
// declining with answering, and no held-out question appears elsewhere.
func TestSynthFamiliesRecords(t *testing.T) {
	dir := t.TempDir()
	cfg := familyConfig(4)
	if _, err := Synth(dir, cfg); err != nil {
		t.Fatal(err)
	}
	type sftRec struct{ Prompt, Completion, Task, Kind string }
	sft := readJSONL[sftRec](t, dir, SFTFile)
	rm := readJSONL[Group](t, dir, RMFile)
	eval := readJSONL[PromptRecord](t, dir, EvalFile)
	nTasks := len(registry) + len(families)
	type rec struct{ prompt, task, answer, kind string }
	var all []rec
	for _, r := range sft {
		all = append(all, rec{r.Prompt, r.Task, strings.TrimPrefix(r.Completion, HabitPrefix), r.Kind})
	}
	for _, g := range rm {
		all = append(all, rec{g.Prompt, g.Task, g.Answer, g.Kind})
	}
	for _, r := range append(eval, readJSONL[PromptRecord](t, dir, PPOFile)...) {
		all = append(all, rec{r.Prompt, r.Task, r.Answer, r.Kind})
	}
	perTask, perKind := map[string]int{}, map[string]int{}
	for _, r := range all {
		perTask[r.task]++
		perKind[r.kind]++
		if KindOf(r.prompt) != r.kind {
			t.Fatalf("%q carries kind %q, KindOf reads %q", r.prompt, r.kind, KindOf(r.prompt))
		}
		if s, err := ScoreRecord(r.task, r.answer, r.answer); err != nil || s != 1 {
			t.Fatalf("record %+v: %v %v", r, s, err)
		}
	}
	if len(perTask) != nTasks {
		t.Fatalf("tasks %v, want %d", perTask, nTasks)
	}
	for task, n := range perTask {
		if want := len(all) / nTasks; n < want-4 || n > want+4 {
			t.Errorf("%s has %d records of %d, want about %d", task, n, len(all), want)
		}
	}
	for _, kind := range PromptKinds() {
		if n := perKind[kind]; n < len(all)/4 || n > len(all)/2 {
			t.Errorf("kinds %v of %d records, want about a third each", perKind, len(all))
		}
	}
	for _, g := range rm {
		if g.Task != Honesty && g.Task != Harmlessness {
			continue
		}
		if !slices.ContainsFunc(g.Responses, Declines) || !slices.ContainsFunc(g.Responses, func(r string) bool { return !Declines(r) }) {
			t.Errorf("ranking of %q: %q never compares declining with answering", g.Prompt, g.Responses)
		}
	}
	// held out: an eval question (the prompt's last line) never ends or
	// shows up in a training prompt
	questions := map[string]bool{}
	for _, r := range eval {
		lines := strings.Split(strings.TrimSuffix(r.Prompt, "\n"), "\n")
		q := lines[len(lines)-1]
		for _, o := range userOpeners {
			q = strings.TrimPrefix(q, o)
		}
		questions[q+"\n"] = true
	}
	for _, r := range all[:len(sft)+len(rm)] {
		for q := range questions {
			if strings.HasSuffix(r.prompt, "\n"+q) || r.prompt == q || strings.HasSuffix(r.prompt, " "+q) || strings.Contains(r.prompt, "\n"+q) || strings.HasPrefix(r.prompt, q) {
				t.Fatalf("training prompt %q holds the held-out question %q", r.prompt, q)
			}
		}
	}
}

func TestSynthFamilyErrors(t *testing.T) {
	for _, c := range []SynthConfig{
		{Families: []string{"honest"}},
		{Families: []string{Honesty, Honesty}},
		{PromptKinds: []string{"chat"}},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v validated", c)
		}
	}
}
