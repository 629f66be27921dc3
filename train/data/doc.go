// Package data holds the datasets of the InstructGPT stages: reading them
// from JSONL, tokenising and truncating them, and cutting them into
// seeded, resumable batches in the layout of model.Batch.
//
// # Records
//
// Field names are TRL's (see ReadSFT, ReadComparisons, ReadPrompts):
//
//	SFT          {"prompt", "completion"} or {"messages": [{"role", "content"}, ...]}
//	RM, pairs    {"prompt", "chosen", "rejected"} with an optional "margin"
//	RM, rankings {"prompt", "responses": [K strings], "ranking": [best … worst]}, 2 ≤ K ≤ 9
//	PPO          {"prompt"} with optional "task", "answer" and any other fields
//
// A pair is read as the K = 2 ranking, so the reward model sees one type,
// Comparison. Conversations are rendered to text with one fixed template
// (RenderPrompt, RenderCompletion): "<role>: <content>\n" per message, the
// prompt ending in "assistant:" and the completion being " " + the reply;
// or, with ReadOptions.Chat, with a model's chat template (ChatML, Llama 3),
// whose texts tokenizer.WithChat encodes. ReadOptions.ChatFor(tok) takes
// the choice from the tokenizer tokenizer.ForChat set up, including its
// refusal of conversations it cannot render.
//
// A bad line (invalid JSON, not an object, a missing or empty required
// field, a field of the wrong type, an unknown or ambiguous record shape,
// a bad ranking, a line over MaxLineBytes) is an error of type *LineError
// naming file:line and the field, e.g. `sft.jsonl:17: field "completion":
// missing`; with ReadOptions.SkipBadLines it is counted in ReadStats
// instead, and the first few messages are kept for a warning. Blank lines
// are ignored, unknown extra fields allowed, a file without examples is an
// error.
//
// # Tokens
//
// TokenizeSFT and TokenizeComparisons encode prompt and completion
// separately, append EOS to every completion and response, and fit each
// example into maxLen tokens by one rule (completion cut from the right to
// at most max(maxLen − P, ⌊maxLen/2⌋) tokens, then prompt cut from the left
// to what remains), counting in TruncStats every example truncated or
// dropped.
//
// # Batches
//
// A Batcher shuffles the examples each epoch (seeded by seed and epoch)
// and fills batches greedily under a token budget (B·T) and a row limit;
// its Position (epoch, next example) restores the exact batch sequence.
// SFTBatch has Tokens, next-token Targets on completion positions only (−1
// elsewhere) and ValidLen; ComparisonBatch puts a comparison's K responses
// in consecutive rows, for K forward rows per prompt.
//
// The package imports the standard library, model (batches are
// model.Batch values), model/tokenizer and internal/readfile (bounded
// whole-file reads).
package data
