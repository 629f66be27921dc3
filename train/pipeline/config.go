package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/tasks"
)

// Config is the whole InstructGPT recipe on the built-in tasks:
// synthetic data, pretraining, SFT, the reward model, PPO-ptx and the
// evaluation, each stage in a sub-directory of Out.
type Config struct {
	Out      string               `json:"out"`
	Model    string               `json:"model"` // named config of the pretrained model
	Synth    tasks.SynthConfig    `json:"synth"`
	Pretrain train.PretrainConfig `json:"pretrain"`
	SFT      train.SFTConfig      `json:"sft"`
	RM       train.RMConfig       `json:"rm"`
	PPO      train.PPOConfig      `json:"ppo"`
	DPO      train.DPOConfig      `json:"dpo"`
	GRPO     train.GroupConfig    `json:"grpo"`
	RLOO     train.GroupConfig    `json:"rloo"`
	RS       train.RSConfig       `json:"rs"`
	// Methods are the ways of training a policy from the SFT model that
	// the pipeline runs, each in its own stage, and compares in the
	// report (MethodNames lists them); the paper's is "ppo" (PPO-ptx).
	Methods []string `json:"methods"`
	// Rounds > 1 iterates labelling, the reward model and PPO (see
	// rounds.go); it needs the "ppo" method and SFTSampleLabels > 0.
	Rounds int `json:"rounds"`
	MaxNew int `json:"eval_max_new"`
	// BestOfN is the samples per held-out prompt for the reward model's
	// best-of-n check on the SFT policy (see train.BestOfN); below 2: skipped.
	BestOfN int `json:"eval_best_of_n"`
	// SFTSampleLabels is how many of rm.jsonl's prompts get 4 to 9 samples
	// of the SFT policy, ranked by the simulated labeler (the way the
	// paper collected its comparisons); the reward model then trains on
	// these rankings together with rm.jsonl's, from label/rm_all.jsonl.
	// 0: rm.jsonl alone.
	SFTSampleLabels int `json:"sft_sample_labels"`
	// SFTDropout and RMDropout are the residual dropout of the SFT model
	// and of the reward model, whose other sizes come from the checkpoint
	// each starts from.
	SFTDropout float32 `json:"sft_dropout"`
	RMDropout  float32 `json:"rm_dropout"`
}

// maxRounds bounds Config.Rounds.
const maxRounds = 10

// ConfigFile is the resolved configuration of a pipeline run, at
// the top of its directory.
const ConfigFile = "pipeline_config.json"

// Stage directories of a pipeline run.
const (
	StageData     = "data"
	StagePretrain = "pretrain"
	StageSFT      = "sft"
	StageRM       = "rm"
	StagePPO      = "ppo"
	StageDPO      = "dpo"
	StageGRPO     = "grpo"
	StageRLOO     = "rloo"
	StageRS       = "rs"
	// StageLabel holds the rankings of SFT samples: rm_sft.jsonl, and
	// rm_all.jsonl, rm.jsonl's records followed by them.
	StageLabel = "label"
)

// Default sizes every stage so the whole run takes minutes on two CPU
// cores with the tiny model. Where it departs from the paper (longer
// pretraining and SFT, SFT dropout 0.1, β 0.1, rankings of SFT samples
// beside the synthetic ones), the tiny model underfits where the paper's
// overfit, or the learned reward model cannot support more; the runs
// behind each choice are in docs/EXPERIMENTS.md.
func Default(out string) Config {
	c := Config{Out: out, Model: "tiny", Synth: tasks.DefaultSynthConfig(), MaxNew: 32, BestOfN: 8, SFTSampleLabels: 2500,
		SFTDropout: 0.1, RMDropout: 0}
	d := func(stage string) string { return filepath.Join(out, stage) }
	data := d(StageData)
	c.Pretrain = train.PretrainConfig{
		Data: []string{filepath.Join(data, "pretrain.txt")}, Out: d(StagePretrain),
		Steps: 600, Batch: 16, Seq: 128, Accum: 1, Optim: train.DefaultOptim(), Seed: 1,
		ValFrac: 0.1, EvalEvery: 100, EvalBatches: 8, LogEvery: 50, SaveEvery: 100,
	}
	c.SFT = train.DefaultSFT()
	c.SFT.Data, c.SFT.Init, c.SFT.Out = filepath.Join(data, "sft.jsonl"), d(StagePretrain), d(StageSFT)
	c.SFT.Epochs, c.SFT.LogEvery, c.SFT.EvalEvery, c.SFT.SaveEvery = 32, 40, 120, 240
	c.RM = train.DefaultRM()
	c.RM.Data, c.RM.Init, c.RM.Out = filepath.Join(data, "rm.jsonl"), d(StageSFT), d(StageRM)
	c.RM.CenterData = filepath.Join(data, "sft.jsonl")
	c.PPO = train.DefaultPPO()
	// β 0.1, not the paper's 0.02: the learned reward model ranks the SFT
	// policy's own samples little better than chance, so KL bought with
	// it is mostly noise (docs/EXPERIMENTS.md).
	c.PPO.KLCoef = 0.1
	c.PPO.Prompts, c.PPO.Ptx = filepath.Join(data, "ppo.jsonl"), []string{filepath.Join(data, "pretrain.txt")}
	c.PPO.Policy, c.PPO.Reward, c.PPO.Out = d(StageSFT), d(StageRM), d(StagePPO)
	// DPO learns from the comparisons the reward model saw, split as the
	// reward model splits them, so that its implicit reward and the reward
	// model are measured on the same held-out rankings.
	c.DPO = train.DefaultDPO()
	c.DPO.Data, c.DPO.Init, c.DPO.Out = c.RM.Data, d(StageSFT), d(StageDPO)
	c.DPO.ValFrac, c.DPO.Seed = c.RM.ValFrac, c.RM.Seed
	// GRPO, RLOO and rejection sampling use the same prompts, SFT policy
	// and reward model as PPO and sample as many responses: 40 iterations
	// of 32 prompts × 8 (GRPO) or 64 × 4 (RLOO), 1280 prompts × 8 (rs),
	// against PPO's 40 × 256. GRPO's β is 0.4, not its 0.04 default: with
	// the learned reward model it over-optimised at 0.04
	// (docs/EXPERIMENTS.md).
	c.GRPO = train.DefaultGRPO()
	c.GRPO.KLCoef = 0.4
	c.RLOO = train.DefaultRLOO()
	for _, g := range []*train.GroupConfig{&c.GRPO, &c.RLOO} {
		g.Prompts, g.Policy, g.Reward = c.PPO.Prompts, d(StageSFT), d(StageRM)
	}
	c.GRPO.Out, c.RLOO.Out = d(StageGRPO), d(StageRLOO)
	c.RS = train.DefaultRS()
	c.RS.Prompts, c.RS.Policy, c.RS.Reward, c.RS.Out = c.PPO.Prompts, d(StageSFT), d(StageRM), d(StageRS)
	c.RS.MaxPrompts = 1280
	c.Methods, c.Rounds = []string{"ppo"}, 1
	return c
}

// Validate checks every stage's configuration before any stage runs, so
// that a mistake in the last stage's settings fails at once rather than
// after the stages before it (and is not recorded in the run directory).
// The models SFT and the reward model start from are the pretrained one,
// of the named config.
func (c Config) Validate() error {
	mc, err := model.ConfigByName(c.Model)
	if err != nil {
		return err
	}
	switch {
	case c.MaxNew <= 0:
		return fmt.Errorf("eval_max_new %d must be positive", c.MaxNew)
	case c.BestOfN < 0 || c.SFTSampleLabels < 0:
		return fmt.Errorf("eval_best_of_n %d and sft_sample_labels %d must not be negative", c.BestOfN, c.SFTSampleLabels)
	case !(c.SFTDropout >= 0 && c.SFTDropout < 1) || !(c.RMDropout >= 0 && c.RMDropout < 1):
		return fmt.Errorf("sft_dropout %g and rm_dropout %g must be in [0, 1)", c.SFTDropout, c.RMDropout)
	}
	if err := c.Synth.Validate(); err != nil {
		return fmt.Errorf("synth: %w", err)
	}
	pre := c.Pretrain
	pre.Model = mc
	if err := pre.Validate(); err != nil {
		return fmt.Errorf("pretrain: %w", err)
	}
	sft := c.SFT
	sft.Model, sft.Model.Dropout = mc, c.SFTDropout
	if err := sft.Validate(); err != nil {
		return fmt.Errorf("sft: %w", err)
	}
	rm := c.RM
	rm.Model, rm.Model.Dropout, rm.Model.ScalarHead = mc, c.RMDropout, true
	if err := rm.Validate(); err != nil {
		return fmt.Errorf("rm: %w", err)
	}
	if err := validMethods(c.Methods); err != nil {
		return err
	}
	switch {
	case c.Rounds < 1 || c.Rounds > maxRounds:
		return fmt.Errorf("rounds %d: want 1..%d", c.Rounds, maxRounds)
	case c.Rounds > 1 && (!slices.Contains(c.Methods, "ppo") || c.SFTSampleLabels <= 0):
		return fmt.Errorf("rounds %d: iterated rounds continue PPO on rankings of its samples; they need the ppo method and sft_sample_labels > 0", c.Rounds)
	}
	ppo := c.PPO
	if err := ppo.Validate(); err != nil {
		return fmt.Errorf("ppo: %w", err)
	}
	dpo := c.DPO
	dpo.Model = mc
	if err := dpo.Validate(); err != nil {
		return fmt.Errorf("dpo: %w", err)
	}
	for _, g := range []train.GroupConfig{c.GRPO, c.RLOO} {
		if err := g.Validate(); err != nil {
			return fmt.Errorf("%s: %w", g.Method, err)
		}
	}
	rs := c.RS
	if err := rs.Validate(); err != nil {
		return fmt.Errorf("rs: %w", err)
	}
	return nil
}

// LoadConfig reads a pipeline configuration for a run in out from
// the JSON file path (see ParseConfig).
func LoadConfig(path, out string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, err
	}
	cfg, err := ParseConfig(raw, out)
	if err != nil {
		return Config{}, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig decodes a JSON pipeline configuration for a run in
// out: Default(out) with the fields the JSON sets replaced, so it
// may set a few ({"ppo": {"iterations": 120}}) or be an earlier run's
// pipeline_config.json, whose paths inside its own run directory are moved
// to out. A field the configuration lacks is an error, so a misspelt one
// is not silently ignored.
func ParseConfig(raw []byte, out string) (Config, error) {
	var head struct {
		Out string `json:"out"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return Config{}, err
	}
	raw = rebasePaths(raw, head.Out, out)
	cfg := Default(out)
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, err
	}
	cfg.Out = out
	return cfg, nil
}

// checkSameConfig returns an error naming the first difference when path
// holds the configuration of an earlier run that differs from cfg: the
// stages that run finished would otherwise be reused as they are, their
// numbers reported as if cfg had made them. Paths inside the earlier
// run's directory count as equal when the directory was moved. A missing
// file is no error. The number of rounds and the list of methods may
// differ: a method only one of
// the two runs names has its own stage, so adding one to a finished run
// runs just that stage (and the evaluation); the settings of a method both
// name must be the same.
func checkSameConfig(path string, cfg Config) error {
	var prev Config
	if found, err := readJSONIfExists(path, &prev); !found || err != nil {
		return err
	}
	before, err := json.Marshal(prev)
	if err != nil {
		return err
	}
	before = rebasePaths(before, prev.Out, cfg.Out)
	now, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	var a, b map[string]any
	if err := json.Unmarshal(before, &a); err != nil {
		return err
	}
	if err := json.Unmarshal(now, &b); err != nil {
		return err
	}
	// An earlier version's configuration may lack the method sections
	// and the list (PPO was then the only method).
	prevMethods := prev.Methods
	if _, ok := a["methods"]; !ok {
		prevMethods = []string{"ppo"}
	}
	// A method's section counts when a method that uses it is in both.
	inBoth := map[string]bool{}
	for _, m := range MethodNames() {
		inBoth[configKey(m)] = inBoth[configKey(m)] || slices.Contains(prevMethods, m) && slices.Contains(cfg.Methods, m)
	}
	for key, both := range inBoth {
		if !both {
			delete(a, key)
			delete(b, key)
		}
	}
	// More rounds run only the new rounds' stages; fewer evaluate fewer.
	for _, k := range []string{"methods", "rounds"} {
		delete(a, k)
		delete(b, k)
	}
	if reflect.DeepEqual(a, b) {
		return nil
	}
	return fmt.Errorf("%s was started with another configuration (%s); run it again as it was started, or use another --out",
		filepath.Dir(path), firstDifference("", a, b))
}

// rebasePaths rewrites, in JSON text, every string that is the path from
// or starts with from + "/" to start with to instead.
func rebasePaths(js []byte, from, to string) []byte {
	if from == to || from == "" {
		return js
	}
	quote := func(s string) []byte {
		q, _ := json.Marshal(s)
		return q[:len(q)-1] // open: the quoted string without its closing quote
	}
	js = bytes.ReplaceAll(js, append(quote(from), '"'), append(quote(to), '"'))
	return bytes.ReplaceAll(js, quote(from+string(filepath.Separator)), quote(to+string(filepath.Separator)))
}

// firstDifference describes where two decoded JSON values first differ,
// walking objects in key order: "synth.Seed: 1 before, 2 now".
func firstDifference(at string, a, b any) string {
	ma, okA := a.(map[string]any)
	mb, okB := b.(map[string]any)
	if okA && okB {
		union := maps.Clone(ma)
		maps.Copy(union, mb)
		keys := slices.Sorted(maps.Keys(union))
		for _, k := range keys {
			path := k
			if at != "" {
				path = at + "." + k
			}
			if !reflect.DeepEqual(ma[k], mb[k]) {
				return firstDifference(path, ma[k], mb[k])
			}
		}
	}
	show := func(v any) string {
		if v == nil {
			return "absent"
		}
		j, _ := json.Marshal(v)
		return string(j)
	}
	return fmt.Sprintf("%s: %s before, %s now", at, show(a), show(b))
}
