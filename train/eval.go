package train

import (
	"fmt"
	"sort"
	"strings"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
)

// TaskPrompt is a prompt of a built-in instruction task with its reference
// answer, its record's prompt kind ("" when it has none; see
// tasks.PromptKinds), and where it was read (zero when not from a file).
type TaskPrompt struct {
	Prompt, Task, Answer, Kind string
	Source                     data.Source
}

// where names the prompt in messages: its file and line, or its index
// (counted from 1).
func (p TaskPrompt) where(i int) string {
	if p.Source.File != "" {
		return p.Source.Where()
	}
	return fmt.Sprintf("prompt %d", i+1)
}

// TaskSample is one generated response and its score.
type TaskSample struct {
	Prompt   string  `json:"prompt"`
	Task     string  `json:"task"`
	Answer   string  `json:"answer"`
	Response string  `json:"response"`
	Score    float64 `json:"score"`
	EOS      bool    `json:"stopped_at_eos"`
	Kind     string  `json:"kind,omitempty"`
}

// TaskEval is the mean task score of a model's responses, overall and per
// task type.
type TaskEval struct {
	Score   float64            `json:"task_score"`
	PerTask map[string]float64 `json:"per_task"`
	N       int                `json:"n"`
	Samples []TaskSample       `json:"-"`
}

// EvalOptions control how EvalTasks generates.
type EvalOptions struct {
	MaxNew   int          // tokens per response
	Sampling gpu.Sampling // zero: greedy, the default for evaluation
	Seed     uint64
}

// GenerateText continues each prompt with the model and returns the decoded
// responses (up to EOS, which is not included) and whether each stopped at
// EOS.
func GenerateText(m *model.Model, tok tokenizer.Tokenizer, prompts []string, opt EvalOptions) ([]string, []bool, error) {
	ids, err := encodePrompts(m, tok, prompts)
	if err != nil {
		return nil, nil, err
	}
	gens, err := model.Generate(m, ids, model.GenerateOptions{MaxNew: opt.MaxNew, Sampling: opt.Sampling, Seed: opt.Seed, EOS: tok.EOS()})
	if err != nil {
		return nil, nil, err
	}
	texts := make([]string, len(gens))
	eos := make([]bool, len(gens))
	for i, g := range gens {
		texts[i] = tok.Decode(g.Tokens)
		eos[i] = g.Stop == model.StopEOS
	}
	return texts, eos, nil
}

// encodePrompts tokenises prompts for generation with m, keeping the end
// of one too long for m's buffers (as training truncates) so that at least
// one token can follow.
func encodePrompts(m *model.Model, tok tokenizer.Tokenizer, prompts []string) ([][]int32, error) {
	ids := make([][]int32, len(prompts))
	for i, p := range prompts {
		ids[i] = tokenizer.EncodeStart(tok, p)
		if len(ids[i]) == 0 {
			return nil, fmt.Errorf("prompt %d is empty after tokenisation", i)
		}
		if max := m.MaxSeq() - 1; len(ids[i]) > max {
			ids[i] = ids[i][len(ids[i])-max:]
		}
	}
	return ids, nil
}

// EvalTasks generates a response to each prompt and scores it with its
// task's scorer.
func EvalTasks(m *model.Model, tok tokenizer.Tokenizer, prompts []TaskPrompt, opt EvalOptions) (TaskEval, error) {
	if len(prompts) == 0 {
		return TaskEval{}, fmt.Errorf("evaluate: no prompts")
	}
	texts := make([]string, len(prompts))
	for i, p := range prompts {
		if _, err := tasks.ByName(p.Task); err != nil {
			return TaskEval{}, fmt.Errorf("evaluate %s: %w", p.where(i), err)
		}
		texts[i] = p.Prompt
	}
	responses, eos, err := GenerateText(m, tok, texts, opt)
	if err != nil {
		return TaskEval{}, fmt.Errorf("evaluate: %w", err)
	}
	ev := TaskEval{PerTask: map[string]float64{}, N: len(prompts)}
	counts := map[string]int{}
	for i, p := range prompts {
		s, err := tasks.ScoreRecord(p.Task, p.Answer, responses[i])
		if err != nil {
			return TaskEval{}, fmt.Errorf("evaluate %s: %w", p.where(i), err)
		}
		ev.Score += s
		ev.PerTask[p.Task] += s
		counts[p.Task]++
		ev.Samples = append(ev.Samples, TaskSample{Prompt: p.Prompt, Task: p.Task, Answer: p.Answer, Response: responses[i], Score: s, EOS: eos[i], Kind: p.Kind})
	}
	ev.Score /= float64(len(prompts))
	for t := range ev.PerTask {
		ev.PerTask[t] /= float64(counts[t])
	}
	return ev, nil
}

// HabitRate is the fraction of the responses that open with
// tasks.HabitPrefix, the demonstration writers' habit (see
// tasks.SynthConfig.DemoHabit).
func (e TaskEval) HabitRate() float64 {
	if len(e.Samples) == 0 {
		return 0
	}
	n := 0
	for _, s := range e.Samples {
		if strings.HasPrefix(s.Response, tasks.HabitPrefix) {
			n++
		}
	}
	return float64(n) / float64(len(e.Samples))
}

// TaskNames lists the tasks an evaluation covered, sorted.
func (e TaskEval) TaskNames() []string {
	names := make([]string, 0, len(e.PerTask))
	for n := range e.PerTask {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
