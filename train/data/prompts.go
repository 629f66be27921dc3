package data

import (
	"encoding/json"
	"io"
)

// Prompt is one PPO prompt: the text the policy continues, plus what an
// evaluation needs to score the continuation.
type Prompt struct {
	Prompt string
	// Task and Answer are the optional "task" and "answer" fields the
	// built-in instruction tasks write ("" when absent): which task the
	// prompt belongs to and its reference answer.
	Task, Answer string
	// Meta holds the record's other fields, undecoded (nil when none).
	Meta map[string]json.RawMessage
	// Conversational is set when the prompt was a list of messages,
	// rendered with RenderPrompt; a reply then starts with a space (see
	// RenderCompletion). With ReadOptions.Chat, the template rendered it.
	Conversational bool
	Source         // where it was read
}

// ReadPrompts reads PPO prompts from a JSONL file: {"prompt": "..."} with
// a non-empty prompt, or a list of messages (TRL's conversational
// prompt-only form), rendered with RenderPrompt (or ReadOptions.Chat). "task" and "answer", when
// present and not null, must be strings; every other field is kept in Meta.
func ReadPrompts(path string, opt ReadOptions) ([]Prompt, ReadStats, error) {
	return readFile(path, "prompts", opt, opt.render().parsePrompt)
}

// ReadPromptsFrom is ReadPrompts on a reader; name stands for the file in
// messages.
func ReadPromptsFrom(r io.Reader, name string, opt ReadOptions) ([]Prompt, ReadStats, error) {
	return readFrom(r, name, opt, opt.render().parsePrompt)
}

func (r render) parsePrompt(line []byte) (Prompt, error) {
	obj, err := object(line)
	if err != nil {
		return Prompt{}, err
	}
	var p Prompt
	if p.Prompt, p.Conversational, err = r.promptValue(obj["prompt"], "prompt"); err != nil {
		return Prompt{}, err
	}
	if p.Task, err = optStr(obj, "task"); err != nil {
		return Prompt{}, err
	}
	if p.Answer, err = optStr(obj, "answer"); err != nil {
		return Prompt{}, err
	}
	for name, raw := range obj {
		switch name {
		case "prompt", "task", "answer":
			continue
		}
		if p.Meta == nil {
			p.Meta = make(map[string]json.RawMessage)
		}
		p.Meta[name] = raw
	}
	return p, nil
}
