// Package gpu is the compute contract between the model and the hardware:
// Tensor (a shape over backend-owned storage) and Backend (allocation,
// host↔device copies, and the ops of a training step of GPT-2 and of the
// Llama family: RMSNorm, rotary embeddings, SwiGLU, grouped-query
// attention), plus the counter-based RNG every backend shares so results
// agree across them, and the host-side rotary frequencies (RoPEInvFreq).
//
// Implementations live in sub-packages: gpu/cpu (pure Go, the default) and,
// with the build tag cuda, gpu/cuda. Packages model and train program
// against this contract only and never learn which backend runs.
//
// It imports only the standard library.
package gpu
