package data

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"testing"
)

var sftSeeds = []string{
	`{"prompt": "p", "completion": "c"}`,
	`{"messages": [{"role": "system", "content": ""}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}]}`,
	`{"prompt": [{"role": "user", "content": "Q"}], "completion": [{"role": "assistant", "content": "A"}]}`,
	`{"prompt": "p", "completion": "c", "extra": [1, {"a": null}]}` + "\n\n" + `{"prompt": "p"}`,
	`{"prompt": "\u00e9\ud83d\ude00", "completion": "\n"}` + "\r\n" + `[1]`,
	`{"messages": [{"role": "user", "content": "Hi"}]}`,
	"\uFEFF{\"prompt\": \"p\", \"completion\": \"c\"}\n{bad",
	`{"prompt": null, "completion": 1e400}`,
}

var comparisonSeeds = []string{
	`{"prompt": "P", "chosen": "a", "rejected": "b"}`,
	`{"prompt": "P", "chosen": "a", "rejected": "b", "margin": -0.25}`,
	`{"prompt": "Q", "responses": ["a", "b", "c", "d"], "ranking": [2, 0, 3, 1]}`,
	`{"prompt": "Q", "responses": ["a", "b", "c"], "ranking": [2, 2, 1]}` + "\n" + `{"prompt": "Q", "responses": ["a", "b"], "ranking": [1, 0]}`,
	`{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "x"}], "rejected": [{"role": "assistant", "content": "y"}]}`,
	`{"prompt": "Q", "responses": ["1","2","3","4","5","6","7","8","9"], "ranking": [8,7,6,5,4,3,2,1,0]}`,
	`{"prompt": "Q", "responses": ["a", "b"], "ranking": [0, 1e0]}`,
	`{"prompt": "P", "chosen": "a", "rejected": "b", "responses": []}`,
}

// checkReader runs a reader over data in both modes and checks what holds
// for any input: no panic, stats that add up, strict and skipping modes
// agreeing, examples from increasing lines; it returns the examples.
func checkReader[T any](t *testing.T, data []byte, read func([]byte, ReadOptions) ([]T, ReadStats, error), line func(T) int) []T {
	got, st, err := read(data, ReadOptions{SkipBadLines: true})
	if st.Examples+st.Skipped != st.Lines || st.Examples != len(got) || len(st.Errors) != min(st.Skipped, maxKeptErrors) {
		t.Fatalf("stats %+v for %d examples", st, len(got))
	}
	if (err == nil) != (len(got) > 0) {
		t.Fatalf("%d examples with error %v", len(got), err)
	}
	nLines := bytes.Count(data, []byte("\n")) + 1
	prev := 0
	for _, ex := range got {
		if l := line(ex); l <= prev || l > nLines {
			t.Fatalf("example from line %d after line %d, of %d", l, prev, nLines)
		} else {
			prev = l
		}
	}
	strict, sst, serr := read(data, ReadOptions{})
	switch {
	case serr == nil && (st.Skipped != 0 || !reflect.DeepEqual(strict, got) || !reflect.DeepEqual(sst, st)):
		t.Fatalf("strict read accepted what skipping skipped: %+v vs %+v", sst, st)
	case serr != nil && st.Skipped == 0 && len(got) > 0:
		t.Fatalf("strict read failed (%v) on data without bad lines", serr)
	}
	return got
}

func FuzzReadSFT(f *testing.F) {
	for _, s := range sftSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		read := func(d []byte, opt ReadOptions) ([]SFTExample, ReadStats, error) {
			return ReadSFTFrom(bytes.NewReader(d), "f.jsonl", opt)
		}
		for _, ex := range checkReader(t, data, read, func(e SFTExample) int { return e.Line }) {
			if ex.Prompt == "" || ex.Completion == "" {
				t.Fatalf("accepted empty prompt or completion: %+v", ex)
			}
			// What was accepted reads back the same in the plain form.
			line, err := json.Marshal(map[string]string{"prompt": ex.Prompt, "completion": ex.Completion})
			if err != nil {
				t.Fatal(err)
			}
			back, err := render{}.parseSFT(line)
			if err != nil || back.Prompt != ex.Prompt || back.Completion != ex.Completion {
				t.Fatalf("round trip of %+v: %+v, %v", ex, back, err)
			}
		}
	})
}

func FuzzReadComparisons(f *testing.F) {
	for _, s := range comparisonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		read := func(d []byte, opt ReadOptions) ([]Comparison, ReadStats, error) {
			return ReadComparisonsFrom(bytes.NewReader(d), "f.jsonl", opt)
		}
		for _, c := range checkReader(t, data, read, func(c Comparison) int { return c.Line }) {
			k := len(c.Responses)
			if c.Prompt == "" || k < MinResponses || k > MaxResponses || len(c.Ranking) != k ||
				math.IsNaN(c.Margin) || math.IsInf(c.Margin, 0) {
				t.Fatalf("accepted %+v", c)
			}
			for _, r := range c.Responses {
				if r == "" {
					t.Fatalf("accepted an empty response: %+v", c)
				}
			}
			if s := slices.Sorted(slices.Values(c.Ranking)); s[0] != 0 || s[k-1] != k-1 || len(slices.Compact(s)) != k {
				t.Fatalf("ranking %v is not a permutation", c.Ranking)
			}
			if len(c.Pairs()) != k*(k-1)/2 {
				t.Fatalf("%d pairs for K = %d", len(c.Pairs()), k)
			}
			line, err := json.Marshal(map[string]any{"prompt": c.Prompt, "responses": c.Responses, "ranking": c.Ranking, "margin": c.Margin})
			if err != nil {
				t.Fatal(err)
			}
			back, err := render{}.parseComparison(line)
			if err != nil || !reflect.DeepEqual(back, Comparison{Prompt: c.Prompt, Responses: c.Responses, Ranking: c.Ranking, Margin: c.Margin}) {
				t.Fatalf("round trip of %+v: %+v, %v", c, back, err)
			}
		}
	})
}

func FuzzReadPrompts(f *testing.F) {
	for _, s := range []string{
		`{"prompt": "p", "task": "sort", "answer": "a b", "id": 3}`,
		`{"prompt": [{"role": "user", "content": "Hi"}], "answer": null}`,
		`{"prompt": "p", "task": 1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		read := func(d []byte, opt ReadOptions) ([]Prompt, ReadStats, error) {
			return ReadPromptsFrom(bytes.NewReader(d), "f.jsonl", opt)
		}
		for _, p := range checkReader(t, data, read, func(p Prompt) int { return p.Line }) {
			if p.Prompt == "" {
				t.Fatalf("accepted an empty prompt: %+v", p)
			}
			for name := range p.Meta {
				if name == "prompt" || name == "task" || name == "answer" {
					t.Fatalf("meta holds %q", name)
				}
			}
		}
	})
}
