package pipeline

import (
	"fmt"
	"slices"
	"strings"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
)

// method is one way of training a policy from the SFT model. The pipeline
// runs those Config.Methods names after the reward model, each in its own
// stage directory, evaluates every resulting policy the same way (task
// score, the labeler's win rate over SFT, KL to SFT on the policy's own
// samples, held-out pretraining loss) and compares them in the report.
type method struct {
	name  string                  // as in Config.Methods
	label string                  // in the report's tables
	dir   func(c Config) string   // its run directory, which holds the policy
	run   func(r *runner) error   // trains unless finished; reads its summary into the report
	cost  func(r *Report) float64 // its training wall time in seconds
}

// allMethods are the methods in the order the pipeline runs them.
var allMethods = []method{
	{"ppo", "PPO-ptx", func(c Config) string { return c.PPO.Out }, (*runner).ppo, func(r *Report) float64 { return r.PPO.Seconds }},
	{"dpo", "DPO", func(c Config) string { return c.DPO.Out }, (*runner).dpo, func(r *Report) float64 { return r.DPO.Seconds }},
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

// comparisonData is the rankings file the reward model trains on: rm.jsonl,
// followed by the rankings of SFT samples when the label stage ran.
func (r *runner) comparisonData() string {
	if r.cfg.SFTSampleLabels > 0 {
		return labelledRankings(r.cfg)
	}
	return r.cfg.RM.Data
}

func (r *runner) dpo() error {
	c := r.cfg.DPO
	c.Data = r.comparisonData()
	if o, run := r.pending(c.Out, "dpo"); run {
		var err error
		if c.Model, err = model.ReadConfig(c.Init); err != nil {
			return err
		}
		if _, err := train.DPO(r.ctx, r.b, r.tok, c, o); err != nil {
			return err
		}
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
