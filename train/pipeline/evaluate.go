package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
)

// evaluate scores the pretrained, SFT and PPO models on the held-out
// prompts, the labeler's preference for PPO over SFT, and the held-out
// pretraining loss of SFT and PPO (the alignment tax).
func evaluate(b gpu.Backend, tok tokenizer.Tokenizer, cfg Config, rep *Report, prec model.Precision) error {
	records, _, err := data.ReadPrompts(filepath.Join(cfg.Out, StageData, "eval.jsonl"), data.ReadOptions{})
	if err != nil {
		return err
	}
	prompts := make([]train.TaskPrompt, len(records))
	for i, r := range records {
		prompts[i] = train.TaskPrompt{Prompt: r.Prompt, Task: r.Task, Answer: r.Answer, Source: r.Source}
	}
	corpus, err := data.LoadText(cfg.Pretrain.Data, tok, cfg.Pretrain.ValFrac)
	if err != nil {
		return err
	}
	evalOne := func(dir string) (train.TaskEval, float64, error) {
		m, err := loadForEval(b, dir, prec)
		if err != nil {
			return train.TaskEval{}, 0, err
		}
		ev, err := train.EvalTasks(m, tok, prompts, train.EvalOptions{MaxNew: cfg.MaxNew})
		if err != nil {
			return train.TaskEval{}, 0, err
		}
		tk, tg := data.SequentialWindows(corpus.Val, cfg.Pretrain.Seq, cfg.Pretrain.EvalBatches*cfg.Pretrain.Batch)
		if len(tk) == 0 {
			return ev, 0, errors.New("no held-out pretraining text")
		}
		loss, err := train.HeldOutLoss(m, tk, tg, 64, cfg.Pretrain.Seq)
		return ev, loss, err
	}
	pre, _, err := evalOne(cfg.Pretrain.Out)
	if err != nil {
		return fmt.Errorf("evaluate the pretrained model: %w", err)
	}
	sft, sftPtx, err := evalOne(cfg.SFT.Out)
	if err != nil {
		return fmt.Errorf("evaluate SFT: %w", err)
	}
	if cfg.BestOfN >= 2 {
		bon, err := measureBestOfN(b, tok, cfg, prompts, sft, prec)
		if err != nil {
			return fmt.Errorf("best-of-%d on SFT samples: %w", cfg.BestOfN, err)
		}
		rep.RM.BestOfN = &bon
	}
	ppo, ppoPtx, err := evalOne(cfg.PPO.Out)
	if err != nil {
		return fmt.Errorf("evaluate PPO: %w", err)
	}
	cmp, err := train.Compare(ppo, sft, tasks.DefaultLabeler())
	if err != nil {
		return err
	}
	if err := writeEvalSamples(filepath.Join(cfg.Out, EvalSamplesFile), cmp); err != nil {
		return err
	}
	rep.Pretrain.TaskScore = pre.Score
	rep.SFT.TaskScore, rep.SFT.PerTask, rep.SFT.HabitRate = sft.Score, sft.PerTask, sft.HabitRate()
	rep.PPO.TaskScore, rep.PPO.PerTask, rep.PPO.HabitRate = ppo.Score, ppo.PerTask, ppo.HabitRate()
	rep.PPO.WinRateVsSFT, rep.PPO.WinRateByTask = cmp.WinRate(), cmp.ByTask()
	rep.PPO.WinRateStdErr, rep.PPO.ScoreGainStdErr = cmp.StdErrs()
	rep.PPO.WinRateSFTHabit, rep.PPO.WinRateElsewhere = cmp.ByHabit()
	rep.PPO.PtxLoss, rep.SFTPtxLoss = ppoPtx, sftPtx
	rep.EvalN = len(prompts)
	return nil
}

// loadForEval loads the checkpoint in dir for generation and scoring:
// batches of 64 rows over its whole context.
func loadForEval(b gpu.Backend, dir string, prec model.Precision) (*model.Model, error) {
	c, err := model.ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	return model.Load(b, dir, model.Options{MaxBatch: 64, MaxSeq: c.MaxSeqLen, Precision: prec})
}

// measureBestOfN measures the reward model on cfg.BestOfN samples
// of the SFT policy per held-out prompt, at the PPO rollout temperature.
func measureBestOfN(b gpu.Backend, tok tokenizer.Tokenizer, cfg Config, prompts []train.TaskPrompt, greedy train.TaskEval, prec model.Precision) (train.BestOfN, error) {
	policy, err := loadForEval(b, cfg.SFT.Out, prec)
	if err != nil {
		return train.BestOfN{}, err
	}
	rm, err := loadForEval(b, cfg.RM.Out, prec)
	if err != nil {
		return train.BestOfN{}, err
	}
	return train.MeasureBestOfN(policy, rm, tok, prompts, greedy, train.BestOfNOptions{
		N: cfg.BestOfN, Temperature: cfg.PPO.Temperature, MaxNew: cfg.MaxNew, Seed: cfg.Synth.Seed, Labeler: tasks.DefaultLabeler(),
	})
}

// EvalSamplesFile is the pipeline's record of the evaluation, one line per
// held-out prompt: the SFT and PPO responses, their scores and the
// labeler's preference for PPO's.
const EvalSamplesFile = "eval_samples.jsonl"

// writeEvalSamples writes EvalSamplesFile from the comparison of the PPO
// evaluation (a) with the SFT one (b).
func writeEvalSamples(path string, c train.Comparison) error {
	type record struct {
		Prompt   string  `json:"prompt"`
		Task     string  `json:"task"`
		Answer   string  `json:"answer"`
		SFT      string  `json:"sft"`
		PPO      string  `json:"ppo"`
		SFTScore float64 `json:"sft_score"`
		PPOScore float64 `json:"ppo_score"`
		// PPOPreferred is the labeler's probability of preferring PPO's
		// response (0.5 for equal utilities).
		PPOPreferred float64 `json:"ppo_preferred"`
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for i, s := range c.B.Samples {
			p := c.A.Samples[i]
			if err := enc.Encode(record{s.Prompt, s.Task, s.Answer, s.Response, p.Response, s.Score, p.Score, c.Prefs[i]}); err != nil {
				return err
			}
		}
		return nil
	})
}
