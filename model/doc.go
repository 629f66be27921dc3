// Package model is the GPT-2-architecture network: its configuration, its
// parameters (all in one contiguous buffer, each weight a view), an explicit
// forward and backward pass written against the gpu compute contract, the
// language-model head and a scalar head for rewards and values, generation
// with a KV cache (prefill, single-token decode steps, seeded sampling),
// checkpoints in Hugging Face layout, and their inspection (per-tensor norm,
// mean, spread, range and NaN/Inf counts, computed on the host).
//
// Sub-packages: model/safetensors (the file format) and model/tokenizer.
//
// It imports gpu (never a concrete backend), its own sub-packages,
// internal/atomicfile, gorgonia.org/tensor (the host-side n-dimensional
// array, for inspection) and the standard library; tests also import
// gpu/cpu.
package model
