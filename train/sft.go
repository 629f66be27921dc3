package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
	"github.com/rs/zerolog"
)

// SFTConfig is a supervised fine-tuning run: next-token loss on the
// completions of demonstrations (prompt tokens carry no loss).
type SFTConfig struct {
	Data         string       `json:"data"`
	ValFrac      float64      `json:"val_frac"`       // share of the examples held out for validation
	Init         string       `json:"init,omitempty"` // checkpoint to start from; empty: a fresh Model
	Model        model.Config `json:"model"`
	Out          string       `json:"out"`
	Epochs       float64      `json:"epochs"`       // the paper's 16; used when Steps is 0
	Steps        int          `json:"steps"`        // optimizer steps; 0: from Epochs
	TokenBudget  int          `json:"token_budget"` // padded tokens (B·T) per micro-batch
	MaxBatch     int          `json:"max_batch"`    // sequences per micro-batch
	MaxLen       int          `json:"max_len"`      // tokens per sequence; longer examples are truncated
	Accum        int          `json:"grad_accum"`
	Optim        OptimConfig  `json:"optim"`
	Seed         uint64       `json:"seed"`
	EvalEvery    int          `json:"eval_every"`   // steps between validations; 0: only at the end
	EvalPrompts  int          `json:"eval_prompts"` // validation prompts generated for the task score
	MaxNew       int          `json:"max_new"`      // tokens generated per validation prompt
	LogEvery     int          `json:"log_every"`
	SaveEvery    int          `json:"save_every"`
	SkipBadLines bool         `json:"skip_bad_lines"`
}

// DefaultSFT is the paper's recipe scaled to the built-in tasks on a CPU:
// cosine decay, residual dropout 0.2, and validation-based selection.
func DefaultSFT() SFTConfig {
	o := DefaultOptim()
	o.LR, o.Warmup = 1e-3, 20
	return SFTConfig{
		ValFrac: 0.05, Epochs: 16, TokenBudget: 4096, MaxBatch: 64, MaxLen: 128, Accum: 1,
		Optim: o, Seed: 1, EvalEvery: 100, EvalPrompts: 100, MaxNew: 32, LogEvery: 10, SaveEvery: 100,
	}
}

// Validate reports a configuration that cannot run.
func (c *SFTConfig) Validate() error {
	switch {
	case c.Data == "":
		return fmt.Errorf("no training data")
	case c.Out == "":
		return fmt.Errorf("no output directory")
	case c.ValFrac <= 0 || c.ValFrac >= 1:
		return fmt.Errorf("validation fraction %g must be in (0, 1)", c.ValFrac)
	case c.Steps < 0 || (c.Steps == 0 && !(c.Epochs > 0)):
		return fmt.Errorf("give a positive number of steps or epochs")
	case c.MaxLen < 2 || c.MaxLen > c.Model.MaxSeqLen:
		return fmt.Errorf("max length %d must be in 2..%d (the model's context)", c.MaxLen, c.Model.MaxSeqLen)
	case c.MaxBatch <= 0 || c.TokenBudget < c.MaxLen:
		return fmt.Errorf("max batch %d must be positive and the token budget %d at least the max length %d", c.MaxBatch, c.TokenBudget, c.MaxLen)
	case c.Accum <= 0 || c.LogEvery <= 0 || c.EvalEvery < 0 || c.SaveEvery < 0:
		return fmt.Errorf("accumulation and log interval must be positive, eval and save intervals not negative")
	case c.EvalPrompts < 0 || c.MaxNew <= 0:
		return fmt.Errorf("eval prompts %d must not be negative and max new tokens %d positive", c.EvalPrompts, c.MaxNew)
	}
	if err := c.Optim.Validate(); err != nil {
		return err
	}
	return c.Model.Validate()
}

// SFTSummary is what summary.json records.
type SFTSummary struct {
	Steps        int                `json:"steps"`
	Epochs       float64            `json:"epochs"`
	Tokens       int64              `json:"tokens"`
	Seconds      float64            `json:"seconds"`
	TokensPerSec float64            `json:"tokens_per_sec"`
	TrainLoss    float64            `json:"train_loss"`
	BestStep     int                `json:"best_step"`
	BestValLoss  float64            `json:"best_val_loss"`
	TaskScore    *float64           `json:"task_score,omitempty"` // of the selected (best) model
	PerTask      map[string]float64 `json:"per_task,omitempty"`
	SelectedBy   string             `json:"selected_by"` // "task_score" or "val_loss"
	TrainN       int                `json:"train_examples"`
	ValN         int                `json:"val_examples"`
	Truncation   data.TruncStats    `json:"truncation"`
	SkippedLines int                `json:"skipped_lines"`
	Interrupted  bool               `json:"interrupted"`
}

// sftMetrics is one line of an SFT run's metrics.jsonl.
type sftMetrics struct {
	stepMetrics
	TaskScore *float64 `json:"task_score,omitempty"`
}

// SFT fine-tunes a model on demonstrations and leaves the best checkpoint
// by validation (task score when the data names built-in tasks, else loss)
// in cfg.Out. Resumable like Pretrain.
func SFT(ctx context.Context, b gpu.Backend, tok tokenizer.Tokenizer, cfg SFTConfig, opt RunOptions) (*SFTSummary, error) {
	log := opt.Log
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	cfg.Data, cfg.Init, cfg.Out = absPath(cfg.Data), absPath(cfg.Init), absPath(cfg.Out)
	if tok.VocabSize() > cfg.Model.VocabSize {
		return nil, fmt.Errorf("sft: tokenizer vocabulary %d exceeds the model's %d", tok.VocabSize(), cfg.Model.VocabSize)
	}
	d, err := readSFTData(cfg, tok, log)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	trainTok, valTok, valEx, trunc := d.trainTok, d.valTok, d.valEx, d.trunc
	batcher, err := data.NewSFTBatcher(trainTok, tok.Pad(), data.BatchOptions{TokenBudget: cfg.TokenBudget, MaxBatch: cfg.MaxBatch, Seed: cfg.Seed})
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	perEpoch := batcher.EpochBatches(0)
	if cfg.Steps == 0 {
		cfg.Steps = int(math.Ceil(cfg.Epochs * float64(perEpoch) / float64(cfg.Accum)))
	}

	m, err := model.New(b, cfg.Model, opt.models(shardCap(opt.Comm, cfg.MaxBatch), cfg.MaxLen, true))
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	lm, err := NewLMStep(m, cfg.Optim, cfg.Steps, cfg.Accum, cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	lm.distribute(opt.Comm)
	s := &sftTrainer{
		cfg: cfg, saveDType: opt.SaveDType, lm: lm, tok: tok, batcher: batcher, valTok: valTok, valPrompts: taskPrompts(valEx, cfg.EvalPrompts),
		sum: &SFTSummary{TrainN: len(trainTok), ValN: len(valTok), Truncation: trunc, SkippedLines: d.skipped, SelectedBy: "val_loss"},
	}
	if len(s.valPrompts) > 0 {
		s.sum.SelectedBy = "task_score"
	}
	l, err := openLoop(loopSpec{
		name: "sft", tok: tok, unit: "step", dir: cfg.Out, steps: cfg.Steps,
		logEvery: cfg.LogEvery, evalEvery: cfg.EvalEvery, saveEvery: cfg.SaveEvery,
		resume: opt.Resume, config: cfg, parts: []savedPart{lm.t.part("", "model", 1)}, inputs: []string{cfg.Data}, checkpoints: []string{cfg.Init},
		initial: func() ([]float32, error) { return initialLM(cfg.Model, cfg.Init, cfg.Seed, opt.load()) },
	}, s, opt)
	if err != nil {
		return nil, fmt.Errorf("sft: %w", err)
	}
	log.Info().Int("train", len(trainTok)).Int("val", len(valTok)).Int("steps", cfg.Steps).Int("batches_per_epoch", perEpoch).
		Int("params", cfg.Model.NumParams()).Str("backend", b.Name()).Msg("supervised fine-tuning")
	if err := l.run(ctx, s); err != nil {
		l.close()
		return nil, err
	}
	if !l.primary() {
		return s.sum, l.finish(ctx, s.sum)
	}
	if s.best.Step == 0 { // interrupted before any validation: keep the latest
		if err := model.SaveAs(cfg.Out, m, opt.SaveDType); err != nil {
			l.close()
			return nil, fmt.Errorf("sft: %w", err)
		}
	}
	sum := s.sum
	sum.BestStep, sum.BestValLoss, sum.TaskScore, sum.PerTask = s.best.Step, s.best.ValLoss, s.best.TaskScore, s.best.PerTask
	sum.Steps, sum.Tokens, sum.Seconds, sum.TokensPerSec, sum.Interrupted = l.st.Step, l.st.Tokens, l.st.Seconds, l.tokensPerSec(), l.interrupted
	sum.Epochs = float64(l.st.Step*cfg.Accum) / float64(perEpoch)
	ev := log.Info().Str("dir", cfg.Out).Int("best_step", sum.BestStep).Float64("best_val_loss", round4(sum.BestValLoss))
	if sum.TaskScore != nil {
		ev = ev.Float64("task_score", round4(*sum.TaskScore))
	}
	ev.Msg("best checkpoint saved")
	return sum, l.finish(ctx, sum)
}

// sftData are an SFT run's examples: the validation ones (for task
// prompts) and both parts tokenised.
type sftData struct {
	valEx            []data.SFTExample
	trainTok, valTok []data.SFTTokens
	trunc            data.TruncStats
	skipped          int
}

// readSFTData reads cfg.Data with its conversations rendered for tok
// (data.ReadOptions.ChatFor), holds out the validation examples and
// tokenises both parts to cfg.MaxLen, logging skipped lines and
// truncation.
func readSFTData(cfg SFTConfig, tok tokenizer.Tokenizer, log zerolog.Logger) (sftData, error) {
	examples, stats, err := data.ReadSFT(cfg.Data, data.ReadOptions{SkipBadLines: cfg.SkipBadLines}.ChatFor(tok))
	if err != nil {
		return sftData{}, err
	}
	if stats.Skipped > 0 {
		log.Warn().Int("skipped", stats.Skipped).Strs("first", stats.Errors).Msg("bad lines skipped")
	}
	trainEx, valEx := splitHoldout(examples, cfg.ValFrac, cfg.Seed)
	if len(trainEx) == 0 || len(valEx) == 0 {
		return sftData{}, fmt.Errorf("%d examples are too few to hold out %.0f%% for validation", len(examples), 100*cfg.ValFrac)
	}
	d := sftData{valEx: valEx, skipped: stats.Skipped}
	d.trainTok, d.trunc = data.TokenizeSFT(trainEx, tok, cfg.MaxLen)
	d.valTok, _ = data.TokenizeSFT(valEx, tok, cfg.MaxLen)
	if d.trunc.Dropped > 0 || d.trunc.PromptTruncated > 0 || d.trunc.CompletionTruncated > 0 {
		log.Warn().Str("truncation", d.trunc.String()).Int("max_len", cfg.MaxLen).Msg("long examples truncated (prompt from the left, completion from the right)")
	}
	if len(d.trainTok) == 0 || len(d.valTok) == 0 {
		return sftData{}, fmt.Errorf("no example fits in %d tokens", cfg.MaxLen)
	}
	return d, nil
}

// sftTrainer is SFT as the loop driver runs it: steps of the next-token
// loss on the completions, validation (loss and, for built-in tasks, the
// task score of greedy answers) that keeps the best model at the top of
// the run directory.
type sftTrainer struct {
	cfg        SFTConfig
	saveDType  string
	lm         *LMStep
	tok        tokenizer.Tokenizer
	batcher    *data.SFTBatcher
	valTok     []data.SFTTokens
	valPrompts []TaskPrompt
	best       sftBest
	sum        *SFTSummary
}

// sftBest is the best validation so far, part of the resume state so that
// a resumed run's summary still describes the model it kept.
type sftBest struct {
	Score     float64            `json:"best_score"` // the task score, or minus the loss
	Step      int                `json:"best_step"`
	ValLoss   float64            `json:"best_val_loss"`
	TaskScore *float64           `json:"best_task_score,omitempty"`
	PerTask   map[string]float64 `json:"best_per_task,omitempty"`
}

// sftState is SFT's position in the resume state.
type sftState struct {
	dataPosition
	sftBest
}

func (s *sftTrainer) step(step int) (stepResult, error) {
	loss, tokens, err := s.lm.Run(step, func() (*model.Batch, error) { return &s.batcher.Next().Batch, nil })
	if err != nil {
		return stepResult{}, err
	}
	health, err := s.lm.Health()
	return stepResult{loss: loss, tokens: tokens, finite: health}, err
}

func (s *sftTrainer) record(l *loop, step int, eval bool, w *lossWindow, ev *zerolog.Event) (any, *zerolog.Event, error) {
	base, ev, err := lmRecord(l, step, w, s.lm, ev)
	if err != nil {
		return nil, nil, err
	}
	rec := sftMetrics{stepMetrics: base}
	if eval {
		if err := s.validate(step, &rec); err != nil {
			return nil, nil, fmt.Errorf("validation: %w", err)
		}
		ev = ev.Float64("val_loss", round4(*rec.ValLoss))
		if rec.TaskScore != nil {
			ev = ev.Float64("task_score", round4(*rec.TaskScore)).Int("best_step", s.best.Step)
		}
	}
	s.sum.TrainLoss = rec.Loss
	return rec, ev, nil
}

// validate computes the validation loss and, for built-in tasks, the task
// score, and keeps the best model at the top of the run directory.
func (s *sftTrainer) validate(step int, rec *sftMetrics) error {
	m := s.lm.t.m
	vl, err := sftValLoss(m, s.valTok, s.tok.Pad(), s.cfg.TokenBudget, s.cfg.MaxBatch)
	if err != nil {
		return err
	}
	rec.ValLoss = &vl
	score := -vl
	var ev TaskEval
	if len(s.valPrompts) > 0 {
		if ev, err = EvalTasks(m, s.tok, s.valPrompts, EvalOptions{MaxNew: s.cfg.MaxNew}); err != nil {
			return err
		}
		rec.TaskScore = &ev.Score
		score = ev.Score
	}
	if s.best.Step == 0 || score > s.best.Score {
		s.best = sftBest{Score: score, Step: step, ValLoss: vl}
		if len(s.valPrompts) > 0 {
			sc := ev.Score
			s.best.TaskScore, s.best.PerTask = &sc, ev.PerTask
		}
		if err := model.SaveAs(s.cfg.Out, m, s.saveDType); err != nil {
			return err
		}
	}
	return nil
}

func (s *sftTrainer) state() any {
	p := s.batcher.Pos()
	return sftState{dataPosition{p.Epoch, p.Next}, s.best}
}

func (s *sftTrainer) restore(saved json.RawMessage) error {
	var st sftState
	if err := json.Unmarshal(saved, &st); err != nil {
		return fmt.Errorf("trainer state: %w", err)
	}
	s.best = st.sftBest
	return s.batcher.Seek(data.Position{Epoch: st.Epoch, Next: st.Next})
}

// splitHoldout shuffles examples with seed and holds out the last frac
// (at least one example when there are two or more).
func splitHoldout(ex []data.SFTExample, frac float64, seed uint64) (train, val []data.SFTExample) {
	order := rand.New(rand.NewPCG(seed, 0x5f7)).Perm(len(ex))
	nVal := int(math.Round(frac * float64(len(ex))))
	if nVal == 0 && len(ex) > 1 {
		nVal = 1
	}
	for i, j := range order {
		if i < len(ex)-nVal {
			train = append(train, ex[j])
		} else {
			val = append(val, ex[j])
		}
	}
	return train, val
}

// taskPrompts turns up to n validation examples of built-in tasks into
// prompts with reference answers (the demonstration's completion).
func taskPrompts(ex []data.SFTExample, n int) []TaskPrompt {
	var out []TaskPrompt
	for _, e := range ex {
		if len(out) == n {
			break
		}
		if e.Task != "" {
			out = append(out, TaskPrompt{Prompt: e.Prompt, Task: e.Task, Answer: e.Completion, Source: e.Source})
		}
	}
	return out
}

// sftValLoss is the mean completion-token loss over the examples.
func sftValLoss(m *model.Model, ex []data.SFTTokens, pad int32, budget, maxBatch int) (float64, error) {
	bt, err := data.NewSFTBatcher(ex, pad, data.BatchOptions{TokenBudget: budget, MaxBatch: maxBatch, Sequential: true})
	if err != nil {
		return 0, err
	}
	total, count := 0.0, 0
	logp := make([]float32, budget)
	for i, n := 0, bt.EpochBatches(0); i < n; i++ {
		sb := bt.Next()
		err := forwardPieces(m, &sb.Batch, func(lo, hi int) error {
			lp := logp[:(hi-lo)*sb.T]
			if err := m.Backend().Download(lp, m.LogProbs()); err != nil {
				return err
			}
			for j, t := range sb.Targets[lo*sb.T : hi*sb.T] {
				if t >= 0 {
					total -= float64(lp[j])
					count++
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	return total / float64(max(count, 1)), nil
}
