package data

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func readSFT(t *testing.T, text string, opt ReadOptions) ([]SFTExample, ReadStats, error) {
	t.Helper()
	return ReadSFTFrom(strings.NewReader(text), "sft.jsonl", opt)
}

func TestReadSFTFormats(t *testing.T) {
	text := "\uFEFF" + `{"prompt": "Add 2 and 2.", "completion": "4"}

{"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]}
{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hey"}], "prompt": "ignored", "prompt_id": "x"}
{"prompt": [{"role": "user", "content": "Q"}], "completion": [{"role": "assistant", "content": "A"}]}` + "\r\n" +
		`{"prompt": "p", "completion": "c", "source": {"nested": [1, 2]}, "score": 3.5}` + "\n\n   \n"
	got, st, err := readSFT(t, text, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []SFTExample{
		{Prompt: "Add 2 and 2.", Completion: "4", Source: Source{"sft.jsonl", 1}},
		{Prompt: "system: Be brief.\nuser: Hi\nassistant: Hello\nuser: 2+2?\nassistant:", Completion: " 4", Source: Source{"sft.jsonl", 3}},
		{Prompt: "user: Hi\nassistant:", Completion: " Hey", Source: Source{"sft.jsonl", 4}},
		{Prompt: "user: Q\nassistant:", Completion: " A", Source: Source{"sft.jsonl", 5}},
		{Prompt: "p", Completion: "c", Source: Source{"sft.jsonl", 6}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
	if st.Lines != 5 || st.Examples != 5 || st.Skipped != 0 || st.Errors != nil {
		t.Errorf("stats %+v", st)
	}
}

func TestRenderTemplate(t *testing.T) {
	msgs := []Message{{RoleSystem, "S"}, {RoleUser, "U"}}
	if got, want := RenderPrompt(msgs)+RenderCompletion("A"), "system: S\nuser: U\nassistant: A"; got != want {
		t.Errorf("rendered %q, want %q", got, want)
	}
	if got := RenderPrompt(nil); got != "assistant:" {
		t.Errorf("empty conversation renders %q", got)
	}
}

// badCase is one bad line and the exact error it must give as line 2 of
// its file (line 1 is good).
type badCase struct{ line, want string }

func checkBad(t *testing.T, name, good string, cases []badCase, read func(string, ReadOptions) (ReadStats, error)) {
	t.Helper()
	for _, c := range cases {
		st, err := read(good+"\n"+c.line+"\n", ReadOptions{})
		if err == nil {
			t.Errorf("%s: accepted", c.line)
			continue
		}
		if got := err.Error(); got != name+":2: "+c.want {
			t.Errorf("%s:\n got %s\nwant %s", c.line, got, name+":2: "+c.want)
		}
		var le *LineError
		if !errors.As(err, &le) || le.Line != 2 || le.Path != name {
			t.Errorf("%s: error %v is not a LineError for line 2", c.line, err)
		}
		st, err = read(good+"\n"+c.line+"\n"+good+"\n", ReadOptions{SkipBadLines: true})
		if err != nil || st.Examples != 2 || st.Skipped != 1 || st.Lines != 3 ||
			len(st.Errors) != 1 || st.Errors[0] != name+":2: "+c.want {
			t.Errorf("%s: skipping: %+v, %v", c.line, st, err)
		}
	}
}

func TestReadSFTBadLines(t *testing.T) {
	cases := []badCase{
		{`{"prompt": "p"`, `invalid JSON: unexpected end of JSON input`},
		{`not json`, `invalid JSON: invalid character 'o' in literal null (expecting 'u')`},
		{`["prompt", "completion"]`, `want a JSON object, got array`},
		{`"text"`, `want a JSON object, got string`},
		{`null`, `want a JSON object, got null`},
		{`{"prompt": "p", "completion": "c"} {}`, `invalid JSON: invalid character '{' after top-level value`},
		{`{"text": "plain"}`, `unknown record: want {"prompt", "completion"} or {"messages"}`},
		{`{"prompt": "p"}`, `field "completion": missing`},
		{`{"completion": "c"}`, `field "prompt": missing`},
		{`{"prompt": "", "completion": "c"}`, `field "prompt": empty`},
		{`{"prompt": "p", "completion": ""}`, `field "completion": empty`},
		{`{"prompt": 7, "completion": "c"}`, `field "prompt": want string, got number`},
		{`{"prompt": "p", "completion": null}`, `field "completion": want string, got null`},
		{`{"prompt": "p", "completion": {"text": "c"}}`, `field "completion": want string, got object`},
		{`{"prompt": "p", "completion": [{"role": "user", "content": "c"}]}`, `field "completion[0].role": want "assistant", got "user"`},
		{`{"prompt": "p", "completion": [{"role": "assistant", "content": "a"}, {"role": "assistant", "content": "b"}]}`, `field "completion": want one assistant message, got 2 messages`},
		{`{"prompt": [], "completion": "c"}`, `field "prompt": empty`},
		{`{"prompt": "p", "completion": [{"role": "assistant", "content": ""}]}`, `field "completion[0].content": empty`},
		{`{"messages": null, "prompt": "p"}`, `field "completion": missing`},
		{`{"messages": [{"role": "` + strings.Repeat("é", 20) + `", "content": "x"}]}`, `field "messages[0].role": unknown role "` + strings.Repeat("é", 16) + `…" (want system, user or assistant)`},
		{`{"messages": []}`, `field "messages": empty`},
		{`{"messages": "hi"}`, `field "messages": want array, got string`},
		{`{"messages": [{"role": "user", "content": "Hi"}]}`, `field "messages": last message has role "user", want "assistant"`},
		{`{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": ""}]}`, `field "messages[1].content": empty`},
		{`{"messages": [{"role": "user", "content": "Hi"}, {"role": "tool", "content": "x"}]}`, `field "messages[1].role": unknown role "tool" (want system, user or assistant)`},
		{`{"messages": [{"content": "Hi"}, {"role": "assistant", "content": "x"}]}`, `field "messages[0].role": missing`},
		{`{"messages": [{"role": "user"}, {"role": "assistant", "content": "x"}]}`, `field "messages[0].content": missing`},
		{`{"messages": [{"role": "user", "content": 1}, {"role": "assistant", "content": "x"}]}`, `field "messages[0].content": want string, got number`},
		{`{"messages": ["hi", {"role": "assistant", "content": "x"}]}`, `field "messages[0]": want object, got string`},
	}
	checkBad(t, "sft.jsonl", `{"prompt": "p", "completion": "c"}`, cases, func(text string, opt ReadOptions) (ReadStats, error) {
		_, st, err := readSFT(t, text, opt)
		return st, err
	})
}

func TestReadComparisons(t *testing.T) {
	text := `{"prompt": "P", "chosen": "good", "rejected": "bad"}
{"prompt": "P", "chosen": "good", "rejected": "bad", "margin": 1.5, "extra": true}
{"prompt": "Q", "responses": ["a", "b", "c", "d"], "ranking": [2, 0, 3, 1]}
{"prompt": [{"role": "user", "content": "Hi"}], "chosen": [{"role": "assistant", "content": "Hello"}], "rejected": [{"role": "assistant", "content": "Go away"}], "margin": null}
{"prompt": "R", "responses": ["x", "y"], "ranking": [1, 0], "margin": -2}
`
	got, st, err := ReadComparisonsFrom(strings.NewReader(text), "rm.jsonl", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Comparison{
		{Prompt: "P", Responses: []string{"good", "bad"}, Ranking: []int{0, 1}, Source: Source{"rm.jsonl", 1}},
		{Prompt: "P", Responses: []string{"good", "bad"}, Ranking: []int{0, 1}, Margin: 1.5, Source: Source{"rm.jsonl", 2}},
		{Prompt: "Q", Responses: []string{"a", "b", "c", "d"}, Ranking: []int{2, 0, 3, 1}, Source: Source{"rm.jsonl", 3}},
		{Prompt: "user: Hi\nassistant:", Responses: []string{" Hello", " Go away"}, Ranking: []int{0, 1}, Source: Source{"rm.jsonl", 4}},
		{Prompt: "R", Responses: []string{"x", "y"}, Ranking: []int{1, 0}, Margin: -2, Source: Source{"rm.jsonl", 5}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
	if st.Examples != 5 || st.Lines != 5 {
		t.Errorf("stats %+v", st)
	}
	if got, want := got[2].Pairs(), [][2]int{{2, 0}, {2, 3}, {2, 1}, {0, 3}, {0, 1}, {3, 1}}; !reflect.DeepEqual(got, want) {
		t.Errorf("pairs %v, want %v", got, want)
	}
}

func TestReadComparisonsBadLines(t *testing.T) {
	cases := []badCase{
		{`{"prompt": "P", "chosen": "a"}`, `field "rejected": missing`},
		{`{"prompt": "P", "rejected": "a"}`, `field "chosen": missing`},
		{`{"prompt": "P"}`, `field "chosen": missing`},
		{`{"chosen": "a", "rejected": "b"}`, `field "prompt": missing`},
		{`{"text": "a"}`, `unknown record: want {"prompt", "chosen", "rejected"} or {"prompt", "responses", "ranking"}`},
		{`{"prompt": "P", "chosen": "", "rejected": "b"}`, `field "chosen": empty`},
		{`{"prompt": "P", "chosen": "a", "rejected": 3}`, `field "rejected": want string, got number`},
		{`{"prompt": "P", "chosen": "a", "rejected": "b", "margin": "1"}`, `field "margin": want number, got string`},
		{`{"prompt": "P", "chosen": "a", "rejected": "b", "margin": 1e999}`, `field "margin": number 1e999 out of range`},
		{`{"prompt": "P", "chosen": "a", "rejected": "b", "responses": ["a", "b"], "ranking": [0, 1]}`, `ambiguous record: both "responses"/"ranking" and "chosen"/"rejected"`},
		{`{"prompt": "P", "responses": ["a", "b"]}`, `field "ranking": missing`},
		{`{"prompt": "P", "ranking": [0, 1]}`, `field "responses": missing`},
		{`{"prompt": "P", "responses": ["a"], "ranking": [0]}`, `field "responses": 1 responses, want 2 to 9`},
		{`{"prompt": "P", "responses": ["0","1","2","3","4","5","6","7","8","9"], "ranking": [0,1,2,3,4,5,6,7,8,9]}`, `field "responses": 10 responses, want 2 to 9`},
		{`{"prompt": "P", "responses": ["a", ""], "ranking": [0, 1]}`, `field "responses[1]": empty`},
		{`{"prompt": "P", "responses": ["a", 2], "ranking": [0, 1]}`, `field "responses[1]": want string, got number`},
		{`{"prompt": "P", "responses": "a", "ranking": [0, 1]}`, `field "responses": want array, got string`},
		{`{"prompt": "P", "responses": ["a", "b", "c"], "ranking": [0, 1]}`, `field "ranking": 2 indices for 3 responses, want each index 0..2 once`},
		{`{"prompt": "P", "responses": ["a", "b", "c"], "ranking": [0, 1, 2, 0]}`, `field "ranking": 4 indices for 3 responses, want each index 0..2 once`},
		{`{"prompt": "P", "responses": ["a", "b", "c"], "ranking": [0, 1, 1]}`, `field "ranking[2]": index 1 appears twice`},
		{`{"prompt": "P", "responses": ["a", "b", "c"], "ranking": [0, 3, 1]}`, `field "ranking[1]": index 3 out of range 0..2`},
		{`{"prompt": "P", "responses": ["a", "b", "c"], "ranking": [0, -1, 1]}`, `field "ranking[1]": index -1 out of range 0..2`},
		{`{"prompt": "P", "responses": ["a", "b", "c"], "ranking": [0, 1.0, 2]}`, `field "ranking[1]": want integer, got 1.0`},
		{`{"prompt": "P", "responses": ["a", "b", "c"], "ranking": [0, "1", 2]}`, `field "ranking[1]": want integer, got string`},
		{`{"prompt": "P", "responses": ["a", "b", "c"], "ranking": "012"}`, `field "ranking": want array, got string`},
		{`{"prompt": "P", "responses": ["a", "b"], "ranking": [0, 99999999999999999999]}`, `field "ranking[1]": want integer, got 99999999999999999999`},
	}
	checkBad(t, "rm.jsonl", `{"prompt": "P", "chosen": "a", "rejected": "b"}`, cases, func(text string, opt ReadOptions) (ReadStats, error) {
		_, st, err := ReadComparisonsFrom(strings.NewReader(text), "rm.jsonl", opt)
		return st, err
	})
}

func TestReadPrompts(t *testing.T) {
	text := `{"prompt": "Sort: c a b", "task": "sort", "answer": "a b c", "id": 7}
{"prompt": [{"role": "user", "content": "Hi"}], "answer": null}
{"prompt": "plain"}
`
	got, _, err := ReadPromptsFrom(strings.NewReader(text), "ppo.jsonl", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []Prompt{
		{Prompt: "Sort: c a b", Task: "sort", Answer: "a b c", Meta: map[string]json.RawMessage{"id": json.RawMessage("7")}, Source: Source{"ppo.jsonl", 1}},
		{Prompt: "user: Hi\nassistant:", Conversational: true, Source: Source{"ppo.jsonl", 2}},
		{Prompt: "plain", Source: Source{"ppo.jsonl", 3}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
	cases := []badCase{
		{`{"task": "sort"}`, `field "prompt": missing`},
		{`{"prompt": ""}`, `field "prompt": empty`},
		{`{"prompt": "p", "task": 3}`, `field "task": want string, got number`},
		{`{"prompt": "p", "answer": ["a"]}`, `field "answer": want string, got array`},
	}
	checkBad(t, "ppo.jsonl", `{"prompt": "p"}`, cases, func(text string, opt ReadOptions) (ReadStats, error) {
		_, st, err := ReadPromptsFrom(strings.NewReader(text), "ppo.jsonl", opt)
		return st, err
	})
}

func TestSkipBadLinesKeepsFirstErrors(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < 10; i++ {
		sb.WriteString("{bad\n")
		sb.WriteString(`{"prompt": "p", "completion": "c"}` + "\n")
	}
	got, st, err := readSFT(t, sb.String(), ReadOptions{SkipBadLines: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 10 || st.Examples != 10 || st.Skipped != 10 || st.Lines != 20 || len(st.Errors) != maxKeptErrors {
		t.Fatalf("%d examples, stats %+v", len(got), st)
	}
	if !strings.HasPrefix(st.Errors[1], "sft.jsonl:3: invalid JSON") {
		t.Errorf("second kept error %q", st.Errors[1])
	}
	if got[9].Line != 20 {
		t.Errorf("last example from line %d, want 20", got[9].Line)
	}
}

func TestNoExamples(t *testing.T) {
	for _, text := range []string{"", "\n\n  \n"} {
		_, _, err := readSFT(t, text, ReadOptions{})
		if err == nil || err.Error() != "sft.jsonl: no examples" || !errors.Is(err, errNoExample) {
			t.Errorf("%q: error %v", text, err)
		}
	}
	_, st, err := readSFT(t, "{bad\n[]\n", ReadOptions{SkipBadLines: true})
	if err == nil || st.Skipped != 2 ||
		err.Error() != `sft.jsonl: no examples (2 bad lines skipped; first: sft.jsonl:1: invalid JSON: invalid character 'b' looking for beginning of object key string)` {
		t.Errorf("all bad: %+v, %v", st, err)
	}
}

func TestReadFiles(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sft.jsonl")
	if err := os.WriteFile(path, []byte(`{"prompt": "p", "completion": "c"}`+"\n"+`{"prompt": "p"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err := ReadSFT(path, ReadOptions{})
	if err == nil || err.Error() != path+`:2: field "completion": missing` || !errors.Is(err, errMissing) {
		t.Errorf("error %v", err)
	}
	ex, _, err := ReadSFT(path, ReadOptions{SkipBadLines: true})
	if err != nil || len(ex) != 1 {
		t.Errorf("skipping: %v, %v", ex, err)
	}
	missing := filepath.Join(dir, "none.jsonl")
	for _, err := range []error{
		second(ReadSFT(missing, ReadOptions{})),
		second(ReadComparisons(missing, ReadOptions{})),
		second(ReadPrompts(missing, ReadOptions{})),
	} {
		if !errors.Is(err, os.ErrNotExist) || !strings.HasPrefix(err.Error(), "read ") {
			t.Errorf("missing file: %v", err)
		}
	}
}

func second[T any](_ T, _ ReadStats, err error) error { return err }

func TestLongLines(t *testing.T) {
	// 17 MiB of completion on one line, then a good short line.
	long := strings.Repeat("x", 17<<20)
	text := `{"prompt": "p", "completion": "` + long + `"}` + "\n" + `{"prompt": "q", "completion": "c"}`
	got, _, err := readSFT(t, text, ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Completion != long || got[1].Prompt != "q" {
		t.Fatalf("long line misread")
	}

	defer func(n int) { maxLineBytes = n }(maxLineBytes)
	maxLineBytes = 1 << 20
	over := `{"prompt": "p", "completion": "` + strings.Repeat("y", 1<<20) + `"}`
	text = `{"prompt": "a", "completion": "c"}` + "\n" + over + "\n" + `{"prompt": "b", "completion": "c"}` + "\n" + over
	_, _, err = readSFT(t, text, ReadOptions{})
	if err == nil || err.Error() != "sft.jsonl:2: line too long: over 1048576 bytes" {
		t.Errorf("over-long line: %v", err)
	}
	got, st, err := readSFT(t, text, ReadOptions{SkipBadLines: true})
	if err != nil || len(got) != 2 || got[1].Line != 3 || st.Skipped != 2 || st.Lines != 4 {
		t.Errorf("skipping over-long lines: %v, %+v, %v", got, st, err)
	}
	exact := `{"prompt": "p", "completion": "` + strings.Repeat("z", 1<<20-33) + `"}`
	if len(exact) != 1<<20 {
		t.Fatalf("line of %d bytes", len(exact))
	}
	if _, _, err := readSFT(t, exact+"\n"+exact, ReadOptions{}); err != nil {
		t.Errorf("line of exactly the limit: %v", err)
	}
}

// endlessReader is an input without end or newline, like /dev/zero.
type endlessReader struct{}

func (endlessReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'x'
	}
	return len(p), nil
}

// TestEndlessInput stops on an input whose line never ends, even when bad
// lines are skipped, instead of reading forever.
func TestEndlessInput(t *testing.T) {
	defer func(n int) { maxLineBytes = n }(maxLineBytes)
	maxLineBytes = 1 << 20
	for _, skip := range []bool{false, true} {
		_, _, err := ReadPromptsFrom(endlessReader{}, "zero.jsonl", ReadOptions{SkipBadLines: skip})
		if !errors.Is(err, errEndless) || !strings.Contains(err.Error(), "zero.jsonl:1") {
			t.Errorf("skip=%v: %v", skip, err)
		}
	}
}

// TestInvalidUTF8 refuses a line that is not UTF-8, naming file, line and
// byte, instead of reading it with the bad bytes replaced; with
// SkipBadLines the line is counted and skipped.
func TestInvalidUTF8(t *testing.T) {
	in := "{\"prompt\": \"ok\"}\n{\"prompt\": \"caf\xe9\"}\n{\"prompt\": \"fine\"}\n"
	_, _, err := ReadPromptsFrom(strings.NewReader(in), "p.jsonl", ReadOptions{})
	if err == nil || !strings.Contains(err.Error(), "p.jsonl:2") || !strings.Contains(err.Error(), "invalid UTF-8 at byte 16") {
		t.Errorf("invalid UTF-8: %v", err)
	}
	got, st, err := ReadPromptsFrom(strings.NewReader(in), "p.jsonl", ReadOptions{SkipBadLines: true})
	if err != nil || len(got) != 2 || st.Skipped != 1 {
		t.Errorf("skipped: %d prompts, %d skipped, %v", len(got), st.Skipped, err)
	}
}

// TestIsComparisonFile tells comparisons from demonstrations by the first
// record, past blank lines and a byte order mark, reading no further, and
// names the file and line of a first record that is neither.
func TestIsComparisonFile(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		name, text string
		want       bool
		err        string
	}{
		{"pair", "\xEF\xBB\xBF\n{\"prompt\": \"p\", \"chosen\": \"a\", \"rejected\": \"b\"}\n{oops\n", true, ""},
		{"ranking", "{\"prompt\": \"p\", \"responses\": [\"a\", \"b\"], \"ranking\": [1, 0]}\n", true, ""},
		{"sft", "\n\n{\"prompt\": \"p\", \"completion\": \"c\"}\n", false, ""},
		{"chat", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n", false, ""},
		{"neither", "\n{\"prompt\": \"p\"}\n", false, "neither.jsonl:2: neither an SFT record"},
		{"not json", "{\"prompt\"\n", false, "not json.jsonl:1: invalid JSON"},
		{"empty", "\n \n", false, "empty.jsonl: no examples"},
		{"latin1", "{\"prompt\": \"caf\xe9\"}\n", false, "latin1.jsonl:1: invalid UTF-8"},
	}
	for _, c := range cases {
		path := filepath.Join(dir, c.name+".jsonl")
		if err := os.WriteFile(path, []byte(c.text), 0o644); err != nil {
			t.Fatal(err)
		}
		got, err := IsComparisonFile(path)
		switch {
		case c.err == "" && (err != nil || got != c.want):
			t.Errorf("%s: got %v, %v; want %v", c.name, got, err, c.want)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("%s: error %v, want one containing %q", c.name, err, c.err)
		}
	}
}
