// Shared helpers of the attention kernels (attention.cu on the CUDA cores,
// attention_mma*.cu on the tensor cores): the valid length of a sequence,
// the log2-domain constants, and element loads and stores of the two
// activation storage types.
#pragma once
#include "common.cuh"
#include "bf16.cuh"

#define IG_LN2F 0.69314718055994531f
#define IG_LOG2EF 1.4426950408889634f

// ig_attn_len is the valid length of sequence b, clamped to [0,T] (the
// check queued before the kernels reports a length outside it).
static __device__ __forceinline__ int ig_attn_len(const int* validLen, int b, int T) {
    if (validLen == nullptr) return T;
    const int n = validLen[b];
    return n < 0 ? 0 : (n > T ? T : n);
}

// ig_attn_ld reads an activation element as float (bf16 widened exactly);
// ig_attn_st stores one (bf16 rounded once, to nearest even).
static __device__ __forceinline__ float ig_attn_ld(const float* p) { return *p; }
static __device__ __forceinline__ float ig_attn_ld(const ig_bf16* p) { return ig_bf16_to_float(*p); }
static __device__ __forceinline__ void ig_attn_st(float* p, float v) { *p = v; }
static __device__ __forceinline__ void ig_attn_st(ig_bf16* p, float v) { *p = ig_bf16_from_float(v); }
