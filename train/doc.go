// Package train holds the training methods of the InstructGPT recipe and
// what they share. One loop driver (loop.go) runs every method: it owns
// the interrupt, step counting, the divergence guard, progress, log lines,
// metrics.jsonl, periodic and final saves, resume and the run's clock;
// each method supplies its step and its evaluation: pretraining and SFT
// (LMStep, the next-token loss), the reward model (RMStep, K-way ranking
// batches, centring), PPO-ptx (rollouts with the KV cache,
// KL-penalised rewards, GAE, the clipped updates, the ptx term, the EMA
// policy) and DPO (DPOStep: responses' sequence log-probs against a frozen
// reference's, the Plackett–Luce, pairwise and IPO preference losses on
// the implicit reward), the group methods GRPO, Dr. GRPO and RLOO (no
// value model: each prompt's responses are sampled together and judged
// against each other, rewarded by the reward model or the built-in tasks'
// scorers; rollout.go is the rollout code they share with PPO) and
// rejection-sampling fine-tuning (SFT on the reward model's best of N
// samples). Also here: AdamW over a model's single parameter buffer and
// the learning-rate schedule; evaluation on the built-in tasks and the
// labeler's win rate; the best-of-n check of a reward model on a policy's
// own samples; labelling a policy's samples; run directories (config,
// metrics, checkpoints, summary, exact resume).
//
// The defaults follow the paper where they fit the scale; where they do
// not, the default says why in a few lines and docs/EXPERIMENTS.md holds
// the runs behind it. The whole pipeline is package train/pipeline.
//
// It imports gpu (the contract), model, train/data, train/tasks,
// internal/atomicfile, the standard library and zerolog; never a concrete
// backend.
package train
