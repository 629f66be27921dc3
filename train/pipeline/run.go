package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
	"github.com/rs/zerolog"
)

// Run runs every stage in order. A stage whose directory already holds a
// summary.json from an earlier run is not run again; its numbers are read
// back, so an interrupted pipeline continues where it stopped.
func Run(ctx context.Context, b gpu.Backend, cfg Config, opt train.RunOptions) (*Report, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	r := &runner{ctx: ctx, b: b, cfg: cfg, opt: opt, rep: &Report{Backend: b.Name()}}
	var err error
	if r.mc, err = model.ConfigByName(cfg.Model); err != nil {
		return nil, err
	}
	if r.tok, err = tokenizer.New(r.mc.Tokenizer); err != nil {
		return nil, err
	}
	r.comm = opt.Comm
	r.clock = &stageClock{seconds: map[string]float64{}} // rank 0's replaces it; the others' is never saved
	err = onRank0(r.comm, "open the run directory", func() error {
		if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
			return err
		}
		cfgPath := filepath.Join(cfg.Out, ConfigFile)
		if err := checkSameConfig(cfgPath, cfg); err != nil {
			return err
		}
		if err := atomicfile.WriteJSON(cfgPath, cfg); err != nil {
			return err
		}
		r.clock, err = openStageClock(filepath.Join(cfg.Out, StageClockFile))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	defer r.clock.leave() // an interrupted stage's time counts too
	for _, stage := range []func() error{r.data, r.pretrain, r.sft, r.label, r.rewardModel} {
		if err := stage(); err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
	}
	for _, m := range selectedMethods(cfg) {
		if err := m.run(r, m.stage); err != nil {
			return nil, fmt.Errorf("pipeline: %s: %w", m.name, err)
		}
	}
	if err := r.rounds(); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}

	// Evaluation on the held-out prompts, and the report: rank 0's; the
	// others return the report it wrote.
	err = onRank0(r.comm, "evaluate and write the report", func() error {
		r.enter(stageEvaluation).Msg("──── pipeline stage ────")
		if err := evaluate(b, r.tok, cfg, r.rep, opt.Precision); err != nil {
			return err
		}
		if err := r.clock.leave(); err != nil {
			opt.Log.Warn().Err(err).Msg("pipeline stage times not recorded")
		}
		for i := range r.rep.Methods {
			r.rep.Methods[i].Seconds = r.clock.seconds[methodStage(r.rep.Methods[i].Name)]
		}
		r.rep.Seconds = r.clock.total()
		if err := atomicfile.WriteJSON(filepath.Join(cfg.Out, "report.json"), r.rep); err != nil {
			return err
		}
		return WriteReport(cfg.Out, r.rep)
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if !primary(r.comm) {
		rep := &Report{}
		if err := readJSON(filepath.Join(cfg.Out, "report.json"), rep); err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
		return rep, nil
	}
	return r.rep, nil
}

// runner is one invocation of the pipeline: each stage is a method that
// runs the stage unless it finished earlier, then reads its summary into
// the report.
type runner struct {
	ctx   context.Context
	b     gpu.Backend
	comm  gpu.Comm // nil in one process
	cfg   Config
	opt   train.RunOptions
	mc    model.Config
	tok   tokenizer.Tokenizer
	clock *stageClock
	rep   *Report
}

// enter starts timing a stage and returns its log line to finish.
func (r *runner) enter(name string) *zerolog.Event {
	if err := r.clock.enter(name); err != nil {
		r.opt.Log.Warn().Err(err).Msg("pipeline stage times not recorded")
	}
	return r.opt.Log.Info().Str("stage", name)
}

// trainStage runs fit, with the options to run the stage with, unless
// the stage in dir finished: a stage is done when its summary says it ran
// to the end; an interrupted (or killed) one with saved state resumes.
// Rank 0 decides and every rank follows; after the stage every rank waits
// for the others, so that rank 0 has written the stage's summary.
func (r *runner) trainStage(dir, name string, fit func(o train.RunOptions) error) error {
	var fin, resumable bool
	if primary(r.comm) {
		fin, resumable = stageState(dir)
	}
	shared, err := shareFlags(r.comm, fin, resumable)
	if err != nil {
		return fmt.Errorf("%s: share whether it runs: %w", name, err)
	}
	if fin, resumable = shared[0], shared[1]; fin {
		return nil
	}
	r.enter(name).Bool("resume", resumable).Msg("──── pipeline stage ────")
	o := r.opt
	o.Resume = resumable
	if err := fit(o); err != nil {
		return err
	}
	return barrier(r.comm, name)
}

func (r *runner) data() error {
	return onRank0(r.comm, "write the synthetic data", func() error {
		dataDir := filepath.Join(r.cfg.Out, StageData)
		if _, err := os.Stat(filepath.Join(dataDir, "eval.jsonl")); err == nil {
			return nil
		}
		r.enter("data synth").Msg("──── pipeline stage ────")
		_, err := tasks.Synth(dataDir, r.cfg.Synth)
		return err
	})
}

func (r *runner) pretrain() error {
	c := r.cfg.Pretrain
	err := r.trainStage(c.Out, "pretrain", func(o train.RunOptions) error {
		c.Model = r.mc
		_, err := train.Pretrain(r.ctx, r.b, r.tok, c, o)
		return err
	})
	if err != nil {
		return err
	}
	var sum train.PretrainSummary
	if err := readSummary(c.Out, &sum); err != nil {
		return err
	}
	r.rep.Pretrain.ValLoss, r.rep.Pretrain.UnigramLoss, r.rep.Pretrain.Seconds = sum.ValLoss, sum.UnigramLoss, sum.Seconds
	return nil
}

func (r *runner) sft() error {
	c := r.cfg.SFT
	err := r.trainStage(c.Out, "sft", func(o train.RunOptions) (err error) {
		if c.Model, err = model.ReadConfig(c.Init); err != nil {
			return err
		}
		c.Model.Dropout = r.cfg.SFTDropout
		_, err = train.SFT(r.ctx, r.b, r.tok, c, o)
		return err
	})
	if err != nil {
		return err
	}
	var sum train.SFTSummary
	if err := readSummary(c.Out, &sum); err != nil {
		return err
	}
	r.rep.SFT.BestStep, r.rep.SFT.Seconds = sum.BestStep, sum.Seconds
	return nil
}

// label ranks SFT samples for the reward model, when the configuration
// asks for them.
func (r *runner) label() error {
	if r.cfg.SFTSampleLabels <= 0 {
		return nil
	}
	labelDir := filepath.Join(r.cfg.Out, StageLabel)
	err := onRank0(r.comm, "label SFT samples", func() error {
		var st train.LabelStats
		if readSummary(labelDir, &st) == nil {
			return nil
		}
		r.enter("label SFT samples").Int("prompts", r.cfg.SFTSampleLabels).Msg("──── pipeline stage ────")
		if _, err := labelSFTSamples(r.b, r.tok, r.cfg.SFT.Out, r.cfg.RM.Data, labelDir, r.cfg.SFTSampleLabels, r.opt.Precision); err != nil {
			return fmt.Errorf("label SFT samples: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var st train.LabelStats
	if err := readSummary(labelDir, &st); err != nil {
		return err
	}
	r.rep.RM.SFTSamples = &st
	return nil
}

// rewardModel trains on rm.jsonl's rankings (cfg.RM.Data), followed by
// those of SFT samples when the label stage ran.
func (r *runner) rewardModel() error {
	c := r.cfg.RM
	c.Data = r.comparisonData()
	err := r.trainStage(c.Out, "reward model", func(o train.RunOptions) (err error) {
		if c.Model, err = model.ReadConfig(c.Init); err != nil {
			return err
		}
		c.Model.Dropout = r.cfg.RMDropout
		_, err = train.RM(r.ctx, r.b, r.tok, c, o)
		return err
	})
	if err != nil {
		return err
	}
	var sum train.RMSummary
	if err := readSummary(c.Out, &sum); err != nil {
		return err
	}
	rm := &r.rep.RM
	if sum.Val != nil {
		rm.Accuracy, rm.TruthAccuracy, rm.Pairs = sum.Val.Accuracy, sum.Val.TruthAccuracy, sum.Val.Pairs
	}
	if sum.Ceiling != nil {
		rm.LabelerAgrement = sum.Ceiling.LabelerVsLabeler
	}
	if sum.Centering != nil {
		rm.CentredMean = sum.Centering.MeanAfter
	}
	rm.Seconds = sum.Seconds
	return nil
}

func (r *runner) ppo(stage string) error {
	sum, err := r.runPPO(stage, r.cfg.PPO)
	if err != nil {
		return err
	}
	p := &r.rep.PPO
	p.FirstScore, p.LastScore, p.KLToSFT, p.Seconds = sum.FirstScore, sum.LastScore, sum.LastKL, sum.Seconds
	p.FirstTaskScore, p.LastTaskScore = sum.FirstTaskScore, sum.LastTaskScore
	return nil
}

// ppoNoPtx runs PPO without the pretraining mix; the report has its
// evaluation (its MethodResult) only.
func (r *runner) ppoNoPtx(stage string) error {
	_, err := r.runPPO(stage, noPtxPPO(r.cfg))
	return err
}

// runPPO trains PPO with c unless it finished, and reads its summary.
func (r *runner) runPPO(stage string, c train.PPOConfig) (train.PPOSummary, error) {
	var sum train.PPOSummary
	err := r.trainStage(c.Out, stage, func(o train.RunOptions) error {
		_, err := train.PPO(r.ctx, r.b, r.tok, c, o)
		return err
	})
	if err != nil {
		return sum, err
	}
	return sum, readSummary(c.Out, &sum)
}

// labelledRankingsFile, in the label stage's directory, holds rm.jsonl's
// records followed by the rankings of SFT samples.
const labelledRankingsFile = "rm_all.jsonl"

// labelledRankings is the path of c's labelledRankingsFile.
func labelledRankings(c Config) string {
	return filepath.Join(c.Out, StageLabel, labelledRankingsFile)
}

// stageState reports whether the stage in dir finished (its summary.json
// exists and does not say it was interrupted) and, if not, whether it left
// state to resume from.
func stageState(dir string) (finished, resumable bool) {
	var sum struct {
		Interrupted bool `json:"interrupted"`
	}
	if raw, err := os.ReadFile(filepath.Join(dir, train.SummaryFile)); err == nil && json.Unmarshal(raw, &sum) == nil && !sum.Interrupted {
		return true, false
	}
	return false, train.HasState(dir)
}

func readSummary(dir string, v any) error { return readJSON(filepath.Join(dir, train.SummaryFile), v) }

// readJSON decodes the JSON file at path into v.
func readJSON(path string, v any) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// labelSFTSamples ranks samples of the SFT policy in sftDir for the first n
// prompts of the rankings file synthRM and writes into dir rm_sft.jsonl
// (those rankings), rm_all.jsonl (synthRM's records, then those) and last
// summary.json (the train.LabelStats), which marks the stage done.
func labelSFTSamples(b gpu.Backend, tok tokenizer.Tokenizer, sftDir, synthRM, dir string, n int, prec model.Precision) (train.LabelStats, error) {
	return labelPolicySamples(b, tok, labelJob{policy: sftDir, prompts: synthRM, from: 0, n: n, base: synthRM, dir: dir, own: "rm_sft.jsonl"}, prec)
}

// labelJob is one labelling of a policy's samples: n prompts of the
// rankings file prompts from the from-th on (cyclically), ranked by the
// simulated labeler into dir/own; dir/rm_all.jsonl is base's records
// followed by them.
type labelJob struct {
	policy, prompts, base, dir, own string
	from, n                         int
}

// labelPolicySamples runs job and writes dir/summary.json last, which
// marks the stage done.
func labelPolicySamples(b gpu.Backend, tok tokenizer.Tokenizer, job labelJob, prec model.Precision) (train.LabelStats, error) {
	all, _, err := data.ReadPrompts(job.prompts, data.ReadOptions{}.ChatFor(tok))
	if err != nil {
		return train.LabelStats{}, err
	}
	if len(all) == 0 {
		return train.LabelStats{}, fmt.Errorf("%s: no prompts", job.prompts)
	}
	prompts := make([]data.Prompt, 0, min(job.n, len(all)))
	for i := range min(job.n, len(all)) {
		prompts = append(prompts, all[(job.from+i)%len(all)])
	}
	m, err := train.LoadSampler(b, job.policy, tok, prompts, 64, model.Options{Precision: prec})
	if err != nil {
		return train.LabelStats{}, err
	}
	groups, st, err := train.LabelFromPolicy(m, tok, prompts, train.DefaultLabel())
	if err != nil {
		return train.LabelStats{}, err
	}
	if err := os.MkdirAll(job.dir, 0o755); err != nil {
		return train.LabelStats{}, err
	}
	if err := train.WriteComparisons(filepath.Join(job.dir, job.own), groups); err != nil {
		return train.LabelStats{}, err
	}
	base, err := os.ReadFile(job.base)
	if err != nil {
		return train.LabelStats{}, err
	}
	err = atomicfile.Write(filepath.Join(job.dir, labelledRankingsFile), func(w io.Writer) error {
		if _, err := w.Write(base); err != nil {
			return err
		}
		if len(base) > 0 && base[len(base)-1] != '\n' {
			if _, err := w.Write([]byte("\n")); err != nil {
				return err
			}
		}
		return train.EncodeComparisons(w, groups)
	})
	if err != nil {
		return train.LabelStats{}, err
	}
	return st, atomicfile.WriteJSON(filepath.Join(job.dir, train.SummaryFile), st)
}
