package train

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/internal/atomicfile"
)

// PretrainConfig is everything a pretraining run needs; it is written to
// the run directory as resolved.
type PretrainConfig struct {
	Data        []string     `json:"data"`
	Model       model.Config `json:"model"`
	Init        string       `json:"init,omitempty"` // checkpoint to continue from; empty: GPT-2 init
	Out         string       `json:"out"`
	Steps       int          `json:"steps"`
	Batch       int          `json:"batch"`
	Seq         int          `json:"seq_len"`
	Accum       int          `json:"grad_accum"`
	Optim       OptimConfig  `json:"optim"`
	Seed        uint64       `json:"seed"`
	ValFrac     float64      `json:"val_frac"`
	EvalEvery   int          `json:"eval_every"`
	EvalBatches int          `json:"eval_batches"`
	LogEvery    int          `json:"log_every"`
	SaveEvery   int          `json:"save_every"` // steps between resumable saves; 0: only at the end
}

// Validate reports a configuration that cannot run.
func (c *PretrainConfig) Validate() error {
	switch {
	case c.Out == "":
		return fmt.Errorf("no output directory")
	case c.Steps <= 0:
		return fmt.Errorf("steps %d must be positive", c.Steps)
	case c.Batch <= 0 || c.Accum <= 0:
		return fmt.Errorf("batch %d and gradient accumulation %d must be positive", c.Batch, c.Accum)
	case c.Seq <= 0 || c.Seq > c.Model.MaxSeqLen:
		return fmt.Errorf("sequence length %d must be in 1..%d (the model's context)", c.Seq, c.Model.MaxSeqLen)
	case c.EvalBatches <= 0 || c.LogEvery <= 0 || c.EvalEvery < 0 || c.SaveEvery < 0:
		return fmt.Errorf("eval batches %d and log interval %d must be positive, eval interval %d not negative", c.EvalBatches, c.LogEvery, c.EvalEvery)
	}
	if err := c.Optim.Validate(); err != nil {
		return err
	}
	return c.Model.Validate()
}

// PretrainSummary is what summary.json records.
type PretrainSummary struct {
	Params         int     `json:"params"`
	Steps          int     `json:"steps"`
	Tokens         int64   `json:"tokens"`
	Seconds        float64 `json:"seconds"`
	TokensPerSec   float64 `json:"tokens_per_sec"`
	TrainLoss      float64 `json:"train_loss"`       // mean over the last log interval, nats/token
	ValLoss        float64 `json:"val_loss"`         // held-out loss at the end, nats/token
	UnigramLoss    float64 `json:"unigram_val_loss"` // what token frequencies alone achieve on the held-out text
	TrainTokens    int     `json:"train_tokens"`
	ValTokens      int     `json:"val_tokens"`
	Interrupted    bool    `json:"interrupted"`
	CheckpointPath string  `json:"checkpoint"`
}

// stepMetrics is one line of metrics.jsonl.
type stepMetrics struct {
	Step      int      `json:"step"`
	Loss      float64  `json:"loss"`
	LR        float32  `json:"lr"`
	GradNorm  float64  `json:"grad_norm"`
	TokensSec float64  `json:"tokens_per_sec"`
	ValLoss   *float64 `json:"val_loss,omitempty"`
	Elapsed   float64  `json:"elapsed_sec"`
}

// Pretrain trains a causal language model on plain text and leaves a
// checkpoint in cfg.Out. It saves resumable state every cfg.SaveEvery steps;
// with opt.Resume it continues from the last one, reproducing on the cpu
// backend exactly the losses of an uninterrupted run. Cancelling ctx saves
// and returns an error wrapping the cancellation cause.
func Pretrain(ctx context.Context, b gpu.Backend, enc Encoder, cfg PretrainConfig, opt RunOptions) (*PretrainSummary, error) {
	log := opt.Log
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	if enc.VocabSize() > cfg.Model.VocabSize {
		return nil, fmt.Errorf("pretrain: tokenizer vocabulary %d exceeds the model's %d", enc.VocabSize(), cfg.Model.VocabSize)
	}
	corpus, err := LoadText(cfg.Data, enc, cfg.ValFrac)
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	sampler, err := NewWindowSampler(corpus.Train, cfg.Seq, cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("pretrain: training text: %w", err)
	}
	valTok, valTgt := SequentialWindows(corpus.Val, cfg.Seq, cfg.EvalBatches*cfg.Batch)
	if len(valTok) == 0 {
		return nil, fmt.Errorf("pretrain: the held-out %.0f%% of the text (%d tokens) is shorter than one sequence of %d; give more text or raise --val-frac", 100*cfg.ValFrac, len(corpus.Val), cfg.Seq+1)
	}
	unigram := UnigramEntropy(corpus.Train, corpus.Val, cfg.Model.VocabSize)
	log.Info().Int("docs", corpus.Docs).Int64("bytes", corpus.Bytes).Int("train_tokens", len(corpus.Train)).
		Int("val_tokens", len(corpus.Val)).Float64("unigram_val_loss", round4(unigram)).Msg("text loaded")

	r, err := openTrainRun(b, runSetup{
		dir: cfg.Out, resume: opt.Resume, config: cfg,
		model: cfg.Model, opts: model.Options{MaxBatch: cfg.Batch, MaxSeq: cfg.Seq, Train: true}, optim: cfg.Optim,
		initial:  func() ([]float32, error) { return initialLM(cfg.Model, cfg.Init, cfg.Seed) },
		seek:     func(epoch, next int) error { sampler.Seek(epoch, next); return nil },
		position: func() (int, int) { return sampler.Epoch, sampler.Next },
	}, log)
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	defer r.metrics.Close()
	m, optim, st := r.m, r.optim, &r.st

	lm, err := newLMLoss(b, cfg.Batch*cfg.Seq)
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	batch := &model.Batch{B: cfg.Batch, T: cfg.Seq, Tokens: make([]int32, cfg.Batch*cfg.Seq), Targets: make([]int32, cfg.Batch*cfg.Seq)}
	sum := &PretrainSummary{Params: cfg.Model.NumParams(), TrainTokens: len(corpus.Train), ValTokens: len(corpus.Val), UnigramLoss: unigram}
	tokensPerStep := int64(cfg.Batch * cfg.Seq * cfg.Accum)
	window := newLossWindow()
	log.Info().Int("params", sum.Params).Int("steps", cfg.Steps).Int64("tokens_per_step", tokensPerStep).
		Str("backend", b.Name()).Msg("pretraining")
	progress := opt.progress()
	progress.Start("pretrain", st.Step, cfg.Steps)
	defer progress.Finish()

	for st.Step < cfg.Steps {
		if ctx.Err() != nil {
			sum.Interrupted = true
			log.Warn().Int("step", st.Step).Msg("interrupted: saving a checkpoint")
			break
		}
		step := st.Step + 1
		b.Fill(m.Grads.All, 0)
		for micro := 0; micro < cfg.Accum; micro++ {
			sampler.Fill(batch.Tokens, batch.Targets, cfg.Batch)
			seed := gpu.Mix64(cfg.Seed, uint64((step-1)*cfg.Accum+micro))
			if err := m.Forward(batch, true, seed); err != nil {
				return nil, fmt.Errorf("pretrain step %d: %w", step, err)
			}
			lm.accumulate(m.LogProbs(), 1/float32(cfg.Accum))
			if err := m.Backward(lm.weights, nil); err != nil {
				return nil, fmt.Errorf("pretrain step %d: %w", step, err)
			}
		}
		lr := CosineLR(step, cfg.Optim.Warmup, cfg.Steps, cfg.Optim.LR, cfg.Optim.MinLRFrac)
		optim.Update(m.Params, m.Grads, lr, cfg.Accum)
		loss, err := lm.read()
		if err != nil {
			return nil, fmt.Errorf("pretrain step %d: %w", step, err)
		}
		if math.IsNaN(loss) || math.IsInf(loss, 0) {
			return nil, r.diverged("pretrain", step, loss)
		}
		st.Step, st.Tokens = step, st.Tokens+tokensPerStep
		tokSec := window.add(loss, tokensPerStep)
		progress.Step(step, fmt.Sprintf("loss %.4f  %.0f tok/s", loss, tokSec))

		evalNow := cfg.EvalEvery > 0 && step%cfg.EvalEvery == 0
		if step%cfg.LogEvery == 0 || evalNow || step == cfg.Steps {
			gn, err := optim.GradNorm(cfg.Accum)
			if err != nil {
				return nil, fmt.Errorf("pretrain step %d: %w", step, err)
			}
			rec, ev := r.logStep(&window, log, step, cfg.Steps, lr, gn)
			if evalNow || step == cfg.Steps {
				v, err := evalLM(m, valTok, valTgt, cfg.Batch, cfg.Seq)
				if err != nil {
					return nil, fmt.Errorf("pretrain eval at step %d: %w", step, err)
				}
				rec.ValLoss = &v
				sum.ValLoss = v
			}
			if rec.ValLoss != nil {
				ev = ev.Float64("val_loss", round4(*rec.ValLoss))
			}
			ev.Msg("train")
			if err := r.metrics.Write(rec); err != nil {
				return nil, err
			}
			sum.TrainLoss = rec.Loss
			window = newLossWindow()
		}
		if err := r.saveIfDue(step, cfg.SaveEvery, cfg.Steps); err != nil {
			return nil, fmt.Errorf("pretrain: %w", err)
		}
	}
	if err := r.save(); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	sum.Steps, sum.Tokens, sum.Seconds = st.Step, st.Tokens, st.Seconds
	sum.TokensPerSec = float64(sum.Tokens) / math.Max(sum.Seconds, 1e-9)
	if err := model.Save(cfg.Out, m); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	sum.CheckpointPath = cfg.Out
	if err := atomicfile.WriteJSON(filepath.Join(cfg.Out, SummaryFile), sum); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	log.Info().Str("dir", cfg.Out).Float64("val_loss", round4(sum.ValLoss)).Float64("unigram_val_loss", round4(unigram)).
		Float64("tok/s", math.Round(sum.TokensPerSec)).Msg("checkpoint saved")
	if sum.Interrupted {
		return sum, fmt.Errorf("pretrain interrupted after step %d (resume with --resume %s): %w", sum.Steps, cfg.Out, context.Cause(ctx))
	}
	return sum, nil
}

// round4 rounds to four decimals for log lines (metrics keep full values).
func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }

// eta estimates the time left when done steps took elapsed and left remain.
func eta(elapsed time.Duration, done, left int) string {
	if done <= 0 {
		return "?"
	}
	return time.Duration(float64(elapsed) / float64(done) * float64(left)).Round(time.Second).String()
}

// lmLoss is the mean next-token loss of a batch, kept on the device: the
// weight of every token is −1/(B·T), so Dot(logp, weights) is the loss and
// the weights are also ∂loss/∂logp for Backward.
type lmLoss struct {
	b             gpu.Backend
	weights, loss *gpu.Tensor
	micro, step   *gpu.Tensor
	n             int
}

func newLMLoss(b gpu.Backend, n int) (*lmLoss, error) {
	l := &lmLoss{b: b, n: n}
	var err error
	if l.weights, err = b.Alloc(gpu.Float32, n); err != nil {
		return nil, err
	}
	if l.micro, err = b.Alloc(gpu.Float32, 1); err != nil {
		return nil, err
	}
	if l.step, err = b.Alloc(gpu.Float32, 1); err != nil {
		return nil, err
	}
	b.Fill(l.weights, -1/float32(n))
	return l, nil
}

// accumulate adds scale × this micro-batch's loss to the step's loss.
func (l *lmLoss) accumulate(logp *gpu.Tensor, scale float32) {
	l.b.Dot(l.micro, logp, l.weights)
	l.b.Axpy(l.step, scale, l.micro)
}

// read returns the step's loss and resets it.
func (l *lmLoss) read() (float64, error) {
	var v [1]float32
	if err := l.b.Download(v[:], l.step); err != nil {
		return 0, err
	}
	l.b.Fill(l.step, 0)
	return float64(v[0]), nil
}

// evalLM is the mean held-out loss over the given windows, in batches.
func evalLM(m *model.Model, tokens, targets [][]int32, B, T int) (float64, error) {
	total, count := 0.0, 0
	batch := &model.Batch{T: T}
	logp := make([]float32, B*T)
	for i := 0; i < len(tokens); i += B {
		n := min(B, len(tokens)-i)
		batch.B = n
		batch.Tokens, batch.Targets = batch.Tokens[:0], batch.Targets[:0]
		for j := i; j < i+n; j++ {
			batch.Tokens = append(batch.Tokens, tokens[j]...)
			batch.Targets = append(batch.Targets, targets[j]...)
		}
		if err := m.Forward(batch, false, 0); err != nil {
			return 0, err
		}
		if err := m.Backend().Download(logp[:n*T], m.LogProbs()); err != nil {
			return 0, err
		}
		for _, v := range logp[:n*T] {
			total -= float64(v)
		}
		count += n * T
	}
	return total / float64(count), nil
}
