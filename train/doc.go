// Package train holds the training loops of the InstructGPT recipe and what
// they share: pretraining, SFT, the reward model (K-way ranking batches,
// centring) and PPO-ptx (rollouts with the KV cache, KL-penalised rewards,
// GAE, the clipped updates, the ptx term, the EMA policy); AdamW over a
// model's single parameter buffer and learning-rate schedules; evaluation on
// the built-in tasks and the labeler's win rate; the best-of-n check of a
// reward model on a policy's own samples; run directories (config,
// metrics.jsonl, checkpoints, summary, exact resume); and Pipeline, which
// runs every stage and writes the report.
//
// The defaults follow the paper where they fit the scale; where they do
// not, the departure and its measurement are documented at the default:
// DefaultPPO (ptx coefficient 0.1, minibatch and learning rate) and
// DefaultPipeline (longer pretraining, SFT for 32 epochs at dropout 0.1,
// β 0.1), the tiny model underfitting where the paper's overfit.
//
// It imports gpu (the contract), model, train/data, train/tasks, the
// standard library, zerolog and gonum/plot (the report's plots); never a
// concrete backend.
package train
