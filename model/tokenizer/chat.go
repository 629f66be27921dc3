package tokenizer

import (
	"fmt"
	"slices"
	"strings"
)

// Message is one turn of a conversation.
type Message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

// ChatTemplate renders conversations in the format a model was tuned on,
// the way the Jinja chat_template in its tokenizer_config.json does. It
// knows a few formats by name (ChatTemplateNames); Jinja itself is not
// interpreted.
//
// A rendering is a list of segments, text and control tokens, so that
// EncodeChat can encode the control tokens as their ids and the contents
// as plain text: a message cannot forge a control token.
type ChatTemplate struct {
	name string
	// system is the system message put first when the conversation has
	// none ("" for no default).
	system string
	// bos starts every rendering ("" for none).
	bos string
	// turn renders one message; header the start of an assistant turn
	// (the generation prompt).
	turn   func(m Message) []Segment
	header func(role string) []Segment
	// end is the control token that ends a turn: an assistant reply is
	// trained to end with it.
	end string
	// controls are all control tokens the template writes.
	controls []string
}

// Segment is a piece of a rendered conversation: text, or a control token
// written as its text.
type Segment struct {
	Text    string
	Control bool
}

func textSeg(s string) Segment    { return Segment{Text: s} }
func controlSeg(s string) Segment { return Segment{Text: s, Control: true} }

// The ChatML control tokens (Qwen2) and Llama 3's.
const (
	imStart     = "<|im_start|>"
	imEnd       = "<|im_end|>"
	beginOfText = "<|begin_of_text|>"
	startHeader = "<|start_header_id|>"
	endHeader   = "<|end_header_id|>"
	eotID       = "<|eot_id|>"
)

// qwen2System is the system message Qwen2-Instruct's template adds when a
// conversation has none.
const qwen2System = "You are a helpful assistant."

func chatmlHeader(role string) []Segment {
	return []Segment{controlSeg(imStart), textSeg(role + "\n")}
}

func chatmlTurn(m Message) []Segment {
	return append(chatmlHeader(m.Role), textSeg(m.Content), controlSeg(imEnd), textSeg("\n"))
}

func llama3Header(role string) []Segment {
	return []Segment{controlSeg(startHeader), textSeg(role), controlSeg(endHeader), textSeg("\n\n")}
}

// llama3Turn trims the content, as Llama 3's template does.
func llama3Turn(m Message) []Segment {
	return append(llama3Header(m.Role), textSeg(strings.TrimSpace(m.Content)), controlSeg(eotID))
}

var chatTemplates = map[string]ChatTemplate{
	// ChatML: <|im_start|>role\ncontent<|im_end|>\n per message.
	"chatml": {turn: chatmlTurn, header: chatmlHeader, end: imEnd, controls: []string{imStart, imEnd}},
	// Qwen2-Instruct: ChatML with a default system message.
	"qwen2": {system: qwen2System, turn: chatmlTurn, header: chatmlHeader, end: imEnd, controls: []string{imStart, imEnd}},
	// Llama 3 Instruct: <|begin_of_text|>, then per message
	// <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>.
	"llama3": {bos: beginOfText, turn: llama3Turn, header: llama3Header, end: eotID,
		controls: []string{beginOfText, startHeader, endHeader, eotID}},
}

// ChatTemplateNames lists the templates ChatTemplateByName knows, sorted.
func ChatTemplateNames() []string {
	return slices.Sorted(func(yield func(string) bool) {
		for n := range chatTemplates {
			if !yield(n) {
				return
			}
		}
	})
}

// ChatTemplateByName returns a known template.
func ChatTemplateByName(name string) (*ChatTemplate, error) {
	t, ok := chatTemplates[name]
	if !ok {
		return nil, fmt.Errorf("chat template %q is not known (known: %s)", name, strings.Join(ChatTemplateNames(), ", "))
	}
	t.name = name
	return &t, nil
}

// DetectChatTemplate recognises the Jinja chat_template of a
// tokenizer_config.json by the control tokens and default system message
// it writes. Templates that do more than the known formats (tool calls,
// dated system prompts as in Llama 3.1) are refused with an error that
// quotes their start: name a template instead, knowing it will render
// differently.
func DetectChatTemplate(jinja string) (*ChatTemplate, error) {
	refuse := func(why string) (*ChatTemplate, error) {
		head := jinja
		if len(head) > 60 {
			head = head[:60] + "…"
		}
		return nil, fmt.Errorf("chat template %q is not supported (%s); known: %s", head, why, strings.Join(ChatTemplateNames(), ", "))
	}
	has := func(s ...string) bool {
		for _, x := range s {
			if !strings.Contains(jinja, x) {
				return false
			}
		}
		return true
	}
	switch {
	case strings.TrimSpace(jinja) == "":
		return refuse("empty")
	case has("tools") || has("tool_calls"):
		return refuse("tool calls")
	case has(startHeader, endHeader, eotID):
		if has("Cutting Knowledge") || has("date_string") {
			return refuse("dated system message, as in Llama 3.1")
		}
		return ChatTemplateByName("llama3")
	case has(imStart, imEnd):
		if has(qwen2System) {
			return ChatTemplateByName("qwen2")
		}
		if has("You are") {
			return refuse("a default system message other than Qwen2's")
		}
		return ChatTemplateByName("chatml")
	}
	return refuse("unknown format")
}

// Name is the template's name.
func (t *ChatTemplate) Name() string { return t.name }

// EndOfTurn is the control token that ends a turn (<|im_end|>,
// <|eot_id|>): the token a chat model stops generating at.
func (t *ChatTemplate) EndOfTurn() string { return t.end }

// Controls are the control tokens the template writes.
func (t *ChatTemplate) Controls() []string { return slices.Clone(t.controls) }

// Render renders msgs, then with generationPrompt the start of an
// assistant turn, as Hugging Face's apply_chat_template(messages,
// add_generation_prompt=generationPrompt) does. It refuses a message whose
// role or content holds a control token's text.
func (t *ChatTemplate) Render(msgs []Message, generationPrompt bool) ([]Segment, error) {
	var out []Segment
	if t.bos != "" {
		out = append(out, controlSeg(t.bos))
	}
	if t.system != "" && len(msgs) > 0 && msgs[0].Role != "system" {
		out = append(out, t.turn(Message{Role: "system", Content: t.system})...)
	}
	for i, m := range msgs {
		for _, s := range []string{m.Role, m.Content} {
			if err := t.CheckText(s); err != nil {
				return nil, fmt.Errorf("message %d: %w", i, err)
			}
		}
		out = append(out, t.turn(m)...)
	}
	if generationPrompt {
		out = append(out, t.header("assistant")...)
	}
	return out, nil
}

// CheckText refuses text holding a control token's text, which would be
// read as that token in the rendering.
func (t *ChatTemplate) CheckText(s string) error {
	for _, c := range t.controls {
		if strings.Contains(s, c) {
			return fmt.Errorf("chat template %s: text contains the control token %s", t.name, c)
		}
	}
	return nil
}

// Reply is what follows Render(msgs, true) when the assistant answers
// content: the content as the template writes it (Llama 3 trims it),
// without the end-of-turn token, which callers append as EOS. Render of
// the conversation with the reply starts with Render(msgs, true) + Reply +
// EndOfTurn.
func (t *ChatTemplate) Reply(content string) string {
	return t.turn(Message{Role: "assistant", Content: content})[len(t.header("assistant"))].Text
}

// String joins segments into the text Hugging Face's template renders.
func String(segs []Segment) string {
	var sb strings.Builder
	for _, s := range segs {
		sb.WriteString(s.Text)
	}
	return sb.String()
}

// EncodeChat encodes rendered segments: control tokens as their ids, runs
// of text with Encode (so text cannot become a special token).
func EncodeChat(tok SpecialEncoder, segs []Segment) ([]int32, error) {
	var out []int32
	var run strings.Builder
	flush := func() {
		if run.Len() > 0 {
			out = append(out, tok.Encode(run.String())...)
			run.Reset()
		}
	}
	for _, s := range segs {
		if !s.Control {
			run.WriteString(s.Text)
			continue
		}
		flush()
		id, ok := tok.TokenID(s.Text)
		if !ok {
			return nil, fmt.Errorf("chat control token %s is not in the tokenizer's vocabulary", s.Text)
		}
		out = append(out, id)
	}
	flush()
	return out, nil
}
