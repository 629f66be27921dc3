package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
)

// The group methods: policy-gradient training without a value model, each
// prompt's responses sampled as a group and judged against each other.
const (
	// MethodGRPO is GRPO (Shao et al. 2024, DeepSeekMath): group-normalised
	// advantages, PPO's clipped surrogate, the k3 KL to the reference in
	// the loss.
	MethodGRPO = "grpo"
	// MethodRLOO is RLOO (Ahmadian et al. 2024): the leave-one-out
	// baseline, REINFORCE on the sequence log-prob, the KL in the reward.
	MethodRLOO = "rloo"
)

// GroupConfig is a GRPO or RLOO run: the policy starts from the SFT model,
// which stays frozen as the KL reference; the reward is the reward model's
// score, the built-in tasks' scores (verifiable rewards), or their sum.
//
// An iteration samples Group responses to each of PromptsPerIter prompts
// (in a seeded order), scores them, computes each response's advantage
// within its group and takes Epochs passes of clipped policy-gradient
// steps over minibatches of MiniBatch responses.
type GroupConfig struct {
	Method     string `json:"method"` // MethodGRPO or MethodRLOO
	Prompts    string `json:"prompts"`
	Policy     string `json:"policy"`           // SFT checkpoint
	Reward     string `json:"reward,omitempty"` // reward-model checkpoint; "": none
	TaskReward bool   `json:"task_reward"`      // add the built-in tasks' scores to the reward
	Out        string `json:"out"`

	Iterations     int `json:"iterations"`
	PromptsPerIter int `json:"prompts_per_iteration"`
	Group          int `json:"group"`     // responses per prompt (GRPO's G, RLOO's K)
	MiniBatch      int `json:"minibatch"` // responses per update
	Epochs         int `json:"epochs"`    // passes over a rollout

	MaxNew            int     `json:"max_new"`
	Temperature       float32 `json:"temperature"`
	MissingEOSPenalty float32 `json:"missing_eos_penalty"` // subtracted from the reward of a response without EOS

	// KLCoef is β: GRPO's weight of the per-token k3 KL in the loss,
	// RLOO's of the sequence's k1 KL subtracted from the reward.
	KLCoef  float32 `json:"kl_coef"`
	ClipEps float32 `json:"clip_eps"`
	// DrGRPO is Dr. GRPO (Liu et al. 2025): advantages not divided by the
	// group's standard deviation, and a response's token losses summed
	// and divided by the constant MaxNew instead of its own length.
	DrGRPO bool `json:"dr_grpo,omitempty"`

	Optim     OptimConfig `json:"optim"`
	Seed      uint64      `json:"seed"`
	LogEvery  int         `json:"log_every"`
	SaveEvery int         `json:"save_every"`
}

// defaultGroup is what GRPO and RLOO share: PPO's sampling and learning
// rate at the tiny model's scale, 256 responses an iteration in
// minibatches of 64, one epoch.
func defaultGroup() GroupConfig {
	o := DefaultOptim()
	o.LR, o.Warmup, o.MinLRFrac, o.WeightDecay = 1e-4, 5, 1, 0
	return GroupConfig{
		Iterations: 40, MiniBatch: 64, Epochs: 1, MaxNew: 32, Temperature: 1,
		ClipEps: 0.2, Optim: o, Seed: 1, LogEvery: 1, SaveEvery: 10,
	}
}

// DefaultGRPO is GRPO with the DeepSeekMath paper's β 0.04 and groups of 8
// (the paper samples 64 at a larger scale). β 0.04 suits the tasks'
// scorers; against a learned reward model GRPO over-optimised at it and
// needed about 0.4 (docs/EXPERIMENTS.md).
func DefaultGRPO() GroupConfig {
	c := defaultGroup()
	c.Method, c.PromptsPerIter, c.Group, c.KLCoef = MethodGRPO, 32, 8, 0.04
	return c
}

// DefaultRLOO is RLOO with K = 4 samples per prompt and TRL's β 0.05.
func DefaultRLOO() GroupConfig {
	c := defaultGroup()
	c.Method, c.PromptsPerIter, c.Group, c.KLCoef = MethodRLOO, 64, 4, 0.05
	return c
}

// Episodes is the number of responses an iteration samples.
func (c *GroupConfig) Episodes() int { return c.PromptsPerIter * c.Group }

// Validate reports a configuration that cannot run.
func (c *GroupConfig) Validate() error {
	switch {
	case c.Method != MethodGRPO && c.Method != MethodRLOO:
		return fmt.Errorf("method %q: want %q or %q", c.Method, MethodGRPO, MethodRLOO)
	case c.Prompts == "" || c.Policy == "" || c.Out == "":
		return fmt.Errorf("%s needs prompts, a policy and an output directory", c.Method)
	case c.Reward == "" && !c.TaskReward:
		return fmt.Errorf("%s needs a reward: a reward model, the built-in tasks' scores, or both", c.Method)
	case c.Iterations <= 0 || c.PromptsPerIter <= 0 || c.MiniBatch <= 0 || c.Epochs <= 0:
		return fmt.Errorf("iterations, prompts per iteration, minibatch and epochs must be positive")
	case c.Group < 2 || c.Group > 1024:
		return fmt.Errorf("group %d: want 2..1024 responses per prompt (a group of one has no baseline)", c.Group)
	case c.PromptsPerIter > maxRolloutEpisodes/c.Group || c.Episodes()%c.MiniBatch != 0:
		return fmt.Errorf("%d×%d responses an iteration must be at most %d and a multiple of the minibatch %d", c.PromptsPerIter, c.Group, maxRolloutEpisodes, c.MiniBatch)
	case c.MaxNew <= 0 || c.Temperature < 0:
		return fmt.Errorf("max new tokens must be positive and the temperature not negative")
	case !(c.KLCoef >= 0) || !(c.ClipEps > 0) || !(c.MissingEOSPenalty >= 0):
		return fmt.Errorf("KL coefficient and missing-EOS penalty must not be negative, clip epsilon must be positive")
	case c.DrGRPO && c.Method != MethodGRPO:
		return fmt.Errorf("Dr. GRPO is a form of GRPO, not of %s", c.Method)
	case c.LogEvery <= 0 || c.SaveEvery < 0:
		return fmt.Errorf("log interval must be positive, save interval not negative")
	}
	return c.Optim.Validate()
}

// maxRolloutEpisodes bounds the responses sampled at once (a group
// method's iteration, a rejection-sampling batch) before anything is
// allocated.
const maxRolloutEpisodes = 1 << 16

// GroupMetrics is one iteration's line of metrics.jsonl.
type GroupMetrics struct {
	Step   int     `json:"step"` // iteration
	Reward float64 `json:"reward"`
	// RMScore and TaskScore are the rollouts' mean reward-model score (with
	// a reward model) and ground-truth task score (when the prompts name
	// built-in tasks, rewarded by them or not).
	RMScore   *float64 `json:"rm_score,omitempty"`
	TaskScore *float64 `json:"task_score,omitempty"`
	// KL is the sum over a response of the KL estimate to the reference
	// (GRPO's k3, RLOO's k1), mean over responses, at sampling time.
	KL          float64 `json:"kl"`
	Entropy     float64 `json:"entropy"`
	ClipFrac    float64 `json:"clip_frac"`
	ApproxKL    float64 `json:"approx_kl"`
	PolicyLoss  float64 `json:"policy_loss"` // the surrogate, without the KL term
	ResponseLen float64 `json:"response_len"`
	EOSFrac     float64 `json:"eos_frac"`
	// FlatGroups is the share of groups whose rewards were all equal: no
	// learning signal.
	FlatGroups   float64 `json:"flat_groups"`
	GenSeconds   float64 `json:"gen_sec"`
	TrainSeconds float64 `json:"train_sec"`
	GenTokensSec float64 `json:"gen_tokens_per_sec"`
	Elapsed      float64 `json:"elapsed_sec"`
}

// GroupSummary is what summary.json records.
type GroupSummary struct {
	Method      string  `json:"method"`
	Iterations  int     `json:"iterations"`
	Episodes    int     `json:"episodes"`
	Seconds     float64 `json:"seconds"`
	FirstReward float64 `json:"first_reward"`
	LastReward  float64 `json:"last_reward"` // mean over the last quarter of iterations
	// FirstTaskScore and LastTaskScore are the same for the rollouts'
	// ground-truth task score (absent without built-in task prompts).
	FirstTaskScore *float64 `json:"first_task_score,omitempty"`
	LastTaskScore  *float64 `json:"last_task_score,omitempty"`
	LastKL         float64  `json:"last_kl"`
	Interrupted    bool     `json:"interrupted"`
}

// GRPO trains the policy with GRPO (or Dr. GRPO) and leaves it in cfg.Out
// (the last iterate). Resumable like PPO: the policy, its optimizer and
// the loop's position are saved to cfg.Out/resume every cfg.SaveEvery
// iterations and when ctx ends; with opt.Resume the run continues from
// them, reproducing on the cpu the weights of an uninterrupted run.
func GRPO(ctx context.Context, b gpu.Backend, tok tokenizer.Tokenizer, cfg GroupConfig, opt RunOptions) (*GroupSummary, error) {
	if cfg.Method != MethodGRPO {
		return nil, fmt.Errorf("grpo: a %q configuration", cfg.Method)
	}
	return runGroup(ctx, b, tok, cfg, opt)
}

// RLOO trains the policy with RLOO, like GRPO.
func RLOO(ctx context.Context, b gpu.Backend, tok tokenizer.Tokenizer, cfg GroupConfig, opt RunOptions) (*GroupSummary, error) {
	if cfg.Method != MethodRLOO {
		return nil, fmt.Errorf("rloo: a %q configuration", cfg.Method)
	}
	return runGroup(ctx, b, tok, cfg, opt)
}

func runGroup(ctx context.Context, b gpu.Backend, tok tokenizer.Tokenizer, cfg GroupConfig, opt RunOptions) (*GroupSummary, error) {
	name := cfg.Method
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cfg.Prompts, cfg.Policy, cfg.Out = absPath(cfg.Prompts), absPath(cfg.Policy), absPath(cfg.Out)
	if cfg.Reward != "" {
		cfg.Reward = absPath(cfg.Reward)
	}
	g, err := newGroupTrainer(b, tok, cfg, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	l, err := openLoop(loopSpec{
		name: name, tok: tok, unit: "iteration", dir: cfg.Out, steps: cfg.Iterations,
		logEvery: cfg.LogEvery, saveEvery: cfg.SaveEvery,
		resume: opt.Resume, config: cfg, parts: []savedPart{g.policy.part("", "policy", cfg.Epochs*cfg.Episodes()/cfg.MiniBatch)},
		inputs: []string{cfg.Prompts}, checkpoints: []string{cfg.Policy, cfg.Reward},
	}, g, opt)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	g.elapsed = l.elapsed
	opt.Log.Info().Int("prompts", len(g.prompts)).Int("iterations", cfg.Iterations).Int("prompts_per_iteration", cfg.PromptsPerIter).
		Int("group", cfg.Group).Int("minibatch", cfg.MiniBatch).Bool("reward_model", cfg.Reward != "").Bool("task_reward", cfg.TaskReward).
		Bool("dr_grpo", cfg.DrGRPO).Str("backend", b.Name()).Msg(name)
	if err := l.run(ctx, g); err != nil {
		l.close()
		return nil, err
	}
	st := &g.st
	sum := &GroupSummary{Method: name, Iterations: l.st.Step, Episodes: l.st.Step * cfg.Episodes(), Seconds: l.st.Seconds,
		Interrupted: l.interrupted, FirstReward: st.First.Reward, LastReward: lastQuarterMean(st.Rewards), LastKL: st.Last.KL}
	if st.First.TaskScore != nil && len(st.TaskScores) > 0 {
		last := lastQuarterMean(st.TaskScores)
		sum.FirstTaskScore, sum.LastTaskScore = st.First.TaskScore, &last
	}
	ev := opt.Log.Info().Str("dir", cfg.Out).Float64("first_reward", round4(sum.FirstReward)).Float64("last_reward", round4(sum.LastReward))
	if sum.LastTaskScore != nil {
		ev = ev.Float64("first_task_score", round4(*sum.FirstTaskScore)).Float64("last_task_score", round4(*sum.LastTaskScore))
	}
	ev.Float64("kl", round4(sum.LastKL)).Msg("policy saved")
	return sum, l.finish(ctx, sum)
}

// groupTrainer is GRPO or RLOO as the loop driver runs it: a step is an
// iteration (a rollout of cfg.Group responses to each of
// cfg.PromptsPerIter prompts, then the minibatch updates), its record the
// iteration's metrics; every save also writes the policy, the run's
// result, at the top of the run directory.
type groupTrainer struct {
	cfg       GroupConfig
	saveDType string
	b         gpu.Backend
	tok       tokenizer.Tokenizer
	prompts   []data.Prompt
	promptIDs [][]int32
	order     []int
	policy    *trainable
	ref, rm   *model.Model // rm nil without a reward model
	dev       *groupDevice
	st        groupState
	rec       GroupMetrics // of the last iteration
	elapsed   func() float64
	comm      gpu.Comm // data-parallel ranks (rollout_dist.go); nil: one
}

// groupState is the group methods' position in the resume state.
type groupState struct {
	PromptNext int `json:"prompt_next"` // position in the seeded prompt order
	// What the summary needs: the first and latest iteration's metrics and
	// every iteration's mean reward and task score.
	First      GroupMetrics `json:"first"`
	Last       GroupMetrics `json:"last"`
	Rewards    []float64    `json:"rewards"`
	TaskScores []float64    `json:"task_scores,omitempty"`
	// The fingerprints of the frozen checkpoints' weights files: a resume
	// against other ones is refused.
	PolicySHA256 string `json:"policy_sha256"`
	RewardSHA256 string `json:"reward_sha256,omitempty"`
}

// newGroupTrainer reads the prompts and loads the models: the policy
// (trainable), the frozen reference and the optional reward model.
func newGroupTrainer(b gpu.Backend, tok tokenizer.Tokenizer, cfg GroupConfig, opt RunOptions) (*groupTrainer, error) {
	rp, err := readRolloutPrompts(cfg.Prompts, cfg.Policy, cfg.MaxNew, tok)
	if err != nil {
		return nil, err
	}
	if cfg.TaskReward {
		for _, p := range rp.prompts {
			if p.Task == "" {
				return nil, fmt.Errorf("the task reward needs prompts of the built-in tasks; the prompt at %s names none", p.Source.Where())
			}
		}
	}
	g := &groupTrainer{cfg: cfg, saveDType: opt.SaveDType, b: b, tok: tok, prompts: rp.prompts, promptIDs: rp.ids, comm: opt.Comm,
		order: rand.New(rand.NewPCG(cfg.Seed, 0x6e0)).Perm(len(rp.prompts))}
	if g.st.PolicySHA256, err = checkpointSHA256(cfg.Policy); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	// The models hold a data-parallel rank's shard of a minibatch (one
	// process: a whole one); the policy samples with a whole minibatch's
	// seed groups (rolloutSampling.seedGroup).
	rows := shardCap(opt.Comm, cfg.MiniBatch)
	pol, err := loadNoDropout(b, cfg.Policy, rows, rp.T, true, opt)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if pol.Cfg.ScalarHead {
		return nil, fmt.Errorf("the policy is a scalar-head model; it needs a language model")
	}
	if g.ref, err = loadNoDropout(b, cfg.Policy, rows, rp.T, false, opt); err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	if cfg.Reward != "" {
		if g.st.RewardSHA256, err = checkpointSHA256(cfg.Reward); err != nil {
			return nil, fmt.Errorf("reward model: %w", err)
		}
		if g.rm, err = loadNoDropout(b, cfg.Reward, rows, rp.T, false, opt); err != nil {
			return nil, fmt.Errorf("reward model: %w", err)
		}
		if err := CheckPolicyReward(pol.Cfg, g.rm.Cfg); err != nil {
			return nil, err
		}
	}
	updates := cfg.Iterations * cfg.Epochs * cfg.Episodes() / cfg.MiniBatch
	if g.policy, err = newTrainable(pol, cfg.Optim, updates); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	g.policy.comm = opt.Comm
	if g.dev, err = newGroupDevice(b, cfg.Episodes(), rp.T, cfg.Epochs*(cfg.Episodes()/cfg.MiniBatch)); err != nil {
		return nil, err
	}
	return g, nil
}

// nextPrompts takes the iteration's prompts from the seeded order, each
// repeated cfg.Group times in a row: a group's episodes are adjacent.
func (g *groupTrainer) nextPrompts() ([][]int32, []data.Prompt) {
	ids := make([][]int32, 0, g.cfg.Episodes())
	recs := make([]data.Prompt, 0, g.cfg.Episodes())
	for range g.cfg.PromptsPerIter {
		if g.st.PromptNext == len(g.order) {
			g.st.PromptNext = 0
		}
		k := g.order[g.st.PromptNext]
		g.st.PromptNext++
		for range g.cfg.Group {
			ids = append(ids, g.promptIDs[k])
			recs = append(recs, g.prompts[k])
		}
	}
	return ids, recs
}

func (g *groupTrainer) step(it int) (stepResult, error) {
	st := &g.st
	ids, recs := g.nextPrompts()
	ro, rec, err := g.rollout(ids, recs, it)
	if err != nil {
		return stepResult{}, err
	}
	adv, weight, err := g.advantages(ro, &rec)
	if err != nil {
		return stepResult{}, err
	}
	if err := g.update(ro, adv, weight, it, &rec); err != nil {
		return stepResult{}, fmt.Errorf("update: %w", err)
	}
	rec.Elapsed = g.elapsed()
	g.rec = rec
	// The iteration is done: the loop state moves past it.
	st.Rewards = append(st.Rewards, rec.Reward)
	if rec.TaskScore != nil {
		st.TaskScores = append(st.TaskScores, *rec.TaskScore)
	}
	if it == 1 {
		st.First = rec
	}
	st.Last = rec
	health, err := g.policy.health("policy")
	if err != nil {
		return stepResult{}, err
	}
	return stepResult{
		loss: rec.PolicyLoss, tokens: int64(rec.ResponseLen * float64(ro.E)), status: fmt.Sprintf("reward %.3f  kl %.3f", rec.Reward, rec.KL),
		finite: append(health, namedValue{"the mean reward", rec.Reward}),
	}, nil
}

func (g *groupTrainer) record(_ *loop, _ int, _ bool, _ *lossWindow, ev *zerolog.Event) (any, *zerolog.Event, error) {
	rec := g.rec
	ev = ev.Float64("reward", round4(rec.Reward))
	if rec.RMScore != nil {
		ev = ev.Float64("rm_score", round4(*rec.RMScore))
	}
	if rec.TaskScore != nil {
		ev = ev.Float64("task_score", round4(*rec.TaskScore))
	}
	ev = ev.Float64("kl", round4(rec.KL)).Float64("clip_frac", round4(rec.ClipFrac)).Float64("flat_groups", round4(rec.FlatGroups)).
		Float64("len", round4(rec.ResponseLen)).Float64("gen_s", round4(rec.GenSeconds)).Float64("train_s", round4(rec.TrainSeconds))
	return rec, ev, nil
}

func (g *groupTrainer) state() any { return g.st }

func (g *groupTrainer) restore(saved json.RawMessage) error {
	var st groupState
	if err := json.Unmarshal(saved, &st); err != nil {
		return fmt.Errorf("trainer state: %w", err)
	}
	if err := sameCheckpoints(sameCheckpoint("policy", "SFT model", g.st.PolicySHA256, st.PolicySHA256),
		sameCheckpoint("reward model", "reward model", g.st.RewardSHA256, st.RewardSHA256)); err != nil {
		return err
	}
	if st.PromptNext < 0 || st.PromptNext > len(g.order) {
		return fmt.Errorf("prompt position %d in a file of %d prompts: the prompts changed", st.PromptNext, len(g.order))
	}
	g.st = st
	return nil
}

// afterSave writes the policy, the run's result, at the top of the run
// directory.
func (g *groupTrainer) afterSave() error {
	return model.SaveAs(g.cfg.Out, g.policy.m, g.saveDType)
}
