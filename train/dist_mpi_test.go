//go:build mpi

package train

import (
	"context"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/gpu/mpi"
	"github.com/instructgo/instructgo/internal/mpitest"
	"github.com/instructgo/instructgo/model"
)

// The data-parallel tests run each method twice on the same global
// batches: in this process, and as 2 ranks under mpirun, each with one
// cpu thread. The ranks' runs must give the one process's losses and
// weights to float32 rounding: splitting a batch changes only the order in
// which the per-row gradient terms are added (within each rank, then the
// all-reduce of the two partial sums), an error of a few float32 ulps of
// each gradient element per step. The losses then agree to distTol
// relative (measured: about 1e-7 over 8 to 12 steps). The weights agree
// to distWeightTol in relative L2 norm, not element by element: where an
// element's gradient is zero in exact arithmetic but not in float32 (the
// reward head's component along a constant feature, whose terms cancel
// because each prompt's reward gradients sum to zero), AdamW's division
// by √v turns the rounding noise, whatever its order, into steps of up to
// lr, so such an element differs by up to lr·steps between any two
// summation orders (measured: 9e-5 on one head weight, 9e-6 relative L2).
const (
	distTol       = 1e-5
	distWeightTol = 1e-4
)

// distEnv carries the fixture (file paths, the output directory) to the ranks.
const distEnv = "INSTRUCTGO_DIST_TEST"

type distFixture struct {
	Files map[string]string `json:"files"`
	Out   string            `json:"out"`
	// KillAt, when positive, makes rank 1 kill itself at that all-reduce.
	KillAt int  `json:"kill_at"`
	Resume bool `json:"resume"`
}

// distScenario is a method run on fixture files into out with comm.
type distScenario func(fx distFixture, comm gpu.Comm) error

// runDist runs the scenario as the calling test: in the test process it
// returns false after running mpirun -np 2 (failing the test when the
// job fails); in a rank it runs the scenario and returns true.
func runDist(t *testing.T, fx distFixture, run distScenario) bool {
	t.Helper()
	if !mpitest.InRank() {
		raw, _ := json.Marshal(fx)
		mpitest.Ranks(t, 2, 3*time.Minute, distEnv+"="+string(raw))
		return false
	}
	if err := json.Unmarshal([]byte(os.Getenv(distEnv)), &fx); err != nil {
		t.Fatal(err)
	}
	comm := openTestComm(t, fx.KillAt)
	if err := run(fx, comm); err != nil {
		t.Fatalf("rank %d: %v", comm.Rank(), err)
	}
	return true
}

func openTestComm(t *testing.T, killAt int) gpu.Comm {
	t.Helper()
	c, err := mpi.Open(cpu.New(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if killAt > 0 && c.Rank() == 1 {
		return &killingComm{Comm: c, at: killAt}
	}
	return c
}

// killingComm kills its process with SIGKILL at its at-th all-reduce, as
// a crashed or OOM-killed rank dies.
type killingComm struct {
	gpu.Comm
	n, at int
}

func (k *killingComm) AllReduceSum(t *gpu.Tensor) error {
	k.count()
	return k.Comm.AllReduceSum(t)
}

// StartAllReduceSum keeps the engine's overlap (every rank must sum the
// gradients alike) and counts the started all-reduce of a buffer's first
// range only: one per step, as the blocking all-reduce of the whole
// gradient buffer, so that at names the same step either way.
func (k *killingComm) StartAllReduceSum(t *gpu.Tensor) (gpu.Pending, error) {
	if t.Offset() == 0 {
		k.count()
	}
	return k.Comm.(gpu.AsyncAllReducer).StartAllReduceSum(t)
}

func (k *killingComm) count() {
	if k.n++; k.n == k.at {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
}

// compareRuns checks that the data-parallel run in two has one's losses
// (every step, metrics.jsonl) and final weights.
func compareRuns(t *testing.T, one, two string, steps int) {
	t.Helper()
	a, b := readLosses(t, one), readLosses(t, two)
	if len(a) != steps || len(b) != steps {
		t.Fatalf("%d and %d loss records, want %d", len(a), len(b), steps)
	}
	worst := 0.0
	for i := range a {
		rel := math.Abs(a[i]-b[i]) / math.Abs(a[i])
		worst = max(worst, rel)
		if rel > distTol {
			t.Errorf("step %d: loss %v on 2 ranks, %v in one process (relative %.2g > %g)", i+1, b[i], a[i], rel, distTol)
		}
	}
	wa, wb := readCheckpoint(t, one), readCheckpoint(t, two)
	diff, at, d2, n2 := 0.0, 0, 0.0, 0.0
	for i := range wa {
		d := math.Abs(float64(wa[i] - wb[i]))
		if d > diff {
			diff, at = d, i
		}
		d2 += d * d
		n2 += float64(wa[i]) * float64(wa[i])
	}
	if rel := math.Sqrt(d2 / n2); !(rel <= distWeightTol) {
		t.Errorf("final weights differ by %.3g relative L2 (> %g), most at %d of %d: %v vs %v", rel, distWeightTol, at, len(wa), wa[at], wb[at])
	}
	t.Logf("%d steps: losses agree to %.2g relative, weights to %.2g relative L2 (at most %.2g)", steps, worst, math.Sqrt(d2/n2), diff)
}

func readCheckpoint(t *testing.T, dir string) []float32 {
	t.Helper()
	cfg, err := model.ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	w, err := model.LoadHost(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func distPretrainConfig(text, out string) PretrainConfig {
	return PretrainConfig{
		Data:  []string{text},
		Model: model.Config{VocabSize: 258, MaxSeqLen: 32, NLayer: 2, NHead: 2, NEmbd: 16, Tokenizer: "byte"},
		Out:   out, Steps: 12, Batch: 5, Seq: 32, Accum: 2, // 5 rows: shards of 2 and 3
		Optim: DefaultOptim(), Seed: 7, ValFrac: 0.1, EvalBatches: 1, LogEvery: 1, SaveEvery: 4,
	}
}

func distPretrain(fx distFixture, comm gpu.Comm) error {
	_, err := Pretrain(context.Background(), cpu.New(1), byteTok, distPretrainConfig(fx.Files["text"], fx.Out),
		RunOptions{Log: zerolog.Nop(), Comm: comm, Resume: fx.Resume})
	return err
}

// TestDataParallelPretrain: 2 ranks give one process's losses and weights
// on batches of 5 sequences (shards of 2 and 3) with accumulation.
func TestDataParallelPretrain(t *testing.T) {
	fx := distFixture{Files: map[string]string{}}
	if !mpitest.InRank() {
		fx.Files["text"] = synthText(t, 20000)
		one := t.TempDir()
		if err := distPretrain(distFixture{Files: fx.Files, Out: one}, nil); err != nil {
			t.Fatal(err)
		}
		fx.Out = t.TempDir()
		runDist(t, fx, distPretrain)
		compareRuns(t, one, fx.Out, 12)
		return
	}
	runDist(t, fx, distPretrain)
}

func distSFT(fx distFixture, comm gpu.Comm) error {
	cfg := smallSFT(fx.Files["sft"], fx.Out)
	cfg.Steps, cfg.EvalEvery, cfg.EvalPrompts, cfg.LogEvery, cfg.MaxBatch, cfg.Accum = 8, 4, 0, 1, 7, 2
	_, err := SFT(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop(), Comm: comm})
	return err
}

// TestDataParallelSFT: on SFT's padded batches (completion tokens only
// carry the loss, so the ranks' shards hold unequal target counts) 2
// ranks give one process's losses and weights.
func TestDataParallelSFT(t *testing.T) {
	fx := distFixture{Files: map[string]string{}}
	if !mpitest.InRank() {
		fx.Files["sft"] = writeUpperSFT(t, 120)
		one := t.TempDir()
		if err := distSFT(distFixture{Files: fx.Files, Out: one}, nil); err != nil {
			t.Fatal(err)
		}
		fx.Out = t.TempDir()
		runDist(t, fx, distSFT)
		compareRuns(t, one, fx.Out, 8)
		return
	}
	runDist(t, fx, distSFT)
}

func distRM(fx distFixture, comm gpu.Comm) error {
	cfg := smallRM(fx.Files["rm"], fx.Files["init"], fx.Out)
	cfg.CenterData = fx.Files["sft"]
	cfg.Batch, cfg.Epochs, cfg.Steps, cfg.LogEvery, cfg.EvalEvery = 9, 0, 8, 1, 4
	_, err := RM(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop(), Comm: comm})
	return err
}

// TestDataParallelRM: the reward model's K-way loss on 9 prompts a step
// (shards of 4 and 5) on 2 ranks gives one process's losses and weights.
func TestDataParallelRM(t *testing.T) {
	fx := distFixture{Files: map[string]string{}}
	if !mpitest.InRank() {
		fx.Files["rm"], fx.Files["sft"] = writeLengthRM(t, 200)
		fx.Files["init"] = writeInit(t)
		one := t.TempDir()
		if err := distRM(distFixture{Files: fx.Files, Out: one}, nil); err != nil {
			t.Fatal(err)
		}
		fx.Out = t.TempDir()
		runDist(t, fx, distRM)
		compareRuns(t, one, fx.Out, 8)
		return
	}
	runDist(t, fx, distRM)
}

// TestDataParallelRankKilled: rank 1 dies (SIGKILL) in step 7 of a
// pretraining run that saves every 4 steps. mpirun must end the job
// within a minute with an error naming rank 1; the saved state of step 4
// is intact, and resuming it on 2 ranks finishes with one process's
// losses and weights.
func TestDataParallelRankKilled(t *testing.T) {
	fx := distFixture{Files: map[string]string{}}
	if mpitest.InRank() {
		runDist(t, fx, distPretrain)
		return
	}
	fx.Files["text"] = synthText(t, 20000)
	one := t.TempDir()
	if err := distPretrain(distFixture{Files: fx.Files, Out: one}, nil); err != nil {
		t.Fatal(err)
	}
	fx.Out = t.TempDir()
	killRank1(t, &fx, 7, 4)
	if got := readLosses(t, fx.Out); len(got) != 6 {
		t.Errorf("%d loss records after the kill in step 7, want 6", len(got))
	}
	runDist(t, fx, distPretrain)
	compareRuns(t, one, fx.Out, 12)
}

// killRank1 runs the fixture's job on 2 ranks with rank 1 killed at its
// killAt-th all-reduce: mpirun must end the job within a minute with an
// error naming rank 1, and the saved state must be that of step saved.
// It leaves fx set to resume the run.
func killRank1(t *testing.T, fx *distFixture, killAt, saved int) {
	t.Helper()
	fx.KillAt = killAt
	raw, _ := json.Marshal(fx)
	start := time.Now()
	out, err := mpitest.Run(t, 2, time.Minute, distEnv+"="+string(raw))
	if err == nil {
		t.Fatalf("the job with a killed rank succeeded:\n%s", out)
	}
	if !strings.Contains(string(out), "rank 1") {
		t.Errorf("the job's output does not name rank 1:\n%s", out)
	}
	t.Logf("the job ended %.1fs after it started: %v", time.Since(start).Seconds(), err)
	if st, err := loadStateStep(fx.Out); err != nil || st != saved {
		t.Fatalf("saved state: step %d, %v; want step %d", st, err, saved)
	}
	fx.KillAt, fx.Resume = 0, true
}

// loadStateStep is the step of dir's saved resume state.
func loadStateStep(dir string) (int, error) {
	rd, err := openState(dir)
	if err != nil {
		return 0, err
	}
	var st TrainerState
	if err := readJSONState(filepath.Join(rd, TrainerStateFile), &st); err != nil {
		return 0, err
	}
	return st.Step, nil
}
