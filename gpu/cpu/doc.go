// Package cpu implements gpu.Backend in pure Go: every op of a GPT-2 or
// Llama-family training step and of generation (KV-cache writes,
// single-query decode attention, sampling), multi-threaded over rows, heads
// and tiles. It is the default backend
// and the reference the cuda backend is tested against. Matrix multiplication,
// the hot spot, uses a cache-blocked, packed kernel with an AVX2/FMA
// micro-kernel in assembly on amd64 and a portable Go one elsewhere.
// Arguments are checked by package gpu's Checker, as on every backend, with
// its index rules run on the host data. Every op also runs with bf16
// activations, at the contract's rounding points: its bf16 arguments are
// widened into float32 scratch, the float32 kernel runs, and its bf16
// outputs are rounded once (bf16.go).
//
// It imports the standard library, package gpu and golang.org/x/sys/cpu
// (to select the assembly micro-kernel by CPU feature).
package cpu
