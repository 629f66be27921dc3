package tasks

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"

	"github.com/instructgo/instructgo/internal/atomicfile"
)

// Names of the files Synth writes.
const (
	PretrainFile = "pretrain.txt"
	SFTFile      = "sft.jsonl"
	RMFile       = "rm.jsonl"
	PPOFile      = "ppo.jsonl"
	EvalFile     = "eval.jsonl"
)

// SynthConfig says what Synth writes. The counts are prompts (records).
type SynthConfig struct {
	Seed          uint64 `json:"seed"`
	NSFT          int    `json:"sft"`            // demonstrations in sft.jsonl
	NRM           int    `json:"rm"`             // prompts in rm.jsonl, each with K = 4..9 ranked responses
	NPPO          int    `json:"ppo"`            // prompts in ppo.jsonl
	NEval         int    `json:"eval"`           // held-out prompts in eval.jsonl, all distinct
	PretrainBytes int    `json:"pretrain_bytes"` // size of pretrain.txt (whole lines, so a little more)
	// DemoHabit is the fraction of demonstrations whose writer opened the
	// answer with HabitPrefix ("sure, "), a habit the labeler marks down:
	// the task asks for the answer alone, so the prefix costs score (and
	// style, when it makes a short answer overlong). Demonstrations in
	// InstructGPT were written by people and were not ideal; rankings are
	// where the labelers' preference shows. 0 writes ideal demonstrations.
	DemoHabit float64 `json:"demo_habit,omitempty"`
	// Labeler ranks the rm.jsonl responses; nil means DefaultLabeler.
	Labeler *Labeler `json:"labeler,omitempty"`
	// Families adds opt-in task families (FamilyNames: "honesty",
	// "harmlessness") to the seven built-in tasks; each takes its turn like
	// a task, so every file holds about as many records of it as of each
	// task. Empty: the built-in tasks alone.
	Families []string `json:"families,omitempty"`
	// PromptKinds rewrites every prompt as a kind drawn uniformly from the
	// list (PromptKinds: "plain", "few-shot", "user"), and every record
	// carries its "kind". Empty: plain prompts, no "kind" field.
	PromptKinds []string `json:"prompt_kinds,omitempty"`
}

// DefaultSynthConfig follows the paper's proportions (about 13k SFT, 33k
// RM and 31k PPO prompts) scaled to 2000 demonstrations: 5000 ranked
// prompts (about 97k comparisons, against 2000 demonstrations) and 5000
// PPO prompts, plus 300 held-out evaluation prompts and 1.5 MB of
// pretraining text. Half of the demonstrations carry the writers' habit
// (DemoHabit 0.5).
func DefaultSynthConfig() SynthConfig {
	return SynthConfig{Seed: 1, NSFT: 2000, NRM: 5000, NPPO: 5000, NEval: 300, PretrainBytes: 1_500_000, DemoHabit: 0.5}
}

// Validate checks the counts.
func (c SynthConfig) Validate() error {
	for _, f := range []struct {
		name string
		n    int
	}{{"sft", c.NSFT}, {"rm", c.NRM}, {"ppo", c.NPPO}, {"eval", c.NEval}, {"pretrain bytes", c.PretrainBytes}} {
		if f.n < 0 {
			return fmt.Errorf("%s count %d is negative", f.name, f.n)
		}
	}
	if !(c.DemoHabit >= 0 && c.DemoHabit <= 1) {
		return fmt.Errorf("demo_habit %g is not a fraction in [0, 1]", c.DemoHabit)
	}
	if c.Labeler != nil && (c.Labeler.Noise < 0 || c.Labeler.StyleWeight < 0) {
		return fmt.Errorf("labeler noise %g and style weight %g must not be negative", c.Labeler.Noise, c.Labeler.StyleWeight)
	}
	if _, err := c.taskList(); err != nil {
		return err
	}
	return validKinds(c.PromptKinds)
}

// taskList is the built-in tasks followed by the selected families.
func (c SynthConfig) taskList() ([]Task, error) {
	list := Tasks()
	for i, name := range c.Families {
		t, err := family(name)
		if err != nil {
			return nil, err
		}
		if slices.Contains(c.Families[:i], name) {
			return nil, fmt.Errorf("family %q named twice", name)
		}
		list = append(list, t)
	}
	return list, nil
}

// FileSummary describes one written file.
type FileSummary struct {
	Name    string `json:"file"`
	Records int    `json:"records"` // JSONL records, or lines of pretrain.txt
	// Comparisons is Σ C(K, 2) over rm.jsonl's records (0 for the others).
	Comparisons int   `json:"comparisons"`
	Bytes       int64 `json:"bytes"`
}

// Summary describes what Synth wrote.
type Summary struct {
	Dir   string        `json:"dir"`
	Seed  uint64        `json:"seed"`
	Files []FileSummary `json:"files"`
	// Comparisons is the number of pairwise comparisons rm.jsonl implies.
	Comparisons int `json:"comparisons"`
	// HabitDemos is the number of demonstrations written with the habit
	// (HabitPrefix), about DemoHabit of them.
	HabitDemos int     `json:"demonstrations_with_habit"`
	Labeler    Labeler `json:"labeler"`
	// Agreement is measured on the rankings written to rm.jsonl (against
	// the noise-free order, and against a second independent labeler).
	Agreement Agreement `json:"agreement"`
}

// Random streams of Synth, one per product, so that changing one count
// leaves the other files as they were.
const (
	streamEval = iota + 1
	streamSFT
	streamRM
	streamRank
	streamPPO
	streamPretrain
	streamAgreement
	streamHabit
	// streamKind + a file's stream draws that file's prompt kinds.
	streamKind = 100
)

// HabitPrefix is what a demonstration writer with the habit (see
// SynthConfig.DemoHabit) puts before the answer.
const HabitPrefix = "sure, "

func newStream(seed, id uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, id)) }

// Synth writes a complete InstructGPT-style dataset for the built-in tasks
// into dir (created if missing): pretrain.txt, sft.jsonl, rm.jsonl,
// ppo.jsonl and eval.jsonl. The tasks take turns, so each file holds about
// the same number of records per task. No prompt of eval.jsonl appears in
// the other files. The bytes written depend only on cfg (the seed and the
// counts). Each file is replaced atomically.
func Synth(dir string, cfg SynthConfig) (Summary, error) {
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	labeler := DefaultLabeler()
	if cfg.Labeler != nil {
		labeler = *cfg.Labeler
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Summary{}, fmt.Errorf("synth: %w", err)
	}
	stream := func(id uint64) *rand.Rand { return newStream(cfg.Seed, id) }
	sum := Summary{Dir: dir, Seed: cfg.Seed, Labeler: labeler}
	list, err := cfg.taskList()
	if err != nil {
		return Summary{}, err
	}

	eval, err := heldOut(list, cfg.NEval, stream(streamEval))
	if err != nil {
		return Summary{}, err
	}
	heldOutPrompts := make(map[string]bool, len(eval))
	for _, inst := range eval {
		heldOutPrompts[inst.Prompt] = true
	}
	// kinds rewrites a file's instances as prompt kinds, from its own
	// stream (none when PromptKinds is empty).
	kinds := func(insts []Instance, id uint64) {
		if len(cfg.PromptKinds) == 0 {
			return
		}
		rng := stream(streamKind + id)
		for i, inst := range insts {
			t, _ := ByName(inst.Task) // a task of list
			insts[i] = withKind(inst, t, cfg.PromptKinds, heldOutPrompts, rng)
		}
	}
	draw := func(n int, id uint64) ([]Instance, error) {
		insts, err := draws(list, n, heldOutPrompts, stream(id))
		kinds(insts, id)
		return insts, err
	}
	kinds(eval, streamEval)

	// pretrain.txt
	fs, err := writeFile(dir, PretrainFile, func(w io.Writer) (int, error) {
		lines, _, err := WritePretrain(w, cfg.PretrainBytes, stream(streamPretrain))
		return lines, err
	})
	if err != nil {
		return Summary{}, err
	}
	sum.Files = append(sum.Files, fs)

	// sft.jsonl
	sft, err := draw(cfg.NSFT, streamSFT)
	if err != nil {
		return Summary{}, err
	}
	type demonstration struct {
		Prompt     string `json:"prompt"`
		Completion string `json:"completion"`
		Task       string `json:"task"`
		Kind       string `json:"kind,omitempty"`
	}
	habitRNG := stream(streamHabit) // its own stream: demo_habit 0 leaves sft.jsonl as it was
	if fs, err = writeJSONL(dir, SFTFile, sft, func(inst Instance) any {
		completion := inst.Answer
		if cfg.DemoHabit > 0 && habitRNG.Float64() < cfg.DemoHabit {
			completion = HabitPrefix + completion
			sum.HabitDemos++
		}
		return demonstration{inst.Prompt, completion, inst.Task, inst.Kind}
	}); err != nil {
		return Summary{}, err
	}
	sum.Files = append(sum.Files, fs)

	// rm.jsonl
	rmRNG, rankRNG := stream(streamRM), stream(streamRank)
	rmPrompts, err := draws(list, cfg.NRM, heldOutPrompts, rmRNG)
	if err != nil {
		return Summary{}, err
	}
	kinds(rmPrompts, streamRM)
	groups := make([]Group, len(rmPrompts))
	for i, inst := range rmPrompts {
		k := MinResponses + rmRNG.IntN(MaxResponses-MinResponses+1)
		g := groupFor(inst, k, rmRNG)
		if g.Ranking, err = labeler.Rank(g.Task, g.Answer, g.Responses, rankRNG); err != nil {
			return Summary{}, err
		}
		groups[i] = g
		sum.Comparisons += k * (k - 1) / 2
	}
	if fs, err = writeJSONL(dir, RMFile, groups, func(g Group) any { return g }); err != nil {
		return Summary{}, err
	}
	fs.Comparisons = sum.Comparisons
	sum.Files = append(sum.Files, fs)
	if sum.Agreement, err = labeler.MeasureAgreement(groups, stream(streamAgreement)); err != nil {
		return Summary{}, err
	}

	// ppo.jsonl and eval.jsonl
	ppo, err := draw(cfg.NPPO, streamPPO)
	if err != nil {
		return Summary{}, err
	}
	for _, f := range []struct {
		name  string
		insts []Instance
	}{{PPOFile, ppo}, {EvalFile, eval}} {
		if fs, err = writeJSONL(dir, f.name, f.insts, func(inst Instance) any { return promptRecord(inst) }); err != nil {
			return Summary{}, err
		}
		sum.Files = append(sum.Files, fs)
	}
	return sum, nil
}

// PromptRecord is a record of ppo.jsonl and eval.jsonl: the prompt with its
// task and correct answer, for scoring what a policy answers.
type PromptRecord struct {
	Prompt string `json:"prompt"`
	Task   string `json:"task"`
	Answer string `json:"answer"`
	Kind   string `json:"kind,omitempty"`
}

func promptRecord(inst Instance) PromptRecord {
	return PromptRecord{inst.Prompt, inst.Task, inst.Answer, inst.Kind}
}

// maxTries bounds the draws for one record that keep hitting excluded
// prompts; only a request for more distinct prompts than a task has ends
// there.
const maxTries = 10000

var errExhausted = errors.New("ran out of distinct prompts")

// taskOrder returns n indices into a list of nTasks tasks, each task
// equally often (±1), in a random order.
func taskOrder(nTasks, n int, rng *rand.Rand) []int {
	order := make([]int, n)
	for i := range order {
		order[i] = i % nTasks
	}
	rng.Shuffle(n, func(i, j int) { order[i], order[j] = order[j], order[i] })
	return order
}

// heldOut draws n instances of the tasks of list with distinct prompts.
func heldOut(list []Task, n int, rng *rand.Rand) ([]Instance, error) {
	seen := make(map[string]bool, n)
	out := make([]Instance, 0, n)
	for _, ti := range taskOrder(len(list), n, rng) {
		t := list[ti]
		for tries := 0; ; tries++ {
			if tries == maxTries {
				return nil, fmt.Errorf("synth: eval: %w for task %s after %d prompts", errExhausted, t.Name(), len(out))
			}
			inst := t.Generate(rng)
			if !seen[inst.Prompt] {
				seen[inst.Prompt] = true
				out = append(out, inst)
				break
			}
		}
	}
	return out, nil
}

// draws draws n instances of the tasks of list whose prompts are not in
// exclude (repeats among them are allowed, as in a training set).
func draws(list []Task, n int, exclude map[string]bool, rng *rand.Rand) ([]Instance, error) {
	out := make([]Instance, 0, n)
	for _, ti := range taskOrder(len(list), n, rng) {
		t := list[ti]
		for tries := 0; ; tries++ {
			if tries == maxTries {
				return nil, fmt.Errorf("synth: %w for task %s: all are held out", errExhausted, t.Name())
			}
			if inst := t.Generate(rng); !exclude[inst.Prompt] {
				out = append(out, inst)
				break
			}
		}
	}
	return out, nil
}

// writeJSONL writes one JSON record per line.
func writeJSONL[T any](dir, name string, items []T, record func(T) any) (FileSummary, error) {
	return writeFile(dir, name, func(w io.Writer) (int, error) {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for i, it := range items {
			if err := enc.Encode(record(it)); err != nil {
				return i, err
			}
		}
		return len(items), nil
	})
}

// writeFile replaces dir/name atomically with what write writes; write
// returns the number of records.
func writeFile(dir, name string, write func(io.Writer) (int, error)) (FileSummary, error) {
	fs := FileSummary{Name: name}
	err := atomicfile.Write(filepath.Join(dir, name), func(w io.Writer) error {
		cw := &countingWriter{w: w}
		n, err := write(cw)
		fs.Records, fs.Bytes = n, cw.n
		return err
	})
	if err != nil {
		return FileSummary{}, fmt.Errorf("synth: %w", err)
	}
	return fs, nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
