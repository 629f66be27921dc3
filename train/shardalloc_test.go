package train

import (
	"context"
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train/data"
)

// countingBackend counts the float32 elements a run allocates.
type countingBackend struct {
	gpu.Backend
	elems int64
}

func (b *countingBackend) Alloc(dtype gpu.DType, shape ...int) (*gpu.Tensor, error) {
	t, err := b.Backend.Alloc(dtype, shape...)
	if err == nil {
		b.elems += int64(t.Len())
	}
	return t, err
}

// pairOfRanks is rank 0 of a made-up pair whose other rank mirrors it:
// enough for a run to size and train its models as a rank does.
func pairOfRanks() gpu.Comm { return twoRanks{other: func(x []float64) []float64 { return x }} }

// allocated runs one step of a method on a counting backend and returns
// the elements it allocated.
func allocated(t *testing.T, run func(b gpu.Backend, out string, opt RunOptions) error, comm gpu.Comm) int64 {
	t.Helper()
	b := &countingBackend{Backend: cpu.New(1)}
	if err := run(b, filepath.Join(t.TempDir(), "run"), RunOptions{Log: zerolog.Nop(), Comm: comm}); err != nil {
		t.Fatal(err)
	}
	return b.elems
}

// TestRanksAllocateTheirShard: a rank of 2 sizes its models for its shard
// of the global batch (⌈B/2⌉ rows), so pretraining, SFT, the reward model
// and DPO allocate less on it than in one process, by about half the
// activations (the weights and the optimizer state stay whole).
func TestRanksAllocateTheirShard(t *testing.T) {
	text := synthText(t, 4000)
	sft := writeUpperSFT(t, 40)
	rmData, _ := writeLengthRM(t, 60)
	init, lmInit := writeInit(t), writeInitWith(t, dpoLMConfig())
	cases := map[string]func(b gpu.Backend, out string, opt RunOptions) error{
		"pretrain": func(b gpu.Backend, out string, opt RunOptions) error {
			cfg := distPretrainConfigFor(text, out)
			cfg.Steps, cfg.Batch = 1, 8
			_, err := Pretrain(context.Background(), b, byteTok, cfg, opt)
			return err
		},
		"sft": func(b gpu.Backend, out string, opt RunOptions) error {
			cfg := smallSFT(sft, out)
			cfg.Steps, cfg.EvalPrompts, cfg.MaxBatch = 1, 0, 8
			_, err := SFT(context.Background(), b, byteTok, cfg, opt)
			return err
		},
		"rm": func(b gpu.Backend, out string, opt RunOptions) error {
			cfg := smallRM(rmData, init, out)
			cfg.Steps, cfg.Epochs, cfg.Batch = 1, 0, 6
			_, err := RM(context.Background(), b, byteTok, cfg, opt)
			return err
		},
		"dpo": func(b gpu.Backend, out string, opt RunOptions) error {
			cfg := smallDPO(rmData, lmInit, out)
			cfg.Steps, cfg.Epochs, cfg.Batch, cfg.EvalPrompts = 1, 0, 6, 0
			_, err := DPO(context.Background(), b, byteTok, cfg, opt)
			return err
		},
	}
	for name, run := range cases {
		one, two := allocated(t, run, nil), allocated(t, run, pairOfRanks())
		if !(two < one) {
			t.Errorf("%s: a rank of 2 allocates %d elements, one process %d", name, two, one)
		}
		t.Logf("%s: %d elements in one process, %d on a rank of 2", name, one, two)
	}
}

// distPretrainConfigFor is a small pretraining run (the mpi tests' shape).
func distPretrainConfigFor(text, out string) PretrainConfig {
	return PretrainConfig{
		Data:  []string{text},
		Model: model.Config{VocabSize: 258, MaxSeqLen: 32, NLayer: 2, NHead: 2, NEmbd: 16, Tokenizer: "byte"},
		Out:   out, Steps: 12, Batch: 5, Seq: 32, Accum: 2,
		Optim: DefaultOptim(), Seed: 7, ValFrac: 0.1, EvalBatches: 1, LogEvery: 1, SaveEvery: 4,
	}
}

// TestEvaluationInPieces: rank 0's evaluations, run through a model sized
// for a shard in pieces of its MaxBatch, give what one pass over the whole
// batch gives: the held-out loss, SFT's validation loss and the reward
// model's scores. A row's outputs do not depend on the other rows in exact
// arithmetic; the cpu backend's kernels may still round a row differently
// in a batch of another size (measured: the scalar head, 1 ulp on 2 of 15
// rewards), so they agree to evalPieceTol relative.
func TestEvaluationInPieces(t *testing.T) {
	const evalPieceTol = 1e-6
	b := cpu.New(1)
	lmCfg := model.Config{VocabSize: 258, MaxSeqLen: 24, NLayer: 2, NHead: 2, NEmbd: 16, Tokenizer: "byte"}
	rmCfg := lmCfg
	rmCfg.ScalarHead = true
	pair := func(c model.Config) (whole, piece *model.Model) {
		host := noisyParams(c, 3)
		for i, rows := range []int{7, 2} {
			m, err := model.New(b, c, model.Options{MaxBatch: rows, MaxSeq: c.MaxSeqLen})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.SetParams(host); err != nil {
				t.Fatal(err)
			}
			if i == 0 {
				whole = m
			} else {
				piece = m
			}
		}
		return whole, piece
	}
	rng := rand.New(rand.NewPCG(4, 5))
	ids := func(n int) []int32 {
		s := make([]int32, n)
		for i := range s {
			s[i] = int32(rng.IntN(256))
		}
		return s
	}

	whole, piece := pair(lmCfg)
	var windows, targets [][]int32
	for range 11 {
		w := ids(lmCfg.MaxSeqLen + 1)
		windows, targets = append(windows, w[:lmCfg.MaxSeqLen]), append(targets, w[1:])
	}
	a, err := HeldOutLoss(whole, windows, targets, 7, lmCfg.MaxSeqLen)
	if err != nil {
		t.Fatal(err)
	}
	c, err := HeldOutLoss(piece, windows, targets, 7, lmCfg.MaxSeqLen)
	if err != nil {
		t.Fatal(err)
	}
	if !closeRel(a, c, evalPieceTol) {
		t.Errorf("held-out loss %v in pieces of 2, %v in batches of 7", c, a)
	}

	var ex []data.SFTTokens
	for range 13 {
		p := 1 + rng.IntN(8)
		ex = append(ex, data.SFTTokens{Tokens: ids(p + 1 + rng.IntN(12)), PromptLen: p})
	}
	a, err = sftValLoss(whole, ex, 257, 7*lmCfg.MaxSeqLen, 7)
	if err != nil {
		t.Fatal(err)
	}
	c, err = sftValLoss(piece, ex, 257, 7*lmCfg.MaxSeqLen, 7)
	if err != nil {
		t.Fatal(err)
	}
	if !closeRel(a, c, evalPieceTol) || a == 0 {
		t.Errorf("SFT validation loss %v in pieces of 2, %v in batches of 7", c, a)
	}

	whole, piece = pair(rmCfg)
	var seqs [][]int32
	for range 15 {
		seqs = append(seqs, ids(1+rng.IntN(lmCfg.MaxSeqLen)))
	}
	ra, err := scoreSequences(whole, seqs, 257, 7*lmCfg.MaxSeqLen, 7)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := scoreSequences(piece, seqs, 257, 7*lmCfg.MaxSeqLen, 7)
	if err != nil {
		t.Fatal(err)
	}
	for i := range ra {
		if !closeRel(ra[i], rc[i], evalPieceTol) {
			t.Errorf("sequence %d: reward %v in pieces of 2, %v in batches of 7", i, rc[i], ra[i])
		}
	}
}

// closeRel reports |a−b| ≤ tol·max(|a|, |b|).
func closeRel(a, b, tol float64) bool {
	return math.Abs(a-b) <= tol*math.Max(math.Abs(a), math.Abs(b))
}

// TestRLRanksAllocateTheirShard: a rank of 2 sizes PPO's four models and
// GRPO's and RLOO's policy, reference and reward model for its shard of a
// minibatch (⌈9/2⌉ = 5 rows of 9), so they allocate less than in one
// process, where they hold a whole minibatch; the sampling's seed groups
// stay a whole minibatch's (rolloutSampling.seedGroup), which the
// data-parallel tests check by comparing with one process.
func TestRLRanksAllocateTheirShard(t *testing.T) {
	prompts, policy, reward := writePPOFixture(t)
	const mb, shard = 9, 5
	ppo := func(comm gpu.Comm) (int64, []*model.Model) {
		b := &countingBackend{Backend: cpu.New(1)}
		cfg := DefaultPPO()
		cfg.Policy, cfg.Reward, cfg.Episodes, cfg.MiniBatch = policy, reward, 2*mb, mb
		ms, err := loadPPOModels(b, cfg, 24, RunOptions{Log: zerolog.Nop(), Comm: comm})
		if err != nil {
			t.Fatal(err)
		}
		return b.elems, []*model.Model{ms.policy, ms.ref, ms.value, ms.reward}
	}
	group := func(comm gpu.Comm) (int64, []*model.Model) {
		b := &countingBackend{Backend: cpu.New(1)}
		cfg := smallGroup(DefaultGRPO(), prompts, policy, reward, t.TempDir())
		cfg.PromptsPerIter, cfg.Group, cfg.MiniBatch = 6, 3, mb
		g, err := newGroupTrainer(b, byteTok, cfg, RunOptions{Log: zerolog.Nop(), Comm: comm})
		if err != nil {
			t.Fatal(err)
		}
		return b.elems, []*model.Model{g.policy.m, g.ref, g.rm}
	}
	for name, load := range map[string]func(gpu.Comm) (int64, []*model.Model){"ppo": ppo, "grpo/rloo": group} {
		one, whole := load(nil)
		two, parts := load(pairOfRanks())
		for i := range whole {
			if whole[i].MaxBatch() != mb || parts[i].MaxBatch() != shard {
				t.Errorf("%s: model %d holds %d rows in one process, %d on a rank of 2; want %d and %d", name, i, whole[i].MaxBatch(), parts[i].MaxBatch(), mb, shard)
			}
		}
		if !(two < one) {
			t.Errorf("%s: a rank of 2 allocates %d elements, one process %d", name, two, one)
		}
		t.Logf("%s: %d elements in one process, %d on a rank of 2", name, one, two)
	}
}
