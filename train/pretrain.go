package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
	"github.com/rs/zerolog"
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

// stepMetrics is one line of a language-model method's metrics.jsonl.
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
func Pretrain(ctx context.Context, b gpu.Backend, tok tokenizer.Tokenizer, cfg PretrainConfig, opt RunOptions) (*PretrainSummary, error) {
	log := opt.Log
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	cfg.Data, cfg.Init, cfg.Out = absPaths(cfg.Data), absPath(cfg.Init), absPath(cfg.Out)
	if tok.VocabSize() > cfg.Model.VocabSize {
		return nil, fmt.Errorf("pretrain: tokenizer vocabulary %d exceeds the model's %d", tok.VocabSize(), cfg.Model.VocabSize)
	}
	corpus, err := data.LoadText(cfg.Data, tok, cfg.ValFrac)
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	sampler, err := data.NewWindowSampler(corpus.Train, cfg.Seq, cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("pretrain: training text: %w", err)
	}
	valTok, valTgt := data.SequentialWindows(corpus.Val, cfg.Seq, cfg.EvalBatches*cfg.Batch)
	if len(valTok) == 0 {
		return nil, fmt.Errorf("pretrain: the held-out %.0f%% of the text (%d tokens) is shorter than one sequence of %d; give more text or raise --val-frac", 100*cfg.ValFrac, len(corpus.Val), cfg.Seq+1)
	}
	unigram := data.UnigramEntropy(corpus.Train, corpus.Val, cfg.Model.VocabSize)
	log.Info().Int("docs", corpus.Docs).Int64("bytes", corpus.Bytes).Int("train_tokens", len(corpus.Train)).
		Int("val_tokens", len(corpus.Val)).Float64("unigram_val_loss", round4(unigram)).Msg("text loaded")

	m, err := model.New(b, cfg.Model, opt.models(shardCap(opt.Comm, cfg.Batch), cfg.Seq, true))
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	lm, err := NewLMStep(m, cfg.Optim, cfg.Steps, cfg.Accum, cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	lm.distribute(opt.Comm)
	p := &pretrainer{
		lm: lm, sampler: sampler, valTok: valTok, valTgt: valTgt, B: cfg.Batch, T: cfg.Seq,
		batch: &model.Batch{B: cfg.Batch, T: cfg.Seq, Tokens: make([]int32, cfg.Batch*cfg.Seq), Targets: make([]int32, cfg.Batch*cfg.Seq)},
		sum:   &PretrainSummary{Params: cfg.Model.NumParams(), TrainTokens: len(corpus.Train), ValTokens: len(corpus.Val), UnigramLoss: unigram},
	}
	l, err := openLoop(loopSpec{
		name: "pretrain", tok: tok, unit: "step", dir: cfg.Out, steps: cfg.Steps,
		logEvery: cfg.LogEvery, evalEvery: cfg.EvalEvery, saveEvery: cfg.SaveEvery,
		resume: opt.Resume, config: cfg, parts: []savedPart{lm.t.part("", "model", 1)}, inputs: cfg.Data, checkpoints: []string{cfg.Init},
		initial: func() ([]float32, error) { return initialLM(cfg.Model, cfg.Init, cfg.Seed, opt.load()) },
	}, p, opt)
	if err != nil {
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	log.Info().Int("params", p.sum.Params).Int("steps", cfg.Steps).Int("tokens_per_step", cfg.Batch*cfg.Seq*cfg.Accum).
		Str("backend", b.Name()).Msg("pretraining")
	if err := l.run(ctx, p); err != nil {
		l.close()
		return nil, err
	}
	sum := p.sum
	sum.Steps, sum.Tokens, sum.Seconds, sum.TokensPerSec, sum.Interrupted = l.st.Step, l.st.Tokens, l.st.Seconds, l.tokensPerSec(), l.interrupted
	if !l.primary() {
		return sum, l.finish(ctx, sum)
	}
	if err := model.SaveAs(cfg.Out, m, opt.SaveDType); err != nil {
		l.close()
		return nil, fmt.Errorf("pretrain: %w", err)
	}
	sum.CheckpointPath = cfg.Out
	log.Info().Str("dir", cfg.Out).Float64("val_loss", round4(sum.ValLoss)).Float64("unigram_val_loss", round4(unigram)).
		Float64("tok/s", math.Round(sum.TokensPerSec)).Msg("checkpoint saved")
	return sum, l.finish(ctx, sum)
}

// pretrainer is pretraining as the loop driver runs it: steps of the
// next-token loss on windows of the text, the held-out loss as its
// evaluation.
type pretrainer struct {
	lm             *LMStep
	sampler        *data.WindowSampler
	batch          *model.Batch
	valTok, valTgt [][]int32
	B, T           int
	sum            *PretrainSummary
}

func (p *pretrainer) step(step int) (stepResult, error) {
	loss, tokens, err := p.lm.Run(step, func() (*model.Batch, error) {
		p.sampler.Fill(p.batch.Tokens, p.batch.Targets, p.B)
		return p.batch, nil
	})
	if err != nil {
		return stepResult{}, err
	}
	health, err := p.lm.Health()
	return stepResult{loss: loss, tokens: tokens, finite: health}, err
}

func (p *pretrainer) record(l *loop, step int, eval bool, w *lossWindow, ev *zerolog.Event) (any, *zerolog.Event, error) {
	rec, ev, err := lmRecord(l, step, w, p.lm, ev)
	if err != nil {
		return nil, nil, err
	}
	if eval {
		v, err := HeldOutLoss(p.lm.t.m, p.valTok, p.valTgt, p.B, p.T)
		if err != nil {
			return nil, nil, fmt.Errorf("held-out loss: %w", err)
		}
		rec.ValLoss, p.sum.ValLoss = &v, v
		ev = ev.Float64("val_loss", round4(v))
	}
	p.sum.TrainLoss = rec.Loss
	return rec, ev, nil
}

func (p *pretrainer) state() any {
	return dataPosition{Epoch: p.sampler.Epoch, Next: p.sampler.Next}
}

func (p *pretrainer) restore(saved json.RawMessage) error {
	var pos dataPosition
	if err := json.Unmarshal(saved, &pos); err != nil {
		return fmt.Errorf("trainer state: %w", err)
	}
	if pos.Epoch < 0 || pos.Next < 0 || pos.Next > p.sampler.Windows() {
		return fmt.Errorf("data position %d in an epoch of %d windows: the text changed", pos.Next, p.sampler.Windows())
	}
	p.sampler.Seek(pos.Epoch, pos.Next)
	return nil
}

// dataPosition is where a seeded data order stands: epochs done and the
// next item of the current one.
type dataPosition struct {
	Epoch int `json:"data_epoch"`
	Next  int `json:"data_next"`
}

// lmStepper is what the record of a language model's logged step reads
// from its step.
type lmStepper interface {
	LR() float32
	GradNorm() (float64, error)
}

// lmRecord is the record of a logged step of a language-model method (the
// window's mean loss, the last step's learning rate and gradient norm,
// throughput and the run's time) and the same on its log line.
func lmRecord(l *loop, step int, w *lossWindow, s lmStepper, ev *zerolog.Event) (stepMetrics, *zerolog.Event, error) {
	gn, err := s.GradNorm()
	if err != nil {
		return stepMetrics{}, nil, err
	}
	rec := stepMetrics{Step: step, Loss: w.meanLoss(), LR: s.LR(), GradNorm: gn, TokensSec: w.tokensPerSec(), Elapsed: l.elapsed()}
	ev = ev.Float64("loss", round4(rec.Loss)).Float32("lr", rec.LR).Float64("grad_norm", round4(gn)).
		Float64("tok/s", math.Round(rec.TokensSec))
	return rec, ev, nil
}

// HeldOutLoss is a language model's mean loss, in nats per token, over the
// given windows (tokens and their next-token targets, T each), in batches
// of B, each forwarded in pieces of the model's MaxBatch (forwardPieces).
func HeldOutLoss(m *model.Model, tokens, targets [][]int32, B, T int) (float64, error) {
	total, count := 0.0, 0
	batch := &model.Batch{T: T}
	logp := make([]float32, min(B, m.MaxBatch())*T)
	for i := 0; i < len(tokens); i += B {
		n := min(B, len(tokens)-i)
		batch.B = n
		batch.Tokens, batch.Targets = batch.Tokens[:0], batch.Targets[:0]
		for j := i; j < i+n; j++ {
			batch.Tokens = append(batch.Tokens, tokens[j]...)
			batch.Targets = append(batch.Targets, targets[j]...)
		}
		err := forwardPieces(m, batch, func(lo, hi int) error {
			lp := logp[:(hi-lo)*T]
			if err := m.Backend().Download(lp, m.LogProbs()); err != nil {
				return err
			}
			for _, v := range lp {
				total -= float64(v)
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
		count += n * T
	}
	return total / float64(count), nil
}
