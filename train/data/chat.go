package data

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/instructgo/instructgo/model/tokenizer"
)

// Message is one turn of a conversation, as in TRL's conversational
// datasets.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// The roles a Message may have.
const (
	RoleSystem    = "system"
	RoleUser      = "user"
	RoleAssistant = "assistant"
)

// AssistantCue ends every rendered conversational prompt: the model
// continues after it with the assistant's reply.
const AssistantCue = RoleAssistant + ":"

// RenderPrompt renders messages as a prompt with the package's chat
// template: each message as "<role>: <content>\n", then AssistantCue
// ("assistant:"). The completion that follows is " " + the reply, so that
// prompt + completion reads exactly like the template applied to the whole
// conversation minus its final newline, and a BPE tokenizer sees the
// reply's first word with its leading space as in running text.
//
//	system: Be brief.
//	user: What is 2+2?
//	assistant: 4<EOS>
func RenderPrompt(msgs []Message) string {
	var sb strings.Builder
	for _, m := range msgs {
		sb.WriteString(m.Role)
		sb.WriteString(": ")
		sb.WriteString(m.Content)
		sb.WriteByte('\n')
	}
	sb.WriteString(AssistantCue)
	return sb.String()
}

// RenderCompletion renders an assistant reply as the completion that
// follows RenderPrompt's output: " " + content.
func RenderCompletion(content string) string { return " " + content }

// messages decodes a JSON array of messages; field names it in errors
// (elements as field[i].role). The list must not be empty; roles must be
// system, user or assistant; contents must be strings (empty allowed).
func messages(raw json.RawMessage, field string) ([]Message, error) {
	elems, err := array(raw, field)
	if err != nil {
		return nil, err
	}
	if len(elems) == 0 {
		return nil, &fieldError{field, errEmpty}
	}
	msgs := make([]Message, len(elems))
	for i, el := range elems {
		at := fmt.Sprintf("%s[%d]", field, i)
		if k := kind(el); k != "object" {
			return nil, fieldErr(at, "want object, got %s", k)
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(el, &obj); err != nil {
			return nil, fieldErr(at, "%v", err)
		}
		role, err := str(obj["role"], at+".role", false)
		if err != nil {
			return nil, err
		}
		switch role {
		case RoleSystem, RoleUser, RoleAssistant:
		default:
			return nil, fieldErr(at+".role", "unknown role %q (want system, user or assistant)", truncate(role, 32))
		}
		content, err := str(obj["content"], at+".content", true)
		if err != nil {
			return nil, err
		}
		msgs[i] = Message{Role: role, Content: content}
	}
	return msgs, nil
}

// render renders conversations with the package's template (RenderPrompt,
// RenderCompletion) or, when chat is set, with a model's chat template:
// the prompt with its generation prompt, the reply as the template writes
// it (the end-of-turn token is the EOS the tokenizer appends). When refuse
// is set, messages are an error: the tokenizer cannot render them.
type render struct {
	chat   *tokenizer.ChatTemplate
	refuse error
}

func (r render) prompt(msgs []Message, field string) (string, error) {
	if r.refuse != nil {
		return "", fieldErr(field, "messages: %v", r.refuse)
	}
	if r.chat == nil {
		return RenderPrompt(msgs), nil
	}
	conv := make([]tokenizer.Message, len(msgs))
	for i, m := range msgs {
		conv[i] = tokenizer.Message{Role: m.Role, Content: m.Content}
	}
	segs, err := r.chat.Render(conv, true)
	if err != nil {
		return "", fieldErr(field, "%v", err)
	}
	return tokenizer.String(segs), nil
}

func (r render) reply(content, field string) (string, error) {
	if r.refuse != nil {
		return "", fieldErr(field, "messages: %v", r.refuse)
	}
	if r.chat == nil {
		return RenderCompletion(content), nil
	}
	if err := r.chat.CheckText(content); err != nil {
		return "", fieldErr(field, "%v", err)
	}
	return r.chat.Reply(content), nil
}

// promptValue decodes a prompt: a non-empty string, or a list of messages
// (TRL's conversational prompt) rendered as a prompt. conv reports which.
func (r render) promptValue(raw json.RawMessage, field string) (text string, conv bool, err error) {
	if kind(raw) == "array" {
		msgs, err := messages(raw, field)
		if err != nil {
			return "", false, err
		}
		text, err := r.prompt(msgs, field)
		return text, true, err
	}
	text, err = str(raw, field, false)
	return text, false, err
}

// replyValue decodes a completion or response: a non-empty string, or
// (TRL's conversational form) a list of exactly one assistant message with
// non-empty content, rendered as a reply.
func (r render) replyValue(raw json.RawMessage, field string) (string, error) {
	if kind(raw) != "array" {
		return str(raw, field, false)
	}
	msgs, err := messages(raw, field)
	if err != nil {
		return "", err
	}
	if len(msgs) != 1 {
		return "", fieldErr(field, "want one assistant message, got %d messages", len(msgs))
	}
	if msgs[0].Role != RoleAssistant {
		return "", fieldErr(field+"[0].role", "want %q, got %q", RoleAssistant, msgs[0].Role)
	}
	if msgs[0].Content == "" {
		return "", &fieldError{field + "[0].content", errEmpty}
	}
	return r.reply(msgs[0].Content, field)
}
