package data

import (
	"strings"
	"testing"
)

// TestReadComparisonsKeepsTaskAndAnswer: the built-in tasks' "task" and
// "answer" fields are kept on rankings and pairs, absent or null read as
// "", and a non-string is an error naming the field and line.
func TestReadComparisonsKeepsTaskAndAnswer(t *testing.T) {
	text := `{"prompt": "reverse: cat\n", "responses": ["tac", "cat"], "ranking": [0, 1], "task": "reverse", "answer": "tac"}
{"prompt": "p", "chosen": "a", "rejected": "b", "task": "upper", "answer": "A"}
{"prompt": "p", "chosen": "a", "rejected": "b", "task": null}
`
	got, _, err := ReadComparisonsFrom(strings.NewReader(text), "rm.jsonl", ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"reverse", "tac"}, {"upper", "A"}, {"", ""}}
	for i, w := range want {
		if got[i].Task != w[0] || got[i].Answer != w[1] {
			t.Errorf("record %d: task %q answer %q, want %q %q", i+1, got[i].Task, got[i].Answer, w[0], w[1])
		}
	}
	_, _, err = ReadComparisonsFrom(strings.NewReader(`{"prompt": "p", "chosen": "a", "rejected": "b", "answer": 4}`+"\n"), "rm.jsonl", ReadOptions{})
	if err == nil || !strings.Contains(err.Error(), "rm.jsonl:1") || !strings.Contains(err.Error(), `"answer"`) {
		t.Errorf("numeric answer: %v", err)
	}
}
