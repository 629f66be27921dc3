package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
)

// chatCheckpoint writes a small random model whose directory has a
// byte-level tokenizer.json with the ChatML and Llama 3 control tokens,
// and a tokenizer_config.json with jinja as its chat_template (none when
// empty).
func chatCheckpoint(t *testing.T, jinja string) (string, *tokenizer.HF) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "model", "tokenizer", "testdata", "hf", "bl_llama3.json"))
	if err != nil {
		t.Fatal(err)
	}
	hf, err := tokenizer.ParseHF(raw, tokenizer.Specials{EOS: "<|endoftext|>"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := model.Config{VocabSize: hf.VocabSize(), MaxSeqLen: 64, NLayer: 1, NHead: 2, NEmbd: 16}
	dir := filepath.Join(t.TempDir(), "ckpt")
	saveRandomModel(t, dir, cfg, 3)
	tc := map[string]any{"eos_token": "<|endoftext|>"}
	if jinja != "" {
		tc["chat_template"] = jinja
	}
	rawCfg, _ := json.Marshal(tc)
	for name, data := range map[string][]byte{tokenizer.HFTokenizerFile: raw, "tokenizer_config.json": rawCfg} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, hf
}

// TestChatTemplateFlag: generate renders a messages prompt with the
// template the model's tokenizer ships (the control tokens as their ids),
// with plain lines under --chat-template none, with a named template
// when one is given; a tokenizer without a template refuses messages
// with an error naming the flag, and an unknown flag value is a usage
// error.
func TestChatTemplateFlag(t *testing.T) {
	const chatml = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
	dir, hf := chatCheckpoint(t, chatml)
	prompts := filepath.Join(t.TempDir(), "prompts.jsonl")
	if err := os.WriteFile(prompts, []byte(`{"prompt": [{"role": "user", "content": "Hi there"}]}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	id := func(s string) int32 {
		v, ok := hf.TokenID(s)
		if !ok {
			t.Fatalf("no token %s", s)
		}
		return v
	}
	for _, c := range []struct {
		flag, text string
		ids        []int32
	}{
		{"auto", "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
			slices.Concat([]int32{id("<|im_start|>")}, hf.Encode("user\nHi there"), []int32{id("<|im_end|>")}, hf.Encode("\n"),
				[]int32{id("<|im_start|>")}, hf.Encode("assistant\n"))},
		{"none", "user: Hi there\nassistant:", hf.Encode("user: Hi there\nassistant:")},
		{"llama3", "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi there<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n",
			slices.Concat([]int32{id("<|begin_of_text|>"), id("<|start_header_id|>")}, hf.Encode("user"), []int32{id("<|end_header_id|>")},
				hf.Encode("\n\nHi there"), []int32{id("<|eot_id|>"), id("<|start_header_id|>")}, hf.Encode("assistant"),
				[]int32{id("<|end_header_id|>")}, hf.Encode("\n\n"))},
	} {
		out, stderr, code := runGenerateCLI(t, "--chat-template", c.flag, "generate", "--model", dir, "--prompts", prompts, "--max-new", "2", "--json")
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.flag, code, stderr)
		}
		var g generation
		if err := json.Unmarshal([]byte(out), &g); err != nil {
			t.Fatalf("%s: %v\n%s", c.flag, err, out)
		}
		if g.Prompt != c.text || !slices.Equal(g.PromptTokens, c.ids) {
			t.Errorf("%s: prompt %q %v, want %q %v", c.flag, g.Prompt, g.PromptTokens, c.text, c.ids)
		}
	}

	bare, _ := chatCheckpoint(t, "")
	_, stderr, code := runGenerateCLI(t, "generate", "--model", bare, "--prompts", prompts, "--max-new", "2")
	if code == 0 || !strings.Contains(stderr, "no chat template") || !strings.Contains(stderr, "--chat-template none") {
		t.Errorf("messages with a template-less tokenizer: exit %d: %s", code, stderr)
	}
	if _, stderr, code := runGenerateCLI(t, "--chat-template", "none", "generate", "--model", bare, "--prompts", prompts, "--max-new", "2"); code != 0 {
		t.Errorf("--chat-template none with a template-less tokenizer: exit %d: %s", code, stderr)
	}
	_, stderr, code = runGenerateCLI(t, "--chat-template", "jinja", "generate", "--model", dir, "--prompt", "x")
	if code != 2 || !strings.Contains(stderr, "--chat-template") {
		t.Errorf("unknown --chat-template: exit %d: %s", code, stderr)
	}
}
