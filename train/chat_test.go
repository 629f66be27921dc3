package train

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
)

// chatmlJinja is a ChatML chat_template as Hugging Face models ship it.
const chatmlJinja = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"

// chatModelDir writes a model directory's tokenizer files: a byte-level
// tokenizer.json with the ChatML control tokens and a
// tokenizer_config.json with jinja as its chat_template (none when empty).
func chatModelDir(t *testing.T, jinja string) string {
	t.Helper()
	dir := t.TempDir()
	raw, err := os.ReadFile(filepath.Join("..", "model", "tokenizer", "testdata", "hf", "bl_llama3.json"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := map[string]any{"eos_token": "<|endoftext|>"}
	if jinja != "" {
		cfg["chat_template"] = jinja
	}
	rawCfg, _ := json.Marshal(cfg)
	for name, b := range map[string][]byte{tokenizer.HFTokenizerFile: raw, "tokenizer_config.json": rawCfg} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// chatConvs are the conversations of writeChatSFT: system, user, reply.
var chatConvs = [][3]string{
	{"Be brief.", "What is 2+2?", "4."},
	{"Sei kurz.", "Was ist 3+4? 数字で。", "Sieben (七)."},
	{"Answer in one word.", "Capital of France?", "Paris"},
	{"Be polite.", "Say hi.", "Hello there!"},
}

// writeChatSFT writes chatConvs as SFT records in the messages format.
func writeChatSFT(t *testing.T) string {
	t.Helper()
	var sb strings.Builder
	for _, c := range chatConvs {
		rec, _ := json.Marshal(map[string]any{"messages": []map[string]string{
			{"role": "system", "content": c[0]}, {"role": "user", "content": c[1]}, {"role": "assistant", "content": c[2]},
		}})
		sb.Write(append(rec, '\n'))
	}
	path := filepath.Join(t.TempDir(), "sft.jsonl")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSFTTrainsOnChatTemplate: with a model directory whose tokenizer
// ships a ChatML template, SFT on messages data trains on exactly the
// ids of the ChatML rendering, built here by hand from the control
// tokens' ids and plain encodings of the texts between them, with the
// loss on the reply and its end of turn only. With "none" the same data
// is the plain "role: content" rendering; a tokenizer without a template
// refuses the data with an error naming the flag; a run with the chat
// tokenizer still copies its tokenizer files.
func TestSFTTrainsOnChatTemplate(t *testing.T) {
	dir := chatModelDir(t, chatmlJinja)
	base, err := tokenizer.ForModel(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	hf := base.(*tokenizer.HF)
	tok, err := tokenizer.ForChat(base, tokenizer.ChatAuto)
	if err != nil {
		t.Fatal(err)
	}
	if tmpl, err := tokenizer.ChatOf(tok); err != nil || tmpl == nil || tmpl.Name() != "chatml" {
		t.Fatalf("auto chose %v (%v), want chatml", tmpl, err)
	}
	id := func(s string) int32 {
		v, ok := hf.TokenID(s)
		if !ok {
			t.Fatalf("no token %s", s)
		}
		return v
	}
	start, end := id("<|im_start|>"), id("<|im_end|>")
	if tok.EOS() != end {
		t.Fatalf("EOS %d, want <|im_end|> %d", tok.EOS(), end)
	}
	cat := func(parts ...[]int32) []int32 { return slices.Concat(parts...) }
	one := func(v int32) []int32 { return []int32{v} }
	type want struct{ prompt, reply []int32 }
	var wants []want
	for _, c := range chatConvs {
		p := cat(one(start), hf.Encode("system\n"+c[0]), one(end), hf.Encode("\n"),
			one(start), hf.Encode("user\n"+c[1]), one(end), hf.Encode("\n"),
			one(start), hf.Encode("assistant\n"))
		wants = append(wants, want{p, cat(hf.Encode(c[2]), one(end))})
	}

	cfg := smallSFT(writeChatSFT(t), t.TempDir())
	cfg.ValFrac, cfg.MaxLen = 0.25, 256
	d, err := readSFTData(cfg, tok, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	all := append(slices.Clone(d.trainTok), d.valTok...)
	if len(all) != len(chatConvs) {
		t.Fatalf("%d examples, want %d", len(all), len(chatConvs))
	}
	seen := map[int]bool{}
	for _, ex := range all {
		k := slices.IndexFunc(wants, func(w want) bool { return slices.Equal(ex.Tokens, cat(w.prompt, w.reply)) })
		if k < 0 || ex.PromptLen != len(wants[k].prompt) {
			t.Fatalf("example %v (prompt %d tokens) is no ChatML rendering of the data:\n%q", ex.Tokens, ex.PromptLen, hf.Decode(ex.Tokens))
		}
		seen[k] = true
	}
	if len(seen) != len(chatConvs) {
		t.Errorf("examples cover %d of %d conversations", len(seen), len(chatConvs))
	}
	// The batch the SFT step trains on: targets only on the reply.
	idx := make([]int, len(d.trainTok))
	for i := range idx {
		idx[i] = i
	}
	batch := data.NewSFTBatch(d.trainTok, idx, tok.Pad())
	for r, ex := range d.trainTok {
		var targets []int32
		for _, v := range batch.Targets[r*batch.T : (r+1)*batch.T] {
			if v >= 0 {
				targets = append(targets, v)
			}
		}
		if reply := ex.Tokens[ex.PromptLen:]; !slices.Equal(targets, reply) {
			t.Errorf("row %d trains on %v, want the reply %v", r, targets, reply)
		}
	}

	// none: the package's plain lines, ended by the tokenizer's own EOS.
	plain, err := tokenizer.ForChat(tok, tokenizer.ChatNone)
	if err != nil {
		t.Fatal(err)
	}
	if plain != tokenizer.Tokenizer(hf) {
		t.Fatalf("none gave %T, want the bare tokenizer", plain)
	}
	dp, err := readSFTData(cfg, plain, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	c := chatConvs[0]
	wantPlain := cat(hf.Encode(data.RenderPrompt([]data.Message{{Role: "system", Content: c[0]}, {Role: "user", Content: c[1]}})),
		hf.Encode(data.RenderCompletion(c[2])), one(hf.EOS()))
	found := false
	for _, ex := range append(dp.trainTok, dp.valTok...) {
		found = found || slices.Equal(ex.Tokens, wantPlain)
	}
	if !found {
		t.Errorf("with none, no example is the plain rendering %q", hf.Decode(wantPlain))
	}

	// A tokenizer without a template refuses messages, naming the flag,
	// and reads plain prompt/completion data as before.
	bare, err := tokenizer.ForModel(chatModelDir(t, ""), "")
	if err != nil {
		t.Fatal(err)
	}
	noTmpl, err := tokenizer.ForChat(bare, tokenizer.ChatAuto)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := readSFTData(cfg, noTmpl, zerolog.Nop()); err == nil || !strings.Contains(err.Error(), "no chat template") || !strings.Contains(err.Error(), "--chat-template none") {
		t.Errorf("messages with a template-less tokenizer: %v", err)
	}
	upper := smallSFT(writeUpperSFT(t, 20), t.TempDir())
	if _, err := readSFTData(upper, noTmpl, zerolog.Nop()); err != nil {
		t.Errorf("plain data with a template-less tokenizer: %v", err)
	}

	// A run with the chat tokenizer copies the tokenizer files.
	cfg.Model.VocabSize, cfg.Model.Tokenizer, cfg.Model.MaxSeqLen = tok.VocabSize(), "", 256
	cfg.Steps, cfg.EvalEvery, cfg.EvalPrompts = 1, 0, 0
	if _, err := SFT(context.Background(), cpu.New(2), tok, cfg, RunOptions{Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	again, err := tokenizer.ForModel(cfg.Out, "")
	if err != nil || again.Name() != tokenizer.HFName {
		t.Errorf("the run directory's tokenizer: %v, %v", again, err)
	}

	// A resume must render the data as the run did: with the template
	// given up (none) it is refused, naming the flag; with it, it goes on.
	cfg.Out, cfg.Steps, cfg.SaveEvery = t.TempDir(), 3, 1
	cfg.Model.Tokenizer = "gpt2" // what a saved config without one reads back as
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := SFT(ctx, cpu.New(2), tok, cfg, RunOptions{Log: zerolog.Nop(), Progress: cancelAt{step: 1, cancel: cancel}}); err == nil {
		t.Fatal("the interrupted run ended without an error")
	}
	if _, err := SFT(context.Background(), cpu.New(2), plain, cfg, RunOptions{Log: zerolog.Nop(), Resume: true}); err == nil ||
		!strings.Contains(err.Error(), `chat template "chatml", this resume would use "none"`) || !strings.Contains(err.Error(), "--chat-template chatml") {
		t.Errorf("resume without the template: %v", err)
	}
	if _, err := SFT(context.Background(), cpu.New(2), tok, cfg, RunOptions{Log: zerolog.Nop(), Resume: true}); err != nil {
		t.Errorf("resume with the template: %v", err)
	}
}
