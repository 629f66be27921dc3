package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
)

// runGenerateCLI runs one command line like run does, on an app that has
// the generate command whether or not newApp registers it yet.
func runGenerateCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	app := newApp()
	has := slices.ContainsFunc(app.Commands, func(c *cli.Command) bool { return c.Name == "generate" })
	if !has {
		cmd := generateCommand()
		cmd.OnUsageError = onUsageError
		app.Commands = append(app.Commands, cmd)
	}
	var out, errOut bytes.Buffer
	app.Writer, app.ErrWriter = &out, &errOut
	err := app.RunContext(context.Background(), append([]string{"instructgo", "--device", "cpu", "--log-level", "warn"}, args...))
	if err != nil {
		err = normalizeError(err)
		errOut.WriteString("instructgo: " + errorLine(err) + "\n")
	}
	return out.String(), errOut.String(), exitCode(err)
}

// genCheckpoint writes a small byte-tokenizer model with GPT-2's random
// init to a temporary directory.
func genCheckpoint(t *testing.T) (string, model.Config) {
	t.Helper()
	cfg := model.Config{VocabSize: 258, MaxSeqLen: 32, NLayer: 2, NHead: 2, NEmbd: 16, Tokenizer: "byte"}
	dir := filepath.Join(t.TempDir(), "ckpt")
	saveRandomModel(t, dir, cfg, 3)
	return dir, cfg
}

// saveRandomModel saves a model of cfg with GPT-2's random init (seed) in
// dir.
func saveRandomModel(t *testing.T, dir string, cfg model.Config, seed uint64) {
	t.Helper()
	b := cpu.New(1)
	m, err := model.New(b, cfg, model.Options{MaxBatch: 1, MaxSeq: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(m.Params.All, model.InitGPT2(cfg, seed)); err != nil {
		t.Fatal(err)
	}
	if err := model.Save(dir, m); err != nil {
		t.Fatal(err)
	}
}

func TestGenerateCommandText(t *testing.T) {
	dir, _ := genCheckpoint(t)
	out, stderr, code := runGenerateCLI(t, "generate", "--model", dir, "--prompt", "Hello", "--prompt", "The cat", "--max-new", "5")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	for _, want := range []string{"=== prompt 1 ===\nHello\n=== completion 1 (", "=== prompt 2 ===\nThe cat\n=== completion 2 ("} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	again, _, _ := runGenerateCLI(t, "generate", "--model", dir, "--prompt", "Hello", "--prompt", "The cat", "--max-new", "5")
	if again != out {
		t.Errorf("greedy output differs between runs:\n%s\n---\n%s", out, again)
	}
}

func TestGenerateCommandJSONMatchesModelGenerate(t *testing.T) {
	dir, cfg := genCheckpoint(t)
	file := filepath.Join(t.TempDir(), "prompts.jsonl")
	if err := os.WriteFile(file, []byte("{\"prompt\": \"abc\", \"id\": 7}\n\n{\"prompt\": \"a longer prompt here\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"generate", "--model", dir, "--prompt", "xyz", "--prompts", file, "--max-new", "6", "--json", "--batch", "2"}
	out, stderr, code := runGenerateCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	texts := []string{"xyz", "abc", "a longer prompt here"}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != len(texts) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(texts), out)
	}

	// The same completions straight from model.Generate.
	tok, err := tokenizer.New(cfg.Tokenizer)
	if err != nil {
		t.Fatal(err)
	}
	m, err := model.Load(cpu.New(1), dir, model.Options{MaxBatch: 3, MaxSeq: 32})
	if err != nil {
		t.Fatal(err)
	}
	var prompts [][]int32
	for _, s := range texts {
		prompts = append(prompts, tok.Encode(s))
	}
	want, err := model.Generate(m, prompts, model.GenerateOptions{MaxNew: 6, EOS: tok.EOS()})
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range lines {
		var g generation
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&g); err != nil {
			t.Fatalf("line %d is not a generation: %v\n%s", i+1, err, line)
		}
		if g.Prompt != texts[i] || !slices.Equal(g.Tokens, want[i].Tokens) || g.Stop != want[i].Stop.String() ||
			g.StoppedAtEOS != (want[i].Stop == model.StopEOS) {
			t.Errorf("line %d: %+v, want tokens %v stop %v", i+1, g, want[i].Tokens, want[i].Stop)
		}
		if !strings.Contains(line, `"completion":`) {
			t.Errorf("line %d lacks the completion: %s", i+1, line)
		}
	}
}

func TestGenerateCommandSamplingAndContext(t *testing.T) {
	dir, _ := genCheckpoint(t)
	long := strings.Repeat("z", 29) // 3 tokens of room in a context of 32
	args := []string{"generate", "--model", dir, "--prompt", long, "--prompt", "hi", "--max-new", "8",
		"--temperature", "1", "--top-k", "20", "--top-p", "0.9", "--seed", "5", "--json"}
	out, stderr, code := runGenerateCLI(t, args...)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	again, _, _ := runGenerateCLI(t, args...)
	if again != out {
		t.Errorf("seeded sampling differs between runs:\n%s\n---\n%s", out, again)
	}
	var g generation
	if err := json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &g); err != nil {
		t.Fatal(err)
	}
	if !(g.Stop == "context" && len(g.Tokens) == 3) && !(g.Stop == "eos" && len(g.Tokens) < 3) {
		t.Errorf("29-token prompt in a 32-token context: %d tokens, stop %q", len(g.Tokens), g.Stop)
	}
}

func TestGenerateCommandErrors(t *testing.T) {
	dir, _ := genCheckpoint(t)
	tmp := t.TempDir()
	bad := filepath.Join(tmp, "bad.jsonl")
	if err := os.WriteFile(bad, []byte("{\"prompt\": \"ok\"}\n{\"text\": \"no prompt\"}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(tmp, "broken.jsonl")
	if err := os.WriteFile(broken, []byte("{\"prompt\": \"ok\"}\n\n{not json\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no model", []string{"--prompt", "x"}, exitUsage, "needs --model"},
		{"no prompt", []string{"--model", dir}, exitUsage, "at least one --prompt"},
		{"empty prompt", []string{"--model", dir, "--prompt", ""}, exitUsage, "prompt 1 is empty"},
		{"prompt too long", []string{"--model", dir, "--prompt", strings.Repeat("a", 32)}, exitUsage, "leaves no room"},
		{"bad max-new", []string{"--model", dir, "--prompt", "x", "--max-new", "0"}, exitUsage, "--max-new 0"},
		{"bad batch", []string{"--model", dir, "--prompt", "x", "--batch", "0"}, exitUsage, "--batch 0"},
		{"bad temperature", []string{"--model", dir, "--prompt", "x", "--temperature", "-1"}, exitUsage, "--temperature -1"},
		{"bad top-k", []string{"--model", dir, "--prompt", "x", "--top-k", "-3"}, exitUsage, "--top-k -3"},
		{"bad top-p", []string{"--model", dir, "--prompt", "x", "--top-p", "0"}, exitUsage, "--top-p 0"},
		{"positional argument", []string{"--model", dir, "--prompt", "x", "extra"}, exitUsage, "takes no arguments"},
		{"missing model", []string{"--model", filepath.Join(tmp, "nope"), "--prompt", "x"}, exitFailure, "nope"},
		{"missing prompts file", []string{"--model", dir, "--prompts", filepath.Join(tmp, "nope.jsonl")}, exitFailure, "nope.jsonl"},
		{"record without prompt", []string{"--model", dir, "--prompts", bad}, exitFailure, "bad.jsonl:2: field \"prompt\": missing"},
		{"broken JSON", []string{"--model", dir, "--prompts", broken}, exitFailure, "broken.jsonl:3:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, code := runGenerateCLI(t, append([]string{"generate"}, tc.args...)...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d and %q", code, stderr, tc.code, tc.want)
			}
		})
	}
}

// TestGenerateCommandPromptIsVerbatim: --prompt keeps its white space and
// commas (urfave/cli would trim the one and split on the other), so the
// model sees exactly the bytes given, as with --prompts.
func TestGenerateCommandPromptIsVerbatim(t *testing.T) {
	dir, _ := genCheckpoint(t)
	prompt := "  words: a, b\n"
	file := filepath.Join(t.TempDir(), "prompts.jsonl")
	raw, _ := json.Marshal(map[string]string{"prompt": prompt})
	if err := os.WriteFile(file, append(raw, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	var outs []generation
	for _, args := range [][]string{
		{"generate", "--model", dir, "--prompt", prompt, "--max-new", "5", "--json"},
		{"generate", "--model", dir, "--prompts", file, "--max-new", "5", "--json"},
	} {
		out, stderr, code := runGenerateCLI(t, args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 1 {
			t.Fatalf("%v: %d generations, want 1:\n%s", args, len(lines), out)
		}
		var g generation
		if err := json.Unmarshal([]byte(lines[0]), &g); err != nil {
			t.Fatal(err)
		}
		if g.Prompt != prompt {
			t.Errorf("%v: prompt %q, want %q", args, g.Prompt, prompt)
		}
		outs = append(outs, g)
	}
	if !slices.Equal(outs[0].Tokens, outs[1].Tokens) {
		t.Errorf("--prompt gave %v, --prompts %v", outs[0].Tokens, outs[1].Tokens)
	}
}
