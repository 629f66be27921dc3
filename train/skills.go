package train

import (
	"fmt"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/tasks"
)

// SkillEval is a model's few-shot score on tasks.SkillProbes, the skills
// it has from pretraining text alone: the share answered exactly, overall
// (with its standard error over the probes) and per skill.
type SkillEval struct {
	Score    Measure            `json:"score"`
	PerSkill map[string]float64 `json:"per_skill"`
}

// skillMaxNew bounds a probe's response: the longest answer (a spelled
// word of up to 12 letters) and its stop.
const skillMaxNew = 24

// EvalSkills continues every probe greedily with m and scores the
// responses (tasks.SkillProbe.Score).
func EvalSkills(m *model.Model, tok tokenizer.Tokenizer, probes []tasks.SkillProbe) (SkillEval, error) {
	if len(probes) == 0 {
		return SkillEval{}, fmt.Errorf("skill evaluation: no probes")
	}
	texts := make([]string, len(probes))
	for i, p := range probes {
		texts[i] = p.Prompt
	}
	responses, _, err := GenerateText(m, tok, texts, EvalOptions{MaxNew: skillMaxNew})
	if err != nil {
		return SkillEval{}, fmt.Errorf("skill evaluation: %w", err)
	}
	return scoreSkills(probes, responses), nil
}

// scoreSkills scores responses[i] as the answer to probes[i].
func scoreSkills(probes []tasks.SkillProbe, responses []string) SkillEval {
	scores := make([]float64, len(probes))
	sum, n := map[string]float64{}, map[string]int{}
	for i, p := range probes {
		scores[i] = p.Score(responses[i])
		sum[p.Skill] += scores[i]
		n[p.Skill]++
	}
	e := SkillEval{Score: measure(scores), PerSkill: map[string]float64{}}
	for s, v := range sum {
		e.PerSkill[s] = v / float64(n[s])
	}
	return e
}
