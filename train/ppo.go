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

// PPOConfig is a PPO-ptx run (InstructGPT stage 3): the policy starts from
// the SFT model, the value function from the reward model, the frozen SFT
// model is the KL reference, and pretraining gradients are mixed in.
type PPOConfig struct {
	Prompts string   `json:"prompts"`       // JSONL of {"prompt"}
	Ptx     []string `json:"ptx,omitempty"` // pretraining text for the ptx term; empty: PPO without ptx
	Policy  string   `json:"policy"`        // the policy's start: the SFT checkpoint
	Reward  string   `json:"reward"`        // reward-model checkpoint (centred)
	// Reference is the frozen KL reference; empty: Policy. Iterated rounds
	// continue a PPO policy (Policy) while keeping the SFT model as the
	// reference, as InstructGPT's KL is always to the SFT model.
	Reference string `json:"reference,omitempty"`
	Out       string `json:"out"`

	Iterations int `json:"iterations"` // rollout + update rounds
	Episodes   int `json:"episodes"`   // prompts per rollout (paper: 512)
	MiniBatch  int `json:"minibatch"`  // episodes per update (paper: 64)
	Epochs     int `json:"ppo_epochs"` // passes over a rollout (paper: 1)

	MaxNew            int     `json:"max_new"`
	Temperature       float32 `json:"temperature"`
	MissingEOSPenalty float32 `json:"missing_eos_penalty"` // subtracted from the score of a response without EOS
	// GenBatch is how many episodes generate together; 0: on a GPU (a
	// gpu.Device) as many as half its free memory holds, up to all of a
	// rollout's (model.DecodeBatch), elsewhere a minibatch at a time. The
	// tokens do not depend on it (see model.GenerateOptions.Batch).
	GenBatch int `json:"gen_batch,omitempty"`

	KLCoef      float32 `json:"kl_coef"`      // β (paper: 0.02)
	KLTarget    float32 `json:"kl_target"`    // > 0: adaptive β (Ziegler et al.) aiming at this KL per episode
	KLHorizon   int     `json:"kl_horizon"`   // episodes over which the adaptive controller acts
	KLEstimator int     `json:"kl_estimator"` // 0: k1 = log π − log π_ref; 1: k3
	RewardClip  float32 `json:"reward_clip"`  // > 0: clip scores to ±this

	Gamma       float32 `json:"gamma"`
	Lambda      float32 `json:"lambda"`
	ClipEps     float32 `json:"clip_eps"`
	ValueClip   float32 `json:"value_clip"`
	EntropyCoef float32 `json:"entropy_coef"`

	PtxCoef  float32 `json:"ptx_coef"`  // γ, times the mean per-token pretraining loss (paper: 27.8; see DefaultPPO)
	PtxBatch int     `json:"ptx_batch"` // pretraining sequences per update
	PtxSeq   int     `json:"ptx_seq"`

	EMADecay    float32     `json:"ema_decay"` // paper: 0.992
	PolicyOptim OptimConfig `json:"policy_optim"`
	ValueOptim  OptimConfig `json:"value_optim"`
	Seed        uint64      `json:"seed"`
	LogEvery    int         `json:"log_every"`
	SaveEvery   int         `json:"save_every"`
}

// DefaultPPO is the paper's recipe (β 0.02, clip 0.2, γ 1, λ 0.95, one
// epoch, minibatches of 64 episodes, EMA 0.992) at the scale of the tiny
// model on a CPU, with two departures: rollouts of 256 episodes at a
// learning rate of 1e-4, which moved the policy where smaller steps did
// not, and a ptx coefficient of 0.1 instead of 27.8, because with the
// per-token ptx loss 27.8 made every update mostly pretraining. The runs
// are in docs/EXPERIMENTS.md.
func DefaultPPO() PPOConfig {
	po, vo := DefaultOptim(), DefaultOptim()
	po.LR, po.Warmup, po.MinLRFrac, po.WeightDecay = 1e-4, 5, 1, 0
	vo.LR, vo.Warmup, vo.MinLRFrac, vo.WeightDecay = 1e-4, 5, 1, 0
	return PPOConfig{
		Iterations: 40, Episodes: 256, MiniBatch: 64, Epochs: 1,
		MaxNew: 32, Temperature: 1, MissingEOSPenalty: 1,
		KLCoef: 0.02, KLHorizon: 10000,
		Gamma: 1, Lambda: 0.95, ClipEps: 0.2, ValueClip: 0.2,
		PtxCoef: 0.1, PtxBatch: 4, PtxSeq: 64,
		EMADecay: 0.992, PolicyOptim: po, ValueOptim: vo, Seed: 1, LogEvery: 1, SaveEvery: 10,
	}
}

// Validate reports a configuration that cannot run.
func (c *PPOConfig) Validate() error {
	switch {
	case c.Prompts == "" || c.Policy == "" || c.Reward == "" || c.Out == "":
		return fmt.Errorf("PPO needs prompts, a policy, a reward model and an output directory")
	case c.Iterations <= 0 || c.Episodes <= 0 || c.MiniBatch <= 0 || c.Epochs <= 0:
		return fmt.Errorf("iterations, episodes, minibatch and epochs must be positive")
	case c.Episodes%c.MiniBatch != 0:
		return fmt.Errorf("episodes %d must be a multiple of the minibatch %d", c.Episodes, c.MiniBatch)
	case c.MaxNew <= 0 || c.Temperature < 0:
		return fmt.Errorf("max new tokens must be positive and the temperature not negative")
	case c.GenBatch < 0 || c.GenBatch > c.Episodes:
		return fmt.Errorf("generation batch %d: want 0 (a minibatch) up to the episodes, %d", c.GenBatch, c.Episodes)
	case c.KLCoef < 0 || c.KLTarget < 0 || (c.KLTarget > 0 && c.KLHorizon <= 0):
		return fmt.Errorf("KL coefficient and target must not be negative; an adaptive target needs a horizon")
	case c.KLEstimator != 0 && c.KLEstimator != 1:
		return fmt.Errorf("KL estimator %d: want 0 (k1) or 1 (k3)", c.KLEstimator)
	case c.Gamma < 0 || c.Gamma > 1 || c.Lambda < 0 || c.Lambda > 1:
		return fmt.Errorf("gamma and lambda must be in [0, 1]")
	case c.ClipEps <= 0:
		return fmt.Errorf("clip epsilon must be positive")
	case c.PtxCoef < 0 || (len(c.Ptx) > 0 && (c.PtxBatch <= 0 || c.PtxSeq <= 1)):
		return fmt.Errorf("the ptx term needs a positive batch and a sequence of at least 2 tokens")
	case c.EMADecay < 0 || c.EMADecay >= 1:
		return fmt.Errorf("EMA decay %g must be in [0, 1)", c.EMADecay)
	case c.LogEvery <= 0 || c.SaveEvery < 0:
		return fmt.Errorf("log interval must be positive, save interval not negative")
	}
	if err := c.PolicyOptim.Validate(); err != nil {
		return fmt.Errorf("policy optimizer: %w", err)
	}
	return c.ValueOptim.Validate()
}

// PPOMetrics is one iteration's line of metrics.jsonl.
type PPOMetrics struct {
	Step  int     `json:"step"` // iteration
	Score float64 `json:"rm_score"`
	// TaskScore is the mean ground-truth score of the rollouts' responses
	// to prompts of the built-in tasks (absent when the prompts name none):
	// beside rm_score it shows whether the reward model's gains are real
	// or the policy is over-optimising it.
	TaskScore     *float64 `json:"task_score,omitempty"`
	KL            float64  `json:"kl"` // Σ over the response of the KL estimate, mean over episodes
	Entropy       float64  `json:"entropy"`
	ClipFrac      float64  `json:"clip_frac"`
	ApproxKL      float64  `json:"approx_kl"`
	PolicyLoss    float64  `json:"policy_loss"`
	ValueLoss     float64  `json:"value_loss"`
	ValueClipFrac float64  `json:"value_clip_frac"`
	ExplainedVar  float64  `json:"explained_variance"`
	ResponseLen   float64  `json:"response_len"`
	EOSFrac       float64  `json:"eos_frac"`
	PtxLoss       float64  `json:"ptx_loss"`
	Beta          float64  `json:"beta"`
	GenSeconds    float64  `json:"gen_sec"`
	TrainSeconds  float64  `json:"train_sec"`
	GenTokensSec  float64  `json:"gen_tokens_per_sec"`
	Elapsed       float64  `json:"elapsed_sec"`
}

// PPOSummary is what summary.json records.
type PPOSummary struct {
	Iterations  int        `json:"iterations"`
	Episodes    int        `json:"episodes"`
	Seconds     float64    `json:"seconds"`
	First, Last PPOMetrics `json:"-"`
	FirstScore  float64    `json:"first_rm_score"`
	LastScore   float64    `json:"last_rm_score"` // mean over the last quarter of iterations
	// FirstTaskScore and LastTaskScore are the same for the rollouts'
	// ground-truth task score (absent without built-in task prompts).
	FirstTaskScore *float64 `json:"first_task_score,omitempty"`
	LastTaskScore  *float64 `json:"last_task_score,omitempty"`
	LastKL         float64  `json:"last_kl"`
	PtxLoss        float64  `json:"ptx_loss"`
	Interrupted    bool     `json:"interrupted"`
}

// ppoModels are the four networks of a run, the two that learn with their
// optimizers, and the EMA of the policy's weights.
type ppoModels struct {
	policy, ref, value, reward *model.Model
	ema                        *model.Params
	policyTrain, valueTrain    *trainable
}

// A PPO run's resume state holds the policy and the value function, each
// with its optimizer, and the EMA weights, in these sub-directories of
// resume/.
const (
	PPOPolicyDir = "policy"
	PPOValueDir  = "value"
	PPOEMADir    = "ema"
)

// parts are the models a PPO run's resume state holds.
func (ms *ppoModels) parts(cfg PPOConfig) []savedPart {
	perIter := cfg.Epochs * (cfg.Episodes / cfg.MiniBatch)
	return []savedPart{
		ms.policyTrain.part(PPOPolicyDir, "policy", perIter),
		ms.valueTrain.part(PPOValueDir, "value function", perIter),
		{dir: PPOEMADir, name: "EMA", b: ms.policy.Backend(), cfg: ms.policy.Cfg, params: ms.ema},
	}
}

// PPO runs PPO-ptx and leaves the EMA policy in cfg.Out. Resumable like
// Pretrain: the policy, the value function, their optimizers, the EMA and
// the loop's position are saved to cfg.Out/resume every cfg.SaveEvery
// iterations and when ctx ends, and with opt.Resume the run continues from
// them, reproducing on the cpu (with the same thread count) the weights of
// an uninterrupted run.
func PPO(ctx context.Context, b gpu.Backend, tok tokenizer.Tokenizer, cfg PPOConfig, opt RunOptions) (*PPOSummary, error) {
	return runPPO(ctx, b, tok, cfg, opt, ppoHooks{})
}

// ppoHooks let tests look inside a run.
type ppoHooks struct {
	scorer   episodeScorer // nil: the reward model
	saveLast string        // non-empty: also save the last iterate (not the EMA) here
}

// episodeScorer sees the reward model's scores of a rollout (before the
// missing-EOS penalty and clipping) and returns the scores to train on:
// tests use it to train against a known reward or to watch the true task
// score while training on the reward model. prompts are the episodes'
// prompt records, responses their decoded responses.
type episodeScorer func(prompts []data.Prompt, responses []string, rm []float32) ([]float32, error)

func runPPO(ctx context.Context, b gpu.Backend, tok tokenizer.Tokenizer, cfg PPOConfig, opt RunOptions, hooks ppoHooks) (*PPOSummary, error) {
	log := opt.Log
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("ppo: %w", err)
	}
	cfg.Prompts, cfg.Ptx, cfg.Out = absPath(cfg.Prompts), absPaths(cfg.Ptx), absPath(cfg.Out)
	cfg.Policy, cfg.Reward, cfg.Reference = absPath(cfg.Policy), absPath(cfg.Reward), absPath(cfg.Reference)
	d, err := readPPOData(cfg, tok)
	if err != nil {
		return nil, fmt.Errorf("ppo: %w", err)
	}
	prompts, promptIDs, ptx, T := d.prompts, d.promptIDs, d.ptx, d.T
	ms, err := loadPPOModels(b, cfg, d.modelT, opt)
	if err != nil {
		return nil, fmt.Errorf("ppo: %w", err)
	}
	// The frozen reference and reward model are read from their
	// checkpoints again on resume: their fingerprints make sure they are
	// the same.
	policySum, err := checkpointSHA256(cfg.Policy)
	if err != nil {
		return nil, fmt.Errorf("ppo: policy: %w", err)
	}
	rewardSum, err := checkpointSHA256(cfg.Reward)
	if err != nil {
		return nil, fmt.Errorf("ppo: reward model: %w", err)
	}
	var refSum string
	if cfg.Reference != "" {
		if refSum, err = checkpointSHA256(cfg.Reference); err != nil {
			return nil, fmt.Errorf("ppo: reference: %w", err)
		}
	}
	dev, err := newPPODevice(b, cfg.Episodes, T, max(cfg.PtxBatch*cfg.PtxSeq, 1), cfg.Epochs*(cfg.Episodes/cfg.MiniBatch))
	if err != nil {
		return nil, fmt.Errorf("ppo: %w", err)
	}
	comm := opt.comm()
	ms.policyTrain.comm, ms.valueTrain.comm, dev.comm = comm, comm, comm
	p := &ppoTrainer{
		cfg: cfg, saveDType: opt.SaveDType, tok: tok, prompts: prompts, promptIDs: promptIDs, hooks: hooks,
		order: rand.New(rand.NewPCG(cfg.Seed, 0x990)).Perm(len(prompts)),
		iter:  &PPOIteration{b: b, ms: ms, dev: dev, ptx: ptx, cfg: cfg, eos: tok.EOS(), pad: tok.Pad(), comm: comm},
		st:    ppoState{Beta: float64(cfg.KLCoef), PolicySHA256: policySum, RewardSHA256: rewardSum, ReferenceSHA256: refSum},
	}
	l, err := openLoop(loopSpec{
		name: "ppo", tok: tok, unit: "iteration", dir: cfg.Out, steps: cfg.Iterations,
		logEvery: cfg.LogEvery, saveEvery: cfg.SaveEvery,
		resume: opt.Resume, config: cfg, parts: ms.parts(cfg), inputs: append([]string{cfg.Prompts}, cfg.Ptx...),
		checkpoints: nonEmpty(cfg.Policy, cfg.Reward, cfg.Reference),
	}, p, opt)
	if err != nil {
		return nil, fmt.Errorf("ppo: %w", err)
	}
	p.elapsed = l.elapsed
	log.Info().Int("prompts", len(prompts)).Int("iterations", cfg.Iterations).Int("episodes", cfg.Episodes).
		Int("minibatch", cfg.MiniBatch).Bool("ptx", ptx != nil).Str("backend", b.Name()).Msg("PPO-ptx")
	if err := l.run(ctx, p); err != nil {
		l.close()
		return nil, err
	}
	if hooks.saveLast != "" && l.primary() {
		if err := model.Save(hooks.saveLast, ms.policy); err != nil {
			l.close()
			return nil, fmt.Errorf("ppo: %w", err)
		}
	}
	st := &p.st
	sum := &PPOSummary{Iterations: l.st.Step, Episodes: l.st.Step * cfg.Episodes, Seconds: l.st.Seconds, Interrupted: l.interrupted,
		First: st.First, Last: st.Last}
	sum.FirstScore, sum.LastKL, sum.PtxLoss = sum.First.Score, sum.Last.KL, sum.Last.PtxLoss
	sum.LastScore = lastQuarterMean(st.Scores)
	if sum.First.TaskScore != nil && len(st.TaskScores) > 0 {
		last := lastQuarterMean(st.TaskScores)
		sum.FirstTaskScore, sum.LastTaskScore = sum.First.TaskScore, &last
	}
	ev := log.Info().Str("dir", cfg.Out).Float64("first_rm_score", round4(sum.FirstScore)).Float64("last_rm_score", round4(sum.LastScore))
	if sum.LastTaskScore != nil {
		ev = ev.Float64("first_task_score", round4(*sum.FirstTaskScore)).Float64("last_task_score", round4(*sum.LastTaskScore))
	}
	ev.Float64("kl", round4(sum.LastKL)).Msg("EMA policy saved")
	return sum, l.finish(ctx, sum)
}

// ppoData is a PPO run's data: the prompts and their tokens, the ptx
// text's window sampler (nil without ptx), the rollout's row length T
// (the longest prompt, the new tokens and the stop action) and the
// models' longest row, ptx windows included.
type ppoData struct {
	prompts   []data.Prompt
	promptIDs [][]int32
	ptx       *data.WindowSampler
	T, modelT int
}

// readPPOData reads the prompts and the ptx text and checks that they fit
// the policy's context.
func readPPOData(cfg PPOConfig, tok tokenizer.Tokenizer) (*ppoData, error) {
	rp, err := readRolloutPrompts(cfg.Prompts, cfg.Policy, cfg.MaxNew, tok)
	if err != nil {
		return nil, err
	}
	d := &ppoData{prompts: rp.prompts, promptIDs: rp.ids, T: rp.T}
	polCfg := rp.policy
	d.modelT = d.T
	if len(cfg.Ptx) > 0 && cfg.PtxCoef > 0 {
		if cfg.PtxSeq > polCfg.MaxSeqLen {
			return nil, fmt.Errorf("ptx sequences of %d tokens exceed the policy's context of %d", cfg.PtxSeq, polCfg.MaxSeqLen)
		}
		corpus, err := data.LoadText(cfg.Ptx, tok, 0)
		if err != nil {
			return nil, fmt.Errorf("ptx: %w", err)
		}
		if d.ptx, err = data.NewWindowSampler(corpus.Train, cfg.PtxSeq, cfg.Seed^0x9e3779b9); err != nil {
			return nil, fmt.Errorf("ptx: %w", err)
		}
		d.modelT = max(d.T, cfg.PtxSeq)
	}
	return d, nil
}

// ppoTrainer is PPO-ptx as the loop driver runs it: a step is an
// iteration (a rollout of cfg.Episodes prompts in the seeded order, then
// the minibatch updates), its record the iteration's metrics; every save
// also writes the EMA policy, the run's result, at the top of the run
// directory.
type ppoTrainer struct {
	cfg       PPOConfig
	saveDType string
	tok       tokenizer.Tokenizer
	prompts   []data.Prompt
	promptIDs [][]int32
	order     []int
	iter      *PPOIteration
	hooks     ppoHooks
	st        ppoState
	rec       PPOMetrics // of the last iteration
	elapsed   func() float64
}

// ppoState is PPO's position in the resume state.
type ppoState struct {
	Beta       float64 `json:"beta"`        // the KL coefficient of the next iteration
	PromptNext int     `json:"prompt_next"` // position in the seeded prompt order
	PtxEpoch   int     `json:"ptx_epoch"`   // ptx window sampler position
	PtxNext    int     `json:"ptx_next"`
	// What the summary needs: the first and latest iteration's metrics and
	// every iteration's mean score and task score (the summary averages
	// the last quarter).
	First      PPOMetrics `json:"first"`
	Last       PPOMetrics `json:"last"`
	Scores     []float64  `json:"scores"`
	TaskScores []float64  `json:"task_scores,omitempty"`
	// The fingerprints of the frozen checkpoints' weights files: a resume
	// against other ones is refused.
	PolicySHA256    string `json:"policy_sha256"`
	RewardSHA256    string `json:"reward_sha256"`
	ReferenceSHA256 string `json:"reference_sha256,omitempty"` // with PPOConfig.Reference
}

func (p *ppoTrainer) step(it int) (stepResult, error) {
	cfg, st := p.cfg, &p.st
	batch := make([][]int32, cfg.Episodes)
	recs := make([]data.Prompt, cfg.Episodes)
	for i := range batch {
		if st.PromptNext == len(p.order) {
			st.PromptNext = 0
		}
		batch[i], recs[i] = p.promptIDs[p.order[st.PromptNext]], p.prompts[p.order[st.PromptNext]]
		st.PromptNext++
	}
	// Between scoring and the update: the rollouts' ground-truth task
	// score, and a test's scorer, on the episodes from lo on (data
	// parallel, this rank's).
	var taskTotal float64
	var taskN int
	rescore := func(ro *rollout, lo int) error {
		recs := recs[lo : lo+ro.E]
		responses := ro.responses(p.tok)
		taskTotal, taskN = rolloutTaskScoreSum(recs, responses)
		if p.hooks.scorer != nil {
			var err error
			if ro.rawScores, err = p.hooks.scorer(recs, responses, ro.rawScores); err != nil {
				return fmt.Errorf("score: %w", err)
			}
			if len(ro.rawScores) != ro.E {
				return fmt.Errorf("%d scores for %d episodes", len(ro.rawScores), ro.E)
			}
		}
		return nil
	}
	ph, err := p.iter.run(batch, it, st.Beta, rescore)
	if err != nil {
		return stepResult{}, err
	}
	rec := ph.Metrics
	task, err := sumOverRanks(p.iter.comm, taskTotal, float64(taskN))
	if err != nil {
		return stepResult{}, fmt.Errorf("task score: %w", err)
	}
	if task[1] > 0 {
		mean := task[0] / task[1]
		rec.TaskScore = &mean
	}
	rec.GenSeconds = (ph.Generate + ph.Score).Seconds()
	rec.GenTokensSec = float64(ph.GenTokens) / rec.GenSeconds
	rec.TrainSeconds = ph.Update.Seconds()
	rec.Elapsed = p.elapsed()
	p.rec = rec
	// The iteration is done: the loop state moves past it.
	st.Beta = adaptBeta(st.Beta, rec.KL, float64(cfg.KLTarget), cfg.Episodes, cfg.KLHorizon)
	st.Scores = append(st.Scores, rec.Score)
	if rec.TaskScore != nil {
		st.TaskScores = append(st.TaskScores, *rec.TaskScore)
	}
	if it == 1 {
		st.First = rec
	}
	st.Last = rec
	finite := []namedValue{{"the value loss", rec.ValueLoss}, {"the mean score", rec.Score}}
	for _, t := range []struct {
		name string
		t    *trainable
	}{{"policy", p.iter.ms.policyTrain}, {"value function", p.iter.ms.valueTrain}} {
		h, err := t.t.health(t.name)
		if err != nil {
			return stepResult{}, err
		}
		finite = append(finite, h...)
	}
	return stepResult{
		loss: rec.PolicyLoss, tokens: int64(ph.GenTokens), status: fmt.Sprintf("score %.3f  kl %.3f", rec.Score, rec.KL),
		finite: finite,
	}, nil
}

func (p *ppoTrainer) record(_ *loop, _ int, _ bool, _ *lossWindow, ev *zerolog.Event) (any, *zerolog.Event, error) {
	rec := p.rec
	ev = ev.Float64("rm_score", round4(rec.Score))
	if rec.TaskScore != nil {
		ev = ev.Float64("task_score", round4(*rec.TaskScore))
	}
	ev = ev.Float64("kl", round4(rec.KL)).
		Float64("clip_frac", round4(rec.ClipFrac)).Float64("value_loss", round4(rec.ValueLoss)).
		Float64("ptx_loss", round4(rec.PtxLoss)).Float64("len", round4(rec.ResponseLen)).
		Float64("gen_s", round4(rec.GenSeconds)).Float64("train_s", round4(rec.TrainSeconds))
	return rec, ev, nil
}

func (p *ppoTrainer) state() any {
	if ptx := p.iter.ptx; ptx != nil {
		p.st.PtxEpoch, p.st.PtxNext = ptx.Epoch, ptx.Next
	}
	return p.st
}

func (p *ppoTrainer) restore(saved json.RawMessage) error {
	var st ppoState
	if err := json.Unmarshal(saved, &st); err != nil {
		return fmt.Errorf("trainer state: %w", err)
	}
	if err := sameCheckpoints(sameCheckpoint("policy", "SFT model", p.st.PolicySHA256, st.PolicySHA256),
		sameCheckpoint("reward model", "reward model", p.st.RewardSHA256, st.RewardSHA256),
		sameCheckpoint("reference", "reference", p.st.ReferenceSHA256, st.ReferenceSHA256)); err != nil {
		return err
	}
	if st.PromptNext < 0 || st.PromptNext > len(p.order) {
		return fmt.Errorf("prompt position %d in a file of %d prompts: the prompts changed", st.PromptNext, len(p.order))
	}
	if ptx := p.iter.ptx; ptx != nil {
		if st.PtxEpoch < 0 || st.PtxNext < 0 || st.PtxNext > ptx.Windows() {
			return fmt.Errorf("ptx position %d in an epoch of %d windows: the ptx text changed", st.PtxNext, ptx.Windows())
		}
		ptx.Seek(st.PtxEpoch, st.PtxNext)
	}
	p.st = st
	return nil
}

// afterSave writes the EMA weights as the run's policy at the top of the
// run directory.
func (p *ppoTrainer) afterSave() error {
	return saveEMAPolicy(p.iter.b, p.cfg.Out, p.iter.ms, p.saveDType)
}

// reference is the KL reference's checkpoint.
func (c PPOConfig) reference() string {
	if c.Reference != "" {
		return c.Reference
	}
	return c.Policy
}

// nonEmpty is its arguments without the empty strings.
func nonEmpty(paths ...string) []string {
	var out []string
	for _, p := range paths {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// loadPPOModels loads, with opt's precision and loading policy, the policy (trainable, no dropout), the frozen SFT
// reference, the value function (trainable, from the reward model) and the
// frozen reward model, all sized for a data-parallel rank's shard of a
// minibatch (shardCap; one process: a whole one) of T tokens: they score
// the rank's share of the rollout in pieces and train on its rows, and the
// policy samples with the seed groups of a whole minibatch
// (rolloutSampling.seedGroup), so the tokens are one process's.
func loadPPOModels(b gpu.Backend, cfg PPOConfig, T int, opt RunOptions) (*ppoModels, error) {
	ms := &ppoModels{}
	var err error
	rows := shardCap(opt.Comm, cfg.MiniBatch)
	load := func(dir string, train bool) (*model.Model, error) {
		return loadNoDropout(b, dir, rows, T, train, opt)
	}
	if ms.policy, err = load(cfg.Policy, true); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if ms.ref, err = load(cfg.reference(), false); err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	if a, r := ms.policy.Cfg, ms.ref.Cfg; a.VocabSize != r.VocabSize || a.Tokenizer != r.Tokenizer {
		return nil, fmt.Errorf("reference %s: vocabulary %d (%s), the policy's %d (%s)", cfg.reference(), r.VocabSize, r.Tokenizer, a.VocabSize, a.Tokenizer)
	}
	if ms.value, err = load(cfg.Reward, true); err != nil {
		return nil, fmt.Errorf("value function: %w", err)
	}
	if ms.reward, err = load(cfg.Reward, false); err != nil {
		return nil, fmt.Errorf("reward model: %w", err)
	}
	return ms, ms.finish(b, cfg)
}

// finish checks that the policy and the reward model belong together and
// sets up the EMA (a copy of the policy) and the two optimizers.
func (ms *ppoModels) finish(b gpu.Backend, cfg PPOConfig) error {
	if err := CheckPolicyReward(ms.policy.Cfg, ms.reward.Cfg); err != nil {
		return err
	}
	var err error
	if ms.ema, err = model.NewParams(b, ms.policy.Cfg); err != nil {
		return fmt.Errorf("EMA: %w", err)
	}
	b.Copy(ms.ema.All, ms.policy.Params.All)
	updates := cfg.Iterations * cfg.Epochs * (cfg.Episodes / cfg.MiniBatch)
	if ms.policyTrain, err = newTrainable(ms.policy, cfg.PolicyOptim, updates); err != nil {
		return fmt.Errorf("policy: %w", err)
	}
	if ms.valueTrain, err = newTrainable(ms.value, cfg.ValueOptim, updates); err != nil {
		return fmt.Errorf("value function: %w", err)
	}
	return b.Err()
}

// saveEMAPolicy writes the EMA weights as the run's policy checkpoint,
// stored as dtype (see RunOptions.SaveDType).
func saveEMAPolicy(b gpu.Backend, dir string, ms *ppoModels, dtype string) error {
	host := make([]float32, ms.ema.All.Len())
	if err := b.Download(host, ms.ema.All); err != nil {
		return err
	}
	return model.SaveHostAs(dir, ms.policy.Cfg, host, dtype)
}

func fillRolloutMetrics(rec *PPOMetrics, ro *rollout) {
	n := float64(ro.E)
	var score, length, eos float64
	for i := range ro.E {
		score += float64(ro.scores[i])
		length += float64(ro.responseLen[i])
		if ro.eos[i] {
			eos++
		}
	}
	rec.Score, rec.ResponseLen, rec.EOSFrac = score/n, length/n, eos/n
	rec.KL = ro.klSum / n
	// Explained variance of the value function on this rollout's returns.
	var mr, mv, vr, vres, cnt float64
	for i, m := range ro.mask {
		if m == 0 {
			continue
		}
		mr += float64(ro.returns[i])
		cnt++
	}
	mr /= math.Max(cnt, 1)
	for i, m := range ro.mask {
		if m == 0 {
			continue
		}
		d := float64(ro.returns[i]) - mr
		vr += d * d
		e := float64(ro.returns[i]) - float64(ro.values[i])
		vres += e * e
		mv += float64(ro.values[i])
	}
	if vr > 0 {
		rec.ExplainedVar = 1 - vres/vr
	}
}

// adaptBeta is Ziegler et al.'s proportional KL controller: β grows when
// the KL per episode is above target and shrinks below it, by at most 20%
// per horizon of episodes. A target of 0 keeps β fixed.
func adaptBeta(beta, kl, target float64, episodes, horizon int) float64 {
	if target <= 0 {
		return beta
	}
	e := math.Max(-0.2, math.Min(0.2, kl/target-1))
	return beta * (1 + e*float64(episodes)/float64(horizon))
}
