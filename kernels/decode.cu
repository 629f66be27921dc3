// Incremental decoding: appending keys and values to a KV cache, and one
// query per sequence against it.
//
// Caches are [B,KVH,S,hs]: one key/value head's keys are contiguous rows
// of hs elements; qkv rows are attention.cu's, W = (H+2·KVH)·hs wide
// (grouped key/value heads, ig_attn_heads). Every kernel is instantiated for float32 activations and for
// bf16 ones (name suffix _bf16: qkv, the caches and out are bf16): the
// cache write copies bf16 elements unchanged, decode widens them exactly,
// computes in float32 and rounds each output element once. Decode reads
// one query row, so it stays on the CUDA cores in both: each key and value
// is used once and the tensor cores would have nothing to reuse.
#include "attention.cuh"

// kvcache_write: for every sequence b with start s0 = start[b] (0 when
// start is null; b skipped when s0 < 0), position t < T and column
// c < KVH·hs (key/value head g = c / hs, d = c mod hs):
// kc[b,g,s0+t,d] = qkv[b,t,H·hs+c] and vc[b,g,s0+t,d] = qkv[b,t,(H+KVH)·hs+c].
// Launch: grid (B·T), 1-D blocks of any size (the wrapper uses 128); block
// b·T+t copies row t of sequence b, threads striding over the columns.
// Positions s0+t ≥ S are errors found by the check the wrapper queues
// first; the kernel writes nothing once the flag is set and never writes
// past the cache.
template <typename T_>
static __device__ __forceinline__ void ig_kvcache_write(T_* __restrict__ kc, T_* __restrict__ vc,
                                                        const T_* __restrict__ qkv, const int* __restrict__ start,
                                                        int B, int T, int H, int KVH, int hs, int S) {
    const int i = blockIdx.x;
    if (i >= B * T) return;
    const int b = i / T, t = i % T;
    const int s0 = start ? start[b] : 0;
    if (s0 < 0 || s0 + t >= S) return;
    const T_* row = qkv + (long long)i * (H + 2 * KVH) * hs;
    const T_* krow = row + (long long)H * hs;
    const T_* vrow = row + (long long)(H + KVH) * hs;
    for (int c = threadIdx.x; c < KVH * hs; c += blockDim.x) {
        const int g = c / hs, d = c - g * hs;
        const long long dst = (((long long)b * KVH + g) * S + s0 + t) * hs + d;
        kc[dst] = krow[c];
        vc[dst] = vrow[c];
    }
}

#define IG_KVCACHE_WRITE(NAME, T_)                                                                          \
    extern "C" __global__ void NAME(T_* __restrict__ kc, T_* __restrict__ vc, const T_* __restrict__ qkv,   \
                                    const int* __restrict__ start, int B, int T, int H, int KVH, int hs,    \
                                    int S, const int* flag) {                                               \
        if (ig_failed(flag)) return;                                                                        \
        ig_kvcache_write<T_>(kc, vc, qkv, start, B, T, H, KVH, hs, S);                                      \
    }

IG_KVCACHE_WRITE(kvcache_write, float)
IG_KVCACHE_WRITE(kvcache_write_bf16, ig_bf16)

#undef IG_KVCACHE_WRITE

// attention_decode_hs*: out[b, h·hs..] = softmax(q·kᵀ/sqrt(hs))·v over the
// cache positions [0, n) of key/value head h/(H/KVH), n = lens[b] (clamped
// to [0,S]; n = 0 writes a zero row), q query head h of qkv
// [B,(H+2·KVH)·hs].
// Launch: grid (B·H), 256 threads (8 warps); block b·H+h handles one query
// head.
// Warp w takes the groups of 4 positions g = w, w+8, ...: the lanes own the
// dimensions d = lane, lane+32, .. < HSP (HSP = 32, 64, 96 or 128 ≥ hs),
// form the 4 scores with warp sums, and keep an online softmax (running
// maximum m, sum l, and the unnormalised output) in the log2 domain. The 8
// warps' states are then merged through shared memory in warp order. Any S
// works; each key and value row is read once.
template <typename T_, int HSP>
static __device__ __forceinline__ void ig_decode(T_* __restrict__ out, const T_* __restrict__ qkv,
                                                 const T_* __restrict__ kc, const T_* __restrict__ vc,
                                                 const int* __restrict__ lens, int H, int KVH, int hs, int S,
                                                 float scale2) {
    constexpr int DPL = HSP / 32, NW = 8;
    __shared__ float wm[NW], wl[NW];
    __shared__ float wo[NW][HSP];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    int n = lens[b];
    n = n < 0 ? 0 : (n > S ? S : n);
    T_* o = out + ((long long)b * H + h) * hs;
    if (n == 0) {  // uniform over the block
        for (int d = tid; d < hs; d += blockDim.x) ig_attn_st(o + d, 0.0f);
        return;
    }
    const T_* q = qkv + (long long)b * (H + 2 * KVH) * hs + (long long)h * hs;
    const long long cache = ((long long)b * KVH + h / (H / KVH)) * S * hs;
    const T_* K = kc + cache;
    const T_* Vv = vc + cache;
    float qr[DPL], acc[DPL];
#pragma unroll
    for (int i = 0; i < DPL; i++) {
        const int d = lane + 32 * i;
        qr[i] = d < hs ? ig_attn_ld(q + d) * scale2 : 0.0f;
        acc[i] = 0.0f;
    }
    float m = -INFINITY, l = 0.0f;
    for (int j0 = warp * 4; j0 < n; j0 += NW * 4) {
        float s[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const int j = j0 + k;
            float part = 0.0f;
            if (j < n) {
#pragma unroll
                for (int i = 0; i < DPL; i++) {
                    const int d = lane + 32 * i;
                    if (d < hs) part += qr[i] * ig_attn_ld(K + (long long)j * hs + d);
                }
            }
            s[k] = part;
        }
#pragma unroll
        for (int k = 0; k < 4; k++) {
            s[k] = ig_warp_sum(s[k]);
            if (j0 + k >= n) s[k] = -INFINITY;
        }
        const float mnew = fmaxf(m, fmaxf(fmaxf(s[0], s[1]), fmaxf(s[2], s[3])));
        const float alpha = m == -INFINITY ? 0.0f : exp2f(m - mnew);
        float p[4];
#pragma unroll
        for (int k = 0; k < 4; k++) p[k] = s[k] == -INFINITY ? 0.0f : exp2f(s[k] - mnew);
        l = l * alpha + ((p[0] + p[1]) + (p[2] + p[3]));
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = lane + 32 * i;
            float a = acc[i] * alpha;
            if (d < hs) {
#pragma unroll
                for (int k = 0; k < 4; k++)
                    if (j0 + k < n) a += p[k] * ig_attn_ld(Vv + (long long)(j0 + k) * hs + d);
            }
            acc[i] = a;
        }
        m = mnew;
    }
    if (lane == 0) {
        wm[warp] = m;
        wl[warp] = l;
    }
#pragma unroll
    for (int i = 0; i < DPL; i++) wo[warp][lane + 32 * i] = acc[i];
    __syncthreads();
    float M = -INFINITY;
#pragma unroll
    for (int w = 0; w < NW; w++) M = fmaxf(M, wm[w]);
    float L = 0.0f;
    float f[NW];
#pragma unroll
    for (int w = 0; w < NW; w++) {
        f[w] = wm[w] == -INFINITY ? 0.0f : exp2f(wm[w] - M);
        L += wl[w] * f[w];
    }
    const float inv = 1.0f / L;
    for (int d = tid; d < hs; d += blockDim.x) {
        float a = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; w++) a += wo[w][d] * f[w];
        ig_attn_st(o + d, a * inv);
    }
}

#define IG_DECODE(NAME, T_, HSP)                                                                            \
    extern "C" __global__ void __launch_bounds__(256) NAME##HSP(                                            \
        T_* __restrict__ out, const T_* __restrict__ qkv, const T_* __restrict__ kc,                        \
        const T_* __restrict__ vc, const int* __restrict__ lens, int B, int H, int KVH, int hs, int S,      \
        float scale2, const int* flag) {                                                                    \
        if (ig_failed(flag)) return;                                                                        \
        if ((int)blockIdx.x >= B * H) return;                                                               \
        ig_decode<T_, HSP>(out, qkv, kc, vc, lens, H, KVH, hs, S, scale2);                                  \
    }

IG_DECODE(attention_decode_hs, float, 32)
IG_DECODE(attention_decode_hs, float, 64)
IG_DECODE(attention_decode_hs, float, 96)
IG_DECODE(attention_decode_hs, float, 128)
IG_DECODE(attention_decode_bf16_hs, ig_bf16, 32)
IG_DECODE(attention_decode_bf16_hs, ig_bf16, 64)
IG_DECODE(attention_decode_bf16_hs, ig_bf16, 96)
IG_DECODE(attention_decode_bf16_hs, ig_bf16, 128)

#undef IG_DECODE

// decode_advance: generation's per-token bookkeeping (gpu.Backend.DecodeAdvance).
// state [3,B] holds per sequence its cached length n, generated count g and
// stop code s (-1 active; 0 max-new, 1 EOS, 2 context); t = sampled[b]. An
// active sequence stops at t = eos, else keeps out[b,g] = t, g+1, and stops
// at g = M or n+1 = ctx, else is fed: ids rows (tokens, positions, starts,
// lengths) get (t, n, n, n+1) and n+1; every other sequence gets (0, 0, -1, 0).
// live[0] = the sequences fed. An active state with g outside [0, M) raises
// code at its index and changes nothing of that sequence.
// Launch: one block of any multiple of 32 threads, striding over B.
extern "C" __global__ void decode_advance(int* __restrict__ ids, int* __restrict__ state, int* __restrict__ out,
                                          int* __restrict__ live, const int* __restrict__ sampled, int B, int M,
                                          int eos, int ctx, int code, int* flag) {
    __shared__ int fed;
    if (threadIdx.x == 0) fed = 0;
    __syncthreads();
    int* n = state;
    int* g = state + B;
    int* s = state + 2 * B;
    for (int b = threadIdx.x; b < B; b += blockDim.x) {
        int tok = 0, pos = 0, start = -1, len = 0;
        if (s[b] == -1) {
            const int t = sampled[b];
            const int gb = g[b];
            if (gb < 0 || gb >= M) {
                ig_raise(flag, code, b, gb);
            } else if (t == eos) {
                s[b] = 1;
            } else {
                out[(long long)b * M + gb] = t;
                g[b] = gb + 1;
                if (gb + 1 == M) {
                    s[b] = 0;
                } else if (n[b] + 1 == ctx) {
                    s[b] = 2;
                } else {
                    tok = t, pos = n[b], start = n[b], len = n[b] + 1;
                    n[b] = len;
                    atomicAdd(&fed, 1);
                }
            }
        }
        ids[b] = tok;
        ids[B + b] = pos;
        ids[2 * B + b] = start;
        ids[3 * B + b] = len;
    }
    __syncthreads();
    if (threadIdx.x == 0) live[0] = fed;
}
