package pipeline

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
)

// TestPipelineSizes runs the small pipeline at two sizes (llama-tiny and
// tiny, the larger), checks the comparison against the sizes' own
// reports, reruns it (only the evaluations run again) and refuses a
// changed configuration.
func TestPipelineSizes(t *testing.T) {
	out := t.TempDir()
	base := smallPipeline(out)
	sizes := []string{"llama-tiny", "tiny"}
	opt := train.RunOptions{Log: zerolog.Nop()}
	sr, err := RunSizes(context.Background(), cpu.New(2), base, sizes, opt)
	if err != nil {
		t.Fatal(err)
	}
	tiny, _ := model.ConfigByName("tiny")
	llama, _ := model.ConfigByName("llama-tiny")
	if llama.NumParams() >= tiny.NumParams() || sr.Baseline != "SFT tiny" {
		t.Fatalf("baseline %q; llama-tiny %d parameters, tiny %d", sr.Baseline, llama.NumParams(), tiny.NumParams())
	}
	if len(sr.Sizes) != 2 || sr.EvalN != 16 || sr.SkillN != 3*len(tasks.SkillNames()) || !(sr.Seconds > 0) {
		t.Fatalf("report %+v", sr)
	}
	for i, s := range sr.Sizes {
		if s.Size != sizes[i] || s.Dir != filepath.Join(out, sizes[i]) || len(s.Models) != len(sizeModels) {
			t.Fatalf("size %d: %+v", i, s)
		}
		var rep Report
		if raw, err := os.ReadFile(filepath.Join(s.Dir, "report.json")); err != nil || json.Unmarshal(raw, &rep) != nil {
			t.Fatalf("%s: report.json: %v", s.Size, err)
		}
		// The rows reuse the size's own evaluation.
		byName := map[string]MethodResult{}
		for _, m := range rep.Methods {
			byName[m.Name] = m
		}
		want := map[string]float64{"pretrained": rep.Pretrain.TaskScore, "SFT": rep.SFT.TaskScore, "PPO": byName["ppo-noptx"].TaskScore, "PPO-ptx": byName["ppo"].TaskScore}
		for _, m := range s.Models {
			if w, ok := want[m.Model]; ok && m.TaskScore != w {
				t.Errorf("%s %s: task score %v, its report %v", s.Size, m.Model, m.TaskScore, w)
			}
			if !(m.WinRate >= 0 && m.WinRate <= 1) || (m.Skill == nil) != (m.Model == "pretrained, few-shot prompt") {
				t.Errorf("%s %s: %+v", s.Size, m.Model, m)
			}
			if m.Skill != nil && (m.Skill.Score.N != sr.SkillN || m.Skill.Score.Value < 0 || m.Skill.Score.Value > 1 || m.PtxLoss == nil || !(*m.PtxLoss > 0)) {
				t.Errorf("%s %s: skill %+v, pretraining loss %v", s.Size, m.Model, m.Skill, m.PtxLoss)
			}
		}
		// PPO differs from PPO-ptx in the pretraining mix alone.
		var ptx, noPtx train.PPOConfig
		readRunConfig(t, filepath.Join(s.Dir, StagePPO), &ptx)
		readRunConfig(t, filepath.Join(s.Dir, StagePPONoPtx), &noPtx)
		if len(ptx.Ptx) == 0 || ptx.PtxCoef <= 0 || len(noPtx.Ptx) != 0 || noPtx.PtxCoef != 0 || noPtx.Iterations != ptx.Iterations || noPtx.Policy != ptx.Policy {
			t.Errorf("%s: PPO-ptx %+v, PPO %+v", s.Size, ptx, noPtx)
		}
	}
	// The baseline against itself: every preference one half.
	if b := sr.Sizes[1].Models[2]; b.Model != "SFT" || b.WinRate != 0.5 || b.WinRateStdErr != 0 {
		t.Errorf("the baseline against itself: %+v", b)
	}
	// Every size trained on the same data.
	for _, f := range []string{tasks.PretrainFile, tasks.SFTFile, tasks.RMFile, tasks.PPOFile, tasks.EvalFile} {
		a, errA := os.ReadFile(filepath.Join(out, "tiny", StageData, f))
		b, errB := os.ReadFile(filepath.Join(out, "llama-tiny", StageData, f))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between the sizes (%v, %v)", f, errA, errB)
		}
	}
	md, err := os.ReadFile(filepath.Join(out, "sizes.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| model | llama-tiny (", "| pretrained, few-shot prompt |", "| PPO-ptx |", "## The alignment tax on held-out skills", "| llama-tiny | PPO |", sizesPlotFile, "PPO-ptx llama-tiny against SFT tiny"} {
		if !strings.Contains(string(md), want) {
			t.Errorf("sizes.md lacks %q", want)
		}
	}
	if st, err := os.Stat(filepath.Join(out, sizesPlotFile)); err != nil || st.Size() == 0 {
		t.Errorf("%s: %v", sizesPlotFile, err)
	}

	// A rerun trains nothing again and gives the same numbers.
	before := readStageClock(t, filepath.Join(out, "tiny"))
	again, err := RunSizes(context.Background(), cpu.New(2), base, sizes, opt)
	if err != nil {
		t.Fatal(err)
	}
	after := readStageClock(t, filepath.Join(out, "tiny"))
	for st, sec := range before {
		if st != stageEvaluation && after[st] != sec {
			t.Errorf("stage %q ran again: %v s, %v before", st, after[st], sec)
		}
	}
	for i := range sr.Sizes {
		for j, m := range sr.Sizes[i].Models {
			if a := again.Sizes[i].Models[j]; a.WinRate != m.WinRate || a.TaskScore != m.TaskScore {
				t.Errorf("rerun: %s %s %+v, first %+v", sr.Sizes[i].Size, m.Model, a, m)
			}
		}
	}
	changed := base
	changed.PPO.Iterations++
	if _, err := RunSizes(context.Background(), cpu.New(2), changed, sizes, opt); err == nil || !strings.Contains(err.Error(), "another configuration") {
		t.Errorf("a changed configuration: %v", err)
	}
}

func readRunConfig(t *testing.T, dir string, v any) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, train.RunConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatal(err)
	}
}

func TestValidSizes(t *testing.T) {
	for _, bad := range [][]string{nil, {"tiny", "tiny"}, {"huge"}, {""}} {
		if err := ValidSizes(bad); err == nil {
			t.Errorf("sizes %q accepted", bad)
		}
	}
	if err := ValidSizes([]string{"small", "tiny"}); err != nil {
		t.Error(err)
	}
}

// TestSizeConfig: a size's run is the base configuration moved into its
// sub-directory, with its model and both PPO variants.
func TestSizeConfig(t *testing.T) {
	base := Default("/r")
	base.Methods = []string{"dpo"}
	c, err := SizeConfig(base, "small")
	if err != nil {
		t.Fatal(err)
	}
	want := Default("/r/small")
	want.Model, want.Methods = "small", []string{"ppo", "ppo-noptx", "dpo"}
	a, _ := json.Marshal(c)
	b, _ := json.Marshal(want)
	if !bytes.Equal(a, b) {
		t.Errorf("size config\n%s\nwant\n%s", a, b)
	}
	if noPtxPPO(c).Out != "/r/small/"+StagePPONoPtx {
		t.Errorf("PPO without ptx in %q", noPtxPPO(c).Out)
	}
}

// TestFewShotPrompts builds few-shot prompts from random demonstrations:
// each prompt gets shots examples of its own task, none with the habit,
// then its own text; the answers stay.
func TestFewShotPrompts(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	var demos []data.SFTExample
	for range 60 {
		inst := tasks.Tasks()[rng.IntN(len(tasks.Tasks()))].Generate(rng)
		completion := inst.Answer
		if rng.IntN(2) == 0 {
			completion = tasks.HabitPrefix + completion
		}
		demos = append(demos, data.SFTExample{Prompt: inst.Prompt, Completion: completion, Task: inst.Task})
	}
	var prompts []train.TaskPrompt
	for range 30 {
		inst := tasks.Tasks()[rng.IntN(len(tasks.Tasks()))].Generate(rng)
		prompts = append(prompts, train.TaskPrompt{Prompt: inst.Prompt, Task: inst.Task, Answer: inst.Answer})
	}
	got, err := fewShotPrompts(prompts, demos, 2)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range got {
		if p.Task != prompts[i].Task || p.Answer != prompts[i].Answer || !strings.HasSuffix(p.Prompt, prompts[i].Prompt) {
			t.Fatalf("prompt %d: %+v from %+v", i, p, prompts[i])
		}
		shots := strings.Split(strings.TrimSuffix(p.Prompt, prompts[i].Prompt), "\n")
		shots = shots[:len(shots)-1]
		// Each example is two lines: its prompt and the completion.
		if len(shots) != 4 {
			t.Fatalf("prompt %d: %d example lines, want 4: %q", i, len(shots), p.Prompt)
		}
		for k := 0; k < len(shots); k += 2 {
			task := ""
			for _, d := range demos {
				if d.Prompt == shots[k]+"\n" && d.Completion == shots[k+1] {
					task = d.Task
				}
			}
			if task != p.Task || strings.HasPrefix(shots[k+1], tasks.HabitPrefix) {
				t.Errorf("prompt %d (%s): example %q / %q (task %q)", i, p.Task, shots[k], shots[k+1], task)
			}
		}
	}
	if _, err := fewShotPrompts([]train.TaskPrompt{{Prompt: "x\n", Task: "nothing"}}, demos, 2); err == nil {
		t.Error("a task without demonstrations accepted")
	}
}

// TestFirstLines cuts responses at their first line break and rescores
// them: the answer followed by another example scores 1.
func TestFirstLines(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var ev train.TaskEval
	var plain []train.TaskPrompt
	var want []float64
	for i := range 20 {
		inst := tasks.Tasks()[rng.IntN(len(tasks.Tasks()))].Generate(rng)
		resp, score := inst.Answer+"\nadd: 1 + 2\n3", 1.0
		if i%3 == 0 {
			resp = "?" + inst.Answer + "\n" + inst.Answer
			score, _ = tasks.ScoreRecord(inst.Task, inst.Answer, "?"+inst.Answer)
		}
		ev.Samples = append(ev.Samples, train.TaskSample{Prompt: "shots\n" + inst.Prompt, Task: inst.Task, Answer: inst.Answer, Response: resp})
		plain = append(plain, train.TaskPrompt{Prompt: inst.Prompt, Task: inst.Task, Answer: inst.Answer})
		want = append(want, score)
	}
	ev.N = len(ev.Samples)
	got, err := firstLines(ev, plain)
	if err != nil {
		t.Fatal(err)
	}
	mean := 0.0
	for i, s := range got.Samples {
		if s.Score != want[i] || s.Prompt != plain[i].Prompt || strings.Contains(s.Response, "\n") {
			t.Errorf("sample %d: %+v, want score %v", i, s, want[i])
		}
		mean += want[i] / float64(len(want))
	}
	if d := got.Score - mean; d > 1e-12 || d < -1e-12 {
		t.Errorf("score %v, want %v", got.Score, mean)
	}
}

// TestSizesTables builds the tables and the plot from a report with
// random numbers and checks each cell.
func TestSizesTables(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	r := &SizesReport{Baseline: "SFT b", EvalN: 10, SkillN: 6}
	for _, s := range []string{"a", "b"} {
		sz := SizeResult{Size: s, Params: 1e6 + rng.IntN(1e7)}
		for _, m := range sizeModels {
			sm := SizeModel{Model: m.label, TaskScore: rng.Float64(), WinRate: rng.Float64(), WinRateStdErr: rng.Float64() / 10}
			if m.eval != "" {
				loss := 1 + rng.Float64()
				sm.PtxLoss = &loss
				sm.Skill = &train.SkillEval{Score: train.Measure{Value: rng.Float64(), StdErr: 0.01, N: 6}, PerSkill: map[string]float64{"spell": rng.Float64()}}
			}
			sz.Models = append(sz.Models, sm)
		}
		r.Sizes = append(r.Sizes, sz)
	}
	win := sizesWinRates(r)
	if len(win) != 1+len(sizeModels) || len(win[0]) != 3 {
		t.Fatalf("win-rate table %q", win)
	}
	for j := range sizeModels {
		for i, s := range r.Sizes {
			m := s.Models[j]
			if want := strings.Join([]string{fmtF(m.WinRate), "±", fmtF(m.WinRateStdErr)}, " "); win[1+j][1+i] != want || win[1+j][0] != m.Model {
				t.Errorf("cell %s %s: %q, want %q", m.Model, s.Size, win[1+j][1+i], want)
			}
		}
	}
	tax := alignmentTax(r)
	if len(tax) != 1+2*4 {
		t.Fatalf("tax table has %d rows, want 9 (4 models of 2 sizes)", len(tax))
	}
	for _, row := range tax[1:] {
		if row[1] == "pretrained, few-shot prompt" {
			t.Errorf("the few-shot prompted model in the tax table: %q", row)
		}
	}
	notes := sizesNotes(r)
	smaller := r.Sizes[0]
	if r.Sizes[1].Params < smaller.Params {
		smaller = r.Sizes[1]
	}
	if ppo := smaller.Models[4]; !strings.Contains(notes[len(notes)-1], "PPO-ptx "+smaller.Size+" against SFT b: "+fmtF(ppo.WinRate)) {
		t.Errorf("notes %q", notes)
	}
	dir := t.TempDir()
	if err := WriteSizesReport(dir, r); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteSizesSummary(&buf, r); err != nil || !strings.Contains(buf.String(), "few-shot skill score") {
		t.Errorf("summary (%v):\n%s", err, buf.String())
	}
}

// fmtF is a table's number format.
func fmtF(v float64) string { return fmt.Sprintf("%.3f", v) }
