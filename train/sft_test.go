package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
)

// writeUpperSFT writes demonstrations of one easy built-in task (upper
// case a word) that a very small model learns in a few dozen steps.
func writeUpperSFT(t *testing.T, n int) string {
	rng := rand.New(rand.NewPCG(3, 3))
	words := []string{"cat", "dog", "sun", "map", "red", "box", "hat", "pen", "cup", "toy", "bee", "jam"}
	var sb strings.Builder
	for i := 0; i < n; i++ {
		w := words[rng.IntN(len(words))] + words[rng.IntN(len(words))]
		rec, _ := json.Marshal(map[string]string{"prompt": "uppercase: " + w + "\n", "completion": strings.ToUpper(w), "task": "upper"})
		sb.Write(append(rec, '\n'))
	}
	path := filepath.Join(t.TempDir(), "sft.jsonl")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func smallSFT(data, out string) SFTConfig {
	cfg := DefaultSFT()
	cfg.Data, cfg.Out = data, out
	cfg.Model = model.Config{VocabSize: 258, MaxSeqLen: 48, NLayer: 2, NHead: 2, NEmbd: 48, Tokenizer: "byte"}
	cfg.MaxLen, cfg.TokenBudget, cfg.MaxBatch = 48, 32*48, 32
	cfg.Steps, cfg.EvalEvery, cfg.EvalPrompts, cfg.MaxNew, cfg.LogEvery, cfg.SaveEvery = 150, 50, 20, 12, 10, 0
	cfg.ValFrac = 0.1
	cfg.Optim.LR, cfg.Optim.Warmup = 3e-3, 10
	return cfg
}

func TestSFTLearnsTaskAndKeepsBest(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	cfg := smallSFT(writeUpperSFT(t, 400), t.TempDir())
	sum, err := SFT(context.Background(), cpu.New(2), tok, cfg, RunOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if sum.TaskScore == nil || *sum.TaskScore < 0.8 {
		t.Fatalf("task score after SFT %v, want ≥ 0.8 on a task this easy", sum.TaskScore)
	}
	if sum.SelectedBy != "task_score" || sum.ValN != 40 || sum.TrainN != 360 {
		t.Errorf("summary %+v", sum)
	}
	// The checkpoint at the top of the run is the best one: evaluating it
	// again on the same prompts gives the recorded score.
	m, err := model.Load(cpu.New(2), cfg.Out, model.Options{MaxBatch: 32, MaxSeq: 48})
	if err != nil {
		t.Fatal(err)
	}
	examples, _, _ := readSFTForTest(cfg.Data)
	_, val := splitHoldout(examples, cfg.ValFrac, cfg.Seed)
	ev, err := EvalTasks(m, tok, taskPrompts(val, cfg.EvalPrompts), EvalOptions{MaxNew: cfg.MaxNew})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Score != *sum.TaskScore {
		t.Errorf("reloaded best checkpoint scores %v, the run recorded %v", ev.Score, *sum.TaskScore)
	}
	// Prompt tokens carry no loss: the recorded validation loss is over
	// completion tokens only, so it is far below a loss that includes the
	// (unpredictable) random words of the prompts.
	if sum.BestValLoss > 1 {
		t.Errorf("completion-only validation loss %v", sum.BestValLoss)
	}
}

func TestSFTResumeIsExact(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	data := writeUpperSFT(t, 200)
	cfg := func(out string) SFTConfig {
		c := smallSFT(data, out)
		c.Steps, c.EvalEvery, c.LogEvery, c.SaveEvery, c.EvalPrompts = 30, 0, 1, 7, 4
		c.Model.Dropout, c.Accum = 0.2, 2
		return c
	}
	whole, split := t.TempDir(), t.TempDir()
	if _, err := SFT(context.Background(), cpu.New(2), tok, cfg(whole), RunOptions{Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if _, err := SFT(ctx, cpu.New(2), tok, cfg(split), RunOptions{Log: zerolog.Nop(), Progress: cancelAt{step: 17, cancel: cancel}}); err == nil {
		t.Fatal("interrupted run returned no error")
	}
	if _, err := SFT(context.Background(), cpu.New(2), tok, cfg(split), RunOptions{Log: zerolog.Nop(), Resume: true}); err != nil {
		t.Fatal(err)
	}
	a, b := readLosses(t, whole), readLosses(t, split)
	if fmt.Sprint(a) != fmt.Sprint(b) || len(a) != 30 {
		t.Fatalf("resumed losses differ:\n%v\n%v", a, b)
	}
}

func readSFTForTest(path string) ([]data.SFTExample, data.ReadStats, error) {
	return data.ReadSFT(path, data.ReadOptions{})
}
