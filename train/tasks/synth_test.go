package tasks

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// smallConfig is a quick dataset for tests.
func smallConfig(seed uint64) SynthConfig {
	return SynthConfig{Seed: seed, NSFT: 70, NRM: 140, NPPO: 70, NEval: 70, PretrainBytes: 20000}
}

var synthFiles = []string{PretrainFile, SFTFile, RMFile, PPOFile, EvalFile}

func readFiles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, name := range synthFiles {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = data
	}
	return out
}

// readJSONL decodes every line of dir/name into a T, strictly.
func readJSONL[T any](t *testing.T, dir, name string) []T {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	var out []T
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		var rec T
		dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&rec); err != nil {
			t.Fatalf("%s:%d: %v", name, len(out)+1, err)
		}
		out = append(out, rec)
	}
	return out
}

func TestSynthDeterministic(t *testing.T) {
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	for _, run := range []struct {
		dir  string
		seed uint64
	}{{a, 1}, {b, 1}, {c, 2}} {
		if _, err := Synth(run.dir, smallConfig(run.seed)); err != nil {
			t.Fatal(err)
		}
	}
	fa, fb, fc := readFiles(t, a), readFiles(t, b), readFiles(t, c)
	for _, name := range synthFiles {
		if !bytes.Equal(fa[name], fb[name]) {
			t.Errorf("%s differs between two runs with the same seed", name)
		}
		if bytes.Equal(fa[name], fc[name]) {
			t.Errorf("%s is the same for seeds 1 and 2", name)
		}
	}

	// Each file has its own random stream: more demonstrations leave
	// the other files as they were.
	cfg := smallConfig(1)
	cfg.NSFT = 90
	d := t.TempDir()
	if _, err := Synth(d, cfg); err != nil {
		t.Fatal(err)
	}
	fd := readFiles(t, d)
	for _, name := range synthFiles {
		if same := bytes.Equal(fa[name], fd[name]); same == (name == SFTFile) {
			t.Errorf("%s: changed %v after changing only the SFT count", name, !same)
		}
	}
}

func TestSynthRecords(t *testing.T) {
	dir := t.TempDir()
	cfg := smallConfig(3)
	sum, err := Synth(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}

	type sftRec struct{ Prompt, Completion, Task string }
	sft := readJSONL[sftRec](t, dir, SFTFile)
	rm := readJSONL[Group](t, dir, RMFile)
	ppo := readJSONL[PromptRecord](t, dir, PPOFile)
	eval := readJSONL[PromptRecord](t, dir, EvalFile)
	if len(sft) != cfg.NSFT || len(rm) != cfg.NRM || len(ppo) != cfg.NPPO || len(eval) != cfg.NEval {
		t.Fatalf("record counts %d %d %d %d", len(sft), len(rm), len(ppo), len(eval))
	}
	perTask := map[string]int{}
	for _, r := range sft {
		perTask[r.Task]++
		if s, err := ScoreRecord(r.Task, r.Completion, r.Completion); err != nil || s != 1 || r.Completion == "" {
			t.Fatalf("demonstration %+v: %v, %v", r, s, err)
		}
	}
	for _, n := range perTask { // the tasks take turns
		if n < cfg.NSFT/len(registry) || n > cfg.NSFT/len(registry)+1 {
			t.Errorf("SFT records per task %v, want balanced", perTask)
		}
	}
	comparisons := 0
	for _, g := range rm {
		k := len(g.Responses)
		if k < MinResponses || k > MaxResponses {
			t.Fatalf("rm record with K = %d", k)
		}
		if err := checkRanking(g.Ranking, k); err != nil {
			t.Fatal(err)
		}
		if _, err := ByName(g.Task); err != nil || g.Prompt == "" || g.Answer == "" {
			t.Fatalf("rm record %+v: %v", g, err)
		}
		comparisons += k * (k - 1) / 2
	}
	if comparisons != sum.Comparisons || sum.Files[2].Comparisons != comparisons {
		t.Errorf("comparisons %d, summary says %d", comparisons, sum.Comparisons)
	}
	for _, r := range append(ppo, eval...) {
		if s, err := ScoreRecord(r.Task, r.Answer, r.Answer); err != nil || s != 1 {
			t.Fatalf("prompt record %+v: %v, %v", r, s, err)
		}
	}

	if len(sum.Files) != len(synthFiles) {
		t.Fatalf("summary lists %d files", len(sum.Files))
	}
	for i, fs := range sum.Files {
		st, err := os.Stat(filepath.Join(dir, fs.Name))
		if err != nil || fs.Name != synthFiles[i] || st.Size() != fs.Bytes {
			t.Errorf("summary %+v, file size %v, %v", fs, st.Size(), err)
		}
	}
	if a := sum.Agreement; a.Pairs != comparisons || a.WithTruth < 0.7 || a.WithTruth > 0.95 {
		t.Errorf("agreement %+v", a)
	}

	// pretrain.txt: at least the bytes asked for, whole lines, and never
	// a prompt.
	text, _ := os.ReadFile(filepath.Join(dir, PretrainFile))
	if len(text) < cfg.PretrainBytes || len(text) > cfg.PretrainBytes+200 || text[len(text)-1] != '\n' {
		t.Errorf("pretrain.txt has %d bytes for %d asked", len(text), cfg.PretrainBytes)
	}
	if lines := bytes.Count(text, []byte("\n")); lines != sum.Files[0].Records {
		t.Errorf("pretrain.txt has %d lines, summary says %d", lines, sum.Files[0].Records)
	}
	for _, r := range sft {
		if bytes.Contains(text, []byte(strings.TrimSuffix(r.Prompt, "\n"))) {
			t.Errorf("pretrain.txt holds the prompt %q", r.Prompt)
		}
	}
}

// TestSynthHoldsOutEval uses the default SFT and eval sizes, where the
// smaller tasks (about 900 distinct reverse or sort prompts) would repeat
// eval prompts many times over if they were not held out.
func TestSynthHoldsOutEval(t *testing.T) {
	d := DefaultSynthConfig()
	cfg := SynthConfig{Seed: 4, NSFT: d.NSFT, NRM: 600, NPPO: d.NSFT, NEval: d.NEval, PretrainBytes: 100}
	dir := t.TempDir()
	if _, err := Synth(dir, cfg); err != nil {
		t.Fatal(err)
	}
	eval := map[string]bool{}
	for _, r := range readJSONL[PromptRecord](t, dir, EvalFile) {
		if eval[r.Prompt] {
			t.Fatalf("eval prompt %q repeated", r.Prompt)
		}
		eval[r.Prompt] = true
	}
	type rec struct {
		Prompt string `json:"prompt"`
	}
	for _, name := range []string{SFTFile, RMFile, PPOFile} {
		data, _ := os.ReadFile(filepath.Join(dir, name))
		for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
			var r rec
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatal(err)
			}
			if eval[r.Prompt] {
				t.Fatalf("%s:%d: eval prompt %q", name, i+1, r.Prompt)
			}
		}
	}
	// The check has teeth: drawing the same number of training prompts
	// without the exclusion hits eval prompts.
	insts, _ := draws(registry, cfg.NSFT, nil, newStream(cfg.Seed, streamSFT))
	hits := 0
	for _, inst := range insts {
		if eval[inst.Prompt] {
			hits++
		}
	}
	if hits < 5 {
		t.Errorf("only %d of %d unfiltered prompts are eval prompts: the held-out test proves little", hits, cfg.NSFT)
	}
}

func TestSynthErrors(t *testing.T) {
	cfg := smallConfig(1)
	cfg.NRM = -1
	if _, err := Synth(t.TempDir(), cfg); err == nil {
		t.Error("negative count accepted")
	}
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o644)
	if _, err := Synth(file, smallConfig(1)); err == nil {
		t.Error("Synth into a file succeeded")
	}
	// More distinct eval prompts than a task has.
	cfg = smallConfig(1)
	cfg.NEval = 20000
	if _, err := Synth(t.TempDir(), cfg); err == nil || !strings.Contains(err.Error(), "distinct prompts") {
		t.Errorf("Synth with 20000 eval prompts: %v", err)
	}
}

// TestSynthDemoHabit checks the demonstration writers' habit: about the
// asked fraction of demonstrations open with HabitPrefix, each is the
// answer after it, the labeler prefers the bare answer on every task, and
// no other file changes.
func TestSynthDemoHabit(t *testing.T) {
	plain, habit := smallConfig(5), smallConfig(5)
	plain.NSFT, habit.NSFT = 1400, 1400
	habit.DemoHabit = 0.3
	a, b := t.TempDir(), t.TempDir()
	var sums [2]Summary
	for i, run := range []struct {
		dir string
		cfg SynthConfig
	}{{a, plain}, {b, habit}} {
		var err error
		if sums[i], err = Synth(run.dir, run.cfg); err != nil {
			t.Fatal(err)
		}
	}
	fa, fb := readFiles(t, a), readFiles(t, b)
	for _, name := range synthFiles {
		if same := bytes.Equal(fa[name], fb[name]); same == (name == SFTFile) {
			t.Errorf("%s: changed %v after setting only demo_habit", name, !same)
		}
	}

	type sftRec struct{ Prompt, Completion, Task string }
	before, after := readJSONL[sftRec](t, a, SFTFile), readJSONL[sftRec](t, b, SFTFile)
	withHabit := 0
	l := DefaultLabeler()
	for i, r := range after {
		if r.Prompt != before[i].Prompt || r.Task != before[i].Task {
			t.Fatalf("demonstration %d: prompt %q (%s), was %q (%s)", i, r.Prompt, r.Task, before[i].Prompt, before[i].Task)
		}
		if r.Completion == before[i].Completion {
			continue
		}
		withHabit++
		if r.Completion != HabitPrefix+before[i].Completion {
			t.Fatalf("demonstration %d is %q, want the habit prefix before %q", i, r.Completion, before[i].Completion)
		}
		task, _ := ByName(r.Task)
		if u, best := l.Utility(task, before[i].Completion, r.Completion), l.Utility(task, before[i].Completion, before[i].Completion); u >= best-0.1 {
			t.Errorf("%s: labeler utility %.3f for %q, within 0.1 of the bare answer's %.3f", r.Task, u, r.Completion, best)
		}
	}
	if sums[0].HabitDemos != 0 || sums[1].HabitDemos != withHabit {
		t.Errorf("summaries count %d and %d demonstrations with the habit, want 0 and %d", sums[0].HabitDemos, sums[1].HabitDemos, withHabit)
	}
	// Binomial(1400, 0.3): mean 420, standard deviation 17.
	if withHabit < 360 || withHabit > 480 {
		t.Errorf("%d of %d demonstrations have the habit, want about 420", withHabit, len(after))
	}

	habit.DemoHabit = 1.5
	if _, err := Synth(t.TempDir(), habit); err == nil || !strings.Contains(err.Error(), "demo_habit") {
		t.Errorf("demo_habit 1.5: %v", err)
	}
}
