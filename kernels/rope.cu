// Rotary position embeddings, in place on the query and key heads of a
// packed qkv [B,T,(H+2·KVH)·hs] (attention.cu's layout; the value heads are
// not touched), in Hugging Face's rotate_half convention: element i of a
// head pairs with element i + hs/2 and, at position p,
//   x'[i] = x[i]·cos θ − x[i+hs/2]·sin θ,  x'[i+hs/2] = x[i+hs/2]·cos θ + x[i]·sin θ,
// θ = p·invFreq[i], a float32 product as the cpu backend and transformers
// form it; sincosf is CUDA's accurate one (full range reduction). The
// backward pass rotates by −θ. One thread owns one frequency i of one row
// and rotates that pair in every query and key head of the row, so the
// angle is computed once per row and frequency.
//
// qkv is of the activation type (rope_f32, rope_bf16): bf16 elements are
// widened, rotated in float and rounded once. invFreq [hs/2] is float32.
#include "common.cuh"
#include "act.cuh"

template <class T_>
static __device__ __forceinline__ void ig_rope(T_* __restrict__ x, const float* __restrict__ invFreq,
                                               const int* __restrict__ start, int B, int T, int H, int KVH, int hs,
                                               float sign) {
    const int half = hs >> 1;
    const long long idx = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (idx >= (long long)B * T * half) return;
    const int i = (int)(idx % half);
    const long long r = idx / half;  // the row b·T + t
    const int b = (int)(r / T);
    int pos = (int)(r % T);
    if (start != nullptr) {
        if (start[b] < 0) return;  // an inactive sequence
        pos += start[b];
    }
    float s, c;
    sincosf((float)pos * invFreq[i], &s, &c);
    s *= sign;
    T_* p = x + r * ((long long)(H + 2 * KVH) * hs) + i;
    for (int h = 0; h < H + KVH; h++, p += hs) {
        const float a = ig_ld(p), z = ig_ld(p + half);
        ig_st(p, a * c - z * s);
        ig_st(p + half, z * c + a * s);
    }
}

// rope_f32, rope_bf16: the rotation of every query and key head of qkv
// [B,T,(H+2·KVH)·hs] by the angles of position start[b] + t (start null:
// 0; start[b] < 0: sequence b is left alone), sign = 1 forward, −1
// backward.
// Launch: 1-D, at least B·T·hs/2 threads in all (the wrapper uses blocks
// of 256): thread b·T·hs/2 + t·hs/2 + i takes frequency i of row (b, t).
extern "C" __global__ void rope_f32(float* __restrict__ x, const float* __restrict__ invFreq,
                                    const int* __restrict__ start, int B, int T, int H, int KVH, int hs,
                                    float sign) {
    ig_rope(x, invFreq, start, B, T, H, KVH, hs, sign);
}

extern "C" __global__ void rope_bf16(ig_bf16* __restrict__ x, const float* __restrict__ invFreq,
                                     const int* __restrict__ start, int B, int T, int H, int KVH, int hs,
                                     float sign) {
    ig_rope(x, invFreq, start, B, T, H, KVH, hs, sign);
}
