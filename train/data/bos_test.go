package data

import (
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/model/tokenizer"
)

// TestTokenizeStartsWithBOS: with a tokenizer that sets add_bos_token
// (Llama 2's layout), SFT and comparison sequences start with BOS before
// the prompt and nowhere else, pretraining documents each start with it,
// and a prompt cut from the left still starts with it.
func TestTokenizeStartsWithBOS(t *testing.T) {
	raw, err := os.ReadFile("../../model/tokenizer/testdata/hf/sp_llama2.json")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := tokenizer.ParseHF(raw, tokenizer.Specials{BOS: "<s>", EOS: "</s>", AddBOS: true})
	if err != nil {
		t.Fatal(err)
	}
	bos, _ := tok.BOS()
	prompt, completion := "Translate: guten Morgen", "good morning"
	p, c := tok.Encode(prompt), tok.Encode(completion)
	want := slices.Concat([]int32{bos}, p, c, []int32{tok.EOS()})

	sft, _ := TokenizeSFT([]SFTExample{{Prompt: prompt, Completion: completion}}, tok, 1024)
	if len(sft) != 1 || !slices.Equal(sft[0].Tokens, want) || sft[0].PromptLen != 1+len(p) {
		t.Fatalf("SFT %+v, want %v with a prompt of %d", sft, want, 1+len(p))
	}
	cs, _ := TokenizeComparisons([]Comparison{{Prompt: prompt, Responses: []string{completion, "hi"}, Ranking: []int{0, 1}}}, tok, 1024)
	if len(cs) != 1 || !slices.Equal(cs[0].Responses[0], want) || cs[0].PromptLen != 1+len(p) {
		t.Fatalf("comparison %+v, want %v", cs, want)
	}

	// Cut: the prompt keeps its last tokens, BOS in place of the first.
	maxLen := len(want) - 2
	sft, st := TokenizeSFT([]SFTExample{{Prompt: prompt, Completion: completion}}, tok, maxLen)
	keep := maxLen - len(c) - 1
	cut := slices.Concat([]int32{bos}, p[len(p)-keep+1:], c, []int32{tok.EOS()})
	if st.PromptTruncated != 1 || len(sft) != 1 || !slices.Equal(sft[0].Tokens, cut) {
		t.Errorf("cut SFT %+v (%+v), want %v", sft, st, cut)
	}
	cs, _ = TokenizeComparisons([]Comparison{{Prompt: prompt, Responses: []string{completion, "hi"}, Ranking: []int{0, 1}}}, tok, maxLen)
	if len(cs) != 1 || !slices.Equal(cs[0].Responses[0], cut) || cs[0].Responses[1][0] != bos {
		t.Errorf("cut comparison %+v, want %v", cs, cut)
	}

	// Pretraining text: BOS doc EOS per document.
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/a.txt", []byte("erste Zeile"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/b.txt", []byte("second line"), 0o644); err != nil {
		t.Fatal(err)
	}
	corpus, err := LoadText([]string{dir}, tok, 0)
	if err != nil {
		t.Fatal(err)
	}
	wantText := slices.Concat([]int32{bos}, tok.Encode("erste Zeile"), []int32{tok.EOS(), bos}, tok.Encode("second line"), []int32{tok.EOS()})
	if got := slices.Concat(corpus.Train, corpus.Val); !slices.Equal(got, wantText) {
		t.Errorf("corpus %v, want %v", got, wantText)
	}
	if strings.Contains(tok.Decode(c), "<s>") {
		t.Error("the completion holds BOS")
	}
}
