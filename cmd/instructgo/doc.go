// Command instructgo trains language models to follow instructions with
// human feedback, the InstructGPT way: supervised fine-tuning (SFT), a reward
// model (RM), then PPO with a pretraining mix (PPO-ptx). It also benchmarks
// ops and training steps, inspects checkpoints (per-tensor statistics and
// NaN/Inf counts), and describes the machine and build it runs on.
//
// This package is the command line only: flags and configuration, logging
// setup (zerolog), choosing and opening the compute backend (--device), and
// mapping errors to exit codes. It may import every project package (gpu,
// gpu/cpu, model, train, bench, ...) but holds no math: the work happens in
// those packages, and commands only wire them together.
//
// Output and exit codes: a command's results go to stdout (cli.App.Writer);
// logs go to stderr as zerolog console text or JSON lines (--log-format).
// On failure one line "instructgo: <error>" goes to stderr and the exit code
// is 2 for usage errors (unknown command or flag, bad flag value), the code
// of a cli.ExitCoder when a command returns one (e.g. 130 after SIGINT), and
// 1 for everything else.
//
// Global flags (--log-level, --log-format, --device, --threads) go before
// the command: instructgo --device cpu info.
package main
