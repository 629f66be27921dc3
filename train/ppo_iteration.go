package train

import (
	"fmt"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train/data"
)

// PPOIteration runs the iterations of PPO's loop on models held in memory,
// without prompt files, run directory or resume state: the rollout
// (generation, then the four models' scoring forwards), the advantages and
// the PPO-ptx update, by the same code PPO runs. The benchmarks time it.
type PPOIteration struct {
	b        gpu.Backend
	ms       *ppoModels
	dev      *ppoDevice
	ptx      *data.WindowSampler
	cfg      PPOConfig
	eos, pad int32
	comm     gpu.Comm // data-parallel ranks (ppo_dist.go); nil: one
}

// PPOIterationModels are the four networks of an iteration. Policy and
// Value must be built for training (model.Options.Train) with minibatches
// of cfg.MiniBatch rows, Ref and Reward may be inference-only; all four
// hold rows of the longest rollout (prompt + cfg.MaxNew + 1 tokens) and,
// with ptx, cfg.PtxSeq tokens. The sampling's seed groups are
// cfg.MiniBatch episodes whatever the policy's MaxBatch.
type PPOIterationModels struct {
	Policy, Ref, Value, Reward *model.Model
}

// NewPPOIteration prepares iterations of cfg's hyper-parameters (its file
// fields are not used) on models: the EMA and the optimizers start from
// them. ptxText is the token stream the ptx windows are drawn from (nil:
// no ptx); eos ends a response (−1: responses always run to cfg.MaxNew
// tokens) and pad fills the rollout's rows.
func NewPPOIteration(b gpu.Backend, models PPOIterationModels, cfg PPOConfig, ptxText []int32, eos, pad int32) (*PPOIteration, error) {
	if cfg.Episodes <= 0 || cfg.MiniBatch <= 0 || cfg.Episodes%cfg.MiniBatch != 0 || cfg.MaxNew <= 0 {
		return nil, fmt.Errorf("ppo iteration: %d episodes in minibatches of %d, %d new tokens", cfg.Episodes, cfg.MiniBatch, cfg.MaxNew)
	}
	ms := &ppoModels{policy: models.Policy, ref: models.Ref, value: models.Value, reward: models.Reward}
	if err := ms.finish(b, cfg); err != nil {
		return nil, fmt.Errorf("ppo iteration: %w", err)
	}
	p := &PPOIteration{b: b, ms: ms, cfg: cfg, eos: eos, pad: pad}
	ptxTokens := 1
	if ptxText != nil && cfg.PtxCoef > 0 {
		var err error
		if p.ptx, err = data.NewWindowSampler(ptxText, cfg.PtxSeq, cfg.Seed^0x9e3779b9); err != nil {
			return nil, fmt.Errorf("ppo iteration: ptx: %w", err)
		}
		ptxTokens = cfg.PtxBatch * cfg.PtxSeq
	}
	var err error
	if p.dev, err = newPPODevice(b, cfg.Episodes, models.Policy.MaxSeq(), ptxTokens, cfg.Epochs*(cfg.Episodes/cfg.MiniBatch)); err != nil {
		return nil, fmt.Errorf("ppo iteration: %w", err)
	}
	return p, nil
}

// PPOPhases is what one iteration did and how long each phase took
// (the update's time includes waiting for the backend to finish).
type PPOPhases struct {
	Generate, Score, Update time.Duration
	GenTokens               int // tokens sampled
	Decode                  model.GenerateStats
	T                       int // the rollout's row length: prompt + response, right-padded
	Metrics                 PPOMetrics
}

// Run runs iteration it (which seeds its sampling and dropout) on one
// prompt per episode.
func (p *PPOIteration) Run(prompts [][]int32, it int) (PPOPhases, error) {
	return p.run(prompts, it, float64(p.cfg.KLCoef), nil)
}

// run is Run with the KL coefficient beta (PPO's may adapt) and a hook
// that sees the scored episodes (from episode lo of prompts on) before the
// missing-EOS penalty and the update (PPO records the rollouts' task
// score there; tests replace the reward model's scores). Generate is the
// sampling; Score the four models' forwards and the hook; Update the
// advantages and the update, waiting for the backend to finish. Data
// parallel, Generate is the sampling and scoring of this rank's shard and
// the gathering of the rollout, and Score is 0.
func (p *PPOIteration) run(prompts [][]int32, it int, beta float64, between func(ro *rollout, lo int) error) (PPOPhases, error) {
	var ph PPOPhases
	if len(prompts) != p.cfg.Episodes {
		return ph, fmt.Errorf("%d prompts for %d episodes", len(prompts), p.cfg.Episodes)
	}
	t0 := time.Now()
	sampling := rolloutSampling{
		maxNew: p.cfg.MaxNew, temperature: p.cfg.Temperature, seed: gpu.Mix64(p.cfg.Seed, uint64(it)), eos: p.eos, pad: p.pad,
		seedGroup: p.cfg.MiniBatch, batch: p.genBatch(), stats: &ph.Decode,
	}
	var ro *rollout
	var genTokens int
	var err error
	var t1 time.Time
	if distributed(p.comm) {
		if ro, genTokens, err = p.sampleShard(prompts, sampling, between); err != nil {
			return ph, err
		}
		t1 = time.Now()
	} else {
		if ro, genTokens, err = generateRollout(p.ms.policy, prompts, sampling); err != nil {
			return ph, fmt.Errorf("rollout: %w", err)
		}
		t1 = time.Now()
		if err := p.dev.scoreRollout(p.ms, ro); err != nil {
			return ph, fmt.Errorf("rollout: %w", err)
		}
		if between != nil {
			if err := between(ro, 0); err != nil {
				return ph, err
			}
		}
	}
	ro.finishScores(p.cfg.MissingEOSPenalty, p.cfg.RewardClip)
	t2 := time.Now()
	ph.Metrics = PPOMetrics{Step: it, Beta: beta}
	if err := p.dev.advantages(ro, p.cfg, float32(beta)); err != nil {
		return ph, err
	}
	if err := p.dev.update(p.ms, ro, p.ptx, p.cfg, it, &ph.Metrics); err != nil { // ends with the iteration's read back
		return ph, fmt.Errorf("update: %w", err)
	}
	t3 := time.Now()
	fillRolloutMetrics(&ph.Metrics, ro)
	ph.Generate, ph.Score, ph.Update = t1.Sub(t0), t2.Sub(t1), t3.Sub(t2)
	ph.GenTokens, ph.T = genTokens, ro.T
	return ph, nil
}

// genBatch is the rollout's decoding batch: cfg.GenBatch, or with 0 what
// the device's memory allows (see PPOConfig.GenBatch).
func (p *PPOIteration) genBatch() int {
	if p.cfg.GenBatch > 0 {
		return p.cfg.GenBatch
	}
	if _, ok := p.b.(gpu.Device); ok {
		return p.ms.policy.DecodeBatch(p.cfg.Episodes, p.dev.Tmax)
	}
	return 0
}
