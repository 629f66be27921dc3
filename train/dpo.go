package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
)

// DPOConfig is a Direct Preference Optimization run (Rafailov et al. 2023):
// the policy starts from an SFT model and learns from ranked comparisons
// directly, its implicit reward β·(log π − log π_ref) against the frozen
// SFT model taking the reward model's place. The data are the reward
// model's (pairs are K = 2 rankings) and are split the same way, so the
// two can be compared on the same held-out prompts.
//
// A step takes Batch prompts; each response is forwarded once (K rows of
// the batch) and its sequence log-prob is the sum over the response's
// tokens (the prompt's carry none). The loss of a prompt is Loss's
// (PreferenceLoss), the step's the mean over its prompts. Dropout is off,
// as in TRL: the reference log-probs are computed without it.
type DPOConfig struct {
	Data       string       `json:"data"`
	ValFrac    float64      `json:"val_frac"` // share of the distinct prompts held out
	Init       string       `json:"init"`     // the SFT checkpoint: policy and reference
	Model      model.Config `json:"model"`
	Out        string       `json:"out"`
	Epochs     float64      `json:"epochs"` // used when Steps is 0
	Steps      int          `json:"steps"`  // optimizer steps; 0: from Epochs
	Batch      int          `json:"batch"`  // prompts per optimizer step
	MaxPrompts int          `json:"max_prompts"`
	// TokenBudget bounds a micro-batch's padded size (rows × longest row)
	// and MaxRows its rows; one prompt's K responses always go together.
	TokenBudget int            `json:"token_budget"`
	MaxRows     int            `json:"max_rows"`
	MaxLen      int            `json:"max_len"` // tokens per sequence (data.TokenizeComparisons's rule)
	Loss        PreferenceLoss `json:"loss"`
	Optim       OptimConfig    `json:"optim"`
	Seed        uint64         `json:"seed"`
	EvalEvery   int            `json:"eval_every"`   // steps between validations; 0: only at the end
	EvalPrompts int            `json:"eval_prompts"` // held-out task prompts answered greedily at each validation; 0: none
	MaxNew      int            `json:"max_new"`      // tokens per answer
	LogEvery    int            `json:"log_every"`
	SaveEvery   int            `json:"save_every"`
	// SkipBadLines skips and counts malformed records.
	SkipBadLines bool `json:"skip_bad_lines"`
}

// DefaultDPO is DPO with the paper's β 0.1 on the Plackett–Luce form of
// the rankings, shaped like the reward model's run (one epoch of batches
// of 32 prompts, 10% held out) so that the two compare on the same split,
// without weight decay (the reference, not zero, is where the policy
// should stay), and a peak learning rate measured on the built-in tasks
// (docs/EXPERIMENTS.md).
func DefaultDPO() DPOConfig {
	o := DefaultOptim()
	o.LR, o.Warmup, o.WeightDecay = 1e-4, 5, 0
	return DPOConfig{
		ValFrac: 0.1, Epochs: 1, Batch: 32, TokenBudget: 4096, MaxRows: 64, MaxLen: 128,
		Loss:  PreferenceLoss{Form: LossPlackettLuce, Beta: 0.1},
		Optim: o, Seed: 1, EvalEvery: 25, EvalPrompts: 100, MaxNew: 32, LogEvery: 5, SaveEvery: 25,
	}
}

// Validate reports a configuration that cannot run.
func (c *DPOConfig) Validate() error {
	switch {
	case c.Data == "":
		return fmt.Errorf("no training data")
	case c.Out == "":
		return fmt.Errorf("no output directory")
	case c.Init == "":
		return fmt.Errorf("no initial checkpoint (the policy and the reference are the SFT model)")
	case c.Model.ScalarHead:
		return fmt.Errorf("the initial checkpoint is a reward model; DPO starts from a language model")
	case c.ValFrac <= 0 || c.ValFrac >= 1:
		return fmt.Errorf("validation fraction %g must be in (0, 1)", c.ValFrac)
	case c.Steps < 0 || (c.Steps == 0 && !(c.Epochs > 0)):
		return fmt.Errorf("give a positive number of steps or epochs")
	case c.Batch <= 0 || c.MaxPrompts < 0:
		return fmt.Errorf("batch %d must be positive and max prompts %d not negative", c.Batch, c.MaxPrompts)
	case c.MaxLen < 2 || c.MaxLen > c.Model.MaxSeqLen:
		return fmt.Errorf("max length %d must be in 2..%d (the model's context)", c.MaxLen, c.Model.MaxSeqLen)
	case c.MaxRows < data.MaxResponses:
		return fmt.Errorf("max rows %d must hold a ranking's %d responses", c.MaxRows, data.MaxResponses)
	case c.TokenBudget < data.MaxResponses*c.MaxLen:
		return fmt.Errorf("token budget %d must hold %d responses of max length %d (%d tokens)", c.TokenBudget, data.MaxResponses, c.MaxLen, data.MaxResponses*c.MaxLen)
	case c.LogEvery <= 0 || c.EvalEvery < 0 || c.SaveEvery < 0:
		return fmt.Errorf("log interval must be positive, eval and save intervals not negative")
	case c.EvalPrompts < 0 || c.MaxNew <= 0:
		return fmt.Errorf("eval prompts %d must not be negative and max new tokens %d positive", c.EvalPrompts, c.MaxNew)
	}
	if err := c.Loss.Validate(); err != nil {
		return err
	}
	if err := c.Optim.Validate(); err != nil {
		return err
	}
	return c.Model.Validate()
}

// DPOSummary is what summary.json records.
type DPOSummary struct {
	Steps        int     `json:"steps"`
	Epochs       float64 `json:"epochs"`
	Tokens       int64   `json:"tokens"`
	Seconds      float64 `json:"seconds"`
	TokensPerSec float64 `json:"tokens_per_sec"`
	TrainLoss    float64 `json:"train_loss"` // mean over the last log interval
	// ResponsesForwarded counts the responses the training steps of this
	// process forwarded (a resumed run counts from its resume).
	ResponsesForwarded int64 `json:"responses_forwarded"`
	TrainPrompts       int   `json:"train_prompts"`
	ValPrompts         int   `json:"val_prompts"`
	// Val is the saved policy's held-out evaluation. Its implicit reward
	// starts at 0 for every response (accuracy 0.5); StartTaskScore is
	// the SFT model's task score on the same prompts.
	Val            *DPOEval        `json:"val,omitempty"`
	StartTaskScore *float64        `json:"start_task_score,omitempty"`
	Ceiling        *RMCeiling      `json:"val_ceiling,omitempty"`
	Truncation     data.TruncStats `json:"truncation"`
	SkippedLines   int             `json:"skipped_lines"`
	// IgnoredMargins counts comparisons whose "margin" DPO dropped.
	IgnoredMargins int  `json:"ignored_margins"`
	Interrupted    bool `json:"interrupted"`
}

// dpoMetrics is one line of a DPO run's metrics.jsonl: TRL's metric names
// for the training rankings since the last line, val_ names for the
// held-out evaluation.
type dpoMetrics struct {
	stepMetrics
	RewardMetrics
	ValAccuracy      *float64 `json:"val_accuracy,omitempty"`
	ValTruthAccuracy *float64 `json:"val_truth_accuracy,omitempty"`
	ValMeanMargin    *float64 `json:"val_mean_margin,omitempty"`
	ValChosen        *float64 `json:"val_rewards/chosen,omitempty"`
	ValRejected      *float64 `json:"val_rewards/rejected,omitempty"`
	ValTaskScore     *float64 `json:"val_task_score,omitempty"`
}

// DPO trains a policy with DPO and leaves it in cfg.Out (config.json,
// model.safetensors: the last step's policy, also after an interrupt). The
// run directory holds metrics.jsonl, run_config.json, summary.json,
// ReferenceFile and resume/, which lets an interrupted run continue exactly
// (opt.Resume).
func DPO(ctx context.Context, b gpu.Backend, tok tokenizer.Tokenizer, cfg DPOConfig, opt RunOptions) (*DPOSummary, error) {
	log := opt.Log
	cfg.Model.Dropout = 0 // see DPOConfig
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	cfg.Data, cfg.Init, cfg.Out = absPath(cfg.Data), absPath(cfg.Init), absPath(cfg.Out)
	if tok.VocabSize() > cfg.Model.VocabSize {
		return nil, fmt.Errorf("dpo: tokenizer vocabulary %d exceeds the model's %d", tok.VocabSize(), cfg.Model.VocabSize)
	}
	d, err := readComparisonSplit(splitSpec{path: cfg.Data, valFrac: cfg.ValFrac, seed: cfg.Seed, maxPrompts: cfg.MaxPrompts, maxLen: cfg.MaxLen, skipBadLines: cfg.SkipBadLines}, tok, log)
	if err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	ignored := dropMargins(d.train) + dropMargins(d.val)
	if ignored > 0 {
		log.Warn().Int("comparisons", ignored).Msg("margins ignored: they are a reward model's, in other units than DPO's implicit rewards")
	}
	batcher, err := data.NewBatcher(unitItems(len(d.train)), data.BatchOptions{MaxBatch: cfg.Batch, Seed: cfg.Seed})
	if err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	perEpoch := batcher.EpochBatches(0)
	if cfg.Steps == 0 {
		cfg.Steps = int(math.Ceil(cfg.Epochs * float64(perEpoch)))
	}
	m, err := model.New(b, cfg.Model, opt.models(comparisonShardRows(opt.Comm, cfg.MaxRows, cfg.Batch, d.train), d.maxSeq, true))
	if err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	ds, err := NewDPOStep(m, cfg.Optim, cfg.Steps, cfg.Loss, m.MaxBatch(), cfg.TokenBudget, tok.Pad())
	if err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	ds.distribute(opt.Comm)
	tr := &dpoTrainer{
		cfg: cfg, ds: ds, comm: opt.comm(), tok: tok, batcher: batcher, split: d, prompts: comparisonTaskPrompts(d.valCs, cfg.EvalPrompts),
		sum: &DPOSummary{TrainPrompts: len(d.train), ValPrompts: len(d.val), Truncation: d.trunc, SkippedLines: d.skipped, IgnoredMargins: ignored},
	}
	if c, ok := ceiling(d.valCs, d.val, d.valUtil); ok {
		tr.sum.Ceiling = &c
	}
	l, err := openLoop(loopSpec{
		name: "dpo", tok: tok, unit: "step", dir: cfg.Out, steps: cfg.Steps,
		logEvery: cfg.LogEvery, evalEvery: cfg.EvalEvery, saveEvery: cfg.SaveEvery,
		resume: opt.Resume, config: cfg, parts: []savedPart{ds.t.part("", "model", 1)}, inputs: []string{cfg.Data}, checkpoints: []string{cfg.Init},
		initial: func() ([]float32, error) { return initialLM(cfg.Model, cfg.Init, cfg.Seed, opt.load()) },
	}, tr, opt)
	if err != nil {
		return nil, fmt.Errorf("dpo: %w", err)
	}
	log.Info().Int("train_prompts", len(d.train)).Int("val_prompts", len(d.val)).Int("steps", cfg.Steps).Int("steps_per_epoch", perEpoch).
		Str("loss", cfg.Loss.Form).Float64("beta", cfg.Loss.Beta).Int("params", cfg.Model.NumParams()).Str("backend", b.Name()).Msg("dpo")
	if !opt.Resume {
		if err := tr.start(); err != nil {
			l.close()
			return nil, fmt.Errorf("dpo: %w", err)
		}
	}
	if err := l.run(ctx, tr); err != nil {
		l.close()
		return nil, err
	}
	sum := tr.sum
	sum.Steps, sum.Tokens, sum.Seconds, sum.TokensPerSec, sum.Interrupted = l.st.Step, l.st.Tokens, l.st.Seconds, l.tokensPerSec(), l.interrupted
	sum.Epochs = float64(l.st.Step) / float64(perEpoch)
	sum.StartTaskScore = tr.st.StartTaskScore
	if !l.primary() {
		return sum, l.finish(ctx, sum)
	}
	if !l.interrupted && tr.evalStep != l.st.Step { // a run resumed after its last step
		if _, err := tr.validate(l.st.Step); err != nil {
			l.close()
			return nil, fmt.Errorf("dpo: final validation: %w", err)
		}
	}
	if !l.interrupted {
		sum.Val = tr.lastEval
	}
	if err := model.SaveAs(cfg.Out, m, opt.SaveDType); err != nil {
		l.close()
		return nil, fmt.Errorf("dpo: %w", err)
	}
	if v := sum.Val; v != nil {
		ev := log.Info().Str("dir", cfg.Out).Float64("val_acc", round4(v.Preference.Accuracy)).Float64("val_margin", round4(v.Preference.MeanMargin))
		if v.Preference.TruthAccuracy != nil {
			ev = ev.Float64("val_truth_acc", round4(*v.Preference.TruthAccuracy))
		}
		if v.TaskScore != nil {
			ev = ev.Float64("task_score", round4(*v.TaskScore))
		}
		ev.Msg("policy saved")
	}
	return sum, l.finish(ctx, sum)
}

// dropMargins sets the comparisons' margins to 0 and counts those that had
// one.
func dropMargins(cs []data.ComparisonTokens) int {
	n := 0
	for i := range cs {
		if cs[i].Margin != 0 {
			cs[i].Margin = 0
			n++
		}
	}
	return n
}

// comparisonTaskPrompts returns up to n distinct prompts of comparisons of
// the built-in tasks, with their answers, in file order.
func comparisonTaskPrompts(cs []data.Comparison, n int) []TaskPrompt {
	var out []TaskPrompt
	seen := map[string]bool{}
	for _, c := range cs {
		if len(out) == n {
			break
		}
		if c.Task != "" && !seen[c.Prompt] {
			seen[c.Prompt] = true
			out = append(out, TaskPrompt{Prompt: c.Prompt, Task: c.Task, Answer: c.Answer, Source: c.Source})
		}
	}
	return out
}

// dpoTrainer is DPO as the loop driver runs it: steps of the preference
// loss over batches of prompts, validation of the implicit reward (and the
// greedy task score) on the held-out comparisons.
type dpoTrainer struct {
	cfg      DPOConfig
	ds       *DPOStep
	comm     gpu.Comm // the run's ranks: all compute the reference, rank 0 writes and evaluates
	tok      tokenizer.Tokenizer
	batcher  *data.Batcher
	split    *comparisonSplit
	ref      *referenceLogProbs
	prompts  []TaskPrompt
	st       dpoState
	lastEval *DPOEval
	evalStep int
	sum      *DPOSummary
}

// dpoState is DPO's position in the resume state.
type dpoState struct {
	dataPosition
	// Window sums the reward metrics of the steps since the last logged
	// one.
	Window          rewardStats `json:"reward_window"`
	ReferenceSHA256 string      `json:"reference_sha256"`
	StartTaskScore  *float64    `json:"start_task_score,omitempty"`
}

// start computes the reference log-probs with the starting policy (the
// frozen SFT model; data parallel, each rank its shard) and writes them,
// and the starting task score (rank 0).
func (t *dpoTrainer) start() error {
	m, c := t.ds.t.m, t.cfg
	ref := &referenceLogProbs{Init: c.Init}
	var err error
	if ref.Train, err = sequenceLogProbsOverRanks(t.comm, m, t.split.train, t.tok.Pad(), c.MaxRows, c.TokenBudget); err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	if ref.Val, err = sequenceLogProbsOverRanks(t.comm, m, t.split.val, t.tok.Pad(), c.MaxRows, c.TokenBudget); err != nil {
		return fmt.Errorf("reference: %w", err)
	}
	t.ref = ref
	if t.comm.Rank() != 0 {
		return nil
	}
	if t.st.ReferenceSHA256, err = writeReference(c.Out, ref); err != nil {
		return err
	}
	if len(t.prompts) > 0 {
		te, err := EvalTasks(m, t.tok, t.prompts, EvalOptions{MaxNew: c.MaxNew})
		if err != nil {
			return fmt.Errorf("starting task score: %w", err)
		}
		t.st.StartTaskScore = &te.Score
	}
	return nil
}

func (t *dpoTrainer) step(step int) (stepResult, error) {
	loss, tokens, rows, err := t.ds.Run(step, t.split.train, t.ref.Train, t.batcher.Next(), &t.st.Window)
	if err != nil {
		return stepResult{}, err
	}
	t.sum.ResponsesForwarded += int64(rows)
	health, err := t.ds.Health()
	return stepResult{loss: loss, tokens: tokens, finite: health}, err
}

// validate evaluates the policy on the held-out comparisons.
func (t *dpoTrainer) validate(step int) (DPOEval, error) {
	c := t.cfg
	m := t.ds.t.m
	v, err := evalDPO(m, t.split.val, t.ref.Val, t.split.valUtil, c.Loss, t.tok.Pad(), c.MaxRows, c.TokenBudget)
	if err != nil {
		return DPOEval{}, err
	}
	if len(t.prompts) > 0 {
		te, err := EvalTasks(m, t.tok, t.prompts, EvalOptions{MaxNew: c.MaxNew})
		if err != nil {
			return DPOEval{}, err
		}
		v.TaskScore, v.PerTask = &te.Score, te.PerTask
	}
	t.lastEval, t.evalStep = &v, step
	return v, nil
}

func (t *dpoTrainer) record(l *loop, step int, eval bool, w *lossWindow, ev *zerolog.Event) (any, *zerolog.Event, error) {
	base, ev, err := lmRecord(l, step, w, t.ds, ev)
	if err != nil {
		return nil, nil, err
	}
	rec := dpoMetrics{stepMetrics: base, RewardMetrics: t.st.Window.metrics()}
	t.st.Window = rewardStats{}
	ev = ev.Float64("acc", round4(rec.Accuracy)).Float64("margin", round4(rec.Margin))
	if eval {
		v, err := t.validate(step)
		if err != nil {
			return nil, nil, fmt.Errorf("validation: %w", err)
		}
		p := v.Preference
		rec.ValLoss, rec.ValAccuracy, rec.ValTruthAccuracy, rec.ValMeanMargin = &v.Loss, &p.Accuracy, p.TruthAccuracy, &p.MeanMargin
		rec.ValChosen, rec.ValRejected, rec.ValTaskScore = &v.Rewards.Chosen, &v.Rewards.Rejected, v.TaskScore
		ev = ev.Float64("val_loss", round4(v.Loss)).Float64("val_acc", round4(p.Accuracy))
		if p.TruthAccuracy != nil {
			ev = ev.Float64("val_truth_acc", round4(*p.TruthAccuracy))
		}
		if v.TaskScore != nil {
			ev = ev.Float64("task_score", round4(*v.TaskScore))
		}
	}
	t.sum.TrainLoss = rec.Loss
	return rec, ev, nil
}

func (t *dpoTrainer) state() any {
	p := t.batcher.Pos()
	t.st.dataPosition = dataPosition{Epoch: p.Epoch, Next: p.Next}
	return t.st
}

func (t *dpoTrainer) restore(saved json.RawMessage) error {
	var st dpoState
	if err := json.Unmarshal(saved, &st); err != nil {
		return fmt.Errorf("trainer state: %w", err)
	}
	ref, err := readReference(t.cfg.Out, st.ReferenceSHA256, t.split.train, t.split.val)
	if err != nil {
		return err
	}
	if err := t.batcher.Seek(data.Position{Epoch: st.Epoch, Next: st.Next}); err != nil {
		return err
	}
	t.st, t.ref = st, ref
	return nil
}
