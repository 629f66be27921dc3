package data

import (
	"encoding/json"
	"io"
	"strconv"
)

// SFTExample is one demonstration: the prompt, and the completion the model
// learns to write after it (the loss falls on the completion only).
type SFTExample struct {
	Prompt     string
	Completion string
	// Task names the built-in instruction task the example belongs to
	// (optional "task" field); validation then scores generated
	// completions against Completion with that task's scorer.
	Task   string
	Source // where it was read
}

// ReadSFT reads supervised fine-tuning data from a JSONL file. Each line is
// one of:
//
//	{"prompt": "...", "completion": "..."}
//	{"messages": [{"role": "system"|"user"|"assistant", "content": "..."}, ...]}
//	{"prompt": [messages...], "completion": [{"role": "assistant", ...}]}
//
// Plain prompt and completion are used as they are (both non-empty). A
// "messages" conversation (which wins if "prompt" is present too, as in
// datasets that carry both; a null "messages" counts as absent) must end with an assistant message with
// non-empty content: that message is the completion, rendered with
// RenderCompletion, and everything before it is the prompt, rendered with
// RenderPrompt; earlier assistant turns are part of the prompt and carry no
// loss. The third form is TRL's conversational prompt-completion, rendered
// the same way. With ReadOptions.Chat, conversations are rendered with
// that template instead. Other fields are ignored.
func ReadSFT(path string, opt ReadOptions) ([]SFTExample, ReadStats, error) {
	return readFile(path, "sft data", opt, opt.render().parseSFT)
}

// ReadSFTFrom is ReadSFT on a reader; name stands for the file in messages.
func ReadSFTFrom(r io.Reader, name string, opt ReadOptions) ([]SFTExample, ReadStats, error) {
	return readFrom(r, name, opt, opt.render().parseSFT)
}

func (r render) parseSFT(line []byte) (SFTExample, error) {
	obj, err := object(line)
	if err != nil {
		return SFTExample{}, err
	}
	task, err := optStr(obj, "task")
	if err != nil {
		return SFTExample{}, err
	}
	if present(obj, "messages") {
		ex, err := r.sftFromMessages(obj["messages"])
		ex.Task = task
		return ex, err
	}
	if !present(obj, "prompt") && !present(obj, "completion") {
		return SFTExample{}, lineErr(`unknown record: want {"prompt", "completion"} or {"messages"}`)
	}
	prompt, _, err := r.promptValue(obj["prompt"], "prompt")
	if err != nil {
		return SFTExample{}, err
	}
	completion, err := r.replyValue(obj["completion"], "completion")
	if err != nil {
		return SFTExample{}, err
	}
	return SFTExample{Prompt: prompt, Completion: completion, Task: task}, nil
}

func (r render) sftFromMessages(raw json.RawMessage) (SFTExample, error) {
	msgs, err := messages(raw, "messages")
	if err != nil {
		return SFTExample{}, err
	}
	last := msgs[len(msgs)-1]
	if last.Role != RoleAssistant {
		return SFTExample{}, fieldErr("messages", "last message has role %q, want %q", last.Role, RoleAssistant)
	}
	if last.Content == "" {
		return SFTExample{}, &fieldError{field: "messages[" + strconv.Itoa(len(msgs)-1) + "].content", err: errEmpty}
	}
	prompt, err := r.prompt(msgs[:len(msgs)-1], "messages")
	if err != nil {
		return SFTExample{}, err
	}
	completion, err := r.reply(last.Content, "messages")
	if err != nil {
		return SFTExample{}, err
	}
	return SFTExample{Prompt: prompt, Completion: completion}, nil
}
