package train

import (
	"fmt"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
)

// SkillEval is a model's few-shot score on tasks.SkillProbes, the skills
// it has from pretraining text alone: the share of probes whose answer
// the model finds likelier than every wrong choice (chance is
// 1/tasks.SkillChoices), overall with its standard error over the probes,
// and per skill.
type SkillEval struct {
	Score    Measure            `json:"score"`
	PerSkill map[string]float64 `json:"per_skill"`
}

// EvalSkills scores every probe's choices by their log-probability under
// m after the prompt (SequenceLogProbs) and the probes by those
// (tasks.SkillProbe.Score). A prompt too long for m's context loses its
// first tokens (its oldest solved lines), as generation truncates.
func EvalSkills(m *model.Model, tok tokenizer.Tokenizer, probes []tasks.SkillProbe) (SkillEval, error) {
	if len(probes) == 0 {
		return SkillEval{}, fmt.Errorf("skill evaluation: no probes")
	}
	cs := make([]data.ComparisonTokens, len(probes))
	for i, p := range probes {
		prompt := tok.Encode(p.Prompt)
		choices := make([][]int32, len(p.Choices))
		longest := 0
		for k, c := range p.Choices {
			choices[k] = tok.Encode(c + p.Stop)
			longest = max(longest, len(choices[k]))
		}
		if len(prompt) == 0 || longest == 0 || longest >= m.MaxSeq() {
			return SkillEval{}, fmt.Errorf("skill evaluation: probe %d: %d prompt tokens, choices of up to %d for a context of %d", i, len(prompt), longest, m.MaxSeq())
		}
		if over := len(prompt) + longest - m.MaxSeq(); over > 0 {
			prompt = prompt[over:]
		}
		cs[i] = data.ComparisonTokens{PromptLen: len(prompt), Source: i}
		for _, c := range choices {
			cs[i].Responses = append(cs[i].Responses, append(append([]int32(nil), prompt...), c...))
		}
	}
	logps, err := SequenceLogProbs(m, cs, tok.Pad(), m.MaxBatch(), m.MaxBatch()*m.MaxSeq())
	if err != nil {
		return SkillEval{}, fmt.Errorf("skill evaluation: %w", err)
	}
	return scoreSkills(probes, logps)
}

// scoreSkills scores probes[i] by the log-probs of its choices, logps[i].
func scoreSkills(probes []tasks.SkillProbe, logps [][]float64) (SkillEval, error) {
	scores := make([]float64, len(probes))
	sum, n := map[string]float64{}, map[string]int{}
	for i, p := range probes {
		var err error
		if scores[i], err = p.Score(logps[i]); err != nil {
			return SkillEval{}, fmt.Errorf("skill probe %d: %w", i, err)
		}
		sum[p.Skill] += scores[i]
		n[p.Skill]++
	}
	e := SkillEval{Score: measure(scores), PerSkill: map[string]float64{}}
	for s, v := range sum {
		e.PerSkill[s] = v / float64(n[s])
	}
	return e, nil
}
