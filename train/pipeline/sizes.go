package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
)

// The sizes comparison (RunSizes) is the paper's Figure 1 in miniature:
// the recipe at several model sizes, each a whole pipeline run in its own
// sub-directory with PPO both with and without the pretraining mix, and
// every model at every size judged by the same simulated labeler against
// one baseline, SFT at the largest size. Every size runs on the same
// data: the synthetic data depends on the configuration's synth section
// alone, which is the same for every size, so each size's data directory
// holds the same files (and the comparison refuses evaluations of
// different prompts). Beside it, the alignment tax on held-out skills:
// the few-shot skill probes (tasks.SkillProbes) on the pretrained, SFT,
// PPO and PPO-ptx models of each size.

// SizesFile is the sizes comparison's numbers, at the top of the run
// directory; sizes.md is its report and sizes.png its plot.
const SizesFile = "sizes.json"

// Sizes comparison settings: the few-shot prompt of the pretrained
// baseline holds fewShotShots solved demonstrations of the prompt's task;
// each skill probe follows skillShots solved lines.
const (
	fewShotShots = 2
	skillShots   = 3
)

// skillProbesPerSkill is as many skill probes in all as held-out prompts
// (43 of each of the 7 skills for the default 300), at least one each.
func skillProbesPerSkill(c Config) int {
	return max(1, (c.Synth.NEval+len(tasks.SkillNames())-1)/len(tasks.SkillNames()))
}

// The models of each size, in the report's order, and the evaluation
// (Report.evals) each row reads: the few-shot prompted pretrained model
// has its own.
var sizeModels = []struct{ label, eval string }{
	{"pretrained", "pretrained"},
	{"pretrained, few-shot prompt", ""},
	{"SFT", "sft"},
	{"PPO", "ppo-noptx"},
	{"PPO-ptx", "ppo"},
}

// SizesReport is SizesFile.
type SizesReport struct {
	// Baseline is the model every win rate is against: SFT at the
	// largest size ("SFT small").
	Baseline string       `json:"baseline"`
	Sizes    []SizeResult `json:"sizes"`
	// EvalN is the held-out prompts, SkillN the skill probes.
	EvalN   int     `json:"eval_n"`
	SkillN  int     `json:"skill_n"`
	Seconds float64 `json:"seconds"` // every size's pipeline and the comparison
	Backend string  `json:"backend"`
}

// SizeResult is one size's models.
type SizeResult struct {
	Size   string      `json:"size"`
	Params int         `json:"params"`
	Dir    string      `json:"dir"`
	Models []SizeModel `json:"models"`
}

// SizeModel is one model of one size on the held-out prompts.
type SizeModel struct {
	Model     string  `json:"model"`
	TaskScore float64 `json:"task_score"`
	// WinRate is the labeler's expected preference for the model's
	// responses over the baseline's, ± its standard error over the
	// prompts.
	WinRate       float64 `json:"win_rate_vs_baseline"`
	WinRateStdErr float64 `json:"win_rate_stderr"`
	// Skill is the few-shot skill score, and PtxLoss the held-out
	// pretraining loss, of every model but the few-shot prompted one
	// (the pretrained model again).
	Skill   *train.SkillEval `json:"skill,omitempty"`
	PtxLoss *float64         `json:"ptx_loss,omitempty"`
}

// ValidSizes checks a list of model sizes: named configurations, each
// once.
func ValidSizes(sizes []string) error {
	if len(sizes) == 0 {
		return fmt.Errorf("sizes: none given")
	}
	for i, s := range sizes {
		if _, err := model.ConfigByName(s); err != nil {
			return fmt.Errorf("sizes: %w", err)
		}
		if slices.Contains(sizes[:i], s) {
			return fmt.Errorf("sizes: %q given twice", s)
		}
	}
	return nil
}

// SizeConfig is the configuration of one size's run: base with the model
// size, in the sub-directory named for it (every path of base inside
// base.Out moved there), running PPO with and without ptx besides base's
// methods.
func SizeConfig(base Config, size string) (Config, error) {
	out := filepath.Join(base.Out, size)
	raw, err := json.Marshal(base)
	if err != nil {
		return Config{}, err
	}
	c, err := ParseConfig(rebasePaths(raw, base.Out, out), out)
	if err != nil {
		return Config{}, err
	}
	c.Model = size
	var methods []string
	for _, m := range MethodNames() {
		if m == "ppo" || m == "ppo-noptx" || slices.Contains(base.Methods, m) {
			methods = append(methods, m)
		}
	}
	c.Methods = methods
	return c, nil
}

// RunSizes runs the pipeline at each size (Run, in SizeConfig's
// directory; a finished size is only evaluated again, so an interrupted
// comparison continues and a finished one takes more sizes), then
// compares every size's models against SFT at the largest size and writes
// SizesFile, sizes.md and sizes.png into base.Out.
func RunSizes(ctx context.Context, b gpu.Backend, base Config, sizes []string, opt train.RunOptions) (*SizesReport, error) {
	if err := ValidSizes(sizes); err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	cfgs := make([]Config, len(sizes))
	for i, s := range sizes {
		c, err := SizeConfig(base, s)
		if err != nil {
			return nil, fmt.Errorf("pipeline: size %s: %w", s, err)
		}
		if err := c.Validate(); err != nil {
			return nil, fmt.Errorf("pipeline: size %s: %w", s, err)
		}
		cfgs[i] = c
	}
	reps := make([]*Report, len(sizes))
	for i, c := range cfgs {
		opt.Log.Info().Str("size", c.Model).Str("dir", c.Out).Msg("════ pipeline at one size ════")
		rep, err := Run(ctx, b, c, opt)
		if err != nil {
			return nil, fmt.Errorf("size %s: %w", c.Model, err)
		}
		reps[i] = rep
	}
	// The comparison is rank 0's; the others read what it wrote.
	var sr *SizesReport
	err := onRank0(opt.Comm, "compare the sizes", func() (err error) {
		opt.Log.Info().Str("stage", "sizes comparison").Msg("──── pipeline stage ────")
		start := time.Now()
		if sr, err = compareSizes(b, cfgs, reps, opt.Precision); err != nil {
			return fmt.Errorf("sizes comparison: %w", err)
		}
		sr.Seconds = time.Since(start).Seconds()
		for _, r := range reps {
			sr.Seconds += r.Seconds
		}
		sr.Backend = b.Name()
		if err := atomicfile.WriteJSON(filepath.Join(base.Out, SizesFile), sr); err != nil {
			return err
		}
		return WriteSizesReport(base.Out, sr)
	})
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if !primary(opt.Comm) {
		sr = &SizesReport{}
		if err := readJSON(filepath.Join(base.Out, SizesFile), sr); err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
	}
	return sr, nil
}

// compareSizes judges every model of every size against SFT at the
// largest size (by parameters) and measures the skill probes.
func compareSizes(b gpu.Backend, cfgs []Config, reps []*Report, prec model.Precision) (*SizesReport, error) {
	sr := &SizesReport{}
	evals := make([]map[string]train.TaskEval, len(cfgs))
	toks := make([]tokenizer.Tokenizer, len(cfgs))
	largest := 0
	for i, c := range cfgs {
		mc, err := model.ConfigByName(c.Model)
		if err != nil {
			return nil, err
		}
		sr.Sizes = append(sr.Sizes, SizeResult{Size: c.Model, Params: mc.NumParams(), Dir: c.Out})
		if sr.Sizes[i].Params > sr.Sizes[largest].Params {
			largest = i
		}
		if toks[i], err = tokenizer.New(mc.Tokenizer); err != nil {
			return nil, err
		}
		evals[i] = reps[i].evals
		if evals[i]["fewshot"], err = evalFewShot(b, toks[i], c, evals[i]["pretrained"], prec); err != nil {
			return nil, fmt.Errorf("size %s: the few-shot prompted pretrained model: %w", c.Model, err)
		}
	}
	baseline := evals[largest]["sft"]
	sr.Baseline = "SFT " + cfgs[largest].Model
	sr.EvalN = len(baseline.Samples)
	probes, err := tasks.SkillProbes(skillProbesPerSkill(cfgs[0]), skillShots, cfgs[0].Synth.Seed)
	if err != nil {
		return nil, err
	}
	sr.SkillN = len(probes)
	labeler := tasks.DefaultLabeler()
	for i, c := range cfgs {
		ptx := map[string]float64{"pretrained": reps[i].Pretrain.ValLoss, "sft": reps[i].SFTPtxLoss}
		for _, m := range reps[i].Methods {
			ptx[m.Name] = m.PtxLoss
		}
		dirs := map[string]string{"pretrained": c.Pretrain.Out, "sft": c.SFT.Out}
		for _, m := range selectedMethods(c) {
			dirs[m.name] = m.dir(c)
		}
		for _, row := range sizeModels {
			key := row.eval
			if key == "" {
				key = "fewshot"
			}
			ev, ok := evals[i][key]
			if !ok {
				return nil, fmt.Errorf("size %s: no evaluation of %s", c.Model, row.label)
			}
			cmp, err := train.Compare(ev, baseline, labeler)
			if err != nil {
				return nil, fmt.Errorf("size %s, %s against %s: %w", c.Model, row.label, sr.Baseline, err)
			}
			sm := SizeModel{Model: row.label, TaskScore: ev.Score, WinRate: cmp.WinRate()}
			sm.WinRateStdErr, _ = cmp.StdErrs()
			if row.eval != "" {
				loss := ptx[key]
				sm.PtxLoss = &loss
				if sm.Skill, err = evalSkillsOf(b, toks[i], dirs[key], probes, prec); err != nil {
					return nil, fmt.Errorf("size %s, %s: %w", c.Model, row.label, err)
				}
			}
			sr.Sizes[i].Models = append(sr.Sizes[i].Models, sm)
		}
	}
	return sr, nil
}

// evalSkillsOf loads the checkpoint in dir and scores it on the probes.
func evalSkillsOf(b gpu.Backend, tok tokenizer.Tokenizer, dir string, probes []tasks.SkillProbe, prec model.Precision) (*train.SkillEval, error) {
	m, err := loadForEval(b, dir, prec)
	if err != nil {
		return nil, err
	}
	se, err := train.EvalSkills(m, tok, probes)
	return &se, err
}

// evalFewShot evaluates the pretrained model of c on the held-out prompts
// of plain (its evaluation without a prompt) with fewShotPrompts before
// each, as the paper prompted GPT-3: its response ends at its first line
// break, the examples' separator, and is scored as it is then.
func evalFewShot(b gpu.Backend, tok tokenizer.Tokenizer, c Config, plain train.TaskEval, prec model.Precision) (train.TaskEval, error) {
	demos, _, err := data.ReadSFT(c.SFT.Data, data.ReadOptions{})
	if err != nil {
		return train.TaskEval{}, err
	}
	prompts := make([]train.TaskPrompt, len(plain.Samples))
	for i, s := range plain.Samples {
		prompts[i] = train.TaskPrompt{Prompt: s.Prompt, Task: s.Task, Answer: s.Answer, Kind: s.Kind}
	}
	shots, err := fewShotPrompts(prompts, demos, fewShotShots)
	if err != nil {
		return train.TaskEval{}, err
	}
	m, err := loadForEval(b, c.Pretrain.Out, prec)
	if err != nil {
		return train.TaskEval{}, err
	}
	ev, err := train.EvalTasks(m, tok, shots, train.EvalOptions{MaxNew: c.MaxNew})
	if err != nil {
		return train.TaskEval{}, err
	}
	return firstLines(ev, prompts)
}

// fewShotPrompts puts before each prompt shots demonstrations of its task
// (prompt, completion, line break), taken in turn from those without the
// writers' habit (tasks.HabitPrefix), as a prompt engineer would pick
// clean examples; the prompts' own text and answers are kept.
func fewShotPrompts(prompts []train.TaskPrompt, demos []data.SFTExample, shots int) ([]train.TaskPrompt, error) {
	byTask := map[string][]string{}
	for _, d := range demos {
		if d.Task != "" && !strings.HasPrefix(d.Completion, tasks.HabitPrefix) && !strings.Contains(d.Completion, "\n") {
			byTask[d.Task] = append(byTask[d.Task], d.Prompt+d.Completion+"\n")
		}
	}
	next := map[string]int{}
	out := make([]train.TaskPrompt, len(prompts))
	for i, p := range prompts {
		pool := byTask[p.Task]
		if len(pool) == 0 {
			return nil, fmt.Errorf("few-shot prompt: no demonstration of task %q", p.Task)
		}
		var b strings.Builder
		for range shots {
			b.WriteString(pool[next[p.Task]%len(pool)])
			next[p.Task]++
		}
		out[i] = p
		out[i].Prompt = b.String() + p.Prompt
	}
	return out, nil
}

// firstLines cuts each response of ev at its first line break, rescores
// it, and gives each sample the plain prompt it answers, so that it
// compares with other models' evaluations of the same prompts.
func firstLines(ev train.TaskEval, plain []train.TaskPrompt) (train.TaskEval, error) {
	out := train.TaskEval{PerTask: map[string]float64{}, N: ev.N}
	n := map[string]int{}
	for i, s := range ev.Samples {
		if cut := strings.IndexByte(s.Response, '\n'); cut >= 0 {
			s.Response, s.EOS = s.Response[:cut], true
		}
		score, err := tasks.ScoreRecord(s.Task, s.Answer, s.Response)
		if err != nil {
			return train.TaskEval{}, err
		}
		s.Score, s.Prompt = score, plain[i].Prompt
		out.Samples = append(out.Samples, s)
		out.Score += score / float64(len(ev.Samples))
		out.PerTask[s.Task] += score
		n[s.Task]++
	}
	for t := range out.PerTask {
		out.PerTask[t] /= float64(n[t])
	}
	return out, nil
}
