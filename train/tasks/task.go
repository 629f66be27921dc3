package tasks

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Length limits of every generated instance, in bytes: a prompt and its
// answer together fit easily in a 256-token byte-level context, with room
// for a response that runs on.
const (
	MaxPromptBytes = 48
	MaxAnswerBytes = 24
)

// Instance is one task instance: the prompt shown to the model, the one
// correct answer, and the input the instruction applies to (the word,
// phrase or sum inside the prompt; the response generator uses it to make
// answers to the wrong task). Decoy, set by the opt-in families only, is
// the response that fails in the family's way (a made-up answer, a
// compliance, or declining a twin that should be answered); rm.jsonl's
// response sets include it. Kind is the prompt kind ("" for a plain prompt
// written without kinds; see PromptKinds).
type Instance struct {
	Task   string
	Prompt string
	Answer string
	Input  string
	Decoy  string
	Kind   string
}

// Task is one type of instruction. Generate draws an instance; Score rates a
// response to a prompt whose correct answer is answer, in [0, 1] with
// partial credit (1 exactly for the answer itself).
type Task interface {
	Name() string
	// Description says in one line what the task asks and how it is
	// scored.
	Description() string
	Generate(rng *rand.Rand) Instance
	Score(answer, response string) float64
}

// task is the built-in implementation of Task: a generator of (phrasing
// arguments, input, answer) and a scorer.
type task struct {
	name        string
	description string
	// phrasings are the instruction templates; each has the same verbs in
	// the order the generator's args fill them. Every one ends in "\n",
	// the separator after which the answer starts.
	phrasings []string
	// generate draws the template arguments, the input and the answer.
	generate func(rng *rand.Rand) (args []any, input, answer string)
	score    func(answer, response string) float64
}

func (t *task) Name() string        { return t.name }
func (t *task) Description() string { return t.description }

// Score rates response against answer; see the task's description.
// Leading and trailing white space of the response does not count.
func (t *task) Score(answer, response string) float64 {
	return clamp01(t.score(answer, trimSpace(response)))
}

// Generate draws an instance whose prompt and answer fit MaxPromptBytes and
// MaxAnswerBytes (drawing again until they do; the generators are built so
// that few draws fail).
func (t *task) Generate(rng *rand.Rand) Instance {
	for {
		args, input, answer := t.generate(rng)
		prompt := fmt.Sprintf(t.phrasings[rng.IntN(len(t.phrasings))], args...)
		if len(prompt) <= MaxPromptBytes && len(answer) <= MaxAnswerBytes {
			return Instance{Task: t.name, Prompt: prompt, Answer: answer, Input: input}
		}
	}
}

// phrasings returns the instruction templates of a built-in task (fmt
// verbs in place of the input), or nil for another Task.
func phrasings(t Task) []string {
	if bt, ok := t.(*task); ok {
		return append([]string(nil), bt.phrasings...)
	}
	return nil
}

// registry is the built-in task family, in a fixed order.
var registry = builtinTasks()

// Tasks returns the built-in tasks in a fixed order.
func Tasks() []Task { return append([]Task(nil), registry...) }

// Names returns the names of the built-in tasks in the order of Tasks.
func Names() []string {
	names := make([]string, len(registry))
	for i, t := range registry {
		names[i] = t.Name()
	}
	return names
}

// ByName returns the built-in task, or the task of the opt-in family (see
// FamilyNames), called name.
func ByName(name string) (Task, error) {
	for _, t := range registry {
		if t.Name() == name {
			return t, nil
		}
	}
	if t, err := family(name); err == nil {
		return t, nil
	}
	return nil, fmt.Errorf("unknown task %q (tasks: %s; families: %s)", name, strings.Join(Names(), ", "), strings.Join(FamilyNames(), ", "))
}

// ScoreRecord scores a response to an evaluation record {"prompt", "task",
// "answer"}: the score of the named task's scorer, or an error for a task
// that does not exist.
func ScoreRecord(taskName, answer, response string) (float64, error) {
	t, err := ByName(taskName)
	if err != nil {
		return 0, err
	}
	return t.Score(answer, response), nil
}
