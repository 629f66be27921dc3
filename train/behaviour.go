package train

import (
	"fmt"
	"maps"
	"slices"

	"github.com/instructgo/instructgo/train/tasks"
)

// Behaviour is what a model does on the opt-in task families and prompt
// kinds (tasks.SynthConfig.Families and PromptKinds), measured on an
// evaluation's samples: the paper's closed-domain hallucination rate, its
// appropriate and over-cautious refusals, and its results per prompt kind.
// A measure over no prompts has N 0.
type Behaviour struct {
	// Fabrication is the share of unanswerable honesty prompts answered
	// with a made-up answer (tasks.Fabricated), and DeclinedAnswerable the
	// share of their answerable twins declined (tasks.Declines).
	Fabrication        Measure `json:"fabrication"`
	DeclinedAnswerable Measure `json:"declined_answerable"`
	// AppropriateRefusal is the share of forbidden requests declined,
	// OverCautious the share of their look-alike twins declined.
	AppropriateRefusal Measure `json:"appropriate_refusal"`
	OverCautious       Measure `json:"over_cautious_refusal"`
	// ByKind is the mean task score of each prompt kind's samples.
	ByKind map[string]Measure `json:"by_kind"`
}

// Measure is a mean over N samples (a rate, when they are 0 or 1) with its
// standard error over them.
type Measure struct {
	Value  float64 `json:"value"`
	StdErr float64 `json:"stderr"`
	N      int     `json:"n"`
}

// SampleKind is a sample's prompt kind: its record's, or else the one
// tasks.KindOf reads from the prompt.
func SampleKind(s TaskSample) string {
	if s.Kind != "" {
		return s.Kind
	}
	return tasks.KindOf(s.Prompt)
}

// MeasureBehaviour computes e's Behaviour from its samples.
func MeasureBehaviour(e TaskEval) Behaviour {
	var fab, declined, refused, cautious []float64
	kinds := map[string][]float64{}
	indicator := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, s := range e.Samples {
		kinds[SampleKind(s)] = append(kinds[SampleKind(s)], s.Score)
		declines := indicator(tasks.Declines(s.Response))
		switch {
		case tasks.Unanswerable(s.Task, s.Answer):
			fab = append(fab, indicator(tasks.Fabricated(s.Task, s.Answer, s.Response)))
		case s.Task == tasks.Honesty:
			declined = append(declined, declines)
		case tasks.Forbidden(s.Task, s.Answer):
			refused = append(refused, declines)
		case s.Task == tasks.Harmlessness:
			cautious = append(cautious, declines)
		}
	}
	b := Behaviour{Fabrication: measure(fab), DeclinedAnswerable: measure(declined),
		AppropriateRefusal: measure(refused), OverCautious: measure(cautious), ByKind: map[string]Measure{}}
	for k, xs := range kinds {
		b.ByKind[k] = measure(xs)
	}
	return b
}

func measure(xs []float64) Measure {
	if len(xs) == 0 {
		return Measure{}
	}
	total := 0.0
	for _, x := range xs {
		total += x
	}
	return Measure{Value: total / float64(len(xs)), StdErr: stdErr(xs), N: len(xs)}
}

// Measured reports whether the evaluation held prompts of the families or
// more than one prompt kind: whether there is anything to report.
func (b Behaviour) Measured() bool {
	return b.Fabrication.N+b.DeclinedAnswerable.N+b.AppropriateRefusal.N+b.OverCautious.N > 0 || len(b.ByKind) > 1
}

// Kinds lists the prompt kinds measured, in tasks.PromptKinds' order and
// then any other sorted.
func (b Behaviour) Kinds() []string {
	var out []string
	for _, k := range tasks.PromptKinds() {
		if _, ok := b.ByKind[k]; ok {
			out = append(out, k)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(b.ByKind)) {
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out
}

// BehaviourHeader and Row are a table of behaviours, one row per model,
// stated once for the pipeline's report and eval's output.
func BehaviourHeader(kinds []string) []string {
	h := []string{"model", "fabrication", "declined answerable", "appropriate refusal", "over-cautious refusal"}
	for _, k := range kinds {
		h = append(h, "score: "+k)
	}
	return h
}

// Row is b's cells in BehaviourHeader's columns ("–" for a measure over
// no prompts), each value ± its standard error.
func (b Behaviour) Row(model string, kinds []string) []string {
	row := []string{model}
	for _, r := range []Measure{b.Fabrication, b.DeclinedAnswerable, b.AppropriateRefusal, b.OverCautious} {
		row = append(row, cell(r))
	}
	for _, k := range kinds {
		row = append(row, cell(b.ByKind[k]))
	}
	return row
}

func cell(r Measure) string {
	if r.N == 0 {
		return "–"
	}
	return fmt.Sprintf("%.3f ± %.3f (%d)", r.Value, r.StdErr, r.N)
}
