package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
)

// RSConfig is a rejection-sampling fine-tuning run (best-of-N
// distillation, as in Llama 2's rejection sampling and RAFT): the policy
// samples N responses to each prompt, the reward model's best of them is
// kept, and the policy is fine-tuned on the kept responses by SFT.
type RSConfig struct {
	Prompts     string  `json:"prompts"`
	Policy      string  `json:"policy"` // SFT checkpoint: the sampler and the fine-tuning's start
	Reward      string  `json:"reward"` // reward-model checkpoint
	Out         string  `json:"out"`
	N           int     `json:"n"`           // samples per prompt
	MaxPrompts  int     `json:"max_prompts"` // the first this many prompts (0: all)
	Batch       int     `json:"batch"`       // prompts sampled together
	MaxNew      int     `json:"max_new"`
	Temperature float32 `json:"temperature"`
	// MissingEOSPenalty is subtracted from the score of a response that
	// does not end, as in PPO: an unfinished response is rarely the one to
	// imitate.
	MissingEOSPenalty float32 `json:"missing_eos_penalty"`
	Seed              uint64  `json:"seed"`
	// SFT is the fine-tuning on the kept responses; its data, init, model
	// and output are set by the run (Out, the picks' file, Policy).
	SFT SFTConfig `json:"sft"`
}

// RSConfigFile is the run's configuration in its directory (the SFT run
// beside it writes RunConfigFile).
const RSConfigFile = "rs_config.json"

// RSPicksFile holds the kept responses, the SFT run's data: records
// {"prompt", "completion", "task", "answer", "rm_score"}.
const RSPicksFile = "best_of_n.jsonl"

// DefaultRS is best-of-8 on the PPO prompts' first 2000, fine-tuned for
// two epochs at a tenth of SFT's learning rate (the policy starts trained).
func DefaultRS() RSConfig {
	s := DefaultSFT()
	s.Epochs, s.Optim.LR, s.Optim.Warmup, s.EvalEvery, s.SaveEvery = 2, 1e-4, 5, 20, 20
	return RSConfig{N: 8, MaxPrompts: 2000, Batch: 64, MaxNew: 32, Temperature: 1, MissingEOSPenalty: 1, Seed: 1, SFT: s}
}

// Validate reports a configuration that cannot run.
func (c *RSConfig) Validate() error {
	switch {
	case c.Prompts == "" || c.Policy == "" || c.Reward == "" || c.Out == "":
		return fmt.Errorf("rejection sampling needs prompts, a policy, a reward model and an output directory")
	case c.N < 2 || c.N > 1024:
		return fmt.Errorf("%d samples per prompt: want 2..1024", c.N)
	case c.MaxPrompts < 0 || c.Batch <= 0 || c.Batch > maxRolloutEpisodes/c.N:
		return fmt.Errorf("max prompts %d must not be negative, batch %d positive and %d×%d samples at most %d", c.MaxPrompts, c.Batch, c.Batch, c.N, maxRolloutEpisodes)
	case c.MaxNew <= 0 || !(c.Temperature > 0) || !(c.MissingEOSPenalty >= 0):
		return fmt.Errorf("max new tokens and temperature must be positive, the missing-EOS penalty not negative")
	}
	return nil
}

// RSSummary is what the run's summary.json records beside the SFT's.
type RSSummary struct {
	Prompts int `json:"prompts"`
	N       int `json:"n"`
	// The reward model's mean score of the kept responses and of every
	// sample (after the missing-EOS penalty), and the ground-truth task
	// score of the kept responses and of every sample (for prompts of the
	// built-in tasks).
	PickScore       float64     `json:"pick_rm_score"`
	SampleScore     float64     `json:"sample_rm_score"`
	PickTaskScore   *float64    `json:"pick_task_score,omitempty"`
	SampleTaskScore *float64    `json:"sample_task_score,omitempty"`
	SFT             *SFTSummary `json:"sft,omitempty"`
}

// RSSummaryFile is the sampling's summary in the run directory.
const RSSummaryFile = "rs_summary.json"

// rsPick is a line of RSPicksFile.
type rsPick struct {
	Prompt     string  `json:"prompt"`
	Completion string  `json:"completion"`
	Task       string  `json:"task,omitempty"`
	Answer     string  `json:"answer,omitempty"`
	RMScore    float64 `json:"rm_score"`
}

// RejectionSampling samples, keeps the reward model's best response to
// each prompt in cfg.Out/RSPicksFile, then fine-tunes the policy on them
// with SFT in cfg.Out, which ends holding the fine-tuned policy. The
// sampling is seeded and repeats exactly; with opt.Resume a run whose picks
// are written continues its SFT (or starts it when it never saved). Data
// parallel, each rank samples and scores its share of the batches of
// prompts, the ranks gather the results exactly (rsRows), rank 0 writes
// the picks, and the SFT runs data parallel.
func RejectionSampling(ctx context.Context, b gpu.Backend, tok tokenizer.Tokenizer, cfg RSConfig, opt RunOptions) (*RSSummary, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("rs: %w", err)
	}
	cfg.Prompts, cfg.Policy, cfg.Reward, cfg.Out = absPath(cfg.Prompts), absPath(cfg.Policy), absPath(cfg.Reward), absPath(cfg.Out)
	picks := filepath.Join(cfg.Out, RSPicksFile)
	sum := &RSSummary{}
	_, err := os.Stat(picks)
	if opt.Resume && err == nil {
		if err := readJSONFile(filepath.Join(cfg.Out, RSSummaryFile), sum); err != nil {
			return nil, fmt.Errorf("rs: %w", err)
		}
	} else {
		if err := outsideInputs(cfg.Out, []string{cfg.Policy, cfg.Reward}, []string{cfg.Prompts}); err != nil {
			return nil, fmt.Errorf("rs: %w", err)
		}
		sampled, err := sampleBestOfN(ctx, b, tok, cfg, opt)
		if err != nil {
			return nil, fmt.Errorf("rs: %w", err)
		}
		*sum = sampled.RSSummary
		if opt.comm().Rank() == 0 {
			if err := writeSampling(cfg, sampled); err != nil {
				return nil, fmt.Errorf("rs: %w", err)
			}
		}
		// The other ranks read the picks for the SFT once rank 0 wrote them.
		if err := opt.comm().Barrier(); err != nil {
			return nil, fmt.Errorf("rs: wait for rank 0 to write the picks: %w", err)
		}
		opt.Log.Info().Int("prompts", sum.Prompts).Int("n", cfg.N).Float64("pick_rm_score", round4(sum.PickScore)).
			Float64("sample_rm_score", round4(sum.SampleScore)).Str("picks", picks).Msg("best-of-n kept")
	}
	s := cfg.SFT
	s.Data, s.Init, s.Out = picks, cfg.Policy, cfg.Out
	if s.Model, err = model.ReadConfig(cfg.Policy); err != nil {
		return nil, fmt.Errorf("rs: policy: %w", err)
	}
	s.MaxLen = min(s.MaxLen, s.Model.MaxSeqLen)
	sftOpt := opt
	sftOpt.Resume = opt.Resume && HasState(cfg.Out)
	if sum.SFT, err = SFT(ctx, b, tok, s, sftOpt); err != nil {
		return nil, fmt.Errorf("rs: %w", err)
	}
	return sum, nil
}

// writeSampling writes the sampling's configuration, picks and summary
// into cfg.Out.
func writeSampling(cfg RSConfig, sampled *rsSampling) error {
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return err
	}
	if err := atomicfile.WriteJSON(filepath.Join(cfg.Out, RSConfigFile), cfg); err != nil {
		return err
	}
	if err := writePicks(filepath.Join(cfg.Out, RSPicksFile), sampled.picks); err != nil {
		return err
	}
	return atomicfile.WriteJSON(filepath.Join(cfg.Out, RSSummaryFile), sampled.RSSummary)
}

// rsSampling is the sampling's result: the summary and the picks.
type rsSampling struct {
	RSSummary
	picks []rsPick
}

// sampleBestOfN samples cfg.N responses to each prompt, cfg.Batch prompts
// at a time (batch k seeded by Mix64(seed, k)), scores them with the reward
// model as PPO does and keeps each prompt's best (the first on ties).
func sampleBestOfN(ctx context.Context, b gpu.Backend, tok tokenizer.Tokenizer, cfg RSConfig, opt RunOptions) (*rsSampling, error) {
	rp, err := readRolloutPrompts(cfg.Prompts, cfg.Policy, cfg.MaxNew, tok)
	if err != nil {
		return nil, err
	}
	if cfg.MaxPrompts > 0 && len(rp.prompts) > cfg.MaxPrompts {
		rp.prompts, rp.ids = rp.prompts[:cfg.MaxPrompts], rp.ids[:cfg.MaxPrompts]
	}
	rows := min(cfg.Batch*cfg.N, 256)
	policy, err := loadNoDropout(b, cfg.Policy, rows, rp.T, false, opt)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	rm, err := loadNoDropout(b, cfg.Reward, rows, rp.T, false, opt)
	if err != nil {
		return nil, fmt.Errorf("reward model: %w", err)
	}
	if err := CheckPolicyReward(policy.Cfg, rm.Cfg); err != nil {
		return nil, err
	}
	scorer, err := newRolloutScorer(b, cfg.Batch*cfg.N, rp.T)
	if err != nil {
		return nil, err
	}
	batches := (len(rp.prompts) + cfg.Batch - 1) / cfg.Batch
	k0, k1 := 0, batches
	if c := opt.comm(); distributed(c) {
		k0, k1 = gpu.Shard(batches, c.Rank(), c.Size())
	}
	kept := newRSRows(len(rp.prompts), cfg)
	progress := opt.progress()
	if opt.comm().Rank() != 0 {
		progress = NoProgress{}
	}
	progress.Start("rs sampling", k0, k1)
	defer progress.Finish()
	start := time.Now()
	pickSum := 0.0 // of the batches so far, for the progress lines
	for k := k0; k < k1; k++ {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("interrupted while sampling, before anything was saved: %w", context.Cause(ctx))
		}
		lo, hi := k*cfg.Batch, min(len(rp.prompts), (k+1)*cfg.Batch)
		var ids [][]int32
		var recs []data.Prompt
		for i := lo; i < hi; i++ {
			for range cfg.N {
				ids, recs = append(ids, rp.ids[i]), append(recs, rp.prompts[i])
			}
		}
		ro, _, err := generateRollout(policy, ids, rolloutSampling{
			maxNew: cfg.MaxNew, temperature: cfg.Temperature, seed: gpu.Mix64(cfg.Seed, uint64(k)), eos: tok.EOS(), pad: tok.Pad(),
		})
		if err != nil {
			return nil, fmt.Errorf("sample: %w", err)
		}
		if ro.rawScores, err = scorer.rewardModel(rm, ro); err != nil {
			return nil, err
		}
		ro.finishScores(cfg.MissingEOSPenalty, 0)
		responses := ro.responses(tok)
		for i := lo; i < hi; i++ {
			g := (i - lo) * cfg.N
			pickSum += float64(ro.scores[g+kept.put(i, ro, g, recs[g:g+cfg.N], responses[g:g+cfg.N])])
		}
		status := fmt.Sprintf("%d of %d prompts, picks' score %.3f", hi, len(rp.prompts), pickSum/float64(hi-k0*cfg.Batch))
		progress.Step(k+1, status)
		if (k+1)%10 == 0 || k+1 == k1 {
			opt.Log.Info().Int("prompts", hi).Int("of", len(rp.prompts)).Float64("pick_rm_score", round4(pickSum/float64(hi-k0*cfg.Batch))).
				Str("eta", eta(time.Since(start), k+1-k0, k1-k-1)).Msg("rs sampling")
		}
	}
	if c := opt.comm(); distributed(c) {
		sum, err := gpu.SumOverRanks(c, kept.buf...)
		if err != nil {
			return nil, fmt.Errorf("gather the picks: %w", err)
		}
		kept.buf = sum
	}
	return kept.result(rp.prompts, tok), nil
}

// rsRows are the sampling's results, a row of float64 per prompt (a
// data-parallel rank fills those of its batches and leaves the others
// zero, so the sum over the ranks is every row exactly): the best
// response's length and tokens [maxNew], the N samples' scores, and, for a
// prompt of a built-in task, 1, the samples' mean task score and the
// pick's. The summary is computed from them in prompt order, as one
// process would.
type rsRows struct {
	buf           []float64
	width, n, max int
}

func newRSRows(prompts int, cfg RSConfig) *rsRows {
	w := 1 + cfg.MaxNew + cfg.N + 3
	return &rsRows{buf: make([]float64, prompts*w), width: w, n: cfg.N, max: cfg.MaxNew}
}

// put fills prompt i's row from its N samples, rows g.. of ro (their
// prompts recs and decoded responses), and returns the best's index among
// them (the first on ties).
func (r *rsRows) put(i int, ro *rollout, g int, recs []data.Prompt, responses []string) int {
	best := 0
	for j := 1; j < r.n; j++ {
		if ro.scores[g+j] > ro.scores[g+best] {
			best = j
		}
	}
	row := r.buf[i*r.width : (i+1)*r.width]
	gen := ro.generated[g+best]
	row[0] = float64(len(gen))
	for t, id := range gen {
		row[1+t] = float64(id)
	}
	sc := row[1+r.max:]
	for j := range r.n {
		sc[j] = float64(ro.scores[g+j])
	}
	if ts := rolloutTaskScore(recs, responses); ts != nil {
		pick := rolloutTaskScore(recs[best:best+1], responses[best:best+1])
		sc[r.n], sc[r.n+1], sc[r.n+2] = 1, *ts, *pick
	}
	return best
}

// result is the sampling's summary and picks.
func (r *rsRows) result(prompts []data.Prompt, tok tokenizer.Tokenizer) *rsSampling {
	res := &rsSampling{RSSummary: RSSummary{Prompts: len(prompts), N: r.n}}
	var pickTask, sampleTask float64
	tasks := 0
	for i, p := range prompts {
		row := r.buf[i*r.width : (i+1)*r.width]
		gen := make([]int32, int(row[0]))
		for t := range gen {
			gen[t] = int32(row[1+t])
		}
		sc := row[1+r.max:]
		best := 0
		for j := range r.n {
			res.SampleScore += sc[j]
			if sc[j] > sc[best] {
				best = j
			}
		}
		res.PickScore += sc[best]
		res.picks = append(res.picks, rsPick{Prompt: p.Prompt, Completion: tok.Decode(gen), Task: p.Task, Answer: p.Answer, RMScore: sc[best]})
		if sc[r.n] != 0 {
			sampleTask += sc[r.n+1]
			pickTask += sc[r.n+2]
			tasks++
		}
	}
	n := float64(len(prompts))
	res.PickScore /= n
	res.SampleScore /= n * float64(r.n)
	if tasks > 0 {
		pt, st := pickTask/float64(tasks), sampleTask/float64(tasks)
		res.PickTaskScore, res.SampleTaskScore = &pt, &st
	}
	return res
}

// writePicks writes the kept responses as SFT data, atomically.
func writePicks(path string, picks []rsPick) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, p := range picks {
			if err := enc.Encode(p); err != nil {
				return err
			}
		}
		return nil
	})
}

// readJSONFile decodes the JSON file at path into v.
func readJSONFile(path string, v any) error {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s is missing: the directory holds no finished sampling", path)
	}
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
