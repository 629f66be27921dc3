// Package pipeline runs the whole InstructGPT recipe on the built-in
// tasks, as `instructgo pipeline` does: synthetic data, pretraining, SFT,
// rankings of SFT samples, the reward model, then the methods that train a
// policy from the SFT model (PPO-ptx by default; DPO, GRPO, RLOO and
// rejection sampling on request, methods.go) and optionally iterated
// rounds of labelling, reward model and PPO (rounds.go), then the
// evaluation on held-out prompts (task scores, the simulated labeler's win
// rate with its standard errors and Likert ratings, KL to SFT on each
// policy's own samples, the alignment tax, a best-of-n check of the reward
// model, the honesty/harmlessness/prompt-kind breakdown when the data has
// them) and the report (report.json, report.md with its plots, the
// terminal summary, eval_samples.jsonl).
//
// RunSizes (sizes.go) runs the recipe at several model sizes, each a run
// in its own sub-directory on the same data with PPO both with and without
// the pretraining mix, and compares as the paper's Figure 1: the labeler's
// win rate of every model (pretrained, pretrained with a few-shot prompt,
// SFT, PPO, PPO-ptx) at every size against SFT at the largest, and the
// alignment tax on held-out skills, a few-shot evaluation of what the
// pretraining text teaches (tasks.SkillProbes) before and after alignment
// (sizes.json, sizes.md, sizes.png).
//
// A run is a directory with a sub-directory per stage. Config is the whole
// configuration: Default's values with any field set from JSON, recorded
// in pipeline_config.json; a directory started with another configuration
// is refused rather than mixed. A finished stage is not run again and an
// interrupted one resumes, so an interrupted pipeline continues where it
// stopped; stage_seconds.json keeps each stage's time over all the
// invocations that worked on the run.
//
// With a communicator of several ranks (RunOptions.Comm) every rank runs
// the pipeline: the training stages train data parallel and the rest runs
// on rank 0 alone while the others wait (dist.go).
//
// It imports train and its sub-packages, model, gpu (the contract),
// internal/atomicfile, zerolog and gonum/plot (the report's plots).
package pipeline
