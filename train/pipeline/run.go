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

// Run runs every stage in order. A stage whose directory already
// holds a summary.json from an earlier run is not run again; its numbers
// are read back, so an interrupted pipeline continues where it stopped.
func Run(ctx context.Context, b gpu.Backend, cfg Config, opt train.RunOptions) (*Report, error) {
	log := opt.Log
	rep := &Report{Backend: b.Name()}
	mc, err := model.ConfigByName(cfg.Model)
	if err != nil {
		return nil, err
	}
	tok, err := tokenizer.New(mc.Tokenizer)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	// The reward model trains on rm.jsonl's rankings (cfg.RM.Data) followed
	// by those of SFT samples when the label stage runs.
	rmCfg := cfg.RM
	if cfg.SFTSampleLabels > 0 {
		rmCfg.Data = filepath.Join(cfg.Out, StageLabel, "rm_all.jsonl")
	}
	cfgPath := filepath.Join(cfg.Out, ConfigFile)
	if err := checkSameConfig(cfgPath, cfg); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if err := atomicfile.WriteJSON(cfgPath, cfg); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	// enter starts timing a stage and returns its log line to finish.
	clock, err := openStageClock(filepath.Join(cfg.Out, StageClockFile))
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	defer clock.leave() // an interrupted stage's time counts too
	enter := func(name string) *zerolog.Event {
		if err := clock.enter(name); err != nil {
			log.Warn().Err(err).Msg("pipeline stage times not recorded")
		}
		return log.Info().Str("stage", name)
	}
	// pending reports whether the stage in dir still has to run and the
	// options to run it with: a stage is done when its summary says it ran
	// to the end; an interrupted (or killed) one with saved state resumes.
	pending := func(dir, name string) (train.RunOptions, bool) {
		fin, resumable := stageState(dir)
		o := opt
		o.Resume = resumable
		if !fin {
			enter(name).Bool("resume", resumable).Msg("──── pipeline stage ────")
		}
		return o, !fin
	}

	// Data.
	dataDir := filepath.Join(cfg.Out, StageData)
	if _, err := os.Stat(filepath.Join(dataDir, "eval.jsonl")); err != nil {
		enter("data synth").Msg("──── pipeline stage ────")
		if _, err := tasks.Synth(dataDir, cfg.Synth); err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
	}
	// Pretraining.
	if o, run := pending(cfg.Pretrain.Out, "pretrain"); run {
		cfg.Pretrain.Model = mc
		if _, err := train.Pretrain(ctx, b, tok, cfg.Pretrain, o); err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
	}
	var pre train.PretrainSummary
	if err := readSummary(cfg.Pretrain.Out, &pre); err != nil {
		return nil, err
	}
	rep.Pretrain.ValLoss, rep.Pretrain.UnigramLoss, rep.Pretrain.Seconds = pre.ValLoss, pre.UnigramLoss, pre.Seconds
	// SFT.
	if o, run := pending(cfg.SFT.Out, "sft"); run {
		if cfg.SFT.Model, err = model.ReadConfig(cfg.SFT.Init); err != nil {
			return nil, err
		}
		cfg.SFT.Model.Dropout = cfg.SFTDropout
		if _, err := train.SFT(ctx, b, tok, cfg.SFT, o); err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
	}
	var sft train.SFTSummary
	if err := readSummary(cfg.SFT.Out, &sft); err != nil {
		return nil, err
	}
	rep.SFT.BestStep, rep.SFT.Seconds = sft.BestStep, sft.Seconds
	// Rankings of SFT samples.
	if cfg.SFTSampleLabels > 0 {
		labelDir := filepath.Join(cfg.Out, StageLabel)
		var st train.LabelStats
		if err := readSummary(labelDir, &st); err != nil {
			enter("label SFT samples").Int("prompts", cfg.SFTSampleLabels).Msg("──── pipeline stage ────")
			if st, err = labelSFTSamples(b, tok, cfg.SFT.Out, cfg.RM.Data, labelDir, cfg.SFTSampleLabels); err != nil {
				return nil, fmt.Errorf("pipeline: label SFT samples: %w", err)
			}
		}
		rep.RM.SFTSamples = &st
	}
	// Reward model.
	if o, run := pending(rmCfg.Out, "reward model"); run {
		if rmCfg.Model, err = model.ReadConfig(rmCfg.Init); err != nil {
			return nil, err
		}
		rmCfg.Model.Dropout = cfg.RMDropout
		if _, err := train.RM(ctx, b, tok, rmCfg, o); err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
	}
	var rm train.RMSummary
	if err := readSummary(cfg.RM.Out, &rm); err != nil {
		return nil, err
	}
	if rm.Val != nil {
		rep.RM.Accuracy, rep.RM.TruthAccuracy, rep.RM.Pairs = rm.Val.Accuracy, rm.Val.TruthAccuracy, rm.Val.Pairs
	}
	if rm.Ceiling != nil {
		rep.RM.LabelerAgrement = rm.Ceiling.LabelerVsLabeler
	}
	if rm.Centering != nil {
		rep.RM.CentredMean = rm.Centering.MeanAfter
	}
	rep.RM.Seconds = rm.Seconds
	// PPO-ptx.
	if o, run := pending(cfg.PPO.Out, "ppo-ptx"); run {
		if _, err := train.PPO(ctx, b, tok, cfg.PPO, o); err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
	}
	var ppo train.PPOSummary
	if err := readSummary(cfg.PPO.Out, &ppo); err != nil {
		return nil, err
	}
	rep.PPO.FirstScore, rep.PPO.LastScore, rep.PPO.KLToSFT, rep.PPO.Seconds = ppo.FirstScore, ppo.LastScore, ppo.LastKL, ppo.Seconds
	rep.PPO.FirstTaskScore, rep.PPO.LastTaskScore = ppo.FirstTaskScore, ppo.LastTaskScore

	// Evaluation on the held-out prompts.
	enter(stageEvaluation).Msg("──── pipeline stage ────")
	if err := evaluate(b, tok, cfg, rep); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if err := clock.leave(); err != nil {
		log.Warn().Err(err).Msg("pipeline stage times not recorded")
	}
	rep.Seconds = clock.total()
	if err := atomicfile.WriteJSON(filepath.Join(cfg.Out, "report.json"), rep); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if err := WriteReport(cfg.Out, rep); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	return rep, nil
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
	_, err := os.Stat(filepath.Join(dir, train.ResumeDir, train.TrainerStateFile))
	return false, err == nil
}

func readSummary(dir string, v any) error {
	raw, err := os.ReadFile(filepath.Join(dir, train.SummaryFile))
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("pipeline: %s: %w", filepath.Join(dir, train.SummaryFile), err)
	}
	return nil
}

// labelSFTSamples ranks samples of the SFT policy in sftDir for the first n
// prompts of the rankings file synthRM and writes into dir rm_sft.jsonl
// (those rankings), rm_all.jsonl (synthRM's records, then those) and last
// summary.json (the train.LabelStats), which marks the stage done.
func labelSFTSamples(b gpu.Backend, tok tokenizer.Tokenizer, sftDir, synthRM, dir string, n int) (train.LabelStats, error) {
	prompts, _, err := data.ReadPrompts(synthRM, data.ReadOptions{})
	if err != nil {
		return train.LabelStats{}, err
	}
	prompts = prompts[:min(n, len(prompts))]
	m, err := train.LoadSampler(b, sftDir, tok, prompts, 64)
	if err != nil {
		return train.LabelStats{}, err
	}
	groups, st, err := train.LabelFromPolicy(m, tok, prompts, train.DefaultLabel())
	if err != nil {
		return train.LabelStats{}, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return train.LabelStats{}, err
	}
	if err := train.WriteComparisons(filepath.Join(dir, "rm_sft.jsonl"), groups); err != nil {
		return train.LabelStats{}, err
	}
	synth, err := os.ReadFile(synthRM)
	if err != nil {
		return train.LabelStats{}, err
	}
	err = atomicfile.Write(filepath.Join(dir, "rm_all.jsonl"), func(w io.Writer) error {
		if _, err := w.Write(synth); err != nil {
			return err
		}
		if len(synth) > 0 && synth[len(synth)-1] != '\n' {
			if _, err := w.Write([]byte("\n")); err != nil {
				return err
			}
		}
		return train.EncodeComparisons(w, groups)
	})
	if err != nil {
		return train.LabelStats{}, err
	}
	return st, atomicfile.WriteJSON(filepath.Join(dir, train.SummaryFile), st)
}
