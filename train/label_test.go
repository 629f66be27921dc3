package train

import (
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
)

// labelPolicy is a small random LM over bytes: its samples are junk, which
// is all the labeler needs to rank.
func labelPolicy(t *testing.T, seed uint64) *model.Model {
	t.Helper()
	cfg := rmTestConfig()
	cfg.ScalarHead = false
	cfg.MaxSeqLen = 64
	b := cpu.New(2)
	m, err := model.New(b, cfg, model.Options{MaxBatch: 16, MaxSeq: 64})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(m.Params.All, noisyParams(cfg, seed)); err != nil {
		t.Fatal(err)
	}
	return m
}

func taskPromptsForTest(t *testing.T, n int) []data.Prompt {
	t.Helper()
	rng := rand.New(rand.NewPCG(4, 4))
	var out []data.Prompt
	for i := range n {
		name := tasks.Names()[i%len(tasks.Names())]
		task, _ := tasks.ByName(name)
		inst := task.Generate(rng)
		out = append(out, data.Prompt{Prompt: inst.Prompt, Task: inst.Task, Answer: inst.Answer, Source: data.Source{File: "test", Line: i + 1}})
	}
	return out
}

// TestLabelFromPolicy: K is drawn in the range per prompt, every record is
// a valid ranking of non-empty responses that the rm.jsonl reader accepts
// (task and answer kept), the counts add up, and the run is a function of
// the seed.
func TestLabelFromPolicy(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	prompts := taskPromptsForTest(t, 14)
	cfg := DefaultLabel()
	cfg.KMin, cfg.KMax, cfg.MaxNew = 3, 6, 10
	groups, st, err := LabelFromPolicy(labelPolicy(t, 1), tok, prompts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Records != len(groups) || st.Records+st.Skipped != len(prompts) || st.Records == 0 {
		t.Fatalf("stats %+v for %d groups of %d prompts", st, len(groups), len(prompts))
	}
	ks := map[int]bool{}
	responses, comparisons := 0, 0
	for _, g := range groups {
		k := len(g.Responses)
		ks[k] = true
		if k < cfg.KMin-st.EmptyDropped || k > cfg.KMax {
			t.Errorf("%d responses, want %d..%d", k, cfg.KMin, cfg.KMax)
		}
		r := slices.Clone(g.Ranking)
		slices.Sort(r)
		for i, v := range r {
			if v != i {
				t.Fatalf("ranking %v is not a permutation of %d", g.Ranking, k)
			}
		}
		for _, resp := range g.Responses {
			if resp == "" {
				t.Fatal("empty response written")
			}
		}
		responses += k
		comparisons += k * (k - 1) / 2
	}
	if len(ks) < 2 {
		t.Errorf("K took only the values %v", ks)
	}
	if st.Responses != responses || st.Comparisons != comparisons || st.Generated < responses || st.Generated-st.Redrawn < responses {
		t.Errorf("stats %+v, counted %d responses and %d comparisons", st, responses, comparisons)
	}
	if st.Agreement.Pairs != comparisons {
		t.Errorf("agreement measured on %d pairs, want %d", st.Agreement.Pairs, comparisons)
	}

	path := filepath.Join(t.TempDir(), "labelled.jsonl")
	if err := WriteComparisons(path, groups); err != nil {
		t.Fatal(err)
	}
	back, _, err := data.ReadComparisons(path, data.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(groups) || back[0].Task != groups[0].Task || back[0].Answer != groups[0].Answer ||
		!slices.Equal(back[0].Ranking, groups[0].Ranking) || !slices.Equal(back[0].Responses, groups[0].Responses) {
		t.Errorf("read back %+v, wrote %+v", back[0], groups[0])
	}

	again, _, _ := LabelFromPolicy(labelPolicy(t, 1), tok, prompts, cfg)
	cfg.Seed = 2
	other, _, _ := LabelFromPolicy(labelPolicy(t, 1), tok, prompts, cfg)
	if !slices.EqualFunc(again, groups, sameGroup) {
		t.Error("the same seed gave other records")
	}
	if slices.EqualFunc(other, groups, sameGroup) {
		t.Error("another seed gave the same records")
	}
}

func sameGroup(a, b tasks.Group) bool {
	return a.Prompt == b.Prompt && slices.Equal(a.Responses, b.Responses) && slices.Equal(a.Ranking, b.Ranking)
}

// TestLabelRedrawsDuplicates: at a temperature near 0 every sample of a
// prompt is the same, so every response after the first is redrawn
// Resamples times and then kept as a duplicate (or dropped when empty).
func TestLabelRedrawsDuplicates(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	prompts := taskPromptsForTest(t, 5)
	cfg := DefaultLabel()
	cfg.KMin, cfg.KMax, cfg.MaxNew, cfg.Resamples = 4, 4, 6, 2
	cfg.Sampling = gpu.Sampling{Temperature: 1e-4}
	groups, st, err := LabelFromPolicy(labelPolicy(t, 3), tok, prompts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	total := 4 * len(prompts)
	// (With this seed the policy never starts with EOS, so nothing is
	// empty.)
	if dups := total - len(prompts); st.EmptyDropped != 0 || st.Redrawn != 2*dups || st.DuplicatesKept != dups || st.Records != len(prompts) {
		t.Errorf("stats %+v, want %d redraws (3 duplicates per prompt, 2 rounds) and %d duplicates kept", st, 2*dups, dups)
	}
	if st.Generated != total+st.Redrawn {
		t.Errorf("generated %d, want %d + %d redraws", st.Generated, total, st.Redrawn)
	}
	for _, g := range groups {
		for _, r := range g.Responses[1:] {
			if r != g.Responses[0] {
				t.Fatalf("near-greedy samples differ: %q", g.Responses)
			}
		}
	}
}

func TestLabelRefusesOtherRecords(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	m := labelPolicy(t, 1)
	cases := []struct {
		p    data.Prompt
		want string
	}{
		{data.Prompt{Prompt: "hello\n", Source: data.Source{File: "p.jsonl", Line: 3}}, "p.jsonl:3 has no \"task\""},
		{data.Prompt{Prompt: "hello\n", Task: "poetry", Answer: "x", Source: data.Source{File: "p.jsonl", Line: 4}}, "poetry"},
		{data.Prompt{Prompt: "hello\n", Task: "upper", Source: data.Source{File: "p.jsonl", Line: 5}}, "no \"answer\""},
	}
	for _, c := range cases {
		_, _, err := LabelFromPolicy(m, tok, []data.Prompt{c.p}, DefaultLabel())
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: error %v, want %q", c.p, err, c.want)
		}
	}
	bad := DefaultLabel()
	bad.KMin, bad.KMax = 5, 10
	if _, _, err := LabelFromPolicy(m, tok, taskPromptsForTest(t, 1), bad); err == nil {
		t.Error("K up to 10 accepted")
	}
}
