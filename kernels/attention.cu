// Fused causal multi-head attention, FlashAttention-2 style, on the CUDA
// cores, for float32 activations and, as the fallback of the tensor-core
// kernels (attention_mma*.cu), for bf16 activations of the head sizes and
// alignments those do not take. The T×T score matrix never reaches device
// memory.
//
// Storage: every kernel is instantiated for float32 (attention_*_hs*) and
// for bf16 activations (attention_*_bf16_hs*: qkv, out, dout and dqkv are
// bf16, lse and the D scratch float32): bf16 elements are widened exactly on
// load, all arithmetic is float32 as in the float32 kernels, and each output
// element is rounded once when it is stored.
//
// Layout (gpu.Backend.AttentionForward): qkv [B,T,W], W = (H+2·KVH)·hs:
// H query heads, then KVH key heads, then KVH value heads (grouped-query
// attention; KVH = H is multi-head attention, W = 3C). Query head h reads
// columns h·hs.. and the keys and values of key/value head
// g = h/(H/KVH), columns (H+g)·hs.. and (H+KVH+g)·hs.. (ig_attn_heads);
// out [B,T,C], C = H·hs; lse [B,H,T]. Rows t ≥ n = validLen[b] (clamped
// to [0,T]) are padding: out = 0, lse = 0, and in the backward pass they
// get a zero gradient and pass none; keys j ≥ n are never read.
//
// Head sizes: each kernel is instantiated for a padded head size HSP of 32,
// 64, 96 or 128 and takes the real hs ≤ HSP at run time (the Go wrapper picks
// the smallest HSP ≥ hs and rejects hs > 128); the dimensions hs..HSP are
// zero in shared memory and never written out. All tiles are static shared
// memory below 48 KiB; lane j of a warp owns key (or query) j of a 32-wide
// tile, and in the output accumulators lane l owns the dimensions
// l, l+32, .. < HSP.
//
// Scores are kept in the log2 domain: s2 = q·k·scale·log2(e), so that
// probabilities are exp2f(s2 − m2) and lse = (m2 + log2 l)·ln 2.
//
// Forward (attention_forward_hs*): grid (ceil(T/BR), B·H), 128 threads (4
// warps); block x handles query rows [q0, q0+BR) of one (b, h) with
// q0 = (gridDim.x−1−x)·BR (the longest rows start first); warp w owns R
// rows. The Q tile stays in shared memory; K (transposed, padded to 33
// columns against bank conflicts) and V tiles of 32 keys are streamed
// through shared memory up to the block's causal end. Per tile each lane
// computes its key's scores for the warp's R rows, the row maxima are warp
// reductions, each lane keeps a partial row sum (reduced once at the end)
// and the R×HSP/32 output accumulators are rescaled by exp2(m_old − m_new)
// and updated with P·V through a per-warp 32-wide P row in shared memory.
//
// Backward, two kernels and no atomics (deterministic):
//  - attention_backward_dq_hs*: the forward's tiling over query rows; per
//    key tile it recomputes S and dP = dO·Vᵀ, P = exp2(S2 − lse2) and
//    dS = P∘(dP − D) and accumulates dQ += dS·K. It first computes
//    D_t = dO_t·O_t for its rows and stores it in Dbuf [B,H,T] (0 for
//    padded rows) for the second kernel.
//  - attention_backward_dkdv_hs*: grid (ceil(T/BK), B·KVH), 128 threads;
//    block x owns keys [k0, k0+BK) of one key/value head (warp w owns R of
//    them) with K and V in shared memory; for each query head of the
//    group in turn it streams 32-query tiles of Q and dO (both transposed
//    and padded) from q = k0 to n, recomputes Pᵀ and dSᵀ for its keys
//    (lane = query) and accumulates dV += Pᵀ·dO and dK += dSᵀ·Q, so a
//    shared head's gradient sums its group in a fixed order.
//  dQ and dK are scaled by 1/sqrt(hs) at the end. Every block writes its
//  whole rows of dqkv (zeros for padding): dqkv is overwritten.
//
// Errors: a valid length outside [0,T] is an error found by the check the
// Go wrapper queues first; these kernels then write nothing (flag), and
// clamp n to [0,T] in any case.
#include "attention.cuh"

#define IG_ATT_BC 32

// ---------------------------------------------------------------- forward

template <typename T_, int HSP, int R, int W>
static __device__ __forceinline__ void ig_attn_fwd(T_* __restrict__ out, float* __restrict__ lse,
                                                   const T_* __restrict__ qkv, const int* __restrict__ validLen,
                                                   int T, int H, int KVH, int hs, float scale2) {
    constexpr int BR = R * W, BC = IG_ATT_BC, DPL = HSP / 32, NT = W * 32;
    __shared__ __align__(16) float Qs[BR][HSP];
    __shared__ float Kt[HSP][BC + 1];
    __shared__ __align__(16) float Vs[BC][HSP];
    __shared__ __align__(16) float Ps[W][R][BC];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BR;
    if (q0 >= T) return;  // uniform over the block
    const int n = ig_attn_len(validLen, b, T);
    const ig_attn_heads hd(b, T, H, KVH, hs);
    const long long QW = hd.W, C = hd.C;
    const T_* base = qkv + hd.q(h);
    const T_* kb = qkv + hd.k(h);
    const T_* vb = qkv + hd.v(h);

    for (int idx = tid; idx < BR * HSP; idx += NT) {
        const int r = idx / HSP, d = idx % HSP, t = q0 + r;
        Qs[r][d] = (t < n && d < hs) ? ig_attn_ld(base + t * QW + d) : 0.0f;
    }

    float m[R], l[R], o[R][DPL];
#pragma unroll
    for (int r = 0; r < R; r++) {
        m[r] = -INFINITY;
        l[r] = 0.0f;
#pragma unroll
        for (int i = 0; i < DPL; i++) o[r][i] = 0.0f;
    }
    const int tw0 = q0 + warp * R;     // the warp's first row
    const int kend = min(q0 + BR, n);  // keys the block's rows may see
    for (int j0 = 0; j0 < kend; j0 += BC) {
        __syncthreads();  // the previous tile is no longer read (and Qs is written)
        for (int idx = tid; idx < BC * HSP; idx += NT) {
            const int j = idx / HSP, d = idx % HSP, jg = j0 + j;
            const bool ok = jg < kend && d < hs;
            Kt[d][j] = ok ? ig_attn_ld(kb + jg * QW + d) : 0.0f;
            Vs[j][d] = ok ? ig_attn_ld(vb + jg * QW + d) : 0.0f;
        }
        __syncthreads();
        if (tw0 >= n || j0 > tw0 + R - 1) continue;  // uniform per warp: nothing to see here
        float s[R];
#pragma unroll
        for (int r = 0; r < R; r++) s[r] = 0.0f;
#pragma unroll 4
        for (int d = 0; d < HSP; d += 4) {
            const float k0 = Kt[d][lane], k1 = Kt[d + 1][lane], k2 = Kt[d + 2][lane], k3 = Kt[d + 3][lane];
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float4 q = *reinterpret_cast<const float4*>(&Qs[warp * R + r][d]);
                s[r] += q.x * k0 + q.y * k1 + q.z * k2 + q.w * k3;
            }
        }
        const int jg = j0 + lane;
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int t = tw0 + r;
            const float sv = (jg <= t && t < n) ? s[r] * scale2 : -INFINITY;
            const float mnew = fmaxf(m[r], ig_warp_max(sv));
            const float alpha = m[r] == -INFINITY ? 0.0f : exp2f(m[r] - mnew);
            const float p = sv == -INFINITY ? 0.0f : exp2f(sv - mnew);
            l[r] = l[r] * alpha + p;
#pragma unroll
            for (int i = 0; i < DPL; i++) o[r][i] *= alpha;
            m[r] = mnew;
            Ps[warp][r][lane] = p;
        }
        __syncwarp();
#pragma unroll 2
        for (int j = 0; j < BC; j += 4) {
            float v[4][DPL];
#pragma unroll
            for (int jj = 0; jj < 4; jj++)
#pragma unroll
                for (int i = 0; i < DPL; i++) v[jj][i] = Vs[j + jj][lane + 32 * i];
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float4 p = *reinterpret_cast<const float4*>(&Ps[warp][r][j]);
#pragma unroll
                for (int i = 0; i < DPL; i++) o[r][i] += p.x * v[0][i] + p.y * v[1][i] + p.z * v[2][i] + p.w * v[3][i];
            }
        }
        __syncwarp();
    }

    T_* ob = out + (long long)b * T * C + (long long)h * hs;
    float* lb = lse + (long long)bh * T;
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int t = tw0 + r;
        if (t >= T) break;  // uniform per warp
        if (t < n) {
            const float L = ig_warp_sum(l[r]);
            const float inv = 1.0f / L;
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                const int d = lane + 32 * i;
                if (d < hs) ig_attn_st(ob + (long long)t * C + d, o[r][i] * inv);
            }
            if (lane == 0) lb[t] = (m[r] + log2f(L)) * IG_LN2F;
        } else {
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                const int d = lane + 32 * i;
                if (d < hs) ig_attn_st(ob + (long long)t * C + d, 0.0f);
            }
            if (lane == 0) lb[t] = 0.0f;
        }
    }
}

#define IG_ATTN_FWD(NAME, T_, HSP, R)                                                                         \
    extern "C" __global__ void __launch_bounds__(128, 2) NAME##HSP(                                              \
        T_* __restrict__ out, float* __restrict__ lse, const T_* __restrict__ qkv,                            \
        const int* __restrict__ validLen, int T, int H, int KVH, int hs, float scale2, const int* flag) {      \
        if (ig_failed(flag)) return;                                                                          \
        ig_attn_fwd<T_, HSP, R, 4>(out, lse, qkv, validLen, T, H, KVH, hs, scale2);                           \
    }

IG_ATTN_FWD(attention_forward_hs, float, 32, 8)
IG_ATTN_FWD(attention_forward_hs, float, 64, 8)
IG_ATTN_FWD(attention_forward_hs, float, 96, 8)
IG_ATTN_FWD(attention_forward_hs, float, 128, 4)
IG_ATTN_FWD(attention_forward_bf16_hs, ig_bf16, 32, 8)
IG_ATTN_FWD(attention_forward_bf16_hs, ig_bf16, 64, 8)
IG_ATTN_FWD(attention_forward_bf16_hs, ig_bf16, 96, 8)
IG_ATTN_FWD(attention_forward_bf16_hs, ig_bf16, 128, 4)

// ------------------------------------------------------------ backward dQ

template <typename T_, int HSP, int R, int W>
static __device__ __forceinline__ void ig_attn_bwd_dq(T_* __restrict__ dqkv, float* __restrict__ Dbuf,
                                                      const T_* __restrict__ dout, const T_* __restrict__ qkv,
                                                      const T_* __restrict__ out, const float* __restrict__ lse,
                                                      const int* __restrict__ validLen, int T, int H, int KVH, int hs,
                                                      float scale2, float scale) {
    constexpr int BR = R * W, BC = IG_ATT_BC, DPL = HSP / 32, NT = W * 32;
    __shared__ __align__(16) float Qs[BR][HSP];
    __shared__ __align__(16) float dOs[BR][HSP];
    __shared__ float Kt[HSP][BC + 1];
    __shared__ float Vt[HSP][BC + 1];
    __shared__ __align__(16) float dSs[W][R][BC];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int bh = blockIdx.y, b = bh / H, h = bh % H;
    const int q0 = (gridDim.x - 1 - blockIdx.x) * BR;
    if (q0 >= T) return;  // uniform over the block
    const int n = ig_attn_len(validLen, b, T);
    const ig_attn_heads hd(b, T, H, KVH, hs);
    const long long QW = hd.W, C = hd.C;
    const T_* base = qkv + hd.q(h);
    const T_* kb = qkv + hd.k(h);
    const T_* vb = qkv + hd.v(h);
    const T_* dob = dout + (long long)b * T * C + (long long)h * hs;
    const T_* obase = out + (long long)b * T * C + (long long)h * hs;

    for (int idx = tid; idx < BR * HSP; idx += NT) {
        const int r = idx / HSP, d = idx % HSP, t = q0 + r;
        const bool ok = t < n && d < hs;
        Qs[r][d] = ok ? ig_attn_ld(base + t * QW + d) : 0.0f;
        dOs[r][d] = ok ? ig_attn_ld(dob + (long long)t * C + d) : 0.0f;
    }
    __syncthreads();

    const int tw0 = q0 + warp * R;
    float Dr[R], lse2[R], dq[R][DPL];
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int t = tw0 + r;
        float dd = 0.0f;
        if (t < n) {  // uniform per warp
#pragma unroll
            for (int i = 0; i < DPL; i++) {
                const int d = lane + 32 * i;
                if (d < hs) dd += dOs[warp * R + r][d] * ig_attn_ld(obase + (long long)t * C + d);
            }
            dd = ig_warp_sum(dd);
            lse2[r] = lse[(long long)bh * T + t] * IG_LOG2EF;
        } else {
            lse2[r] = 0.0f;
        }
        Dr[r] = dd;
        if (lane == 0 && t < T) Dbuf[(long long)bh * T + t] = dd;
#pragma unroll
        for (int i = 0; i < DPL; i++) dq[r][i] = 0.0f;
    }

    const int kend = min(q0 + BR, n);
    for (int j0 = 0; j0 < kend; j0 += BC) {
        __syncthreads();
        for (int idx = tid; idx < BC * HSP; idx += NT) {
            const int j = idx / HSP, d = idx % HSP, jg = j0 + j;
            const bool ok = jg < kend && d < hs;
            Kt[d][j] = ok ? ig_attn_ld(kb + jg * QW + d) : 0.0f;
            Vt[d][j] = ok ? ig_attn_ld(vb + jg * QW + d) : 0.0f;
        }
        __syncthreads();
        if (tw0 >= n || j0 > tw0 + R - 1) continue;  // uniform per warp
        float s[R], dp[R];
#pragma unroll
        for (int r = 0; r < R; r++) s[r] = dp[r] = 0.0f;
#pragma unroll 4
        for (int d = 0; d < HSP; d += 4) {
            const float k0 = Kt[d][lane], k1 = Kt[d + 1][lane], k2 = Kt[d + 2][lane], k3 = Kt[d + 3][lane];
            const float v0 = Vt[d][lane], v1 = Vt[d + 1][lane], v2 = Vt[d + 2][lane], v3 = Vt[d + 3][lane];
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float4 q = *reinterpret_cast<const float4*>(&Qs[warp * R + r][d]);
                const float4 g = *reinterpret_cast<const float4*>(&dOs[warp * R + r][d]);
                s[r] += q.x * k0 + q.y * k1 + q.z * k2 + q.w * k3;
                dp[r] += g.x * v0 + g.y * v1 + g.z * v2 + g.w * v3;
            }
        }
        const int jg = j0 + lane;
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int t = tw0 + r;
            const float p = (jg <= t && t < n) ? exp2f(s[r] * scale2 - lse2[r]) : 0.0f;
            dSs[warp][r][lane] = p * (dp[r] - Dr[r]);
        }
        __syncwarp();
#pragma unroll 2
        for (int j = 0; j < BC; j += 4) {
            float k[4][DPL];
#pragma unroll
            for (int jj = 0; jj < 4; jj++)
#pragma unroll
                for (int i = 0; i < DPL; i++) k[jj][i] = Kt[lane + 32 * i][j + jj];
#pragma unroll
            for (int r = 0; r < R; r++) {
                const float4 g = *reinterpret_cast<const float4*>(&dSs[warp][r][j]);
#pragma unroll
                for (int i = 0; i < DPL; i++) dq[r][i] += g.x * k[0][i] + g.y * k[1][i] + g.z * k[2][i] + g.w * k[3][i];
            }
        }
        __syncwarp();
    }

    T_* dxb = dqkv + hd.q(h);
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int t = tw0 + r;
        if (t >= T) break;  // uniform per warp
#pragma unroll
        for (int i = 0; i < DPL; i++) {
            const int d = lane + 32 * i;
            if (d < hs) ig_attn_st(dxb + t * QW + d, t < n ? dq[r][i] * scale : 0.0f);
        }
    }
}

#define IG_ATTN_BWD_DQ(NAME, T_, HSP, R)                                                                    \
    extern "C" __global__ void __launch_bounds__(128, 2) NAME##HSP(                                            \
        T_* __restrict__ dqkv, float* __restrict__ Dbuf, const T_* __restrict__ dout,                       \
        const T_* __restrict__ qkv, const T_* __restrict__ out, const float* __restrict__ lse,              \
        const int* __restrict__ validLen, int T, int H, int KVH, int hs, float scale2, float scale,         \
        const int* flag) {                                                                                  \
        if (ig_failed(flag)) return;                                                                        \
        ig_attn_bwd_dq<T_, HSP, R, 4>(dqkv, Dbuf, dout, qkv, out, lse, validLen, T, H, KVH, hs, scale2, scale); \
    }

IG_ATTN_BWD_DQ(attention_backward_dq_hs, float, 32, 8)
IG_ATTN_BWD_DQ(attention_backward_dq_hs, float, 64, 8)
IG_ATTN_BWD_DQ(attention_backward_dq_hs, float, 96, 4)
IG_ATTN_BWD_DQ(attention_backward_dq_hs, float, 128, 2)
IG_ATTN_BWD_DQ(attention_backward_dq_bf16_hs, ig_bf16, 32, 8)
IG_ATTN_BWD_DQ(attention_backward_dq_bf16_hs, ig_bf16, 64, 8)
IG_ATTN_BWD_DQ(attention_backward_dq_bf16_hs, ig_bf16, 96, 4)
IG_ATTN_BWD_DQ(attention_backward_dq_bf16_hs, ig_bf16, 128, 2)

// ---------------------------------------------------------- backward dK, dV

template <typename T_, int HSP, int R, int W>
static __device__ __forceinline__ void ig_attn_bwd_dkdv(T_* __restrict__ dqkv, const float* __restrict__ Dbuf,
                                                        const T_* __restrict__ dout,
                                                        const T_* __restrict__ qkv,
                                                        const float* __restrict__ lse,
                                                        const int* __restrict__ validLen, int T, int H, int KVH,
                                                        int hs, float scale2, float scale) {
    constexpr int BK = R * W, BQ = IG_ATT_BC, DPL = HSP / 32, NT = W * 32;
    __shared__ __align__(16) float Ks[BK][HSP];
    __shared__ __align__(16) float Vs[BK][HSP];
    __shared__ float Qt[HSP][BQ + 1];
    __shared__ float dOt[HSP][BQ + 1];
    __shared__ __align__(16) float Ps[W][R][BQ];
    __shared__ __align__(16) float dSs[W][R][BQ];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int bg = blockIdx.y, b = bg / KVH, g = bg % KVH, G = H / KVH;
    const int k0 = blockIdx.x * BK;
    if (k0 >= T) return;  // uniform over the block
    const int n = ig_attn_len(validLen, b, T);
    const ig_attn_heads hd(b, T, H, KVH, hs);
    const long long QW = hd.W, C = hd.C;
    const T_* kb = qkv + hd.k(g * G);
    const T_* vb = qkv + hd.v(g * G);

    for (int idx = tid; idx < BK * HSP; idx += NT) {
        const int r = idx / HSP, d = idx % HSP, j = k0 + r;
        const bool ok = j < n && d < hs;
        Ks[r][d] = ok ? ig_attn_ld(kb + j * QW + d) : 0.0f;
        Vs[r][d] = ok ? ig_attn_ld(vb + j * QW + d) : 0.0f;
    }

    float dk[R][DPL], dv[R][DPL];
#pragma unroll
    for (int r = 0; r < R; r++)
#pragma unroll
        for (int i = 0; i < DPL; i++) dk[r][i] = dv[r][i] = 0.0f;

    const int jw0 = k0 + warp * R;  // the warp's first key
    for (int h = g * G; h < (g + 1) * G; h++) {  // the group's query heads, in order
        const int bh = b * H + h;
        const T_* base = qkv + hd.q(h);
        const T_* dob = dout + (long long)b * T * C + (long long)h * hs;
        for (int i0 = k0; i0 < n; i0 += BQ) {
            __syncthreads();  // the previous tile is no longer read (and Ks, Vs are written)
            for (int idx = tid; idx < BQ * HSP; idx += NT) {
                const int i = idx / HSP, d = idx % HSP, ig = i0 + i;
                const bool ok = ig < n && d < hs;
                Qt[d][i] = ok ? ig_attn_ld(base + ig * QW + d) : 0.0f;
                dOt[d][i] = ok ? ig_attn_ld(dob + (long long)ig * C + d) : 0.0f;
            }
            __syncthreads();
            const int ig = i0 + lane;  // this lane's query
            if (jw0 >= n || i0 + BQ - 1 < jw0) continue;  // uniform per warp
            const float lse2 = ig < n ? lse[(long long)bh * T + ig] * IG_LOG2EF : 0.0f;
            const float Dq = ig < n ? Dbuf[(long long)bh * T + ig] : 0.0f;
            float s[R], dp[R];
#pragma unroll
            for (int r = 0; r < R; r++) s[r] = dp[r] = 0.0f;
#pragma unroll 4
            for (int d = 0; d < HSP; d += 4) {
                const float q0 = Qt[d][lane], q1 = Qt[d + 1][lane], q2 = Qt[d + 2][lane], q3 = Qt[d + 3][lane];
                const float g0 = dOt[d][lane], g1 = dOt[d + 1][lane], g2 = dOt[d + 2][lane], g3 = dOt[d + 3][lane];
#pragma unroll
                for (int r = 0; r < R; r++) {
                    const float4 k = *reinterpret_cast<const float4*>(&Ks[warp * R + r][d]);
                    const float4 v = *reinterpret_cast<const float4*>(&Vs[warp * R + r][d]);
                    s[r] += k.x * q0 + k.y * q1 + k.z * q2 + k.w * q3;
                    dp[r] += v.x * g0 + v.y * g1 + v.z * g2 + v.w * g3;
                }
            }
#pragma unroll
            for (int r = 0; r < R; r++) {
                const int j = jw0 + r;
                const float p = (ig >= j && ig < n && j < n) ? exp2f(s[r] * scale2 - lse2) : 0.0f;
                Ps[warp][r][lane] = p;
                dSs[warp][r][lane] = p * (dp[r] - Dq);
            }
            __syncwarp();
#pragma unroll 2
            for (int i = 0; i < BQ; i += 4) {
                float q[4][DPL], go[4][DPL];
#pragma unroll
                for (int ii = 0; ii < 4; ii++)
#pragma unroll
                    for (int x = 0; x < DPL; x++) {
                        q[ii][x] = Qt[lane + 32 * x][i + ii];
                        go[ii][x] = dOt[lane + 32 * x][i + ii];
                    }
#pragma unroll
                for (int r = 0; r < R; r++) {
                    const float4 p = *reinterpret_cast<const float4*>(&Ps[warp][r][i]);
                    const float4 ds = *reinterpret_cast<const float4*>(&dSs[warp][r][i]);
#pragma unroll
                    for (int x = 0; x < DPL; x++) {
                        dv[r][x] += p.x * go[0][x] + p.y * go[1][x] + p.z * go[2][x] + p.w * go[3][x];
                        dk[r][x] += ds.x * q[0][x] + ds.y * q[1][x] + ds.z * q[2][x] + ds.w * q[3][x];
                    }
                }
            }
            __syncwarp();
        }
    }

    T_* dkb = dqkv + hd.k(g * G);
    T_* dvb = dqkv + hd.v(g * G);
#pragma unroll
    for (int r = 0; r < R; r++) {
        const int j = jw0 + r;
        if (j >= T) break;  // uniform per warp
#pragma unroll
        for (int x = 0; x < DPL; x++) {
            const int d = lane + 32 * x;
            if (d < hs) {
                ig_attn_st(dkb + j * QW + d, j < n ? dk[r][x] * scale : 0.0f);
                ig_attn_st(dvb + j * QW + d, j < n ? dv[r][x] : 0.0f);
            }
        }
    }
}

#define IG_ATTN_BWD_DKDV(NAME, T_, HSP, R)                                                                   \
    extern "C" __global__ void __launch_bounds__(128, 2) NAME##HSP(                                             \
        T_* __restrict__ dqkv, const float* __restrict__ Dbuf, const T_* __restrict__ dout,                  \
        const T_* __restrict__ qkv, const float* __restrict__ lse, const int* __restrict__ validLen, int T,  \
        int H, int KVH, int hs, float scale2, float scale, const int* flag) {                                \
        if (ig_failed(flag)) return;                                                                         \
        ig_attn_bwd_dkdv<T_, HSP, R, 4>(dqkv, Dbuf, dout, qkv, lse, validLen, T, H, KVH, hs, scale2, scale); \
    }

IG_ATTN_BWD_DKDV(attention_backward_dkdv_hs, float, 32, 8)
IG_ATTN_BWD_DKDV(attention_backward_dkdv_hs, float, 64, 8)
IG_ATTN_BWD_DKDV(attention_backward_dkdv_hs, float, 96, 4)
IG_ATTN_BWD_DKDV(attention_backward_dkdv_hs, float, 128, 2)
IG_ATTN_BWD_DKDV(attention_backward_dkdv_bf16_hs, ig_bf16, 32, 8)
IG_ATTN_BWD_DKDV(attention_backward_dkdv_bf16_hs, ig_bf16, 64, 8)
IG_ATTN_BWD_DKDV(attention_backward_dkdv_bf16_hs, ig_bf16, 96, 4)
IG_ATTN_BWD_DKDV(attention_backward_dkdv_bf16_hs, ig_bf16, 128, 2)

#undef IG_ATTN_FWD
#undef IG_ATTN_BWD_DQ
#undef IG_ATTN_BWD_DKDV
