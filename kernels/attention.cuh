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

// ig_attn_heads locates the heads of sequence b in a packed qkv [B,T,W],
// W = (H+2·KVH)·hs (grouped-query attention; KVH = H is multi-head
// attention): query head h at column h·hs, the key and value parts of its
// key/value head g = h/(H/KVH) at columns (H+g)·hs and (H+KVH+g)·hs. q, k
// and v are element offsets of those columns in row 0 of sequence b; W is
// the row stride of qkv and dqkv, C = H·hs that of out and dout.
struct ig_attn_heads {
    long long base, W, C;
    int H, KVH, hs;
    __device__ ig_attn_heads(int b, int T, int H_, int KVH_, int hs_)
        : base((long long)b * T * ((long long)(H_ + 2 * KVH_) * hs_)),
          W((long long)(H_ + 2 * KVH_) * hs_),
          C((long long)H_ * hs_),
          H(H_),
          KVH(KVH_),
          hs(hs_) {}
    __device__ long long q(int h) const { return base + (long long)h * hs; }
    __device__ long long k(int h) const { return base + (long long)(H + h / (H / KVH)) * hs; }
    __device__ long long v(int h) const { return base + (long long)(H + KVH + h / (H / KVH)) * hs; }
};

// ig_attn_ld reads an activation element as float (bf16 widened exactly);
// ig_attn_st stores one (bf16 rounded once, to nearest even).
static __device__ __forceinline__ float ig_attn_ld(const float* p) { return *p; }
static __device__ __forceinline__ float ig_attn_ld(const ig_bf16* p) { return ig_bf16_to_float(*p); }
static __device__ __forceinline__ void ig_attn_st(float* p, float v) { *p = v; }
static __device__ __forceinline__ void ig_attn_st(ig_bf16* p, float v) { *p = ig_bf16_from_float(v); }
