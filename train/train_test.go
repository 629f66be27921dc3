package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
)

// byteTok is the byte tokenizer.
var byteTok, _ = tokenizer.New("byte")

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
	sum, err := Pretrain(context.Background(), cpu.New(2), byteTok, cfg, RunOptions{Log: zerolog.Nop()})
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
	raw, _ := os.ReadFile(filepath.Join(out, MetricsFile))
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
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
	corpus, _ := data.LoadText(cfg.Data, byteTok, cfg.ValFrac)
	tok, tgt := data.SequentialWindows(corpus.Val, cfg.Seq, cfg.EvalBatches*cfg.Batch)
	v, err := HeldOutLoss(m, tok, tgt, cfg.Batch, cfg.Seq)
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
	sum, err := Pretrain(ctx, cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop()})
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
	raw, err := os.ReadFile(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var recs []T
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
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
	if _, err := Pretrain(context.Background(), cpu.New(2), byteTok, cfg(whole), RunOptions{Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	split := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	_, err := Pretrain(ctx, cpu.New(2), byteTok, cfg(split), RunOptions{Log: zerolog.Nop(), Progress: cancelAt{step: 13, cancel: cancel}})
	if err == nil || !strings.Contains(err.Error(), "interrupted after step 13") {
		t.Fatalf("interrupted run: %v", err)
	}
	if _, err := Pretrain(context.Background(), cpu.New(2), byteTok, cfg(split), RunOptions{Log: zerolog.Nop(), Resume: true}); err != nil {
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

// TestMetricsWriteNaNAsNull: a record holding NaN or infinities is written
// with null in their places, every other field as encoding/json writes it.
func TestMetricsWriteNaNAsNull(t *testing.T) {
	dir := t.TempDir()
	m, err := OpenMetrics(dir, false, 0)
	if err != nil {
		t.Fatal(err)
	}
	v := 0.5
	rec := sftMetrics{stepMetrics: stepMetrics{Step: 3, Loss: math.NaN(), LR: float32(math.Inf(1)), GradNorm: 1.5, ValLoss: &v}}
	if err := m.Write(rec); err != nil {
		t.Fatal(err)
	}
	if err := m.Write(stepMetrics{Step: 4, Loss: 2}); err != nil {
		t.Fatal(err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(dir, MetricsFile))
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("%s: %v", lines[0], err)
	}
	want := map[string]any{"step": 3.0, "loss": nil, "lr": nil, "grad_norm": 1.5, "tokens_per_sec": 0.0, "val_loss": 0.5, "elapsed_sec": 0.0}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("record %s, want %v", lines[0], want)
	}
	if want := `{"step":4,"loss":2,"lr":0,"grad_norm":0,"tokens_per_sec":0,"elapsed_sec":0}`; lines[1] != want {
		t.Errorf("a finite record %s, want %s", lines[1], want)
	}
}

// TestDivergenceStopsBeforeSaving: at a learning rate of 1e6 the weights
// overflow within a few steps; the run stops at the first step whose loss,
// gradient or weights are not finite, names it, and every state it saved
// loads (nothing non-finite was written).
func TestDivergenceStopsBeforeSaving(t *testing.T) {
	out := t.TempDir()
	cfg := PretrainConfig{
		Data:  []string{synthText(t, 3000)},
		Model: model.Config{VocabSize: 258, MaxSeqLen: 16, NLayer: 1, NHead: 2, NEmbd: 16, Tokenizer: "byte"},
		Out:   out, Steps: 50, Batch: 2, Seq: 16, Accum: 1, Optim: DefaultOptim(), Seed: 3, ValFrac: 0.1,
		EvalBatches: 1, LogEvery: 1, SaveEvery: 1,
	}
	cfg.Optim.LR, cfg.Optim.Warmup = 1e6, 0
	_, err := Pretrain(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop()})
	if err == nil || !strings.Contains(err.Error(), "the run diverged") {
		t.Fatalf("a learning rate of 1e6 did not stop the run: %v", err)
	}
	t.Log(err)
	state, err := openState(out)
	if err != nil {
		t.Fatalf("the last saved state: %v", err)
	}
	if _, err := model.LoadHost(state, cfg.Model); err != nil {
		t.Errorf("the last saved state does not load: %v", err)
	}
	if _, err := os.Stat(filepath.Join(out, model.WeightsFile)); err == nil {
		if _, err := model.LoadHost(out, cfg.Model); err != nil {
			t.Errorf("the run's top checkpoint does not load: %v", err)
		}
	}
}

// TestResumeIsHonest: a resumed pretraining run logs the same losses as
// the uninterrupted one even when the interruption falls inside a log
// window; it refuses data that changed since it started unless told to
// allow it; and resuming a finished run changes nothing.
func TestResumeIsHonest(t *testing.T) {
	text := synthText(t, 8000)
	data := text
	cfg := func(out string) PretrainConfig {
		return PretrainConfig{
			Data:  []string{data},
			Model: model.Config{VocabSize: 258, MaxSeqLen: 16, NLayer: 1, NHead: 2, NEmbd: 16, Tokenizer: "byte"},
			Out:   out, Steps: 12, Batch: 2, Seq: 16, Accum: 1, Optim: DefaultOptim(), Seed: 5, ValFrac: 0.1,
			EvalBatches: 1, LogEvery: 4, SaveEvery: 3,
		}
	}
	run := func(ctx context.Context, out string, opt RunOptions) error {
		opt.Log = zerolog.Nop()
		_, err := Pretrain(ctx, cpu.New(1), byteTok, cfg(out), opt)
		return err
	}
	whole, split := t.TempDir(), t.TempDir()
	if err := run(context.Background(), whole, RunOptions{}); err != nil {
		t.Fatal(err)
	}
	// Interrupted after step 7: saved at 7, inside the window of steps 5..8.
	// The data is named relative to the working directory.
	interrupted := func(out string) {
		t.Chdir(filepath.Dir(text))
		data = filepath.Base(text)
		defer func() { data = text }()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		if err := run(ctx, out, RunOptions{Progress: cancelAt{step: 7, cancel: cancel}}); err == nil {
			t.Fatal("the interrupted run ended without an error")
		}
	}
	interrupted(split)
	// A changed data file is refused, and allowed when asked.
	changed := t.TempDir()
	interrupted(changed)
	orig, _ := os.ReadFile(text)
	os.WriteFile(text, append(orig, '!'), 0o644)
	if err := run(context.Background(), split, RunOptions{Resume: true}); err == nil || !strings.Contains(err.Error(), "changed since the run started") {
		t.Errorf("resume on changed data: %v", err)
	}
	if err := run(context.Background(), changed, RunOptions{Resume: true, AllowChangedData: true}); err != nil {
		t.Errorf("resume on changed data with AllowChangedData: %v", err)
	}
	os.WriteFile(text, orig, 0o644)
	// From another working directory: the saved configuration is absolute.
	t.Chdir(t.TempDir())
	if err := run(context.Background(), split, RunOptions{Resume: true}); err != nil {
		t.Fatal(err)
	}
	logged := func(dir string) []string {
		raw, err := os.ReadFile(filepath.Join(dir, MetricsFile))
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
			var r stepMetrics
			json.Unmarshal([]byte(line), &r)
			out = append(out, fmt.Sprint(r.Step, r.Loss, r.GradNorm))
		}
		return out
	}
	if a, b := logged(whole), logged(split); !slices.Equal(a, b) || len(a) != 3 {
		t.Errorf("logged steps: resumed %v, uninterrupted %v", b, a)
	}
	// A finished run: nothing to do, nothing changed.
	before, _ := os.ReadFile(filepath.Join(split, SummaryFile))
	if err := run(context.Background(), split, RunOptions{Resume: true}); !errors.Is(err, ErrFinished) {
		t.Errorf("resuming a finished run: %v", err)
	}
	if after, _ := os.ReadFile(filepath.Join(split, SummaryFile)); string(after) != string(before) {
		t.Error("resuming a finished run rewrote its summary")
	}
}
