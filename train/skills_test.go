package train

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/tasks"
)

// TestScoreSkills answers a random subset of random probes rightly and
// the rest wrongly, and compares the score, its standard error and the
// per-skill shares with a reference computed from the known answers.
func TestScoreSkills(t *testing.T) {
	probes, err := tasks.SkillProbes(15, 2, 11)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(4, 5))
	responses := make([]string, len(probes))
	right := make([]float64, len(probes))
	perSkill, n := map[string]float64{}, map[string]float64{}
	for i, p := range probes {
		if rng.IntN(3) > 0 {
			responses[i], right[i] = p.Answer+p.Stop+"more", 1
		} else {
			responses[i] = "?" + p.Answer
		}
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
	got := scoreSkills(probes, responses)
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
}

// TestEvalSkillsRuns evaluates a small random model: its score is its
// own greedy responses' score, and no probes is an error.
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
	texts := make([]string, len(probes))
	for i, p := range probes {
		texts[i] = p.Prompt
	}
	responses, _, err := GenerateText(m, tok, texts, EvalOptions{MaxNew: skillMaxNew})
	if err != nil {
		t.Fatal(err)
	}
	if want := scoreSkills(probes, responses); got.Score != want.Score || got.Score.N != len(probes) {
		t.Errorf("EvalSkills %+v, its responses score %+v", got.Score, want.Score)
	}
	if _, err := EvalSkills(m, tok, nil); err == nil {
		t.Error("no probes accepted")
	}
}
