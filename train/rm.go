package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
	"github.com/rs/zerolog"
)

// RMConfig is a reward-model run (InstructGPT's stage 2): an SFT model with
// its unembedding replaced by a scalar head, trained on ranked responses.
//
// A step takes Batch prompts. For a prompt with K ranked responses every
// response is forwarded once (K rows of the batch) and the prompt's loss is
// the mean over its C(K,2) pairs of −log σ(r_w − r_l − margin), r being the
// head's output at the last token of the sequence (EOS when the response
// was not cut); the step's loss is the mean over its prompts, so every
// prompt counts once whatever its K, as in the paper. The prompts of a step
// are cut into micro-batches of at most MaxRows responses and TokenBudget
// padded tokens, and the gradients add up to exactly the step's.
type RMConfig struct {
	Data       string       `json:"data"`
	ValFrac    float64      `json:"val_frac"` // share of the distinct prompts held out
	Init       string       `json:"init"`     // SFT (or reward-model) checkpoint
	Model      model.Config `json:"model"`
	Out        string       `json:"out"`
	Epochs     float64      `json:"epochs"`      // used when Steps is 0; the paper's 1
	Steps      int          `json:"steps"`       // optimizer steps; 0: from Epochs
	Batch      int          `json:"batch"`       // prompts per optimizer step
	MaxPrompts int          `json:"max_prompts"` // training prompts used (a seeded subset); 0: all
	// TokenBudget bounds a micro-batch's padded size (rows × longest row)
	// and MaxRows its rows; one prompt's K responses always go together.
	TokenBudget int `json:"token_budget"`
	MaxRows     int `json:"max_rows"`
	MaxLen      int `json:"max_len"` // tokens per sequence; longer ones are cut (see data.TokenizeComparisons)
	// HeadInitStd is the standard deviation of the new score head's
	// normal initialisation when Init has none.
	HeadInitStd float64     `json:"head_init_std"`
	Optim       OptimConfig `json:"optim"`
	Seed        uint64      `json:"seed"`
	EvalEvery   int         `json:"eval_every"` // steps between validations; 0: only at the end
	LogEvery    int         `json:"log_every"`
	SaveEvery   int         `json:"save_every"`
	// CenterData is an SFT file whose demonstrations (prompt + completion)
	// are made to score 0 on average after training. Empty: the best-ranked
	// response of every training comparison instead.
	CenterData   string `json:"center_data,omitempty"`
	SkipBadLines bool   `json:"skip_bad_lines"`
}

// DefaultRM is the paper's recipe (one epoch, cosine decay to 10%, a
// ranking loss averaged over prompts) scaled to the built-in tasks on a
// CPU: batches of 32 prompts rather than 64, so that the tiny model gets
// twice the updates in its one epoch, and a peak learning rate of 1e-3
// (docs/EXPERIMENTS.md). 10% of the distinct prompts are held out; the
// head starts as N(0, 0.02²), transformers' initializer_range.
func DefaultRM() RMConfig {
	o := DefaultOptim()
	o.LR, o.Warmup = 1e-3, 5
	return RMConfig{
		ValFrac: 0.1, Epochs: 1, Batch: 32, TokenBudget: 4096, MaxRows: 64, MaxLen: 128, HeadInitStd: 0.02,
		Optim: o, Seed: 1, EvalEvery: 25, LogEvery: 5, SaveEvery: 25,
	}
}

// Validate reports a configuration that cannot run.
func (c *RMConfig) Validate() error {
	switch {
	case c.Data == "":
		return fmt.Errorf("no training data")
	case c.Out == "":
		return fmt.Errorf("no output directory")
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
	case !(c.HeadInitStd >= 0) || math.IsInf(c.HeadInitStd, 0):
		return fmt.Errorf("head init std %g must be finite and not negative", c.HeadInitStd)
	case c.LogEvery <= 0 || c.EvalEvery < 0 || c.SaveEvery < 0:
		return fmt.Errorf("log interval must be positive, eval and save intervals not negative")
	case c.Init == "":
		return fmt.Errorf("no initial checkpoint (the reward model starts from the SFT model)")
	}
	if err := c.Optim.Validate(); err != nil {
		return err
	}
	return c.Model.Validate()
}

// RMEval is a reward model measured on ranked comparisons.
type RMEval struct {
	Prompts int `json:"prompts"`
	Pairs   int `json:"n_pairs"`
	// Loss is the ranking loss: the mean over prompts of the mean over
	// their pairs of −log σ(r_w − r_l − margin).
	Loss float64 `json:"loss"`
	// Accuracy is the fraction of pairs with r_w > r_l (a tie counts ½).
	Accuracy float64 `json:"accuracy"`
	// MeanMargin is the mean of r_w − r_l over the pairs.
	MeanMargin float64 `json:"mean_margin"`
	// RewardMean and RewardStd describe the rewards of all responses.
	RewardMean float64 `json:"reward_mean"`
	RewardStd  float64 `json:"reward_std"`
	// TruthAccuracy is, for comparisons of the built-in tasks, the fraction
	// of pairs with different noise-free utilities (task score plus the
	// labeler's style term) that the rewards order like the utilities (a
	// tie counts ½), over TruthPairs pairs. Nil without such comparisons.
	TruthAccuracy *float64 `json:"truth_accuracy,omitempty"`
	TruthPairs    int      `json:"truth_pairs,omitempty"`
}

// RMCeiling is what the simulated labeler itself achieves on held-out
// comparisons of the built-in tasks: the bounds to read an RMEval against.
type RMCeiling struct {
	// OracleVsLabels is the accuracy against the held-out labels of the
	// noise-free utility order (utility ties count ½), over the same pairs
	// as RMEval.Accuracy: the best any reward model can expect against
	// noisy labels.
	OracleVsLabels float64 `json:"oracle_vs_labels"`
	// LabelerVsLabeler is the expected agreement of two independent
	// labelers (tasks.DefaultLabeler) on these pairs: InstructGPT's
	// inter-labeler agreement, what a model as good as one more labeler
	// scores against the labels.
	LabelerVsLabeler float64 `json:"labeler_vs_labeler"`
	// LabelerVsTruth is the expected agreement of one labeler with the
	// noise-free order, over the pairs with different utilities (compare
	// RMEval.TruthAccuracy).
	LabelerVsTruth float64 `json:"labeler_vs_truth"`
	Pairs          int     `json:"pairs"`
	TruthPairs     int     `json:"truth_pairs"`
}

// RMCentering records the bias fitted after training.
type RMCentering struct {
	Source     string  `json:"source"` // the SFT file, or "chosen responses of the training comparisons"
	N          int     `json:"n"`      // sequences scored
	Bias       float32 `json:"bias"`
	MeanBefore float64 `json:"mean_before"` // their mean reward without the bias
	MeanAfter  float64 `json:"mean_after"`  // with it, scored again by the saved model
	StdAfter   float64 `json:"std_after"`
}

// RMSummary is what summary.json records.
type RMSummary struct {
	Steps        int     `json:"steps"`
	Epochs       float64 `json:"epochs"`
	Tokens       int64   `json:"tokens"`
	Seconds      float64 `json:"seconds"`
	TokensPerSec float64 `json:"tokens_per_sec"`
	TrainLoss    float64 `json:"train_loss"` // mean over the last log interval
	// ResponsesForwarded counts the sequences the training steps of this
	// process ran through the model (a resumed run counts from its
	// resume): each response of each prompt once per epoch.
	ResponsesForwarded int64           `json:"responses_forwarded"`
	TrainPrompts       int             `json:"train_prompts"`
	TrainPairs         int             `json:"train_pairs"`
	ValPrompts         int             `json:"val_prompts"`
	Val                *RMEval         `json:"val,omitempty"` // of the saved (centred) model
	Ceiling            *RMCeiling      `json:"val_ceiling,omitempty"`
	Centering          *RMCentering    `json:"centering,omitempty"`
	Truncation         data.TruncStats `json:"truncation"`
	SkippedLines       int             `json:"skipped_lines"`
	Interrupted        bool            `json:"interrupted"`
}

// rmMetrics is one line of a reward-model run's metrics.jsonl.
type rmMetrics struct {
	stepMetrics
	ValAccuracy      *float64 `json:"val_accuracy,omitempty"`
	ValTruthAccuracy *float64 `json:"val_truth_accuracy,omitempty"`
	ValMeanMargin    *float64 `json:"val_mean_margin,omitempty"`
	ValRewardMean    *float64 `json:"val_reward_mean,omitempty"`
	ValRewardStd     *float64 `json:"val_reward_std,omitempty"`
}

// RM trains a reward model and leaves it, centred, in cfg.Out: config.json
// (GPT2ForSequenceClassification, the centring bias as
// instructgo_score_bias) and model.safetensors. The run directory holds
// metrics.jsonl, run_config.json, summary.json and resume/, which lets an
// interrupted run continue exactly (opt.Resume). The model at the top is
// the last step's (one epoch, as the paper found more overfits), not the
// best by validation.
func RM(ctx context.Context, b gpu.Backend, tok tokenizer.Tokenizer, cfg RMConfig, opt RunOptions) (*RMSummary, error) {
	log := opt.Log
	cfg.Model.ScalarHead = true // not serialised in run_config.json
	cfg.Model.ScoreBias = 0     // trained without; fitted at the end
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rm: %w", err)
	}
	cfg.Data, cfg.Init, cfg.Out, cfg.CenterData = absPath(cfg.Data), absPath(cfg.Init), absPath(cfg.Out), absPath(cfg.CenterData)
	if tok.VocabSize() > cfg.Model.VocabSize {
		return nil, fmt.Errorf("rm: tokenizer vocabulary %d exceeds the model's %d", tok.VocabSize(), cfg.Model.VocabSize)
	}
	d, err := readRMData(cfg, tok, log)
	if err != nil {
		return nil, fmt.Errorf("rm: %w", err)
	}
	trainTok, valTok, valCs, valUtil, centre := d.train, d.val, d.valCs, d.valUtil, d.centre
	batcher, err := data.NewBatcher(unitItems(len(trainTok)), data.BatchOptions{MaxBatch: cfg.Batch, Seed: cfg.Seed})
	if err != nil {
		return nil, fmt.Errorf("rm: %w", err)
	}
	perEpoch := batcher.EpochBatches(0)
	if cfg.Steps == 0 {
		cfg.Steps = int(math.Ceil(cfg.Epochs * float64(perEpoch)))
	}

	m, err := model.New(b, cfg.Model, opt.models(comparisonShardRows(opt.Comm, cfg.MaxRows, cfg.Batch, trainTok), d.maxSeq, true))
	if err != nil {
		return nil, fmt.Errorf("rm: %w", err)
	}
	rs, err := NewRMStep(m, cfg.Optim, cfg.Steps, m.MaxBatch(), cfg.TokenBudget, tok.Pad(), cfg.Seed)
	if err != nil {
		return nil, fmt.Errorf("rm: %w", err)
	}
	rs.distribute(opt.Comm)
	r := &rmTrainer{rs: rs, batcher: batcher, train: trainTok, val: valTok, valUtil: valUtil, pad: tok.Pad(), budget: cfg.TokenBudget, rows: cfg.MaxRows,
		sum: &RMSummary{TrainPrompts: len(trainTok), ValPrompts: len(valTok), Truncation: d.trunc, SkippedLines: d.skipped}}
	sum := r.sum
	for _, c := range trainTok {
		k := len(c.Responses)
		sum.TrainPairs += k * (k - 1) / 2
	}
	if c, ok := ceiling(valCs, valTok, valUtil); ok {
		sum.Ceiling = &c
	}
	l, err := openLoop(loopSpec{
		name: "rm", tok: tok, unit: "step", dir: cfg.Out, steps: cfg.Steps,
		logEvery: cfg.LogEvery, evalEvery: cfg.EvalEvery, saveEvery: cfg.SaveEvery,
		resume: opt.Resume, config: cfg, parts: []savedPart{rs.t.part("", "model", 1)}, inputs: []string{cfg.Data, cfg.CenterData}, checkpoints: []string{cfg.Init},
		initial: func() ([]float32, error) {
			return InitRewardModel(cfg.Init, cfg.Model, cfg.HeadInitStd, cfg.Seed, opt.load())
		},
	}, r, opt)
	if err != nil {
		return nil, fmt.Errorf("rm: %w", err)
	}
	log.Info().Int("train_prompts", len(trainTok)).Int("train_pairs", sum.TrainPairs).Int("val_prompts", len(valTok)).
		Int("steps", cfg.Steps).Int("steps_per_epoch", perEpoch).Int("params", cfg.Model.NumParams()).
		Str("backend", b.Name()).Msg("reward model")
	if sum.Ceiling != nil {
		log.Info().Float64("oracle_vs_labels", round4(sum.Ceiling.OracleVsLabels)).
			Float64("labeler_vs_labeler", round4(sum.Ceiling.LabelerVsLabeler)).
			Float64("labeler_vs_truth", round4(sum.Ceiling.LabelerVsTruth)).Int("pairs", sum.Ceiling.Pairs).
			Msg("held-out ceilings: what the noise-free order and a second labeler score")
	}
	if err := l.run(ctx, r); err != nil {
		l.close()
		return nil, err
	}
	sum.Steps, sum.Tokens, sum.Seconds, sum.TokensPerSec, sum.Interrupted = l.st.Step, l.st.Tokens, l.st.Seconds, l.tokensPerSec(), l.interrupted
	sum.Epochs = float64(l.st.Step) / float64(perEpoch)
	if l.interrupted || !l.primary() {
		return sum, l.finish(ctx, sum)
	}

	// Centring: the bias that gives the demonstrations mean reward 0.
	c, err := center(m, centre.seqs, tok.Pad(), cfg.TokenBudget, cfg.MaxRows)
	if err != nil {
		l.close()
		return nil, fmt.Errorf("rm: centring: %w", err)
	}
	c.Source = centre.source
	sum.Centering = &c
	if err := model.SaveAs(cfg.Out, m, opt.SaveDType); err != nil {
		l.close()
		return nil, fmt.Errorf("rm: %w", err)
	}
	v, err := r.validate()
	if err != nil {
		l.close()
		return nil, fmt.Errorf("rm: final validation: %w", err)
	}
	sum.Val = &v
	ev := log.Info().Str("dir", cfg.Out).Float64("val_acc", round4(v.Accuracy)).Float64("val_margin", round4(v.MeanMargin))
	if v.TruthAccuracy != nil {
		ev = ev.Float64("val_truth_acc", round4(*v.TruthAccuracy))
	}
	ev.Float32("bias", c.Bias).Float64("centre_mean", c.MeanAfter).Str("centred_on", c.Source).Msg("reward model saved")
	return sum, l.finish(ctx, sum)
}

// rmData is a reward-model run's data: its comparisons split and
// tokenised, and the centring set.
type rmData struct {
	*comparisonSplit
	centre centerSet
}

// readRMData reads the run's comparisons (readComparisonSplit) and the
// centring set, so that bad data fails before training rather than after.
func readRMData(cfg RMConfig, tok tokenizer.Tokenizer, log zerolog.Logger) (*rmData, error) {
	d, err := readComparisonSplit(splitSpec{path: cfg.Data, valFrac: cfg.ValFrac, seed: cfg.Seed, maxPrompts: cfg.MaxPrompts, maxLen: cfg.MaxLen, skipBadLines: cfg.SkipBadLines}, tok, log)
	if err != nil {
		return nil, err
	}
	centre, err := centerSequences(cfg, d.train, tok)
	if err != nil {
		return nil, fmt.Errorf("centring data: %w", err)
	}
	for _, s := range centre.seqs {
		d.maxSeq = max(d.maxSeq, len(s))
	}
	return &rmData{comparisonSplit: d, centre: centre}, nil
}

// comparisonSplit is a run's comparisons, split with whole prompts held out
// and tokenised: the held-out records and their utilities (built-in tasks),
// and the longest sequence the model must hold.
type comparisonSplit struct {
	train, val []data.ComparisonTokens
	valCs      []data.Comparison
	valUtil    [][]float64
	maxSeq     int
	trunc      data.TruncStats
	skipped    int
}

// splitSpec says which comparisons a run reads and how it splits them.
type splitSpec struct {
	path         string
	valFrac      float64
	seed         uint64
	maxPrompts   int // a seeded subset of the training comparisons; 0: all
	maxLen       int
	skipBadLines bool
}

// readComparisonSplit reads the comparisons of s.path, holds out the
// comparisons of a seeded share of the distinct prompts and tokenises both
// parts to s.maxLen (data.TokenizeComparisons's rule, counted and logged).
func readComparisonSplit(s splitSpec, tok tokenizer.Tokenizer, log zerolog.Logger) (*comparisonSplit, error) {
	comparisons, stats, err := data.ReadComparisons(s.path, data.ReadOptions{SkipBadLines: s.skipBadLines}.ChatFor(tok))
	if err != nil {
		return nil, err
	}
	if stats.Skipped > 0 {
		log.Warn().Int("skipped", stats.Skipped).Strs("first", stats.Errors).Msg("bad lines skipped")
	}
	trainCs, valCs := splitComparisons(comparisons, s.valFrac, s.seed)
	if len(trainCs) == 0 || len(valCs) == 0 {
		return nil, fmt.Errorf("%d comparisons are too few to hold out %.0f%% of the prompts", len(comparisons), 100*s.valFrac)
	}
	if s.maxPrompts > 0 && s.maxPrompts < len(trainCs) {
		trainCs = subset(trainCs, s.maxPrompts, s.seed)
	}
	trainTok, trunc := data.TokenizeComparisons(trainCs, tok, s.maxLen)
	valTok, _ := data.TokenizeComparisons(valCs, tok, s.maxLen)
	if trunc.Dropped > 0 || trunc.PromptTruncated > 0 || trunc.CompletionTruncated > 0 || trunc.Identical > 0 {
		log.Warn().Str("truncation", trunc.String()).Int("max_len", s.maxLen).Msg("training comparisons (prompt cut from the left, responses from the right)")
	}
	if len(trainTok) == 0 || len(valTok) == 0 {
		return nil, fmt.Errorf("no comparison fits in %d tokens", s.maxLen)
	}
	valUtil, err := utilities(valCs, valTok)
	if err != nil {
		return nil, err
	}
	maxSeq := 1
	for _, set := range [][]data.ComparisonTokens{trainTok, valTok} {
		for _, c := range set {
			maxSeq = max(maxSeq, c.MaxLen())
		}
	}
	return &comparisonSplit{train: trainTok, val: valTok, valCs: valCs, valUtil: valUtil, maxSeq: maxSeq, trunc: trunc, skipped: stats.Skipped}, nil
}

// rmTrainer is the reward model as the loop driver runs it: steps of the
// K-way ranking loss over batches of prompts, validation on the held-out
// comparisons.
type rmTrainer struct {
	rs         *RMStep
	batcher    *data.Batcher
	train, val []data.ComparisonTokens
	valUtil    [][]float64
	pad        int32
	budget     int
	rows       int // the evaluation's batches (the configured MaxRows), forwarded in pieces of the model's
	sum        *RMSummary
}

func (r *rmTrainer) step(step int) (stepResult, error) {
	loss, tokens, rows, err := r.rs.Run(step, r.train, r.batcher.Next())
	if err != nil {
		return stepResult{}, err
	}
	r.sum.ResponsesForwarded += int64(rows)
	health, err := r.rs.Health()
	return stepResult{loss: loss, tokens: tokens, finite: health}, err
}

func (r *rmTrainer) validate() (RMEval, error) {
	return evalComparisons(r.rs.t.m, r.val, r.valUtil, r.pad, r.budget, r.rows)
}

func (r *rmTrainer) record(l *loop, step int, eval bool, w *lossWindow, ev *zerolog.Event) (any, *zerolog.Event, error) {
	base, ev, err := lmRecord(l, step, w, r.rs, ev)
	if err != nil {
		return nil, nil, err
	}
	rec := rmMetrics{stepMetrics: base}
	if eval {
		v, err := r.validate()
		if err != nil {
			return nil, nil, fmt.Errorf("validation: %w", err)
		}
		rec.ValLoss, rec.ValAccuracy, rec.ValMeanMargin = &v.Loss, &v.Accuracy, &v.MeanMargin
		rec.ValRewardMean, rec.ValRewardStd, rec.ValTruthAccuracy = &v.RewardMean, &v.RewardStd, v.TruthAccuracy
		ev = ev.Float64("val_loss", round4(v.Loss)).Float64("val_acc", round4(v.Accuracy)).
			Float64("val_margin", round4(v.MeanMargin))
		if v.TruthAccuracy != nil {
			ev = ev.Float64("val_truth_acc", round4(*v.TruthAccuracy))
		}
	}
	r.sum.TrainLoss = rec.Loss
	return rec, ev, nil
}

func (r *rmTrainer) state() any {
	p := r.batcher.Pos()
	return dataPosition{Epoch: p.Epoch, Next: p.Next}
}

func (r *rmTrainer) restore(saved json.RawMessage) error {
	var pos dataPosition
	if err := json.Unmarshal(saved, &pos); err != nil {
		return fmt.Errorf("trainer state: %w", err)
	}
	return r.batcher.Seek(data.Position{Epoch: pos.Epoch, Next: pos.Next})
}

// InitRewardModel returns the host parameters of a reward model of cfg
// (which must have a scalar head) initialised from the checkpoint in dir:
// its body, and its score head when it has one (a reward model), else a new
// head drawn from N(0, headStd²) with seed.
func InitRewardModel(dir string, cfg model.Config, headStd float64, seed uint64, lo model.LoadOptions) ([]float32, error) {
	if !cfg.ScalarHead {
		return nil, fmt.Errorf("init reward model: config has no scalar head")
	}
	host, err := model.LoadHostWith(dir, cfg, lo)
	if err == nil {
		return host, nil
	}
	if !errors.Is(err, model.ErrNoScoreHead) {
		return nil, err
	}
	off, n, ok := model.TensorRange(cfg, "score.weight")
	if !ok {
		return nil, fmt.Errorf("init reward model: layout has no score.weight")
	}
	rng := rand.New(rand.NewPCG(seed, 0x5c0e))
	for i := off; i < off+n; i++ {
		host[i] = float32(rng.NormFloat64() * headStd)
	}
	return host, nil
}

// splitComparisons holds out the comparisons of a seeded frac of the
// distinct prompts (at least one when there are two or more), so that no
// held-out prompt is also trained on. Both parts keep the file order.
func splitComparisons(cs []data.Comparison, frac float64, seed uint64) (train, val []data.Comparison) {
	index := map[string]int{}
	var prompts []string
	for _, c := range cs {
		if _, ok := index[c.Prompt]; !ok {
			index[c.Prompt] = len(prompts)
			prompts = append(prompts, c.Prompt)
		}
	}
	order := rand.New(rand.NewPCG(seed, 0x5f8)).Perm(len(prompts))
	nVal := int(math.Round(frac * float64(len(prompts))))
	if nVal == 0 && len(prompts) > 1 {
		nVal = 1
	}
	held := make([]bool, len(prompts))
	for _, p := range order[len(prompts)-nVal:] {
		held[p] = true
	}
	for _, c := range cs {
		if held[index[c.Prompt]] {
			val = append(val, c)
		} else {
			train = append(train, c)
		}
	}
	return train, val
}

// subset keeps a seeded choice of n comparisons, in their order.
func subset(cs []data.Comparison, n int, seed uint64) []data.Comparison {
	pick := rand.New(rand.NewPCG(seed, 0x5f9)).Perm(len(cs))[:n]
	slices.Sort(pick)
	out := make([]data.Comparison, n)
	for i, j := range pick {
		out[i] = cs[j]
	}
	return out
}

// unitItems describes n prompts to a Batcher that counts prompts: one row
// of one token each, so MaxBatch is the number of prompts per step.
func unitItems(n int) []data.Item {
	items := make([]data.Item, n)
	for i := range items {
		items[i] = data.Item{Rows: 1, Len: 1}
	}
	return items
}

// microBatches cuts the comparisons cs[idx...] into micro-batches of at
// most maxRows responses and budget padded tokens, shortest first so that
// little is padded. A comparison's responses stay together.
func microBatches(cs []data.ComparisonTokens, idx []int, maxRows, budget int) [][]int {
	sorted := slices.Clone(idx)
	slices.SortStableFunc(sorted, func(a, b int) int { return cs[a].MaxLen() - cs[b].MaxLen() })
	var out [][]int
	var cur []int
	rows, T := 0, 0
	for _, i := range sorted {
		k, l := len(cs[i].Responses), cs[i].MaxLen()
		if len(cur) > 0 && (rows+k > maxRows || (rows+k)*max(T, l) > budget) {
			out = append(out, cur)
			cur, rows, T = nil, 0, 0
		}
		cur = append(cur, i)
		rows += k
		T = max(T, l)
	}
	if len(cur) > 0 {
		out = append(out, cur)
	}
	return out
}

// RMStep is one optimizer step of a reward model on ranked comparisons:
// zero the gradients; per micro-batch (at most maxRows responses and
// budget padded tokens, a prompt's K responses together) forward every
// response once, read the rewards at each row's last token, the K-way loss
// of each prompt on the host and its gradient back through the model; then
// clipping and AdamW.
type RMStep struct {
	t               *trainable
	head            *rewardHead
	maxRows, budget int
	pad             int32
	seed            uint64
	comm            gpu.Comm // data-parallel ranks (dist.go); nil: one
}

// NewRMStep prepares steps of the scalar-head model m (built for training):
// AdamW with oc over a run of updates steps, micro-batches of at most
// maxRows responses and budget padded tokens padded with pad, dropout
// masks drawn from seed.
func NewRMStep(m *model.Model, oc OptimConfig, updates, maxRows, budget int, pad int32, seed uint64) (*RMStep, error) {
	if !m.Cfg.ScalarHead {
		return nil, fmt.Errorf("rm step: the model has no scalar head")
	}
	t, err := newTrainable(m, oc, updates)
	if err != nil {
		return nil, fmt.Errorf("rm step: %w", err)
	}
	head, err := newRewardHead(m.Backend(), maxRows, m.MaxSeq(), true)
	if err != nil {
		return nil, fmt.Errorf("rm step: %w", err)
	}
	return &RMStep{t: t, head: head, maxRows: maxRows, budget: budget, pad: pad, seed: seed}, nil
}

// distribute makes the steps data parallel over c's ranks (dist.go).
func (s *RMStep) distribute(c gpu.Comm) { s.comm, s.t.comm = c, c }

// Run runs step `step` on the prompts cs[idx...]: their mean K-way loss,
// each prompt counting once. It returns the loss, the padded tokens and
// the rows (responses) forwarded. Data parallel, each rank takes its shard
// of idx, weighted by the global count of prompts, and the figures
// returned are the global step's.
func (s *RMStep) Run(step int, cs []data.ComparisonTokens, idx []int) (loss float64, tokens int64, rows int, err error) {
	m := s.t.m
	s.t.zeroGrad()
	seed := rankSeed(s.comm, gpu.Mix64(s.seed, uint64(step)))
	weight := 1 / float64(len(idx))
	if distributed(s.comm) {
		lo, hi := gpu.Shard(len(idx), s.comm.Rank(), s.comm.Size())
		idx = idx[lo:hi]
	}
	mbs := microBatches(cs, idx, s.maxRows, s.budget)
	for mi, sub := range mbs {
		cb := data.NewComparisonBatch(cs, sub, s.pad)
		if err := m.Forward(&cb.Batch, true, gpu.Mix64(seed, uint64(mi))); err != nil {
			return 0, 0, 0, err
		}
		r, err := s.head.read(m, cb.B, cb.T, cb.ValidLen)
		if err != nil {
			return 0, 0, 0, err
		}
		dr := make([]float32, cb.B)
		l, err := KWayLoss(cb.Groups, r, weight, dr)
		if err != nil {
			return 0, 0, 0, err
		}
		if mi == len(mbs)-1 {
			s.t.reduceDuringBackward()
		}
		if err := s.head.backward(m, cb.B, cb.T, dr); err != nil {
			return 0, 0, 0, err
		}
		loss += l
		tokens += int64(cb.B * cb.T)
		rows += cb.B
	}
	if err := s.t.reduceGrads(); err != nil {
		return 0, 0, 0, err
	}
	s.t.update(1)
	if err := m.Backend().Err(); err != nil {
		return 0, 0, 0, err
	}
	sums, err := sumOverRanks(s.comm, loss, float64(tokens), float64(rows))
	if err != nil {
		return 0, 0, 0, err
	}
	return sums[0], int64(sums[1]), int(sums[2]), nil
}

// LR is the learning rate of the last step.
func (s *RMStep) LR() float32 { return s.t.lr }

// Health reads the divergence guard's values after the last step (see
// LMStep.Health).
func (s *RMStep) Health() ([]namedValue, error) { return s.t.health("model") }

// GradNorm is the global norm of the last step's gradient, before
// clipping. It synchronises with the device.
func (s *RMStep) GradNorm() (float64, error) { return s.t.opt.GradNorm(1) }

// KWayLoss is InstructGPT's reward-model loss on the rewards r of a batch's
// rows: for each group (a prompt's K ranked responses) the mean over its
// C(K,2) (better w, worse l) pairs of −log σ(r_w − r_l − margin), times
// weight, summed over the groups. It adds ∂loss/∂r to dr (len(r)). With
// weight 1/(prompts in the step) it is the mean over prompts, each prompt
// counting once whatever its K. The margin, when a record has one, is
// subtracted from every pair's difference (Llama 2's and TRL's margin
// loss): the loss asks the better response to win by at least that much.
//
// The rewards are downloaded (one float per response) and this runs on the
// host: at most C(9,2) = 36 pairs per prompt, a negligible cost next to the
// forward pass, and the gradient goes back as one upload. Pairs of identical
// responses have equal rewards; their two gradient terms cancel exactly in
// the parameters, so they add log 2 to the loss and nothing to the update.
func KWayLoss(groups []data.ComparisonGroup, r []float32, weight float64, dr []float32) (float64, error) {
	if len(dr) != len(r) {
		return 0, fmt.Errorf("k-way loss: %d gradients for %d rewards", len(dr), len(r))
	}
	r64 := make([]float64, len(r))
	for i, x := range r {
		r64[i] = float64(x)
	}
	grad := make([]float64, len(r))
	loss, err := pairwiseLoss(groups, r64, weight, grad)
	if err != nil {
		return 0, fmt.Errorf("k-way loss: %w", err)
	}
	for i, g := range grad {
		dr[i] += float32(g)
	}
	return loss, nil
}

// pairwiseLoss is KWayLoss in float64: weight × Σ_groups mean over the
// group's C(K,2) pairs of −log σ(r_w − r_l − margin), its gradient added
// to dr. DPO's pairwise form is this loss on implicit rewards.
func pairwiseLoss(groups []data.ComparisonGroup, r []float64, weight float64, dr []float64) (float64, error) {
	if err := checkGroups(groups, len(r), len(dr)); err != nil {
		return 0, err
	}
	loss := 0.0
	for _, g := range groups {
		pairs := g.Pairs()
		w := weight / float64(len(pairs))
		for _, p := range pairs {
			d := r[p[0]] - r[p[1]] - g.Margin
			loss += w * softplus(-d)
			// ∂(−log σ(d))/∂d = −σ(−d)
			gd := -w * sigmoid64(-d)
			dr[p[0]] += gd
			dr[p[1]] -= gd
		}
	}
	return loss, nil
}

// checkGroups refuses groups that are not rankings of rows inside n
// rewards (and as many gradients).
func checkGroups(groups []data.ComparisonGroup, n, nGrad int) error {
	if nGrad != n {
		return fmt.Errorf("%d gradients for %d rewards", nGrad, n)
	}
	for gi, g := range groups {
		if g.K < 2 || g.Start < 0 || g.Start+g.K > n || len(g.Ranking) != g.K {
			return fmt.Errorf("group %d (rows %d..%d, ranking of %d) outside the %d rewards", gi, g.Start, g.Start+g.K-1, len(g.Ranking), n)
		}
		seen := make([]bool, g.K)
		for _, k := range g.Ranking {
			if k < 0 || k >= g.K || seen[k] {
				return fmt.Errorf("group %d: ranking %v is not a permutation of 0..%d", gi, g.Ranking, g.K-1)
			}
			seen[k] = true
		}
	}
	return nil
}

// softplus is log(1 + eˣ), without overflow.
func softplus(x float64) float64 {
	if x > 0 {
		return x + math.Log1p(math.Exp(-x))
	}
	return math.Log1p(math.Exp(x))
}

func sigmoid64(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// rewardHead reads a scalar-head model's reward at each row's last token
// (GatherRows of the values at ValidLen−1) and sends the rewards' gradient
// back (ScatterAddRows into ∂L/∂values, zero elsewhere).
type rewardHead struct {
	b       gpu.Backend
	maxRows int
	idx     *gpu.Tensor // Int32 [maxRows]
	r, dr   *gpu.Tensor // [maxRows,1]
	dv      *gpu.Tensor // [maxRows·maxT], nil when not training
	hostIdx []int32
}

func newRewardHead(b gpu.Backend, maxRows, maxT int, train bool) (*rewardHead, error) {
	h := &rewardHead{b: b, maxRows: maxRows, hostIdx: make([]int32, maxRows)}
	var err error
	if h.idx, err = b.Alloc(gpu.Int32, maxRows); err != nil {
		return nil, fmt.Errorf("reward head: %w", err)
	}
	if h.r, err = b.Alloc(gpu.Float32, maxRows, 1); err != nil {
		return nil, fmt.Errorf("reward head: %w", err)
	}
	if train {
		if h.dr, err = b.Alloc(gpu.Float32, maxRows, 1); err != nil {
			return nil, fmt.Errorf("reward head: %w", err)
		}
		if h.dv, err = b.Alloc(gpu.Float32, maxRows*maxT); err != nil {
			return nil, fmt.Errorf("reward head: %w", err)
		}
	}
	return h, nil
}

// read returns the rewards of the last Forward's B rows of T tokens.
func (h *rewardHead) read(m *model.Model, B, T int, validLen []int32) ([]float32, error) {
	if B > h.maxRows || len(validLen) != B {
		return nil, fmt.Errorf("reward head: %d rows (%d lengths) for a head of %d", B, len(validLen), h.maxRows)
	}
	for i, l := range validLen {
		h.hostIdx[i] = l - 1
	}
	idx := h.idx.MustView(0, B)
	if err := h.b.UploadInt32(idx, h.hostIdx[:B]); err != nil {
		return nil, fmt.Errorf("reward head: %w", err)
	}
	values, err := m.Values().Reshape(B, T, 1)
	if err != nil {
		return nil, fmt.Errorf("reward head: %w", err)
	}
	out := h.r.MustView(0, B, 1)
	h.b.GatherRows(out, values, idx)
	r := make([]float32, B)
	if err := h.b.Download(r, out); err != nil {
		return nil, fmt.Errorf("reward head: %w", err)
	}
	return r, nil
}

// backward runs the model's backward pass from ∂L/∂r of the rows read last.
func (h *rewardHead) backward(m *model.Model, B, T int, dr []float32) error {
	if h.dv == nil || len(dr) != B || B*T > h.dv.Len() {
		return fmt.Errorf("reward head: cannot send back %d gradients for %d×%d", len(dr), B, T)
	}
	d := h.dr.MustView(0, B, 1)
	if err := h.b.Upload(d, dr); err != nil {
		return fmt.Errorf("reward head: %w", err)
	}
	dv := h.dv.MustView(0, B*T)
	h.b.Fill(dv, 0)
	h.b.ScatterAddRows(dv.MustReshape(B, T, 1), d, h.idx.MustView(0, B))
	return m.Backward(dv, nil)
}

// ScoreSequences returns a scalar-head model's reward of each token
// sequence (read at its last token; Cfg.ScoreBias included), forwarding
// them in batches of at most the model's MaxBatch rows and budget padded
// tokens, shortest first. Every sequence must hold 1..MaxSeq ids.
func ScoreSequences(m *model.Model, seqs [][]int32, pad int32, budget int) ([]float64, error) {
	return scoreSequences(m, seqs, pad, budget, m.MaxBatch())
}

// scoreSequences is ScoreSequences with batches of at most rows rows,
// each forwarded in pieces of the model's MaxBatch: a data-parallel
// rank's model, sized for its shard, scores as one process's does.
func scoreSequences(m *model.Model, seqs [][]int32, pad int32, budget, rows int) ([]float64, error) {
	if !m.Cfg.ScalarHead {
		return nil, fmt.Errorf("score: the model has no scalar head (not a reward model)")
	}
	for i, s := range seqs {
		if len(s) == 0 || len(s) > m.MaxSeq() {
			return nil, fmt.Errorf("score: sequence %d has %d tokens, want 1..%d", i, len(s), m.MaxSeq())
		}
	}
	budget = max(budget, m.MaxSeq())
	h, err := newRewardHead(m.Backend(), m.MaxBatch(), m.MaxSeq(), false)
	if err != nil {
		return nil, err
	}
	order := make([]int, len(seqs))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return len(seqs[a]) - len(seqs[b]) })
	out := make([]float64, len(seqs))
	for start := 0; start < len(order); {
		end, T := start, 0
		for end < len(order) {
			t := max(T, len(seqs[order[end]]))
			if end > start && (end-start+1 > rows || (end-start+1)*t > budget) {
				break
			}
			T = t
			end++
		}
		B := end - start
		in := &model.Batch{B: B, T: T, Tokens: make([]int32, B*T), ValidLen: make([]int32, B)}
		for r, i := range order[start:end] {
			row := in.Tokens[r*T : (r+1)*T]
			n := copy(row, seqs[i])
			for t := n; t < T; t++ {
				row[t] = pad
			}
			in.ValidLen[r] = int32(n)
		}
		err := forwardPieces(m, in, func(lo, hi int) error {
			r, err := h.read(m, hi-lo, T, in.ValidLen[lo:hi])
			for j, i := range order[start+lo : start+hi] {
				out[i] = float64(r[j])
			}
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("score: %w", err)
		}
		start = end
	}
	return out, nil
}

// EvalComparisons measures a reward model on comparisons: it tokenises
// them to the model's MaxSeq (the truncation rule of TokenizeComparisons;
// dropped comparisons are counted in the returned stats) and scores every
// response once. Comparisons of the built-in tasks are also measured
// against the noise-free utility order (RMEval.TruthAccuracy).
func EvalComparisons(m *model.Model, tok tokenizer.Tokenizer, cs []data.Comparison, budget int) (RMEval, data.TruncStats, error) {
	ct, st := data.TokenizeComparisons(cs, tok, m.MaxSeq())
	if len(ct) == 0 {
		return RMEval{}, st, fmt.Errorf("evaluate: no comparison fits in %d tokens", m.MaxSeq())
	}
	util, err := utilities(cs, ct)
	if err != nil {
		return RMEval{}, st, fmt.Errorf("evaluate: %w", err)
	}
	ev, err := evalComparisons(m, ct, util, tok.Pad(), budget, m.MaxBatch())
	return ev, st, err
}

// evalComparisons scores every response of cs once, in batches of at
// most rows responses (scoreSequences), and measures the rewards against
// the rankings (see measureRewards).
func evalComparisons(m *model.Model, cs []data.ComparisonTokens, util [][]float64, pad int32, budget, rows int) (RMEval, error) {
	var seqs [][]int32
	for _, c := range cs {
		seqs = append(seqs, c.Responses...)
	}
	scores, err := scoreSequences(m, seqs, pad, budget, rows)
	if err != nil {
		return RMEval{}, err
	}
	return measureRewards(cs, scores, util), nil
}

// measureRewards measures rewards against the rankings of cs (and, where
// util[i] is set, against the utilities): scores holds the reward of every
// response, comparison after comparison in cs's order. A reward model's
// scores and DPO's implicit rewards are measured alike.
func measureRewards(cs []data.ComparisonTokens, scores []float64, util [][]float64) RMEval {
	ev := RMEval{Prompts: len(cs)}
	var correct, margin, truthCorrect, sum, sumSq float64
	row := 0
	for i, c := range cs {
		r := scores[row : row+len(c.Responses)]
		row += len(c.Responses)
		g := data.ComparisonGroup{K: len(c.Responses), Ranking: c.Ranking, Margin: c.Margin}
		pairs := g.Pairs()
		pl := 0.0
		for _, p := range pairs {
			d := r[p[0]] - r[p[1]]
			pl += softplus(-(d - c.Margin))
			margin += d
			correct += agreeScore(d)
			if util != nil && util[i] != nil {
				if du := util[i][p[0]] - util[i][p[1]]; du != 0 {
					ev.TruthPairs++
					if du < 0 {
						d = -d
					}
					truthCorrect += agreeScore(d)
				}
			}
		}
		ev.Loss += pl / float64(len(pairs))
		ev.Pairs += len(pairs)
		for _, x := range r {
			sum += x
			sumSq += x * x
		}
	}
	n := float64(len(scores))
	ev.Loss /= float64(len(cs))
	ev.Accuracy = correct / float64(ev.Pairs)
	ev.MeanMargin = margin / float64(ev.Pairs)
	ev.RewardMean = sum / n
	ev.RewardStd = math.Sqrt(math.Max(0, sumSq/n-ev.RewardMean*ev.RewardMean))
	if ev.TruthPairs > 0 {
		a := truthCorrect / float64(ev.TruthPairs)
		ev.TruthAccuracy = &a
	}
	return ev
}

// agreeScore is 1 when a pair's reward difference d (better minus worse)
// is positive, ½ for a tie, 0 otherwise.
func agreeScore(d float64) float64 {
	switch {
	case d > 0:
		return 1
	case d == 0:
		return 0.5
	}
	return 0
}

// utilities returns, for each tokenised comparison whose record names a
// built-in task, the default labeler's noise-free utility of each
// response (nil for others); nil when no comparison has a task. A task name
// that is not built in is an error.
func utilities(cs []data.Comparison, ct []data.ComparisonTokens) ([][]float64, error) {
	lab := tasks.DefaultLabeler()
	var out [][]float64
	for i, c := range ct {
		rec := cs[c.Source]
		if rec.Task == "" {
			continue
		}
		t, err := tasks.ByName(rec.Task)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rec.Where(), err)
		}
		if out == nil {
			out = make([][]float64, len(ct))
		}
		u := make([]float64, len(rec.Responses))
		for k, r := range rec.Responses {
			u[k] = lab.Utility(t, rec.Answer, r)
		}
		out[i] = u
	}
	return out, nil
}

// ceiling measures the simulated labeler on held-out comparisons of the
// built-in tasks: the noise-free order against the recorded labels, and the
// expected agreement of two labelers (and of one with the truth). ok is
// false when no comparison has a task.
func ceiling(cs []data.Comparison, ct []data.ComparisonTokens, util [][]float64) (RMCeiling, bool) {
	if util == nil {
		return RMCeiling{}, false
	}
	var c RMCeiling
	var oracle float64
	var groups []tasks.Group
	for i, t := range ct {
		if util[i] == nil {
			continue
		}
		rec := cs[t.Source]
		groups = append(groups, tasks.Group{Prompt: rec.Prompt, Responses: rec.Responses, Ranking: rec.Ranking, Task: rec.Task, Answer: rec.Answer})
		g := data.ComparisonGroup{K: len(t.Responses), Ranking: t.Ranking}
		for _, p := range g.Pairs() {
			c.Pairs++
			oracle += agreeScore(util[i][p[0]] - util[i][p[1]])
		}
	}
	c.OracleVsLabels = oracle / float64(max(c.Pairs, 1))
	if a, err := tasks.DefaultLabeler().ExpectedAgreement(groups); err == nil {
		c.LabelerVsLabeler, c.LabelerVsTruth, c.TruthPairs = a.BetweenLabelers, a.WithTruth, a.TruthPairs
	}
	return c, true
}

// centerSet is what the bias is fitted on.
type centerSet struct {
	seqs   [][]int32
	source string
}

// centerSequences returns the demonstrations of cfg.CenterData (prompt +
// completion + EOS, fitted to MaxLen like SFT), or without it the
// best-ranked response of every training comparison.
func centerSequences(cfg RMConfig, train []data.ComparisonTokens, tok tokenizer.Tokenizer) (centerSet, error) {
	if cfg.CenterData == "" {
		s := centerSet{source: "chosen responses of the training comparisons"}
		for _, c := range train {
			s.seqs = append(s.seqs, c.Responses[c.Ranking[0]])
		}
		return s, nil
	}
	ex, _, err := data.ReadSFT(cfg.CenterData, data.ReadOptions{SkipBadLines: cfg.SkipBadLines}.ChatFor(tok))
	if err != nil {
		return centerSet{}, err
	}
	toks, _ := data.TokenizeSFT(ex, tok, cfg.MaxLen)
	if len(toks) == 0 {
		return centerSet{}, fmt.Errorf("%s: no demonstration fits in %d tokens", cfg.CenterData, cfg.MaxLen)
	}
	s := centerSet{source: cfg.CenterData}
	for _, t := range toks {
		s.seqs = append(s.seqs, t.Tokens)
	}
	return s, nil
}

// Center fits m.Cfg.ScoreBias so that the sequences' mean reward is 0: it
// scores them without a bias, sets the bias to minus their mean, and scores
// them again to report the mean and spread the model now gives them.
func Center(m *model.Model, seqs [][]int32, pad int32, budget int) (RMCentering, error) {
	return center(m, seqs, pad, budget, m.MaxBatch())
}

// center is Center scoring in batches of at most rows sequences.
func center(m *model.Model, seqs [][]int32, pad int32, budget, rows int) (RMCentering, error) {
	if len(seqs) == 0 {
		return RMCentering{}, fmt.Errorf("center: no sequences")
	}
	m.Cfg.ScoreBias = 0
	raw, err := scoreSequences(m, seqs, pad, budget, rows)
	if err != nil {
		return RMCentering{}, err
	}
	c := RMCentering{N: len(seqs), MeanBefore: mean(raw)}
	c.Bias = float32(-c.MeanBefore)
	m.Cfg.ScoreBias = c.Bias
	after, err := scoreSequences(m, seqs, pad, budget, rows)
	if err != nil {
		return RMCentering{}, err
	}
	c.MeanAfter = mean(after)
	for _, x := range after {
		c.StdAfter += (x - c.MeanAfter) * (x - c.MeanAfter)
	}
	c.StdAfter = math.Sqrt(c.StdAfter / float64(len(after)))
	return c, nil
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}
