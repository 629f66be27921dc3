package pipeline

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
)

// Iterated rounds (Config.Rounds > 1), as InstructGPT's later comparisons
// came from PPO policies and Llama 2 iterated its recipe: round k ranks
// samples of round k−1's PPO policy with the labeler (SFTSampleLabels
// prompts of rm.jsonl, the next ones each round), retrains the reward model
// from the SFT model on every comparison so far, and continues PPO from
// round k−1's policy against it, the KL still to the SFT model. Round 1 is
// the ordinary pipeline. Each round's stages live in round-k/ and resume
// like the others.

// RoundResult is one round's policy on the held-out prompts, and the
// reward model it was trained against.
type RoundResult struct {
	Round int `json:"round"`
	// RMTrainPairs is the number of pairs the round's reward model trained
	// on, RMAccuracy its held-out accuracy (on its own split of its
	// comparisons, which grow each round).
	RMTrainPairs int     `json:"rm_train_pairs"`
	RMAccuracy   float64 `json:"rm_accuracy"`
	TaskScore    float64 `json:"task_score"`
	// WinRateVsSFT and its standard error, as for the methods.
	WinRateVsSFT  float64          `json:"win_rate_vs_sft"`
	WinRateStdErr float64          `json:"win_rate_stderr"`
	KLToSFT       train.KLEstimate `json:"kl_to_sft"`
	// FinalRMScores summarises the last round's reward model's scores of
	// one sample (temperature 1) of this round's policy per held-out
	// prompt: how the rounds shift the reward distribution.
	FinalRMScores ScoreSummary `json:"final_rm_scores"`
	// Scores are those scores, for the plot.
	Scores []float64 `json:"-"`
}

// ScoreSummary is a distribution's mean, standard deviation and quartiles.
type ScoreSummary struct {
	Mean   float64 `json:"mean"`
	Std    float64 `json:"std"`
	Q25    float64 `json:"q25"`
	Median float64 `json:"median"`
	Q75    float64 `json:"q75"`
}

func summarise(xs []float64) ScoreSummary {
	s := slices.Sorted(slices.Values(xs))
	var out ScoreSummary
	n := float64(len(s))
	for _, x := range s {
		out.Mean += x / n
	}
	for _, x := range s {
		out.Std += (x - out.Mean) * (x - out.Mean) / n
	}
	out.Std = math.Sqrt(out.Std)
	q := func(p float64) float64 { return s[int(math.Round(p*(n-1)))] }
	out.Q25, out.Median, out.Q75 = q(0.25), q(0.5), q(0.75)
	return out
}

func roundDir(c Config, k int) string { return filepath.Join(c.Out, fmt.Sprintf("round-%d", k)) }

// roundPolicy is the PPO policy at the end of round k.
func roundPolicy(c Config, k int) string {
	if k == 1 {
		return c.PPO.Out
	}
	return filepath.Join(roundDir(c, k), StagePPO)
}

// roundRewardModel is the reward model PPO trained against in round k.
func roundRewardModel(c Config, k int) string {
	if k == 1 {
		return c.RM.Out
	}
	return filepath.Join(roundDir(c, k), StageRM)
}

// roundData is the comparisons round k's reward model trained on.
func (r *runner) roundData(k int) string {
	if k == 1 {
		return r.comparisonData()
	}
	return filepath.Join(roundDir(r.cfg, k), StageLabel, labelledRankingsFile)
}

// rounds runs rounds 2..Rounds.
func (r *runner) rounds() error {
	for k := 2; k <= r.cfg.Rounds; k++ {
		if err := r.round(k); err != nil {
			return fmt.Errorf("round %d: %w", k, err)
		}
	}
	return nil
}

func (r *runner) round(k int) error {
	labelDir := filepath.Join(roundDir(r.cfg, k), StageLabel)
	err := onRank0(r.comm, fmt.Sprintf("label round %d's PPO samples", k), func() error {
		var st train.LabelStats
		if readSummary(labelDir, &st) == nil {
			return nil
		}
		n := r.cfg.SFTSampleLabels
		r.enter(fmt.Sprintf("round %d: label PPO samples", k)).Int("prompts", n).Msg("──── pipeline stage ────")
		job := labelJob{policy: roundPolicy(r.cfg, k-1), prompts: r.cfg.RM.Data, base: r.roundData(k - 1),
			dir: labelDir, own: "rm_policy.jsonl", from: (k - 1) * n, n: n}
		if _, err := labelPolicySamples(r.b, r.tok, job, r.opt.Precision); err != nil {
			return fmt.Errorf("label PPO samples: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	rm := r.cfg.RM
	rm.Data, rm.Out = r.roundData(k), roundRewardModel(r.cfg, k)
	err = r.trainStage(rm.Out, fmt.Sprintf("round %d: reward model", k), func(o train.RunOptions) (err error) {
		if rm.Model, err = model.ReadConfig(rm.Init); err != nil {
			return err
		}
		rm.Model.Dropout = r.cfg.RMDropout
		_, err = train.RM(r.ctx, r.b, r.tok, rm, o)
		return err
	})
	if err != nil {
		return err
	}
	ppo := r.cfg.PPO
	ppo.Policy, ppo.Reference, ppo.Reward, ppo.Out = roundPolicy(r.cfg, k-1), r.cfg.SFT.Out, rm.Out, roundPolicy(r.cfg, k)
	return r.trainStage(ppo.Out, fmt.Sprintf("round %d: ppo-ptx", k), func(o train.RunOptions) error {
		_, err := train.PPO(r.ctx, r.b, r.tok, ppo, o)
		return err
	})
}

// evaluateRounds measures every round's policy against SFT (sft, sftModel)
// on prompts and scores one sample of each with the last round's reward
// model.
func evaluateRounds(b gpu.Backend, cfg Config, e *evaluator, sft train.TaskEval, sftModel *model.Model, rep *Report) error {
	finalRM, err := loadForEval(b, roundRewardModel(cfg, cfg.Rounds), e.prec)
	if err != nil {
		return err
	}
	for k := 1; k <= cfg.Rounds; k++ {
		policy, ev, _, err := e.evalOne(roundPolicy(cfg, k))
		if err != nil {
			return fmt.Errorf("round %d: %w", k, err)
		}
		cmp, err := train.Compare(ev, sft, e.labeler)
		if err != nil {
			return err
		}
		res := RoundResult{Round: k, TaskScore: ev.Score, WinRateVsSFT: cmp.WinRate()}
		res.WinRateStdErr, _ = cmp.StdErrs()
		if res.KLToSFT, err = train.MeasureKL(policy, sftModel, e.tok, e.texts, cfg.MaxNew, cfg.Synth.Seed); err != nil {
			return fmt.Errorf("round %d: %w", k, err)
		}
		sampled, err := train.EvalTasks(policy, e.tok, e.prompts, train.EvalOptions{MaxNew: cfg.MaxNew, Sampling: gpu.Sampling{Temperature: 1}, Seed: cfg.Synth.Seed})
		if err != nil {
			return fmt.Errorf("round %d: %w", k, err)
		}
		if res.Scores, err = train.RewardOfSamples(finalRM, e.tok, sampled); err != nil {
			return fmt.Errorf("round %d: %w", k, err)
		}
		res.FinalRMScores = summarise(res.Scores)
		var rmSum train.RMSummary
		if err := readSummary(roundRewardModel(cfg, k), &rmSum); err != nil {
			return err
		}
		if rmSum.Val != nil {
			res.RMAccuracy = rmSum.Val.Accuracy
		}
		res.RMTrainPairs = rmSum.TrainPairs
		rep.Rounds = append(rep.Rounds, res)
	}
	return nil
}

// writeRounds adds the rounds' table to report.md.
func writeRounds(f func(string, ...any), r *Report) {
	f("## Iterated rounds\n\n")
	f("Round k ranks samples of round k−1's PPO policy, retrains the reward model from SFT on every comparison so\n")
	f("far and continues PPO from round k−1's policy, the KL still to SFT. The last column is the last round's reward\n")
	f("model's score of one sample (temperature 1) per held-out prompt of each round's policy: mean, and quartiles.\n\n")
	f("| round | reward model: training pairs, held-out accuracy | task score | win rate vs SFT | KL to SFT | last reward model's score |\n")
	f("| --- | --- | --- | --- | --- | --- |\n")
	for _, rd := range r.Rounds {
		s := rd.FinalRMScores
		f("| %d | %d, %.3f | %.3f | %.3f ± %.3f | %.3f ± %.3f | %.3f (%.3f, %.3f, %.3f) |\n", rd.Round, rd.RMTrainPairs, rd.RMAccuracy,
			rd.TaskScore, rd.WinRateVsSFT, rd.WinRateStdErr, rd.KLToSFT.KL, rd.KLToSFT.StdErr, s.Mean, s.Q25, s.Median, s.Q75)
	}
	f("\n![reward distribution by round](%s)\n\n", roundsPlotFile)
}

// roundsPlotFile shows the last reward model's score distribution of each
// round's policy.
const roundsPlotFile = "rounds.png"

// plotRounds draws roundsPlotFile: per round, the share of the samples in
// each of 20 score bins shared by all rounds.
func plotRounds(dir string, r *Report) error {
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, rd := range r.Rounds {
		for _, x := range rd.Scores {
			lo, hi = math.Min(lo, x), math.Max(hi, x)
		}
	}
	if !(hi > lo) {
		hi = lo + 1
	}
	const bins = 20
	w := (hi - lo) / bins
	p := plot.New()
	p.Title.Text = "The last reward model's scores of each round's policy"
	p.X.Label.Text = "reward-model score of a sample"
	p.Y.Label.Text = "share of held-out prompts"
	var lines []any
	for _, rd := range r.Rounds {
		counts := make([]float64, bins)
		for _, x := range rd.Scores {
			counts[min(int((x-lo)/w), bins-1)] += 1 / float64(len(rd.Scores))
		}
		pts := make(plotter.XYs, bins)
		for i := range pts {
			pts[i] = plotter.XY{X: lo + (float64(i)+0.5)*w, Y: counts[i]}
		}
		lines = append(lines, fmt.Sprintf("round %d", rd.Round), pts)
	}
	if err := plotutil.AddLinePoints(p, lines...); err != nil {
		return err
	}
	p.Legend.Top = true
	return p.Save(6*vg.Inch, 3.5*vg.Inch, filepath.Join(dir, roundsPlotFile))
}
