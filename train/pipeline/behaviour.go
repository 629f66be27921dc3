package pipeline

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/tasks"
)

// BehaviourFile holds each model's train.Behaviour on the held-out
// prompts (fabrication and refusal rates, task score per prompt kind),
// written only when the data has the opt-in families or prompt kinds
// (tasks.SynthConfig.Families, PromptKinds).
const BehaviourFile = "behaviour.json"

// modelBehaviour is one model's line of BehaviourFile.
type modelBehaviour struct {
	Model string `json:"model"`
	train.Behaviour
}

// recordBehaviour measures the pretrained model, SFT and every method's
// policy and writes BehaviourFile into out, or removes a stale one when
// there is nothing to measure.
func recordBehaviour(out string, pre, sft train.TaskEval, cmps []namedComparison) error {
	models := []modelBehaviour{{"pretrained", train.MeasureBehaviour(pre)}, {"SFT", train.MeasureBehaviour(sft)}}
	for _, c := range cmps {
		models = append(models, modelBehaviour{methodLabel(c.name), train.MeasureBehaviour(c.cmp.A)})
	}
	path := filepath.Join(out, BehaviourFile)
	if !models[1].Measured() {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	return atomicfile.WriteJSON(path, models)
}

// writeBehaviourSection adds report.md's section "Honesty, harmlessness
// and prompt kinds" when dir has a BehaviourFile.
func writeBehaviourSection(w io.Writer, dir string) error {
	raw, err := os.ReadFile(filepath.Join(dir, BehaviourFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	var models []modelBehaviour
	if err := json.Unmarshal(raw, &models); err != nil || len(models) == 0 {
		return fmt.Errorf("report: %s: %v", BehaviourFile, err)
	}
	var sb strings.Builder
	f := func(format string, args ...any) { fmt.Fprintf(&sb, format, args...) }
	f("## Honesty, harmlessness and prompt kinds\n\n")
	f("On the held-out prompts of the opt-in families: fabrication is the share of %s prompts that lack\n", tasks.Honesty)
	f("what they ask for answered with a made-up answer (not %q), declined answerable the share of their\n", tasks.CannotTell)
	f("answerable twins declined; appropriate refusal is the share of %s requests with a forbidden marker\n", tasks.Harmlessness)
	f("declined (%q), over-cautious refusal the share of their look-alike twins declined. Then the task score\n", tasks.Refusal)
	f("on each prompt kind. Each value ± its standard error over the prompts (how many in brackets).\n\n")
	kinds := models[0].Kinds()
	header := train.BehaviourHeader(kinds)
	f("| %s |\n|%s\n", strings.Join(header, " | "), strings.Repeat(" --- |", len(header)))
	for _, m := range models {
		f("| %s |\n", strings.Join(m.Row(m.Model, kinds), " | "))
	}
	f("\n")
	_, err = io.WriteString(w, sb.String())
	return err
}
