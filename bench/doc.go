// Package bench is instructgo's benchmark harness: it times the ops of the
// compute contract and whole training steps on any gpu.Backend, in the
// precision a run trains in, and states every figure as a fraction of a
// ceiling measured on the same machine and, for FLOP rates, of the card's
// published peak.
//
// Precision (Options.Precision, model.Precision): the step benchmarks build
// their models with it; the op benchmarks run their activation-class
// tensors (gpu.Checker's classes: activations, their gradients, the weights
// the ops read) in its activation dtype, bf16 for BF16, and keep the
// float32 class (statistics, losses, parameter gradients, optimizer state)
// in float32; byte counts use each tensor's element size. The report
// records the precision, and Compare flags two reports of different ones.
//
// What it measures (Run):
//
//   - ceilings: on the cpu backend the float32 FMA peak (cpu.PeakFMA; the
//     cpu backend multiplies bf16 operands in float32, so it is the compute
//     ceiling of every precision) and the memory bandwidth
//     (MeasureMemBandwidth: a multi-threaded copy and a multi-threaded read
//     over buffers four times the last-level cache); on any other backend
//     the same two quantities through the contract, a large MatMul in the
//     run's precision (the GEMM rate, cuBLAS on cuda) and a large Copy (the
//     device's copy bandwidth). The contract gains no op for this. Beside
//     them, the published dense peak of the card for the precision
//     (LookupPeak, a table of vendor datasheet figures matched against the
//     name the backend's Device method reports); none on the cpu.
//   - ops: MatMul (square sizes, the model's real shapes, and the few-row
//     products of decoding) in GFLOP/s; fused attention forward and
//     backward in TFLOP/s with FlashAttention's FLOP count (AttentionFLOPs)
//     across sequence lengths and head sizes 32, 64 and 128; the fused
//     log-softmax, the cross-entropy pair (log-softmax forward and backward
//     in one call, in GB/s of logits moved: CrossEntropyBytes), layernorm,
//     AdamW, decode attention and sampling in GB/s against the memory
//     ceiling.
//   - steps: an SFT training step (tokens/s, MFU with llm.c's count
//     6·N + 6·L·C·T per token), a reward-model step (comparisons/s) and a
//     PPO-ptx iteration split into generation with the KV cache, the
//     rollout's scoring forwards and the update, for the tiny and gpt2
//     configs. The PPO iteration is train's own (train.PPOIteration, which
//     a test holds to PPO's loop metric for metric), on random models with
//     responses that always run to full length. The SFT and reward-model
//     steps are assembled here from model, the contract and train's
//     exported pieces (Optimizer, KWayLoss) the way train/sft.go and
//     train/rm.go do them; when one of those loops changes shape, its
//     benchmark here follows.
//
// Every FLOP rate (GEMMs, attention, steps) carries two fractions, named
// apart in the table and the JSON: of the measured compute ceiling
// (Result.OfMeasured, of_measured_ceiling) and of the published peak
// (Result.OfPublished, of_published_peak, absent where no peak is known).
//
// Method: every benchmark runs warm-up calls first, then timed samples
// until it has Timing.MinReps of them and Timing.MinTime has passed; a
// sample batches enough calls to last Timing.MinSample, so that on an
// asynchronous backend the Sync that closes it costs little. Results
// report the median time per call and the spread (min, max, quartiles).
// A backend that implements EventTimer (the cuda backend) is timed with
// device events; the others (the cpu backend) with the host clock around
// Sync. Inputs are random, never zeros. The memory-bound ops
// rotate through copies of their operands that together exceed the cache
// (Options.RotateBytes), so that every call reads from memory, as it does
// inside a training step; compute-bound products reuse their operands, as
// a blocked GEMM does anyway.
//
// Output: a Report holds the machine (CPU, cores, GPU, driver, CUDA
// version, commit, Go version), the settings (the precision among them),
// the ceilings and every Result; it prints as a table (WriteTable) and
// marshals to JSON (WriteJSON, ReadReport, which also reads the older
// schema 1). Compare gives the ratio of every figure two reports share.
//
// bench may import gpu (the contract, and gpu/cpu for its FMA peak and to
// tell the cpu backend apart), model and train; never cmd. It logs through
// zerolog only (Options.Log) and writes tables to the io.Writer it is
// given. The cache size and load average come from Linux's /sys and /proc
// where they exist.
package bench
