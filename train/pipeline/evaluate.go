package pipeline

import (
	"bytes"
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

// evaluate scores the pretrained and SFT models and every method's policy
// on the held-out prompts: task scores, the labeler's preference for each
// policy over SFT, each policy's KL to SFT on its own samples, and the
// held-out pretraining loss of SFT and the policies (the alignment tax).
func evaluate(b gpu.Backend, tok tokenizer.Tokenizer, cfg Config, rep *Report, prec model.Precision) error {
	records, _, err := data.ReadPrompts(filepath.Join(cfg.Out, StageData, "eval.jsonl"), data.ReadOptions{}.ChatFor(tok))
	if err != nil {
		return err
	}
	prompts := make([]train.TaskPrompt, len(records))
	texts := make([]string, len(records))
	for i, r := range records {
		prompts[i] = train.TaskPrompt{Prompt: r.Prompt, Task: r.Task, Answer: r.Answer, Source: r.Source}
		texts[i] = r.Prompt
	}
	corpus, err := data.LoadText(cfg.Pretrain.Data, tok, cfg.Pretrain.ValFrac)
	if err != nil {
		return err
	}
	e := &evaluator{b: b, tok: tok, cfg: cfg, prompts: prompts, texts: texts, corpus: corpus, labeler: tasks.DefaultLabeler(), prec: prec}
	evalOne := e.evalOne
	_, pre, _, err := evalOne(cfg.Pretrain.Out)
	if err != nil {
		return fmt.Errorf("evaluate the pretrained model: %w", err)
	}
	sftModel, sft, sftPtx, err := evalOne(cfg.SFT.Out)
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
	rep.evals = map[string]train.TaskEval{"pretrained": pre, "sft": sft}
	rep.Pretrain.TaskScore = pre.Score
	labeler := e.labeler
	if rep.Pretrain.Rating, err = train.Rate(pre, labeler); err != nil {
		return err
	}
	if rep.SFT.Rating, err = train.Rate(sft, labeler); err != nil {
		return err
	}
	rep.SFT.TaskScore, rep.SFT.PerTask, rep.SFT.HabitRate = sft.Score, sft.PerTask, sft.HabitRate()
	rep.SFTPtxLoss = sftPtx
	rep.EvalN = len(prompts)
	var cmps []namedComparison
	for _, meth := range selectedMethods(cfg) {
		policy, ev, ptx, err := evalOne(meth.dir(cfg))
		if err != nil {
			return fmt.Errorf("evaluate %s: %w", meth.label, err)
		}
		cmp, err := train.Compare(ev, sft, labeler)
		if err != nil {
			return err
		}
		kl, err := train.MeasureKL(policy, sftModel, tok, texts, cfg.MaxNew, cfg.Synth.Seed)
		if err != nil {
			return fmt.Errorf("%s: %w", meth.label, err)
		}
		res := MethodResult{Name: meth.name, TaskScore: ev.Score, PerTask: ev.PerTask, WinRateVsSFT: cmp.WinRate(),
			WinRateByTask: cmp.ByTask(), HabitRate: ev.HabitRate(), KLToSFT: kl, PtxLoss: ptx}
		res.WinRateStdErr, res.ScoreGainStdErr = cmp.StdErrs()
		if res.Rating, err = train.Rate(ev, labeler); err != nil {
			return err
		}
		rep.Methods = append(rep.Methods, res)
		rep.evals[meth.name] = ev
		if meth.name == "ppo" {
			p := &rep.PPO
			p.TaskScore, p.PerTask, p.HabitRate = ev.Score, ev.PerTask, res.HabitRate
			p.WinRateVsSFT, p.WinRateByTask = res.WinRateVsSFT, res.WinRateByTask
			p.WinRateStdErr, p.ScoreGainStdErr = res.WinRateStdErr, res.ScoreGainStdErr
			p.WinRateSFTHabit, p.WinRateElsewhere = cmp.ByHabit()
			p.PtxLoss = ptx
		}
		cmps = append(cmps, namedComparison{meth.name, cmp})
	}
	if cfg.Rounds > 1 {
		if err := evaluateRounds(b, cfg, e, sft, sftModel, rep); err != nil {
			return err
		}
	}
	if err := recordBehaviour(cfg.Out, pre, sft, cmps); err != nil {
		return err
	}
	return writeEvalSamples(filepath.Join(cfg.Out, EvalSamplesFile), sft, cmps)
}

// evaluator holds what every model's evaluation shares: the held-out
// prompts, the held-out pretraining text and the labeler.
type evaluator struct {
	b       gpu.Backend
	tok     tokenizer.Tokenizer
	cfg     Config
	prompts []train.TaskPrompt
	texts   []string
	corpus  *data.TextCorpus
	labeler tasks.Labeler
	prec    model.Precision
}

// evalOne loads the checkpoint in dir and returns it, its greedy answers'
// evaluation and its held-out pretraining loss.
func (e *evaluator) evalOne(dir string) (*model.Model, train.TaskEval, float64, error) {
	m, err := loadForEval(e.b, dir, e.prec)
	if err != nil {
		return nil, train.TaskEval{}, 0, err
	}
	ev, err := train.EvalTasks(m, e.tok, e.prompts, train.EvalOptions{MaxNew: e.cfg.MaxNew})
	if err != nil {
		return nil, train.TaskEval{}, 0, err
	}
	pc := e.cfg.Pretrain
	tk, tg := data.SequentialWindows(e.corpus.Val, pc.Seq, pc.EvalBatches*pc.Batch)
	if len(tk) == 0 {
		return nil, ev, 0, errors.New("no held-out pretraining text")
	}
	loss, err := train.HeldOutLoss(m, tk, tg, 64, pc.Seq)
	return m, ev, loss, err
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
// held-out prompt: the prompt, its task and answer, SFT's response ("sft")
// and score ("sft_score"), then for each method (named as in
// Config.Methods, e.g. "ppo") its response, its score ("ppo_score") and the
// labeler's probability of preferring it to SFT's ("ppo_preferred", 0.5
// for equal utilities).
const EvalSamplesFile = "eval_samples.jsonl"

// namedComparison is a method's comparison with SFT (train.Compare(policy,
// sft)).
type namedComparison struct {
	name string
	cmp  train.Comparison
}

// writeEvalSamples writes EvalSamplesFile from SFT's evaluation and each
// method's comparison with it.
func writeEvalSamples(path string, sft train.TaskEval, cmps []namedComparison) error {
	return atomicfile.Write(path, func(w io.Writer) error {
		for i, s := range sft.Samples {
			fields := []any{"prompt", s.Prompt, "task", s.Task, "answer", s.Answer, "sft", s.Response, "sft_score", s.Score}
			for _, c := range cmps {
				p := c.cmp.A.Samples[i]
				if p.Prompt != s.Prompt {
					return fmt.Errorf("eval samples: %s's sample %d answers another prompt", c.name, i)
				}
				fields = append(fields, c.name, p.Response, c.name+"_score", p.Score, c.name+"_preferred", c.cmp.Prefs[i])
			}
			if err := writeObject(w, fields); err != nil {
				return err
			}
		}
		return nil
	})
}

// writeObject writes one JSON object, its keys in the order given
// (alternating keys and values), and a line break.
func writeObject(w io.Writer, kv []any) error {
	var buf bytes.Buffer
	buf.WriteByte('{')
	for i := 0; i < len(kv); i += 2 {
		if i > 0 {
			buf.WriteByte(',')
		}
		for j, v := range kv[i : i+2] {
			var e bytes.Buffer
			enc := json.NewEncoder(&e)
			enc.SetEscapeHTML(false)
			if err := enc.Encode(v); err != nil {
				return err
			}
			buf.Write(bytes.TrimSuffix(e.Bytes(), []byte("\n")))
			if j == 0 {
				buf.WriteByte(':')
			}
		}
	}
	buf.WriteString("}\n")
	_, err := w.Write(buf.Bytes())
	return err
}
