// Package tasks is the built-in instruction-following task family that
// makes the InstructGPT pipeline (pretrain → SFT → reward model → PPO-ptx)
// runnable offline and measurable: small tasks whose correct answer is a
// deterministic function of the prompt, a programmatic scorer for each (the
// ground truth), a simulated labeler that ranks responses noisily by that
// score, and Synth, which writes a complete dataset (`instructgo data
// synth`).
//
// # Tasks
//
// Every prompt is one instruction line ending in "\n", the separator after
// which the answer starts; prompts are at most MaxPromptBytes (48) bytes and
// answers at most MaxAnswerBytes (24), to suit a small byte-level model.
// Inputs are words from a built-in vocabulary of about 300 common English
// words. Each task has three phrasings, and phrasings of different tasks
// share words ("write W in reverse", "write W in upper case", "write W 3
// times"), so the instruction must be read:
//
//	reverse  "reverse: apple\n"            → "elppa"      (also "spell W backwards", "write W in reverse")
//	sort     "alphabetize: desk\n"         → "deks"       (also "sort the letters: W", "letters of W in order")
//	add      "what is 33 plus 99?\n"       → "132"        (also "add: A + B", "sum of A and B:"); 0 ≤ A, B ≤ 99
//	upper    "in capitals: soft tea\n"     → "SOFT TEA"   (also "uppercase: P", "write P in upper case")
//	count    "how many p in apple?\n"      → "2"          (also "count the letter C in: T", "how often is C in T?")
//	repeat   "say cat 3 times\n"           → "cat cat cat" (also "repeat W N times", "write W N times"); N = 2..4
//	word     "copy the second word: red fox run\n" → "fox" (also "word K of: P", "say word number K: P")
//
// Scores lie in [0, 1], 1 exactly for the answer; leading and trailing
// white space of a response is ignored (it is style, judged by the
// labeler). Text answers (reverse, sort, upper, repeat, word) score
// 1 − Levenshtein distance / longer length: one wrong letter of five scores
// 0.8, "cat cat" for "cat cat cat" 0.64, junk after the answer costs in
// proportion. Numbers score by closeness, scaled by the number's share of
// the response: add ½·text similarity + ½·exp(−|error|/5) (off by one 0.74,
// wrong tens digit 0.40); count exp(−|error|/1.5) (off by one 0.51). The
// tasks are meant to leave a small model room to improve by RL after a few
// hundred demonstrations each: reversing, sorting, adding and counting are
// hard for it, and partial credit makes the reward smooth.
//
// # Labeler
//
// Labeler's utility for a response is its score plus StyleWeight (0.1) ×
// Style: +1 for a clean stop (no white space or line break around or in
// the answer), −1 for an empty or overlong response, 0 otherwise. It ranks
// K responses by a Plackett–Luce draw with weights exp(utility/Noise), so
// any two responses are ordered by the Bradley–Terry probability
// σ(Δutility/Noise); Prefer compares two (½ for equal utilities), for win
// rates. DefaultNoise (0.122) is calibrated so that two independent
// labelers agree on 73% of the comparisons of an SFT model's own samples,
// the paper's inter-labeler agreement (measured on comparisons of model
// outputs); the labeler then agrees with the noise-free order on about 82%
// of them. On the easier synthetic response sets of rm.jsonl two labelers
// agree on about 85%. MeasureAgreement measures both by sampling (Synth reports them
// for the rankings it writes), ExpectedAgreement computes them, and
// calibrateNoise finds the Noise for another target.
//
// # Dataset
//
// Synth writes pretrain.txt, sft.jsonl, rm.jsonl, ppo.jsonl and eval.jsonl
// (see SynthConfig; the defaults scale the paper's 13k/33k/31k SFT/RM/PPO
// prompts to 2000/5000/5000, about 97k comparisons, with 300 eval prompts
// and 1.5 MB of pretraining text). A demonstration is the answer, except
// that a fraction DemoHabit of them open with HabitPrefix ("sure, "):
// people wrote InstructGPT's demonstrations, and a writer's habit that the
// labelers mark down when they rank is something the rankings can teach
// and the demonstrations cannot. rm.jsonl's responses come from
// Responses: the answer, the answer with a style flaw, near misses, answers
// to another task on the same input, empty-ish and random responses. Eval
// prompts are distinct and appear in no other file. The files are the same
// bytes for the same configuration (each has its own random stream, so
// changing one count leaves the other files alone) and are replaced
// atomically. pretrain.txt is text in the tasks' domain without any
// instruction or answer (see WritePretrain).
//
// # Honesty, harmlessness and prompt kinds (opt-in)
//
// SynthConfig.Families adds two families beside the seven tasks (see
// families.go): "honesty", whose prompts half the time lack what they ask
// for (the honest answer is CannotTell, a made-up one scores 0), and
// "harmlessness", whose requests with a forbidden marker word are to be
// declined with Refusal while their look-alike twins are answered.
// SynthConfig.PromptKinds writes every prompt as a plain instruction, a
// few-shot prompt or a user-style request, and each record carries its
// "kind" (KindOf reads it back from the text). Both are off by default,
// and the default output is then byte for byte what it was before them.
//
// It imports the standard library and internal/atomicfile.
package tasks
