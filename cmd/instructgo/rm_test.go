package main

import (
	"bufio"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
)

// rmFixture writes a small built-in-task dataset and a fresh tiny LM
// checkpoint to start a reward model from.
func rmFixture(t *testing.T) (dataDir, initDir string) {
	t.Helper()
	dataDir = t.TempDir()
	if _, err := tasks.Synth(dataDir, tasks.SynthConfig{Seed: 2, NSFT: 16, NRM: 40, NPPO: 8, NEval: 8, PretrainBytes: 1000}); err != nil {
		t.Fatal(err)
	}
	cfg := model.Config{VocabSize: 258, MaxSeqLen: 128, NLayer: 1, NHead: 2, NEmbd: 16, Tokenizer: "byte"}
	initDir = t.TempDir()
	if err := model.SaveHost(initDir, cfg, model.InitGPT2(cfg, 1)); err != nil {
		t.Fatal(err)
	}
	return dataDir, initDir
}

func TestRMCommandTrainsScoresAndEvaluates(t *testing.T) {
	dataDir, initDir := rmFixture(t)
	rmData, sftData := filepath.Join(dataDir, "rm.jsonl"), filepath.Join(dataDir, "sft.jsonl")
	out := filepath.Join(t.TempDir(), "rm")
	stdout, stderr, code := runCLI(t, "--device", "cpu", "--threads", "2", "--log-format", "json", "rm",
		"--data", rmData, "--init", initDir, "--out", out, "--steps", "3", "--batch", "8", "--eval-every", "0",
		"--center-data", sftData, "--val-frac", "0.2")
	if code != 0 {
		t.Fatalf("rm: exit code %d, stderr %s", code, stderr)
	}
	for _, want := range []string{"held-out pairwise accuracy", "noise-free order", "a second labeler", "centred on 16 sequences", out} {
		if !strings.Contains(stdout, want) {
			t.Errorf("rm output lacks %q:\n%s", want, stdout)
		}
	}
	// config.json: one-label sequence classifier with the bias.
	var hf map[string]any
	raw, _ := os.ReadFile(filepath.Join(out, model.ConfigFile))
	if err := json.Unmarshal(raw, &hf); err != nil {
		t.Fatal(err)
	}
	if arch, _ := hf["architectures"].([]any); len(arch) != 1 || arch[0] != "GPT2ForSequenceClassification" {
		t.Errorf("architectures %v", hf["architectures"])
	}
	if _, ok := hf["instructgo_score_bias"].(float64); !ok {
		t.Errorf("config.json lacks instructgo_score_bias: %s", raw)
	}

	// rm eval --json prints exactly the three fields.
	stdout, stderr, code = runCLI(t, "--device", "cpu", "rm", "eval", "--model", out, "--data", rmData, "--json")
	if code != 0 {
		t.Fatalf("rm eval: exit code %d, stderr %s", code, stderr)
	}
	if strings.Count(stdout, "\n") != 1 || !strings.HasPrefix(stdout, `{"accuracy": `) || !strings.Contains(stdout, `, "n_pairs": `) || !strings.Contains(stdout, `, "mean_margin": `) {
		t.Errorf("rm eval --json printed %q", stdout)
	}
	var ev map[string]float64
	if err := json.Unmarshal([]byte(stdout), &ev); err != nil {
		t.Fatalf("rm eval --json: %v\n%s", err, stdout)
	}
	keys := make([]string, 0, len(ev))
	for k := range ev {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "accuracy,mean_margin,n_pairs" {
		t.Errorf("rm eval --json keys %v", keys)
	}
	cs, _, _ := data.ReadComparisons(rmData, data.ReadOptions{})
	pairs := 0
	for _, c := range cs {
		pairs += len(c.Pairs())
	}
	if ev["n_pairs"] != float64(pairs) || ev["accuracy"] < 0 || ev["accuracy"] > 1 {
		t.Errorf("rm eval %v, want %d pairs", ev, pairs)
	}
	stdout, _, code = runCLI(t, "--device", "cpu", "rm", "eval", "--model", out, "--data", rmData)
	if code != 0 || !strings.Contains(stdout, "accuracy vs noise-free order") {
		t.Errorf("rm eval table (exit %d):\n%s", code, stdout)
	}

	// rm score on the SFT file it was centred on: mean reward 0.
	stdout, stderr, code = runCLI(t, "--device", "cpu", "rm", "score", "--model", out, "--data", sftData, "--json")
	if code != 0 {
		t.Fatalf("rm score: exit code %d, stderr %s", code, stderr)
	}
	var sum float64
	n := 0
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var rec struct {
			Prompt, Completion string
			Reward             *float64
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil || rec.Reward == nil || rec.Completion == "" {
			t.Fatalf("rm score --json line %q: %v", sc.Text(), err)
		}
		sum += *rec.Reward
		n++
	}
	if n != 16 || math.Abs(sum/float64(n)) > 1e-3 {
		t.Errorf("%d demonstrations scored, mean %v; want 16 with mean 0 ± 1e-3", n, sum/float64(n))
	}

	// rm score on comparisons: one text line per response; --out writes
	// one record per comparison with a reward per response.
	stdout, _, code = runCLI(t, "--device", "cpu", "rm", "score", "--model", out, "--data", rmData)
	responses := 0
	for _, c := range cs {
		responses += len(c.Responses)
	}
	if lines := strings.Count(stdout, "\n"); code != 0 || lines != responses || !strings.Contains(stdout, "rank 1/") {
		t.Errorf("rm score text: exit %d, %d lines for %d responses", code, lines, responses)
	}
	file := filepath.Join(t.TempDir(), "scores.jsonl")
	if _, stderr, code = runCLI(t, "--device", "cpu", "rm", "score", "--model", out, "--data", rmData, "--out", file); code != 0 {
		t.Fatalf("rm score --out: exit %d, %s", code, stderr)
	}
	// Its own input as --out is refused, the input untouched.
	before, _ := os.ReadFile(rmData)
	if _, stderr, code := runCLI(t, "--device", "cpu", "rm", "score", "--model", out, "--data", rmData, "--out", rmData); code != exitUsage || !strings.Contains(stderr, "is an input") {
		t.Errorf("rm score --out its input: exit %d, %s", code, stderr)
	}
	link := filepath.Join(t.TempDir(), "same.jsonl")
	os.Link(rmData, link)
	if _, stderr, code := runCLI(t, "--device", "cpu", "rm", "score", "--model", out, "--data", rmData, "--out", link); code != exitUsage || !strings.Contains(stderr, "is an input") {
		t.Errorf("rm score --out a hard link of its input: exit %d, %s", code, stderr)
	}
	if after, _ := os.ReadFile(rmData); string(after) != string(before) {
		t.Error("the input changed")
	}
	raw, _ = os.ReadFile(file)
	first := strings.SplitN(string(raw), "\n", 2)[0]
	var rec struct {
		Responses []string
		Rewards   []float64
	}
	if err := json.Unmarshal([]byte(first), &rec); err != nil || len(rec.Rewards) != len(rec.Responses) || len(rec.Rewards) < 2 {
		t.Errorf("rm score --out record %s: %v", first, err)
	}
}

func TestRMCommandUsageErrors(t *testing.T) {
	dataDir, initDir := rmFixture(t)
	rmData := filepath.Join(dataDir, "rm.jsonl")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"rm", "bogus"}, "unknown subcommand"},
		{[]string{"rm", "--data", rmData, "--out", t.TempDir()}, "--init"},
		{[]string{"rm", "--data", rmData, "--init", initDir, "--out", t.TempDir(), "--val-frac", "0"}, "validation fraction"},
		{[]string{"rm", "score", "--model", initDir}, "--data"},
		{[]string{"rm", "eval", "--model", initDir, "--data", rmData}, "not a reward model"},
		{[]string{"rm", "score", "--model", initDir, "--data", rmData, "--json", "--out", "x"}, "give one"},
		{[]string{"data", "label", "--policy", initDir, "--prompts", rmData, "--out", "x", "-k", "3..12"}, "-k"},
	}
	for _, c := range cases {
		_, stderr, code := runCLI(t, append([]string{"--device", "cpu"}, c.args...)...)
		if code == 0 || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want an error mentioning %q", c.args, code, stderr, c.want)
		}
	}
}

func TestDataLabelWritesRankings(t *testing.T) {
	dataDir, initDir := rmFixture(t)
	out := filepath.Join(t.TempDir(), "labelled.jsonl")
	stdout, stderr, code := runCLI(t, "--device", "cpu", "data", "label", "--policy", initDir,
		"--prompts", filepath.Join(dataDir, "eval.jsonl"), "-k", "2..3", "--max-new", "6", "--limit", "5", "--out", out, "--seed", "4")
	if code != 0 {
		t.Fatalf("data label: exit code %d, stderr %s", code, stderr)
	}
	if !strings.Contains(stdout, "noise-free order") || !strings.Contains(stdout, "wrote "+out) {
		t.Errorf("data label output:\n%s", stdout)
	}
	cs, _, err := data.ReadComparisons(out, data.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) == 0 || len(cs) > 5 {
		t.Fatalf("%d records for 5 prompts", len(cs))
	}
	for _, c := range cs {
		if len(c.Responses) < 2 || len(c.Responses) > 3 || c.Task == "" || c.Answer == "" {
			t.Errorf("record %+v", c)
		}
	}
	// Prompts without a built-in task are refused.
	plain := filepath.Join(t.TempDir(), "plain.jsonl")
	os.WriteFile(plain, []byte(`{"prompt": "hello\n"}`+"\n"), 0o644)
	_, stderr, code = runCLI(t, "--device", "cpu", "data", "label", "--policy", initDir, "--prompts", plain, "--out", out)
	if code == 0 || !strings.Contains(stderr, "task") {
		t.Errorf("plain prompts: exit %d, stderr %q", code, stderr)
	}
}

func TestParseKRange(t *testing.T) {
	for _, c := range []struct {
		in     string
		lo, hi int
		ok     bool
	}{
		{"4..9", 4, 9, true}, {"6", 6, 6, true}, {" 2 .. 3 ", 2, 3, true},
		{"1..4", 0, 0, false}, {"4..10", 0, 0, false}, {"5..4", 0, 0, false}, {"four", 0, 0, false}, {"4..", 0, 0, false},
	} {
		lo, hi, err := parseKRange(c.in)
		if (err == nil) != c.ok || lo != c.lo || hi != c.hi {
			t.Errorf("parseKRange(%q) = %d, %d, %v", c.in, lo, hi, err)
		}
	}
}
