// Package model is the networks: GPT-2 (gpt.go) and the Llama family
// (Llama, Qwen2, Mistral: llama.go, with RMSNorm, rotary embeddings,
// grouped-query attention and SwiGLU), chosen by Config.Arch behind one
// Model type so that training code never asks which. It holds their
// configuration, their parameters (all in one contiguous buffer, each
// weight a view), explicit forward and backward passes written against the
// gpu compute contract, the language-model head and a scalar head for
// rewards and values (head.go, shared), generation with a KV cache
// (prefill, single-token decode steps, seeded sampling), checkpoints in
// Hugging Face layout (GPT-2, Llama, Qwen2 and Mistral names; one file or
// shards with an index; f32 or bf16), and their inspection (per-tensor
// norm, mean, spread, range and NaN/Inf counts, computed on the host).
//
// Sub-packages: model/safetensors (the file format) and model/tokenizer.
//
// It imports gpu (never a concrete backend), its own sub-packages,
// internal/atomicfile, gorgonia.org/tensor (the host-side n-dimensional
// array, for inspection) and the standard library; tests also import
// gpu/cpu.
package model
