package pipeline

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train"
)

// method is one way of training a policy from the SFT model. The pipeline
// runs those Config.Methods names after the reward model, each in its own
// stage directory, evaluates every resulting policy the same way (task
// score, the labeler's win rate over SFT, KL to SFT on the policy's own
// samples, held-out pretraining loss) and compares them in the report.
type method struct {
	name  string                              // as in Config.Methods
	label string                              // in the report's tables
	stage string                              // its name in the stage clock
	dir   func(c Config) string               // its run directory, which holds the policy
	run   func(r *runner, stage string) error // trains unless finished; reads its summary into the report
}

// allMethods are the methods in the order the pipeline runs them.
var allMethods = []method{
	{"ppo", "PPO-ptx", "ppo-ptx", func(c Config) string { return c.PPO.Out }, (*runner).ppo},
	{"ppo-noptx", "PPO", "ppo (no ptx)", func(c Config) string { return noPtxPPO(c).Out }, (*runner).ppoNoPtx},
	{"dpo", "DPO", "dpo", func(c Config) string { return c.DPO.Out }, (*runner).dpo},
	{"grpo", "GRPO", "grpo", func(c Config) string { return c.GRPO.Out }, (*runner).grpo},
	{"rloo", "RLOO", "rloo", func(c Config) string { return c.RLOO.Out }, (*runner).rloo},
	{"rs", "rejection sampling", "rejection sampling", func(c Config) string { return c.RS.Out }, (*runner).rs},
}

// MethodNames lists the methods a configuration may name.
func MethodNames() []string {
	names := make([]string, len(allMethods))
	for i, m := range allMethods {
		names[i] = m.name
	}
	return names
}

// validMethods refuses an empty list, an unknown name and a repeated one.
func validMethods(names []string) error {
	if len(names) == 0 {
		return fmt.Errorf("methods: none given (known: %s)", strings.Join(MethodNames(), ", "))
	}
	for i, n := range names {
		if !slices.Contains(MethodNames(), n) {
			return fmt.Errorf("methods: unknown method %q (known: %s)", n, strings.Join(MethodNames(), ", "))
		}
		if slices.Contains(names[:i], n) {
			return fmt.Errorf("methods: %q given twice", n)
		}
	}
	return nil
}

// selectedMethods are the configured methods in the pipeline's order.
func selectedMethods(c Config) []method {
	var out []method
	for _, m := range allMethods {
		if slices.Contains(c.Methods, m.name) {
			out = append(out, m)
		}
	}
	return out
}

// StagePPONoPtx is the run directory of PPO without the pretraining mix
// (the method "ppo-noptx"), the paper's "PPO" beside its PPO-ptx.
const StagePPONoPtx = "ppo_noptx"

// noPtxPPO is PPO's configuration with the ptx coefficient 0 and no
// pretraining text, in its own directory: everything else as PPO-ptx, so
// the two differ in the pretraining mix alone.
func noPtxPPO(c Config) train.PPOConfig {
	p := c.PPO
	p.Ptx, p.PtxCoef, p.Out = nil, 0, filepath.Join(c.Out, StagePPONoPtx)
	return p
}

// configKey is the section of Config that holds a method's settings.
func configKey(method string) string {
	if method == "ppo-noptx" {
		return "ppo"
	}
	return method
}

// comparisonData is the rankings file the reward model trains on: rm.jsonl,
// followed by the rankings of SFT samples when the label stage ran.
func (r *runner) comparisonData() string {
	if r.cfg.SFTSampleLabels > 0 {
		return labelledRankings(r.cfg)
	}
	return r.cfg.RM.Data
}

func (r *runner) dpo(stage string) error {
	c := r.cfg.DPO
	c.Data = r.comparisonData()
	err := r.trainStage(c.Out, stage, func(o train.RunOptions) (err error) {
		if c.Model, err = model.ReadConfig(c.Init); err != nil {
			return err
		}
		_, err = train.DPO(r.ctx, r.b, r.tok, c, o)
		return err
	})
	if err != nil {
		return err
	}
	var sum train.DPOSummary
	if err := readSummary(c.Out, &sum); err != nil {
		return err
	}
	d := &r.rep.DPO
	d.Seconds, d.Steps = sum.Seconds, sum.Steps
	if sum.Val != nil {
		d.Accuracy, d.TruthAccuracy, d.Pairs = sum.Val.Preference.Accuracy, sum.Val.Preference.TruthAccuracy, sum.Val.Preference.Pairs
	}
	return nil
}

// methodStage is the stage-clock name of the method named.
func methodStage(name string) string {
	for _, m := range allMethods {
		if m.name == name {
			return m.stage
		}
	}
	return name
}

func (r *runner) grpo(stage string) error { return r.group(stage, r.cfg.GRPO, train.GRPO, &r.rep.GRPO) }
func (r *runner) rloo(stage string) error { return r.group(stage, r.cfg.RLOO, train.RLOO, &r.rep.RLOO) }

// groupTrainer is train.GRPO or train.RLOO.
type groupTrainer func(context.Context, gpu.Backend, tokenizer.Tokenizer, train.GroupConfig, train.RunOptions) (*train.GroupSummary, error)

// group runs GRPO or RLOO (train with c) unless it finished, and reads its
// summary into rep.
func (r *runner) group(stage string, c train.GroupConfig, fit groupTrainer, rep **train.GroupSummary) error {
	err := r.trainStage(c.Out, stage, func(o train.RunOptions) error {
		_, err := fit(r.ctx, r.b, r.tok, c, o)
		return err
	})
	if err != nil {
		return err
	}
	var sum train.GroupSummary
	if err := readSummary(c.Out, &sum); err != nil {
		return err
	}
	*rep = &sum
	return nil
}

func (r *runner) rs(stage string) error {
	c := r.cfg.RS
	err := r.trainStage(c.Out, stage, func(o train.RunOptions) error {
		_, err := train.RejectionSampling(r.ctx, r.b, r.tok, c, o)
		return err
	})
	if err != nil {
		return err
	}
	var sum train.RSSummary
	if found, err := readJSONIfExists(filepath.Join(c.Out, train.RSSummaryFile), &sum); err != nil || !found {
		return fmt.Errorf("rejection sampling: %s: %w (found %v)", train.RSSummaryFile, err, found)
	}
	r.rep.RS = &sum
	return nil
}
