// Package train holds the training loops and what they share: AdamW over a
// model's single parameter buffer, learning-rate schedules, datasets, run
// directories (config, metrics.jsonl, checkpoints, summary) and, as the
// InstructGPT stages land, the SFT, reward-model and PPO loops.
//
// It imports gpu (the contract), model, the standard library and zerolog;
// never a concrete backend.
package train
