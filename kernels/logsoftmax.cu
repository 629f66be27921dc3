// Fused log-softmax over the vocabulary, one block per row: the target's
// log-probability, the row's log-sum-exp and entropy in one pass over the
// logits (online maximum), and the gradient written over the logits in
// place. The N×V probabilities are never stored. The cross-entropy kernel
// runs both passes of a row in one block, for a loss whose weights are
// known before the forward pass.
//
// Precision follows gpu/cpu/logsoftmax.go: each thread keeps, for its
// running maximum m, s = Σ e^(z−m) and w = Σ e^(z−m)·(z−m) in float (z − m
// clamped at −80 so −Inf logits give finite terms); the threads' states are
// merged (rescaling by e^(m_i − m)) in a fixed order: lanes by a butterfly,
// then the warps in order. The entropy is log s − w/s and the target's
// log-probability (z_t − m) − log s, so large logits do not cancel.
//
// The logits are of the activation type, a kernel per type (_f32, _bf16;
// kernels/act.cuh): bf16 logits are widened on load and the gradient
// written over them is rounded once per element; lse, logp, entropy and the
// per-row inputs of the backward pass are float32 in both.
//
// Loads are 16-byte vectors (4 floats, 8 bf16) where the row allows: each
// row starts with a scalar head up to its first 16-byte boundary, then
// vectors, then a scalar tail (rows of V = 50257 logits are aligned
// differently row to row).
#include "common.cuh"
#include "act.cuh"

#define IG_LSM_FLOOR (-80.0f)

struct IgLsm {
    float m, s, w;
};

// ig_lsm_add adds the logit z to a thread's state.
static __device__ __forceinline__ void ig_lsm_add(IgLsm& st, float z) {
    if (z > st.m) {
        if (st.s > 0.0f) {
            const float dm = st.m - z;
            const float f = expf(dm);
            st.w = f * (st.w + dm * st.s);
            st.s *= f;
        }
        st.m = z;
    }
    float x = z - st.m;
    x = x < IG_LSM_FLOOR ? IG_LSM_FLOOR : x;
    const float e = expf(x);
    st.s += e;
    st.w += e * x;
}

// ig_lsm_merge combines two states (a thread with no logits has s = 0).
static __device__ __forceinline__ IgLsm ig_lsm_merge(IgLsm a, IgLsm b) {
    IgLsm r;
    r.m = fmaxf(a.m, b.m);
    r.s = 0.0f;
    r.w = 0.0f;
    if (a.s > 0.0f || a.s != a.s) {
        const float d = a.m - r.m, f = expf(d);
        r.s += f * a.s;
        r.w += f * (a.w + d * a.s);
    }
    if (b.s > 0.0f || b.s != b.s) {
        const float d = b.m - r.m, f = expf(d);
        r.s += f * b.s;
        r.w += f * (b.w + d * b.s);
    }
    return r;
}

static __device__ __forceinline__ IgLsm ig_lsm_shfl(IgLsm a, int o) {
    IgLsm b;
    b.m = __shfl_xor_sync(IG_FULL_MASK, a.m, o);
    b.s = __shfl_xor_sync(IG_FULL_MASK, a.s, o);
    b.w = __shfl_xor_sync(IG_FULL_MASK, a.w, o);
    return b;
}

// ig_lsm_reduce reads row z of V logits with the whole block (16-byte
// vectors where aligned) and returns, in thread 0, the row's merged state;
// sh is the block's shared scratch of one state per warp. Other threads get
// their own partial states.
template <class T>
static __device__ __forceinline__ IgLsm ig_lsm_reduce(const T* __restrict__ z, int V, IgLsm* sh) {
    constexpr int VW = IG_VW(T);
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nt = blockDim.x;
    IgLsm st;
    st.m = -3.402823466e38f;  // the lowest float: z − m stays −Inf (not NaN) for −Inf logits
    st.s = 0.0f;
    st.w = 0.0f;
    const int head = ig_head16(z, V);
    const int nv = (V - head) / VW;
    if (tid < head) ig_lsm_add(st, ig_ld(z + tid));
    for (int i = tid; i < nv; i += nt) {
        float v[VW];
        ig_ldv<VW>(z + head + i * VW, v);
#pragma unroll
        for (int k = 0; k < VW; k++) ig_lsm_add(st, v[k]);
    }
    for (int j = head + nv * VW + tid; j < V; j += nt) ig_lsm_add(st, ig_ld(z + j));
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) st = ig_lsm_merge(st, ig_lsm_shfl(st, o));
    if (lane == 0) sh[warp] = st;
    __syncthreads();
    if (tid == 0) {
        for (int w = 1; w < (nt >> 5); w++) st = ig_lsm_merge(st, sh[w]);
    }
    return st;
}

// ig_lsm_logp is the log-probability of target t in row z whose merged
// state is r, with logS = log r.s; 0 for an ignored row (t < 0).
template <class T>
static __device__ __forceinline__ float ig_lsm_logp(const T* z, IgLsm r, float logS, int t, int V) {
    return (t >= 0 && t < V) ? (ig_ld(z + t) - r.m) - logS : 0.0f;
}

// logsoftmax_forward_f32, logsoftmax_forward_bf16: per row i of logits
// [N,V]: lse[i], entropy[i] (entropy may be null) and logp[i] =
// log softmax(row)[targets[i]], 0 when targets[i] < 0.
// Launch: grid (N), 1-D blocks of a multiple of 32 threads, at most 1024
// (the wrapper uses 256); block i reduces row i. A target ≥ V is an error
// found by the check the wrapper queues first: nothing is written then.
template <class T>
static __device__ __forceinline__ void ig_lsm_forward(float* __restrict__ logp, float* __restrict__ entropy,
                                                      float* __restrict__ lse, const T* __restrict__ logits,
                                                      const int* __restrict__ targets, int N, int V) {
    __shared__ IgLsm sh[32];
    const int row = blockIdx.x;
    if (row >= N) return;
    const T* z = logits + (long long)row * V;
    const IgLsm r = ig_lsm_reduce(z, V, sh);
    if (threadIdx.x == 0) {
        const float logS = logf(r.s);
        lse[row] = r.m + logS;
        if (entropy) entropy[row] = logS - r.w / r.s;
        logp[row] = ig_lsm_logp(z, r, logS, targets[row], V);
    }
}

extern "C" __global__ void __launch_bounds__(1024) logsoftmax_forward_f32(float* __restrict__ logp,
                                                                          float* __restrict__ entropy,
                                                                          float* __restrict__ lse,
                                                                          const float* __restrict__ logits,
                                                                          const int* __restrict__ targets, int N,
                                                                          int V, const int* flag) {
    if (ig_failed(flag)) return;
    ig_lsm_forward(logp, entropy, lse, logits, targets, N, V);
}

extern "C" __global__ void __launch_bounds__(1024) logsoftmax_forward_bf16(float* __restrict__ logp,
                                                                           float* __restrict__ entropy,
                                                                           float* __restrict__ lse,
                                                                           const ig_bf16* __restrict__ logits,
                                                                           const int* __restrict__ targets, int N,
                                                                           int V, const int* flag) {
    if (ig_failed(flag)) return;
    ig_lsm_forward(logp, entropy, lse, logits, targets, N, V);
}

// logsoftmax_backward_f32, logsoftmax_backward_bf16: overwrites each row of
// logits [N,V] with dlogp·∂logp/∂z + dentropy·∂H/∂z:
// z_j ← −p_j·(g + de·(log p_j + h)) + g·[j = t], p_j = exp(z_j − lse),
// g = dlogp[i] (0 when targets[i] < 0), de = dentropy[i] and h = entropy[i]
// (0 and unused when dentropy is null).
// Launch: grid (N), 1-D blocks of any size (the wrapper uses 256); block i
// rewrites row i, in vectors where aligned as in the forward pass.
static __device__ __forceinline__ float ig_lsm_grad(float z, int j, float lse, float g, float de, float c, int t) {
    float r;
    if (de == 0.0f) {
        r = -expf(z - lse) * g;
    } else {
        float x = z - lse;
        x = x < IG_LSM_FLOOR ? IG_LSM_FLOOR : x;  // keeps p·x finite for −Inf logits
        r = -expf(x) * (c + de * x);
    }
    return j == t ? r + g : r;
}

// ig_lsm_grad_row overwrites row z of V logits with ig_lsm_grad of each
// element, with the whole block, in vectors where aligned as in the
// forward pass.
template <class T>
static __device__ __forceinline__ void ig_lsm_grad_row(T* z, int V, float L, float g, float de, float c, int t) {
    constexpr int VW = IG_VW(T);
    const int tid = threadIdx.x, nt = blockDim.x;
    const int head = ig_head16(z, V);
    const int nv = (V - head) / VW;
    if (tid < head) ig_st(z + tid, ig_lsm_grad(ig_ld(z + tid), tid, L, g, de, c, t));
    for (int i = tid; i < nv; i += nt) {
        const int j = head + i * VW;
        float v[VW];
        ig_ldv<VW>(z + j, v);
#pragma unroll
        for (int k = 0; k < VW; k++) v[k] = ig_lsm_grad(v[k], j + k, L, g, de, c, t);
        ig_stv<VW>(z + j, v);
    }
    for (int j = head + nv * VW + tid; j < V; j += nt) ig_st(z + j, ig_lsm_grad(ig_ld(z + j), j, L, g, de, c, t));
}

template <class T>
static __device__ __forceinline__ void ig_lsm_backward(T* __restrict__ logits, const float* __restrict__ lse,
                                                       const float* __restrict__ entropy,
                                                       const int* __restrict__ targets, const float* __restrict__ dlogp,
                                                       const float* __restrict__ dentropy, int N, int V) {
    const int row = blockIdx.x;
    if (row >= N) return;
    const int t = targets[row];
    const float g = t >= 0 ? dlogp[row] : 0.0f;
    const float de = dentropy ? dentropy[row] : 0.0f;
    const float h = dentropy ? entropy[row] : 0.0f;
    ig_lsm_grad_row(logits + (long long)row * V, V, lse[row], g, de, g + de * h, t);
}

extern "C" __global__ void logsoftmax_backward_f32(float* __restrict__ logits, const float* __restrict__ lse,
                                                   const float* __restrict__ entropy, const int* __restrict__ targets,
                                                   const float* __restrict__ dlogp, const float* __restrict__ dentropy,
                                                   int N, int V, const int* flag) {
    if (ig_failed(flag)) return;
    ig_lsm_backward(logits, lse, entropy, targets, dlogp, dentropy, N, V);
}

extern "C" __global__ void logsoftmax_backward_bf16(ig_bf16* __restrict__ logits, const float* __restrict__ lse,
                                                    const float* __restrict__ entropy,
                                                    const int* __restrict__ targets, const float* __restrict__ dlogp,
                                                    const float* __restrict__ dentropy, int N, int V,
                                                    const int* flag) {
    if (ig_failed(flag)) return;
    ig_lsm_backward(logits, lse, entropy, targets, dlogp, dentropy, N, V);
}

// crossentropy_f32, crossentropy_bf16: logsoftmax_forward and
// logsoftmax_backward (without the entropy term) of one row in one block,
// for the loss Σ dlogp[i]·logp[i]: lse[i], logp[i] and entropy[i] (entropy
// may be null) as the forward kernel computes them (the same reduction in
// the same order, which gives the entropy's sum at no extra read), then
// the row overwritten with dlogp[i]·(onehot(targets[i]) − p), p from the
// float32 lse[i], as the backward kernel computes it; ignored rows
// (targets[i] < 0) get logp 0 and a zero gradient row.
// Each row is read twice and written once: the statistics pass, then the
// gradient pass, which re-reads the row right after the block's reduction,
// likely from L2 (a bf16 row of GPT-2's 50257 logits is 100 KB); the
// unfused ops read it three times over two launches.
// Launch: as logsoftmax_forward: grid (N), 1-D blocks of a multiple of 32
// threads, at most 1024 (the wrapper uses 256); a target ≥ V is an error
// found by the check the wrapper queues first, and nothing is written then.
template <class T>
static __device__ __forceinline__ void ig_cross_entropy(float* __restrict__ logp, float* __restrict__ entropy,
                                                        float* __restrict__ lse, T* __restrict__ logits, const int* __restrict__ targets,
                                                        const float* __restrict__ dlogp, int N, int V) {
    __shared__ IgLsm sh[32];
    __shared__ float shL;
    const int row = blockIdx.x;
    if (row >= N) return;
    T* z = logits + (long long)row * V;
    const int t = targets[row];
    const IgLsm r = ig_lsm_reduce(z, V, sh);
    if (threadIdx.x == 0) {
        const float logS = logf(r.s);
        const float L = r.m + logS;
        lse[row] = L;
        if (entropy) entropy[row] = logS - r.w / r.s;
        logp[row] = ig_lsm_logp(z, r, logS, t, V);
        shL = L;
    }
    __syncthreads();  // the statistics (and the read of z[t]) before any gradient is written
    const float g = t >= 0 ? dlogp[row] : 0.0f;
    ig_lsm_grad_row(z, V, shL, g, 0.0f, g, t);
}

extern "C" __global__ void __launch_bounds__(1024) crossentropy_f32(float* __restrict__ logp, float* __restrict__ entropy,
                                                                    float* __restrict__ lse,
                                                                    float* __restrict__ logits,
                                                                    const int* __restrict__ targets,
                                                                    const float* __restrict__ dlogp, int N, int V,
                                                                    const int* flag) {
    if (ig_failed(flag)) return;
    ig_cross_entropy(logp, entropy, lse, logits, targets, dlogp, N, V);
}

extern "C" __global__ void __launch_bounds__(1024) crossentropy_bf16(float* __restrict__ logp, float* __restrict__ entropy,
                                                                     float* __restrict__ lse,
                                                                     ig_bf16* __restrict__ logits,
                                                                     const int* __restrict__ targets,
                                                                     const float* __restrict__ dlogp, int N, int V,
                                                                     const int* flag) {
    if (ig_failed(flag)) return;
    ig_cross_entropy(logp, entropy, lse, logits, targets, dlogp, N, V);
}
