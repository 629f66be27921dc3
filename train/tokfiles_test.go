package train

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model/tokenizer"
)

// TestRunWritesHFTokenizerFiles: a run with a Hugging Face tokenizer
// leaves its tokenizer.json beside the checkpoint, so the run directory
// loads with the tokenizer it was trained with; a built-in tokenizer
// writes none.
func TestRunWritesHFTokenizerFiles(t *testing.T) {
	src := t.TempDir()
	raw, err := os.ReadFile(filepath.Join("..", "model", "tokenizer", "testdata", "hf", "bl_gpt2.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, tokenizer.HFTokenizerFile), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	rawCfg := []byte(`{"eos_token": "<|endoftext|>"}`)
	if err := os.WriteFile(filepath.Join(src, "tokenizer_config.json"), rawCfg, 0o644); err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.LoadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	cfg := smallSFT(writeUpperSFT(t, 40), t.TempDir())
	cfg.Model.VocabSize, cfg.Model.Tokenizer = max(tok.VocabSize(), 8), ""
	cfg.Steps, cfg.EvalEvery, cfg.EvalPrompts = 2, 0, 0
	if _, err := SFT(context.Background(), cpu.New(2), tok, cfg, RunOptions{Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(cfg.Out, tokenizer.HFTokenizerFile))
	if err != nil || !bytes.Equal(got, raw) {
		t.Fatalf("the run's tokenizer.json (%d bytes, %v) is not the one it trained with (%d)", len(got), err, len(raw))
	}
	if got, err := os.ReadFile(filepath.Join(cfg.Out, "tokenizer_config.json")); err != nil || !bytes.Equal(got, rawCfg) {
		t.Errorf("the run's tokenizer_config.json: %q, %v", got, err)
	}
	again, err := tokenizer.ForModel(cfg.Out, "")
	if err != nil || again.VocabSize() != tok.VocabSize() {
		t.Errorf("the run directory's tokenizer: %v", err)
	}
	byteRun := smallSFT(writeUpperSFT(t, 40), t.TempDir())
	byteRun.Steps, byteRun.EvalEvery, byteRun.EvalPrompts = 1, 0, 0
	bt, _ := tokenizer.New("byte")
	if _, err := SFT(context.Background(), cpu.New(2), bt, byteRun, RunOptions{Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(byteRun.Out, tokenizer.HFTokenizerFile)); err == nil {
		t.Error("a byte-tokenizer run wrote a tokenizer.json")
	}
}
