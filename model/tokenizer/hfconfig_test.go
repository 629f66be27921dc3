package tokenizer

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// writeModelDir makes a model directory holding a test tokenizer.json and
// the given tokenizer_config.json.
func writeModelDir(t *testing.T, file, config string) string {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(filepath.Join("testdata", "hf", file))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, HFTokenizerFile), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, HFConfigFile), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestForModel(t *testing.T) {
	dir := writeModelDir(t, "bl_llama3.json", `{
		"bos_token": {"content": "<|begin_of_text|>", "lstrip": false, "special": true},
		"eos_token": "<|eot_id|>", "pad_token": null, "add_bos_token": true,
		"chat_template": "{{ bos_token }}..."}`)
	tok, err := ForModel(dir, "gpt2")
	if err != nil {
		t.Fatal(err)
	}
	hf, ok := tok.(*HF)
	if !ok || tok.Name() != HFName {
		t.Fatalf("ForModel with tokenizer.json gave %T %s", tok, tok.Name())
	}
	bos, _ := hf.TokenID("<|begin_of_text|>")
	eot, _ := hf.TokenID("<|eot_id|>")
	if b, ok := hf.BOS(); !ok || b != bos || hf.EOS() != eot || hf.Pad() != eot || !hf.Specials().AddBOS {
		t.Errorf("specials: BOS %d EOS %d Pad %d AddBOS %v; want %d %d %d true", b, hf.EOS(), hf.Pad(), hf.Specials().AddBOS, bos, eot, eot)
	}
	if hf.Specials().ChatTemplate != "{{ bos_token }}..." {
		t.Errorf("chat template %q", hf.Specials().ChatTemplate)
	}

	// WriteFiles carries the tokenizer to another directory unchanged.
	out := t.TempDir()
	if err := hf.WriteFiles(out); err != nil {
		t.Fatal(err)
	}
	again, err := ForModel(out, "byte")
	if err != nil {
		t.Fatal(err)
	}
	s := "Grüße, 世界 <|eot_id|>"
	if a, b := tok.Encode(s), again.Encode(s); !slices.Equal(a, b) || again.EOS() != tok.EOS() {
		t.Errorf("after WriteFiles: %v EOS %d, want %v EOS %d", b, again.EOS(), a, tok.EOS())
	}
	if err := loadTestHF(t, "bl_llama3.json").WriteFiles(out); err == nil {
		t.Error("WriteFiles of a tokenizer made by ParseHF: no error")
	}

	// Without tokenizer.json, or without a directory, the name decides.
	for _, d := range []string{t.TempDir(), ""} {
		tok, err := ForModel(d, "byte")
		if err != nil || tok.Name() != "byte" {
			t.Errorf("ForModel(%q, byte) = %v, %v", d, tok, err)
		}
	}
	// Without tokenizer_config.json (or without eos_token in it), the
	// ids of config.json stand in; without either, it is an error.
	os.Remove(filepath.Join(dir, HFConfigFile))
	if _, err := ForModel(dir, "gpt2"); err == nil || !strings.Contains(err.Error(), "config.json") {
		t.Errorf("no %s and no config.json: error %v", HFConfigFile, err)
	}
	cfg := fmt.Sprintf(`{"model_type": "llama", "bos_token_id": %d, "eos_token_id": [%d, %d]}`, bos, eot, bos)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err = ForModel(dir, "gpt2")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := tok.(*HF).BOS(); tok.EOS() != eot || tok.Pad() != eot || b != bos {
		t.Errorf("from config.json: EOS %d Pad %d BOS %d, want %d %d %d", tok.EOS(), tok.Pad(), b, eot, eot, bos)
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(`{"eos_token_id": 99999}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ForModel(dir, "gpt2"); err == nil || !strings.Contains(err.Error(), "99999") {
		t.Errorf("eos_token_id out of range: error %v", err)
	}
}

func TestParseSpecials(t *testing.T) {
	sp, err := ParseSpecials([]byte(`{"bos_token": "<s>", "eos_token": {"content": "</s>"}, "pad_token": "<unk>",
		"add_bos_token": true, "add_eos_token": false,
		"chat_template": [{"name": "tool_use", "template": "T"}, {"name": "default", "template": "D"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := Specials{BOS: "<s>", EOS: "</s>", Pad: "<unk>", AddBOS: true, ChatTemplate: "D"}
	if sp != want {
		t.Errorf("ParseSpecials = %+v, want %+v", sp, want)
	}
	for _, bad := range []string{`{"eos_token": 3}`, `{"chat_template": 3}`, `[`} {
		if _, err := ParseSpecials([]byte(bad)); err == nil {
			t.Errorf("ParseSpecials(%s): no error", bad)
		}
	}
}
