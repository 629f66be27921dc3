package tasks

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Prompt kinds (SynthConfig.PromptKinds), the three ways the paper's
// labelers wrote prompts: a plain instruction, a few-shot prompt (worked
// examples of the same task, each its prompt line and answer line, before
// the question), and a user-style request. The task and its answer do not
// change with the kind, only the text before the question.
const (
	KindPlain   = "plain"
	KindFewShot = "few-shot"
	KindUser    = "user"
)

// PromptKinds lists the kinds in a fixed order.
func PromptKinds() []string { return []string{KindPlain, KindFewShot, KindUser} }

// MaxKindPromptBytes bounds a few-shot prompt: with an answer of
// MaxAnswerBytes it fits the 128-token examples SFT trains on by default.
const MaxKindPromptBytes = 104

// maxShots is the most worked examples a few-shot prompt holds (1 or 2,
// as many as fit MaxKindPromptBytes).
const maxShots = 2

// userOpeners start a user-style prompt; no plain prompt starts with one.
var userOpeners = []string{"hey, could you help? ", "hi! please answer: ", "can you do this? "}

// KindOf tells the kind of a prompt from its text: several lines are a
// few-shot prompt, a user-style opener a user prompt, anything else plain.
func KindOf(prompt string) string {
	if strings.Contains(strings.TrimSuffix(prompt, "\n"), "\n") {
		return KindFewShot
	}
	for _, o := range userOpeners {
		if strings.HasPrefix(prompt, o) {
			return KindUser
		}
	}
	return KindPlain
}

// validKinds checks a list of prompt kinds.
func validKinds(kinds []string) error {
	for _, k := range kinds {
		if k != KindPlain && k != KindFewShot && k != KindUser {
			return fmt.Errorf("unknown prompt kind %q (kinds: %s)", k, strings.Join(PromptKinds(), ", "))
		}
	}
	return nil
}

// withKind rewrites inst's prompt as the kind drawn from kinds: few-shot
// prompts take their examples from fresh instances of the same task whose
// prompts are not in exclude (so a held-out question never appears with
// its answer). t must be the instance's task.
func withKind(inst Instance, t Task, kinds []string, exclude map[string]bool, rng *rand.Rand) Instance {
	inst.Kind = pick(rng, kinds)
	switch inst.Kind {
	case KindUser:
		inst.Prompt = pick(rng, userOpeners) + inst.Prompt
	case KindFewShot:
		shots := 1 + rng.IntN(maxShots)
		var b strings.Builder
		for added, tries := 0, 0; added < shots && tries < 20*shots; tries++ {
			ex := t.Generate(rng)
			line := ex.Prompt + ex.Answer + "\n"
			if exclude[ex.Prompt] || ex.Prompt == inst.Prompt || b.Len()+len(line)+len(inst.Prompt) > MaxKindPromptBytes {
				continue
			}
			b.WriteString(line)
			added++
		}
		if b.Len() == 0 { // no example fitted (a long question): plain
			inst.Kind = KindPlain
			break
		}
		inst.Prompt = b.String() + inst.Prompt
	}
	return inst
}
