package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
)

// benchReport holds the fields of an `instructgo bench --json` report
// (bench.Report, whose JSON names bench/report.go states) that the goals
// read. The runner does not import package bench: that would bring the
// trainer and the GPT-2 vocabulary into its binary, 7 MB of the
// compressed bundle. The tests build their fixtures from bench.Report, so
// a renamed field fails them.
type benchReport struct {
	Results []benchResult `json:"results"`
}

type benchResult struct {
	Group       string  `json:"group"`
	Name        string  `json:"name"`
	Unit        string  `json:"unit"`
	Value       float64 `json:"value"`
	OfMeasured  float64 `json:"of_measured_ceiling"`
	OfPublished float64 `json:"of_published_peak"`
	Time        struct {
		Median float64 `json:"median_s"`
	} `json:"time"`
}

// key is benchResult.Key: group/name.
func (r benchResult) key() string { return r.Group + "/" + r.Name }

// Goal is one of issue 16's figures: instructgo's, from its bench report,
// and its ratio to each baseline measured on the same machine.
type Goal struct {
	Name string `json:"name"`
	// Run and Key name instructgo's figure: the bench run
	// (Report.InstructgoBench) and the result's group/name.
	Run   string  `json:"run"`
	Key   string  `json:"key"`
	Unit  string  `json:"unit,omitempty"`
	Value float64 `json:"value,omitempty"`
	// Seconds is the median time per call (per step, per iteration).
	Seconds float64 `json:"seconds,omitempty"`
	// OfPublished is the FLOP rate over the card's published dense peak
	// (for a step: the MFU); OfMeasured over the GEMM rate measured by the
	// same bench run.
	OfPublished float64          `json:"of_published_peak,omitempty"`
	OfMeasured  float64          `json:"of_measured_ceiling,omitempty"`
	Missing     string           `json:"missing,omitempty"` // why there is no figure
	Baselines   []BaselineFigure `json:"baselines"`
}

// BaselineFigure is a baseline's figure in the goal's unit.
type BaselineFigure struct {
	Name  string  `json:"name"`
	Run   string  `json:"run"` // Report.Baselines' key
	Value float64 `json:"value,omitempty"`
	// Ratio is instructgo's value over the baseline's: above 1,
	// instructgo is faster.
	Ratio   float64 `json:"ratio,omitempty"`
	Missing string  `json:"missing,omitempty"`
}

type goalSpec struct {
	name, run, key string
	// gemm: the figure depends on the GEMM path, so a fallback GEMM
	// (without -allow-fallback-gemm) refuses it.
	gemm      bool
	baselines []baselineSpec
}

type baselineSpec struct {
	name, run string
	// value reads the baseline's figure in the unit of instructgo's
	// result ours.
	value func(raw json.RawMessage, ours benchResult) (float64, error)
}

// goalSpecs are the goals' figures, in the report's order.
var goalSpecs = []goalSpec{
	{name: "GEMM bf16 8192³ (compute ceiling)", run: "sft", key: "matmul/square 8192", gemm: true,
		baselines: []baselineSpec{{"PyTorch bf16 matmul (cuBLAS)", "pytorch_ops", opTime("matmul/square 8192")}}},
	{name: "SFT step, GPT-2 124M, B16×T1024, bf16", run: "sft", key: "step/gpt2 sft", gemm: true,
		baselines: []baselineSpec{
			{"PyTorch eager, bf16 autocast, SDPA", "pytorch_eager", field("tokens_per_s")},
			{"PyTorch torch.compile, bf16 autocast, SDPA", "pytorch_compile", field("tokens_per_s")},
		}},
	attentionGoal(64, "fwd"), attentionGoal(64, "bwd"), attentionGoal(128, "fwd"), attentionGoal(128, "bwd"),
	{name: "cross-entropy 8192×50257, fwd + bwd, bf16 logits", run: "sft", key: "crossentropy/V50257 N8192",
		baselines: []baselineSpec{{"PyTorch F.cross_entropy, bf16", "pytorch_ops", opTime("crossentropy/V50257 N8192")}}},
	{name: "decode: PPO generation, GPT-2, 64 + 64 tokens (instructgo: the 128 episodes in one batch; Hugging Face generate: 64 sequences)", run: "ppo", key: "ppo/gpt2 generate", gemm: true,
		baselines: []baselineSpec{{"Hugging Face generate, bf16 autocast", "trl_ppo", nested("generate", "tokens_per_s")}}},
	{name: "PPO iteration, GPT-2, minibatch 64, 64 + 64 tokens", run: "ppo", key: "ppo/gpt2 iteration", gemm: true,
		baselines: []baselineSpec{{"TRL PPOTrainer (256 episodes; instructgo 128)", "trl_ppo", field("episodes_per_s")}}},
}

func attentionGoal(hs int, pass string) goalSpec {
	key := fmt.Sprintf("attention/hs%d T2048 %s", hs, pass)
	return goalSpec{name: fmt.Sprintf("causal attention hs%d T2048 %s, bf16", hs, pass), run: "sft", key: key,
		baselines: []baselineSpec{{"PyTorch SDPA (flash)", "pytorch_ops", opTime(key)}}}
}

// field reads a top-level rate in instructgo's unit.
func field(name string) func(json.RawMessage, benchResult) (float64, error) {
	return nested(name)
}

// nested reads a rate in instructgo's unit at the path of object keys.
func nested(path ...string) func(json.RawMessage, benchResult) (float64, error) {
	return func(raw json.RawMessage, _ benchResult) (float64, error) {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return 0, err
		}
		for _, k := range path {
			m, ok := v.(map[string]any)
			if !ok {
				return 0, fmt.Errorf("no %s", strings.Join(path, "."))
			}
			v = m[k]
		}
		x, ok := v.(float64)
		if !ok || x <= 0 {
			return 0, fmt.Errorf("no positive %s", strings.Join(path, "."))
		}
		return x, nil
	}
}

// opTime reads the median seconds of the ops.py case key, the same work
// as instructgo's, and returns the rate that time gives in instructgo's
// unit.
func opTime(key string) func(json.RawMessage, benchResult) (float64, error) {
	return func(raw json.RawMessage, ours benchResult) (float64, error) {
		var ops struct {
			Cases []struct {
				Key     string  `json:"key"`
				Seconds float64 `json:"seconds"`
			} `json:"cases"`
		}
		if err := json.Unmarshal(raw, &ops); err != nil {
			return 0, err
		}
		for _, c := range ops.Cases {
			if c.Key == key && c.Seconds > 0 {
				return ours.Value * ours.Time.Median / c.Seconds, nil
			}
		}
		return 0, fmt.Errorf("no case %s", key)
	}
}

// computeGoals fills the goals from what the report holds so far.
func computeGoals(rep *Report) []Goal {
	refusedGEMM := rep.Libraries.FallbackGEMM && !rep.Libraries.FallbackAllowed
	goals := make([]Goal, 0, len(goalSpecs))
	for _, spec := range goalSpecs {
		g := Goal{Name: spec.name, Run: spec.run, Key: spec.key, Baselines: []BaselineFigure{}}
		ours, err := findResult(rep.InstructgoBench[spec.run], spec.key)
		switch {
		case spec.gemm && refusedGEMM:
			g.Missing = refused + "measured with the fallback GEMM (" + rep.Libraries.Loaded + ")"
		case err != nil:
			g.Missing = err.Error()
		default:
			g.Unit, g.Value, g.Seconds = ours.Unit, ours.Value, ours.Time.Median
			g.OfPublished, g.OfMeasured = ours.OfPublished, ours.OfMeasured
		}
		for _, b := range spec.baselines {
			f := BaselineFigure{Name: b.name, Run: b.run}
			raw := rep.Baselines[b.run]
			switch {
			case raw == nil:
				f.Missing = "not measured"
			case g.Missing != "":
				f.Missing = "no instructgo figure to compare"
			default:
				if v, err := b.value(raw, ours); err != nil {
					f.Missing = err.Error()
				} else {
					f.Value, f.Ratio = v, g.Value/v
				}
			}
			g.Baselines = append(g.Baselines, f)
		}
		goals = append(goals, g)
	}
	return goals
}

// findResult finds the result key in an instructgo bench report.
func findResult(raw json.RawMessage, key string) (benchResult, error) {
	if raw == nil {
		return benchResult{}, errors.New("not measured")
	}
	var rep benchReport
	if err := json.Unmarshal(raw, &rep); err != nil {
		return benchResult{}, fmt.Errorf("bench report: %w", err)
	}
	for _, r := range rep.Results {
		if r.key() == key && r.Value > 0 {
			return r, nil
		}
	}
	return benchResult{}, fmt.Errorf("no %s in the bench report", key)
}

// goalTable prints the goals as a table: instructgo's figure, its share of
// the published peak, and each baseline with the ratio.
func goalTable(rep *Report) string {
	var sb strings.Builder
	gpu := "no GPU seen"
	if len(rep.GPU) > 0 {
		gpu = fmt.Sprintf("%v, driver %v", rep.GPU[0]["name"], rep.GPU[0]["driver_version"])
	}
	fmt.Fprintf(&sb, "instructgo on %s; GEMM: %s\n", gpu, rep.Libraries.Loaded)
	tw := tabwriter.NewWriter(&sb, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "goal\tinstructgo\tof peak\tbaseline\tbaseline figure\tinstructgo/baseline")
	for _, g := range computeGoals(rep) {
		ours, peak := g.Missing, ""
		if strings.HasPrefix(ours, refused) {
			ours = refused + "fallback GEMM"
		}
		if g.Missing == "" {
			ours = fmt.Sprintf("%.4g %s", g.Value, g.Unit)
			if g.OfPublished > 0 {
				peak = fmt.Sprintf("%.1f%%", 100*g.OfPublished)
			}
		}
		if len(g.Baselines) == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t\t\t\n", g.Name, ours, peak)
		}
		for i, b := range g.Baselines {
			fig, ratio := b.Missing, ""
			if b.Missing == "" {
				fig, ratio = fmt.Sprintf("%.4g %s", b.Value, g.Unit), fmt.Sprintf("%.2fx", b.Ratio)
			}
			if i > 0 {
				fmt.Fprintf(tw, "\t\t\t%s\t%s\t%s\n", b.Name, fig, ratio)
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", g.Name, ours, peak, b.Name, fig, ratio)
		}
	}
	tw.Flush()
	return sb.String()
}
