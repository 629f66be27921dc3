package data_test

import (
	"fmt"
	"strings"

	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
)

func Example() {
	const jsonl = `{"prompt": "2+2=", "completion": "4"}
{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}
{"prompt": "Say nothing", "completion": ""}
`
	examples, st, err := data.ReadSFTFrom(strings.NewReader(jsonl), "sft.jsonl", data.ReadOptions{SkipBadLines: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(st.Examples, "examples;", st.Skipped, "skipped:", st.Errors[0])
	fmt.Printf("%q + %q\n", examples[1].Prompt, examples[1].Completion)

	tok, _ := tokenizer.New("byte")
	seqs, ts := data.TokenizeSFT(examples, tok, 16)
	fmt.Println(ts)

	batcher, err := data.NewSFTBatcher(seqs, tok.Pad(), data.BatchOptions{TokenBudget: 64, Seed: 1, Sequential: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	b := batcher.Next()
	fmt.Println(b.B, "×", b.T, "ValidLen", b.ValidLen, "loss tokens", b.LossTokens)
	fmt.Println("targets of row 0:", b.Targets[:b.T])
	fmt.Printf("row 1: %q\n", tok.Decode(b.Tokens[b.T:]))
	fmt.Printf("%+v\n", batcher.Pos())
	// Output:
	// 2 examples; 1 skipped: sft.jsonl:3: field "completion": empty
	// "user: Hi\nassistant:" + " Hello!"
	// 2 of 2 examples kept, 0 dropped; 1 prompts and 0 completions truncated; longest 27 tokens
	// 2 × 16 ValidLen [6 16] loss tokens 10
	// targets of row 0: [-1 -1 -1 52 256 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1 -1]
	// row 1: "sistant: Hello!<|endoftext|>"
	// {Epoch:1 Next:0}
}
