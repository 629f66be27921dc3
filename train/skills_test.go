package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
)

// TestScoreSkills gives the answer the highest log-prob on a random
// subset of random probes and another choice elsewhere, and compares the
// score, its standard error and the per-skill shares with a reference
// computed from the known picks.
func TestScoreSkills(t *testing.T) {
	probes, err := tasks.SkillProbes(15, 2, 11)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 5))
	logps := make([][]float64, len(probes))
	right := make([]float64, len(probes))
	perSkill, n := map[string]float64{}, map[string]float64{}
	for i, p := range probes {
		logps[i] = make([]float64, len(p.Choices))
		for k := range logps[i] {
			logps[i][k] = -30 * rng.Float64()
		}
		best := (p.Answer + 1) % len(p.Choices)
		if rng.IntN(3) > 0 {
			best, right[i] = p.Answer, 1
		}
		logps[i][best] = 0
		perSkill[p.Skill] += right[i]
		n[p.Skill]++
	}
	mean, ss := 0.0, 0.0
	for _, r := range right {
		mean += r / float64(len(right))
	}
	for _, r := range right {
		ss += (r - mean) * (r - mean)
	}
	se := math.Sqrt(ss / float64(len(right)-1) / float64(len(right)))
	got, err := scoreSkills(probes, logps)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(got.Score.Value-mean) > 1e-12 || math.Abs(got.Score.StdErr-se) > 1e-12 || got.Score.N != len(probes) {
		t.Errorf("score %+v, want %.6f ± %.6f over %d", got.Score, mean, se, len(probes))
	}
	for s, v := range perSkill {
		if math.Abs(got.PerSkill[s]-v/n[s]) > 1e-12 {
			t.Errorf("skill %q: %v, want %v", s, got.PerSkill[s], v/n[s])
		}
	}
	if len(got.PerSkill) != len(tasks.SkillNames()) {
		t.Errorf("%d skills scored, want %d", len(got.PerSkill), len(tasks.SkillNames()))
	}
	logps[3] = logps[3][:2]
	if _, err := scoreSkills(probes, logps); err == nil {
		t.Error("a probe with too few log-probs accepted")
	}
}

// TestEvalSkillsRuns evaluates a small random model whose 32-token
// context truncates the prompts, and checks every probe's pick against
// the choices' log-probs computed one probe at a time from the same
// truncated prompt and the choice's tokens.
func TestEvalSkillsRuns(t *testing.T) {
	_, policyDir, _ := writePPOFixture(t)
	m, err := model.Load(cpu.New(1), policyDir, model.Options{MaxBatch: 8, MaxSeq: 32})
	if err != nil {
		t.Fatal(err)
	}
	tok, _ := tokenizer.New("byte")
	probes, err := tasks.SkillProbes(2, 1, 3)
	if err != nil {
		t.Fatal(err)
	}
	got, err := EvalSkills(m, tok, probes)
	if err != nil {
		t.Fatal(err)
	}
	right := 0.0
	for _, p := range probes {
		text := []byte(p.Prompt)
		cs := data.ComparisonTokens{}
		for _, c := range p.Choices {
			// The prompt's last bytes that leave room for the longest choice.
			prompt := len(text) - max(0, len(text)+maxChoiceLen(p)-m.MaxSeq())
			ids := make([]int32, 0, prompt+len(c)+len(p.Stop))
			for _, b := range text[len(text)-prompt:] {
				ids = append(ids, int32(b))
			}
			for _, b := range []byte(c + p.Stop) {
				ids = append(ids, int32(b))
			}
			cs.Responses, cs.PromptLen = append(cs.Responses, ids), prompt
		}
		logps, err := SequenceLogProbs(m, []data.ComparisonTokens{cs}, tok.Pad(), 8, 8*32)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := p.Score(logps[0])
		right += s
	}
	if want := right / float64(len(probes)); math.Abs(got.Score.Value-want) > 1e-12 || got.Score.N != len(probes) {
		t.Errorf("EvalSkills %+v, one probe at a time %v", got.Score, want)
	}
	if _, err := EvalSkills(m, tok, nil); err == nil {
		t.Error("no probes accepted")
	}
}

// maxChoiceLen is the bytes of p's longest choice with its stop.
func maxChoiceLen(p tasks.SkillProbe) int {
	n := 0
	for _, c := range p.Choices {
		n = max(n, len(c+p.Stop))
	}
	return n
}
