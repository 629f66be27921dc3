package data

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
)

// The number of responses a ranking may hold (InstructGPT used 4 to 9).
const (
	MinResponses = 2
	MaxResponses = 9
)

// Comparison is one labelled ranking of responses to a prompt, the reward
// model's training unit. A preference pair is the K = 2 ranking: Responses
// {chosen, rejected}, Ranking {0, 1}.
type Comparison struct {
	Prompt    string
	Responses []string // K of them, MinResponses ≤ K ≤ MaxResponses
	// Ranking lists indices into Responses from best to worst; it is a
	// permutation of 0..K−1.
	Ranking []int
	// Margin is the optional "margin" of the record (0 when absent): how
	// much better the better response of each of its pairs should score,
	// for the margin loss −log σ(r_w − r_l − margin) (Llama 2, TRL); a
	// ranking's one margin applies to every one of its pairs.
	Margin float64
	// Task and Answer are the optional "task" and "answer" fields the
	// built-in instruction tasks write ("" when absent), so the responses
	// can be scored against the task's ground truth.
	Task, Answer string
	Source       // where it was read
}

// Pairs returns the K·(K−1)/2 comparisons a ranking implies, as (better,
// worse) indices into Responses, better responses first.
func (c *Comparison) Pairs() [][2]int {
	var out [][2]int
	for i := range c.Ranking {
		for j := i + 1; j < len(c.Ranking); j++ {
			out = append(out, [2]int{c.Ranking[i], c.Ranking[j]})
		}
	}
	return out
}

// ReadComparisons reads reward-model data from a JSONL file. Each line is
// a preference pair or a ranking:
//
//	{"prompt": "...", "chosen": "...", "rejected": "...", "margin": 0.5}
//	{"prompt": "...", "responses": ["...", ...], "ranking": [2, 0, 1]}
//
// "margin" is optional in both, and so are "task" and "answer" (strings,
// as the built-in tasks write them). A ranking has 2 to 9 responses and lists
// every response index once, best first. The prompt may also be a list of
// messages and each response a list of one assistant message (TRL's
// conversational form), rendered with RenderPrompt and RenderCompletion
// (or ReadOptions.Chat).
// Prompts and responses must be non-empty; a record with both "responses"
// and "chosen" is refused as ambiguous. Other fields are ignored.
func ReadComparisons(path string, opt ReadOptions) ([]Comparison, ReadStats, error) {
	return readFile(path, "comparison data", opt, opt.render().parseComparison)
}

// ReadComparisonsFrom is ReadComparisons on a reader; name stands for the
// file in messages.
func ReadComparisonsFrom(r io.Reader, name string, opt ReadOptions) ([]Comparison, ReadStats, error) {
	return readFrom(r, name, opt, opt.render().parseComparison)
}

func (r render) parseComparison(line []byte) (Comparison, error) {
	obj, err := object(line)
	if err != nil {
		return Comparison{}, err
	}
	ranked := present(obj, "responses") || present(obj, "ranking")
	paired := present(obj, "chosen") || present(obj, "rejected")
	switch {
	case ranked && paired:
		return Comparison{}, lineErr(`ambiguous record: both "responses"/"ranking" and "chosen"/"rejected"`)
	case !ranked && !paired:
		if !present(obj, "prompt") {
			return Comparison{}, lineErr(`unknown record: want {"prompt", "chosen", "rejected"} or {"prompt", "responses", "ranking"}`)
		}
		return Comparison{}, &fieldError{"chosen", errMissing}
	}
	var c Comparison
	if c.Prompt, _, err = r.promptValue(obj["prompt"], "prompt"); err != nil {
		return Comparison{}, err
	}
	if c.Task, err = optStr(obj, "task"); err != nil {
		return Comparison{}, err
	}
	if c.Answer, err = optStr(obj, "answer"); err != nil {
		return Comparison{}, err
	}
	if present(obj, "margin") {
		if c.Margin, err = number(obj["margin"], "margin"); err != nil {
			return Comparison{}, err
		}
		if math.IsInf(c.Margin, 0) || math.IsNaN(c.Margin) {
			return Comparison{}, fieldErr("margin", "not finite")
		}
	}
	if paired {
		chosen, err := r.replyValue(obj["chosen"], "chosen")
		if err != nil {
			return Comparison{}, err
		}
		rejected, err := r.replyValue(obj["rejected"], "rejected")
		if err != nil {
			return Comparison{}, err
		}
		c.Responses, c.Ranking = []string{chosen, rejected}, []int{0, 1}
		return c, nil
	}
	elems, err := array(obj["responses"], "responses")
	if err != nil {
		return Comparison{}, err
	}
	k := len(elems)
	if k < MinResponses || k > MaxResponses {
		return Comparison{}, fieldErr("responses", "%d responses, want %d to %d", k, MinResponses, MaxResponses)
	}
	c.Responses = make([]string, k)
	for i, el := range elems {
		if c.Responses[i], err = r.replyValue(el, fmt.Sprintf("responses[%d]", i)); err != nil {
			return Comparison{}, err
		}
	}
	if c.Ranking, err = ranking(obj, k); err != nil {
		return Comparison{}, err
	}
	return c, nil
}

// ranking decodes "ranking", which must be a permutation of 0..k−1.
func ranking(obj map[string]json.RawMessage, k int) ([]int, error) {
	elems, err := array(obj["ranking"], "ranking")
	if err != nil {
		return nil, err
	}
	if len(elems) != k {
		return nil, fieldErr("ranking", "%d indices for %d responses, want each index 0..%d once", len(elems), k, k-1)
	}
	rank := make([]int, k)
	seen := make([]bool, k)
	for i, el := range elems {
		at := fmt.Sprintf("ranking[%d]", i)
		n, err := integer(el, at)
		if err != nil {
			return nil, err
		}
		if n < 0 || n >= k {
			return nil, fieldErr(at, "index %d out of range 0..%d", n, k-1)
		}
		if seen[n] {
			return nil, fieldErr(at, "index %d appears twice", n)
		}
		seen[n] = true
		rank[i] = n
	}
	return rank, nil
}
