package train

import (
	"context"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
)

// byteEncoder is the byte tokenizer's contract without its package.
type byteEncoder struct{}

func (byteEncoder) Encode(s string) []int32 {
	ids := make([]int32, len(s))
	for i := 0; i < len(s); i++ {
		ids[i] = int32(s[i])
	}
	return ids
}
func (byteEncoder) EOS() int32     { return 256 }
func (byteEncoder) VocabSize() int { return 258 }

func TestCosineLR(t *testing.T) {
	const peak, minFrac = 1.0, 0.1
	cases := []struct {
		step int
		want float64
	}{
		{1, 0.1}, {10, 1}, // warmup of 10 steps
		{55, 0.1 + 0.9*0.5}, // half-way through the decay
		{100, 0.1},          // end
		{150, 0.1},          // beyond the end stays at the floor
	}
	for _, c := range cases {
		got := float64(CosineLR(c.step, 10, 100, peak, minFrac))
		if math.Abs(got-c.want) > 1e-6 {
			t.Errorf("step %d: lr %v, want %v", c.step, got, c.want)
		}
	}
}

func TestUnigramEntropy(t *testing.T) {
	// Two symbols, equally frequent, in a vocabulary of 2: add-one
	// smoothing keeps them equal, so the cross-entropy is log 2.
	train := []int32{0, 1, 0, 1, 1, 0}
	got := UnigramEntropy(train, []int32{0, 1}, 2)
	if math.Abs(got-math.Log(2)) > 1e-12 {
		t.Fatalf("entropy %v, want log 2", got)
	}
	// A skewed train set makes the rare symbol expensive.
	got = UnigramEntropy([]int32{0, 0, 0, 0, 0, 0}, []int32{1}, 2)
	if want := -math.Log(1.0 / 8); math.Abs(got-want) > 1e-12 {
		t.Fatalf("entropy %v, want %v", got, want)
	}
}

func TestWindowSamplerCoversEpochAndSeeks(t *testing.T) {
	stream := make([]int32, 101)
	for i := range stream {
		stream[i] = int32(i)
	}
	s, err := NewWindowSampler(stream, 10, 3)
	if err != nil {
		t.Fatal(err)
	}
	if s.Windows() != 10 {
		t.Fatalf("%d windows, want 10", s.Windows())
	}
	tok, tgt := make([]int32, 10*10), make([]int32, 10*10)
	s.Fill(tok, tgt, 10)
	seen := map[int32]bool{}
	for b := 0; b < 10; b++ {
		first := tok[b*10]
		if first%10 != 0 || seen[first] {
			t.Fatalf("window %d starts at %d", b, first)
		}
		seen[first] = true
		for i := 0; i < 10; i++ {
			if tgt[b*10+i] != tok[b*10+i]+1 {
				t.Fatalf("targets are not the next tokens")
			}
		}
	}
	// Resume: a sampler sought to (epoch 1, 3) continues identically.
	s.Fill(tok[:30], tgt[:30], 3)
	want := make([]int32, 20)
	s.Fill(want, make([]int32, 20), 2)
	r, _ := NewWindowSampler(stream, 10, 3)
	r.Seek(1, 3)
	got := make([]int32, 20)
	r.Fill(got, make([]int32, 20), 2)
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("resumed sampler differs at %d: %d vs %d", i, got[i], want[i])
		}
	}
}

func TestLoadTextErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.jsonl")
	os.WriteFile(bad, []byte("{\"text\": \"ok\"}\n{\"txt\": \"no\"}\n"), 0o644)
	_, err := LoadText([]string{bad}, byteEncoder{}, 0.1)
	if err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") || !strings.Contains(err.Error(), "text") {
		t.Errorf("missing field: %v", err)
	}
	os.WriteFile(bad, []byte("{\"text\": \"ok\"}\n{\"text\": 3\n"), 0o644)
	if _, err := LoadText([]string{bad}, byteEncoder{}, 0.1); err == nil || !strings.Contains(err.Error(), "bad.jsonl:2") {
		t.Errorf("bad JSON: %v", err)
	}
	if _, err := LoadText([]string{filepath.Join(dir, "none.txt")}, byteEncoder{}, 0.1); err == nil {
		t.Error("missing file accepted")
	}
	empty := t.TempDir()
	os.WriteFile(filepath.Join(empty, "bin"), []byte{0, 1, 2}, 0o644)
	if _, err := LoadText([]string{empty}, byteEncoder{}, 0.1); err == nil || !strings.Contains(err.Error(), "no text files") {
		t.Errorf("directory without text: %v", err)
	}
	// A directory: text files in name order, binary ones skipped.
	os.WriteFile(filepath.Join(empty, "a.txt"), []byte("ab"), 0o644)
	os.WriteFile(filepath.Join(empty, "b.txt"), []byte("cd"), 0o644)
	c, err := LoadText([]string{empty}, byteEncoder{}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int32{'a', 'b', 256, 'c', 'd', 256}; len(c.Train) != len(want) || c.Train[2] != 256 || c.Train[3] != 'c' {
		t.Errorf("stream %v, want %v", c.Train, want)
	}
}

// synthText writes text with structure a small model can learn: words from
// a small grammar, so the held-out loss can fall far below the unigram one.
func synthText(t *testing.T, n int) string {
	rng := rand.New(rand.NewPCG(5, 6))
	subjects := []string{"the cat", "a dog", "my friend", "the teacher"}
	verbs := []string{"sees", "likes", "finds", "draws"}
	objects := []string{"a red ball.", "the old house.", "two green apples.", "a small boat."}
	var sb strings.Builder
	for sb.Len() < n {
		sb.WriteString(subjects[rng.IntN(4)] + " " + verbs[rng.IntN(4)] + " " + objects[rng.IntN(4)] + "\n")
	}
	path := filepath.Join(t.TempDir(), "text.txt")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPretrainLearnsBeyondUnigram(t *testing.T) {
	out := t.TempDir()
	cfg := PretrainConfig{
		Data:  []string{synthText(t, 40000)},
		Model: model.Config{VocabSize: 258, MaxSeqLen: 64, NLayer: 2, NHead: 2, NEmbd: 32, Tokenizer: "byte"},
		Out:   out, Steps: 150, Batch: 8, Seq: 64, Accum: 2,
		Optim: DefaultOptim(), Seed: 1, ValFrac: 0.1, EvalEvery: 50, EvalBatches: 4, LogEvery: 25,
	}
	cfg.Optim.LR = 3e-3
	sum, err := Pretrain(context.Background(), cpu.New(2), byteEncoder{}, cfg, RunOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if !(sum.ValLoss < 0.6*sum.UnigramLoss) {
		t.Errorf("held-out loss %.3f is not well below the unigram loss %.3f", sum.ValLoss, sum.UnigramLoss)
	}
	// The run directory: checkpoint, resolved config, metrics, summary.
	for _, f := range []string{model.ConfigFile, model.WeightsFile, RunConfigFile, MetricsFile, SummaryFile} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("run directory lacks %s: %v", f, err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(out, MetricsFile))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 6 {
		t.Errorf("%d metrics lines, want 6 (every 25 of 150 steps)", len(lines))
	}
	var first, last stepMetrics
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[len(lines)-1]), &last)
	if !(last.Loss < first.Loss) || last.ValLoss == nil || first.TokensSec <= 0 || last.GradNorm <= 0 {
		t.Errorf("metrics do not show training: first %+v last %+v", first, last)
	}
	// The checkpoint reloads into a model whose held-out loss is the same.
	m, err := model.Load(cpu.New(2), out, model.Options{MaxBatch: cfg.Batch, MaxSeq: cfg.Seq})
	if err != nil {
		t.Fatal(err)
	}
	corpus, _ := LoadText(cfg.Data, byteEncoder{}, cfg.ValFrac)
	tok, tgt := SequentialWindows(corpus.Val, cfg.Seq, cfg.EvalBatches*cfg.Batch)
	v, err := evalLM(m, tok, tgt, cfg.Batch, cfg.Seq)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(v-sum.ValLoss) > 1e-6 {
		t.Errorf("reloaded held-out loss %v, summary says %v", v, sum.ValLoss)
	}
}

func TestPretrainStopsOnCancelWithCheckpoint(t *testing.T) {
	out := t.TempDir()
	cfg := PretrainConfig{
		Data:  []string{synthText(t, 5000)},
		Model: model.Config{VocabSize: 258, MaxSeqLen: 32, NLayer: 1, NHead: 1, NEmbd: 16, Tokenizer: "byte"},
		Out:   out, Steps: 1000, Batch: 2, Seq: 32, Accum: 1,
		Optim: DefaultOptim(), Seed: 1, ValFrac: 0.2, EvalBatches: 1, LogEvery: 10,
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	sum, err := Pretrain(ctx, cpu.New(1), byteEncoder{}, cfg, RunOptions{Log: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "interrupted") {
		t.Fatalf("cancelled run returned %v", err)
	}
	if !sum.Interrupted {
		t.Error("summary does not record the interruption")
	}
	if _, err := os.Stat(filepath.Join(out, model.WeightsFile)); err != nil {
		t.Errorf("no checkpoint after interruption: %v", err)
	}
}

// cancelAt is a Progress that cancels the run after a given step, the way
// Ctrl-C would.
type cancelAt struct {
	NoProgress
	step   int
	cancel func()
}

func (c cancelAt) Step(step int, _ string) {
	if step == c.step {
		c.cancel()
	}
}

// readMetrics returns the records of dir's metrics file, checking that
// there is one per step (step reads a record's step), in order.
func readMetrics[T any](t *testing.T, dir string, step func(T) int) []T {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var recs []T
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec T
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatal(err)
		}
		if s := step(rec); s != len(recs)+1 {
			t.Fatalf("%s: metrics of step %d after %d records", dir, s, len(recs))
		}
		recs = append(recs, rec)
	}
	return recs
}

func readLosses(t *testing.T, dir string) []float64 {
	t.Helper()
	var losses []float64
	for _, rec := range readMetrics(t, dir, func(r stepMetrics) int { return r.Step }) {
		losses = append(losses, rec.Loss)
	}
	return losses
}

// TestPretrainResumeIsExact: a run interrupted at step 13 (after a periodic
// save at 10) and resumed gives exactly the per-step losses of an
// uninterrupted run, with dropout and gradient accumulation on.
func TestPretrainResumeIsExact(t *testing.T) {
	text := synthText(t, 20000)
	cfg := func(out string) PretrainConfig {
		return PretrainConfig{
			Data:  []string{text},
			Model: model.Config{VocabSize: 258, MaxSeqLen: 32, NLayer: 2, NHead: 2, NEmbd: 16, Tokenizer: "byte", Dropout: 0.1},
			Out:   out, Steps: 24, Batch: 4, Seq: 32, Accum: 2,
			Optim: DefaultOptim(), Seed: 7, ValFrac: 0.1, EvalBatches: 1, LogEvery: 1, SaveEvery: 10,
		}
	}
	whole := t.TempDir()
	if _, err := Pretrain(context.Background(), cpu.New(2), byteEncoder{}, cfg(whole), RunOptions{Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	split := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Pretrain(ctx, cpu.New(2), byteEncoder{}, cfg(split), RunOptions{Log: zerolog.Nop(), Progress: cancelAt{step: 13, cancel: cancel}})
	if err == nil || !strings.Contains(err.Error(), "interrupted after step 13") {
		t.Fatalf("interrupted run: %v", err)
	}
	if _, err := Pretrain(context.Background(), cpu.New(2), byteEncoder{}, cfg(split), RunOptions{Log: zerolog.Nop(), Resume: true}); err != nil {
		t.Fatal(err)
	}
	a, b := readLosses(t, whole), readLosses(t, split)
	if len(a) != 24 || len(b) != 24 {
		t.Fatalf("%d and %d loss records, want 24", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("step %d: resumed loss %v, uninterrupted %v", i+1, b[i], a[i])
		}
	}
	wa, _ := os.ReadFile(filepath.Join(whole, model.WeightsFile))
	wb, _ := os.ReadFile(filepath.Join(split, model.WeightsFile))
	if string(wa) != string(wb) {
		t.Error("final weights differ between the resumed and the uninterrupted run")
	}
}
