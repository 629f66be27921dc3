// Fused causal attention on the tensor cores, FlashAttention-2 class, for
// bf16 activations: the backward pass, dqkv (bf16, overwritten) from dout,
// qkv, out (bf16) and lse (float32), in attention.cu's layout (grouped
// key/value heads, ig_attn_heads). Probabilities are recomputed from lse,
// P = exp2(s2 − lse·log2 e), never stored; dS = P∘(dP − D) with
// dP = dO·Vᵀ and D_t = dO_t·O_t; dQ = scale·dS·K, dK = scale·dSᵀ·Q,
// dV = Pᵀ·dO. Products are mma m16n8k16 with fp32 accumulation; P and dS
// enter the second products rounded to bf16, in the accumulators' own
// fragment layout. Padded rows (t ≥ n) get zeros in all three parts and
// keys j ≥ n receive nothing.
//
// Two kernels and no atomics, so dqkv is the same bits on every run (the
// training is reproducible run to run): dQ sums over keys and dK, dV over
// queries, each in a fixed order inside one warp. The price is that S and
// dP are computed twice (7 tile products instead of FlashAttention-2's 5
// with fp32 atomics for dQ).
//
//  - attention_backward_dq_mma_hs*: grid (B·H, ceil(T/64)), 128 threads,
//    IG_FA_DQ_SMEM(HS, BC) bytes of dynamic shared memory. The forward's
//    tiling: block (bh, y) owns query rows [q0, q0+64) (longest rows
//    first), warp w rows q0+16w..+15; Q and dO stay in shared memory, K and
//    V tiles of BC keys stream through two cp.async buffers up to the
//    causal end. It first stores D for its rows in Dbuf [B,H,T] (0 for
//    padded rows), read by the next kernel.
//  - attention_backward_dkdv_mma_hs*: grid (B·KVH, ceil(T/64)), 128
//    threads, IG_FA_DKV_SMEM(HS, BQ) bytes. Block (bg, y) owns keys
//    [k0, k0+64) of key/value head g, k0 = 64·y (the blocks that start
//    first see the most queries), warp w keys k0+16w..+15, K and V in
//    shared memory; Q and dO tiles of BQ queries (with their lse and D)
//    stream through two buffers from query k0 to n, for each query head of
//    the group in turn (one pipeline over all of them), so a shared head's
//    dK and dV sum its group in a fixed order. A warp computes Sᵀ = K·Qᵀ
//    and dPᵀ = V·dOᵀ for its keys, so that Pᵀ and dSᵀ are already A
//    fragments of dV += Pᵀ·dO and dK += dSᵀ·Q.
// Tiles: BC = BQ = 64 for head sizes 32 and 64; 32 for 128, which keeps
// the dK and dV accumulators (128 fp32 registers a thread) beside the
// score tiles without spilling, and the shared memory under the 99 KiB of
// sm_86/sm_89.
#include "attention_mma.cuh"

#define IG_FA_DQ_SMEM(HS, BC) ((2 * IG_FA_BR + 4 * (BC)) * IG_FA_LDS(HS) * 2)
#define IG_FA_DKV_SMEM(HS, BQ) ((2 * IG_FA_BR + 4 * (BQ)) * IG_FA_LDS(HS) * 2 + 4 * (BQ) * 4)

// ------------------------------------------------------------------ dQ

template <int HS, int BC>
static __device__ __forceinline__ void ig_fa_bwd_dq(ig_bf16* __restrict__ dqkv, float* __restrict__ Dbuf,
                                                    const ig_bf16* __restrict__ dout,
                                                    const ig_bf16* __restrict__ qkv,
                                                    const ig_bf16* __restrict__ out, const float* __restrict__ lse,
                                                    const int* __restrict__ validLen, int T, int H, int KVH,
                                                    float scale2, float scale) {
    constexpr int BR = IG_FA_BR, NT = 128, LDS = IG_FA_LDS(HS), NS = BC / 8, NO = HS / 8;
    IG_DYN_SMEM(ig_bf16, smem);
    ig_bf16* Qs = smem;               // [BR][LDS]
    ig_bf16* dOs = Qs + BR * LDS;     // [BR][LDS]
    ig_bf16* Ks = dOs + BR * LDS;     // [2][BC][LDS]
    ig_bf16* Vs = Ks + 2 * BC * LDS;  // [2][BC][LDS]
    __shared__ float Dsh[IG_FA_BR];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, tq = lane & 3;
    const int bh = blockIdx.x, b = bh / H, h = bh % H;
    const int q0 = (gridDim.y - 1 - blockIdx.y) * BR;
    if (q0 >= T) return;  // uniform over the block
    const int n = ig_attn_len(validLen, b, T);
    const ig_attn_heads hd(b, T, H, KVH, HS);
    const long long QW = hd.W, C = hd.C;
    const ig_bf16* qb = qkv + hd.q(h);
    const ig_bf16* kb = qkv + hd.k(h);
    const ig_bf16* vb = qkv + hd.v(h);
    const ig_bf16* dob = dout + (long long)b * T * C + (long long)h * HS;
    const int kend = q0 < n ? min(q0 + BR, n) : 0;
    const int ntile = (kend + BC - 1) / BC;
    if (ntile > 0) {
        ig_fa_load_tile<HS, BR, NT>(Qs, qb, QW, q0, n, tid);
        ig_fa_load_tile<HS, BR, NT>(dOs, dob, C, q0, n, tid);
        ig_fa_load_tile<HS, BC, NT>(Ks, kb, QW, 0, kend, tid);
        ig_fa_load_tile<HS, BC, NT>(Vs, vb, QW, 0, kend, tid);
        ig_cp_async_commit();
    }

    // D_t = dO_t·O_t for the block's rows, while the tiles are in flight: a
    // pair of threads per row, each summing half the head in order.
    {
        const int r = tid >> 1, t = q0 + r, d0 = (tid & 1) * (HS / 2);
        float dd = 0.0f;
        if (t < n) {
            const ig_bf16* g = dob + (long long)t * C + d0;
            const ig_bf16* o = out + (long long)b * T * C + (long long)h * HS + (long long)t * C + d0;
            for (int d = 0; d < HS / 2; d += 8) {
                const ig_fa_chunk gc = *reinterpret_cast<const ig_fa_chunk*>(g + d);
                const ig_fa_chunk oc = *reinterpret_cast<const ig_fa_chunk*>(o + d);
                const uint32_t gw[4] = {gc.x, gc.y, gc.z, gc.w}, ow[4] = {oc.x, oc.y, oc.z, oc.w};
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    dd += ig_bf16x2_lo(gw[i]) * ig_bf16x2_lo(ow[i]);
                    dd += ig_bf16x2_hi(gw[i]) * ig_bf16x2_hi(ow[i]);
                }
            }
        }
        dd += __shfl_xor_sync(IG_FULL_MASK, dd, 1);
        if ((tid & 1) == 0) {
            Dsh[r] = dd;
            if (t < T) Dbuf[(long long)bh * T + t] = dd;
        }
    }
    __syncthreads();

    const int rw = q0 + 16 * warp;
    const int tr[2] = {rw + (lane >> 2), rw + (lane >> 2) + 8};
    float Dr[2], lse2[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        Dr[r] = Dsh[tr[r] - q0];
        lse2[r] = tr[r] < n ? lse[(long long)bh * T + tr[r]] * IG_LOG2EF : 0.0f;
    }
    float dq[NO][4];
#pragma unroll
    for (int j = 0; j < NO; j++) dq[j][0] = dq[j][1] = dq[j][2] = dq[j][3] = 0.0f;

    for (int it = 0; it < ntile; it++) {
        const int j0 = it * BC;
        const ig_bf16* Kt = Ks + (it & 1) * BC * LDS;
        const ig_bf16* Vt = Vs + (it & 1) * BC * LDS;
        if (it + 1 < ntile) {
            ig_fa_load_tile<HS, BC, NT>(Ks + ((it + 1) & 1) * BC * LDS, kb, QW, j0 + BC, kend, tid);
            ig_fa_load_tile<HS, BC, NT>(Vs + ((it + 1) & 1) * BC * LDS, vb, QW, j0 + BC, kend, tid);
            ig_cp_async_commit();
            ig_cp_async_wait<1>();
        } else {
            ig_cp_async_wait<0>();
        }
        __syncthreads();
        if (rw < n && j0 <= rw + 15) {  // uniform per warp
            float s[NS][4], dp[NS][4];
#pragma unroll
            for (int j = 0; j < NS; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[j][e] = dp[j][e] = 0.0f;
            ig_fa_mma_abt<HS, NS>(s, Qs, Kt, LDS, 16 * warp, lane);
            ig_fa_mma_abt<HS, NS>(dp, dOs, Vt, LDS, 16 * warp, lane);
            const bool mask = j0 + BC - 1 > rw || rw + 15 >= n;
#pragma unroll
            for (int j = 0; j < NS; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int key = j0 + 8 * j + 2 * tq + (e & 1), t = tr[e >> 1];
                    const float p =
                        mask && (key > t || t >= n) ? 0.0f : exp2f(s[j][e] * scale2 - lse2[e >> 1]);
                    s[j][e] = p * (dp[j][e] - Dr[e >> 1]);  // dS
                }
            ig_fa_mma_pb<BC, NO>(dq, s, Kt, LDS, lane);
        }
        __syncthreads();
    }

    const float f[2] = {scale, scale};
    ig_fa_store_rows<HS>(dqkv + hd.q(h), QW, rw, T, Qs + 16 * warp * LDS, dq, f, lane);
}

// --------------------------------------------------------------- dK, dV

template <int HS, int BQ>
static __device__ __forceinline__ void ig_fa_bwd_dkdv(ig_bf16* __restrict__ dqkv, const float* __restrict__ Dbuf,
                                                      const ig_bf16* __restrict__ dout,
                                                      const ig_bf16* __restrict__ qkv,
                                                      const float* __restrict__ lse,
                                                      const int* __restrict__ validLen, int T, int H, int KVH,
                                                      float scale2, float scale) {
    constexpr int BK = IG_FA_BR, NT = 128, LDS = IG_FA_LDS(HS), NQ = BQ / 8, NO = HS / 8;
    static_assert(BK % BQ == 0, "a key block starts on a query tile");
    IG_DYN_SMEM(ig_bf16, smem);
    ig_bf16* Ks = smem;                 // [BK][LDS]
    ig_bf16* Vs = Ks + BK * LDS;        // [BK][LDS]
    ig_bf16* Qs = Vs + BK * LDS;        // [2][BQ][LDS]
    ig_bf16* dOs = Qs + 2 * BQ * LDS;   // [2][BQ][LDS]
    float* Ls = reinterpret_cast<float*>(dOs + 2 * BQ * LDS);  // [2][BQ]: lse·log2 e of the tile's queries
    float* Ds = Ls + 2 * BQ;                                   // [2][BQ]: their D

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, tq = lane & 3;
    const int bg = blockIdx.x, b = bg / KVH, g = bg % KVH, G = H / KVH;
    const int k0 = blockIdx.y * BK;
    if (k0 >= T) return;  // uniform over the block
    const int n = ig_attn_len(validLen, b, T);
    const ig_attn_heads hd(b, T, H, KVH, HS);
    const long long QW = hd.W, C = hd.C;
    const int ntile = k0 < n ? (n - k0 + BQ - 1) / BQ : 0;  // query tiles from k0 on, per query head

    // stage issues tile i of the group's query heads (head g·G + i/ntile,
    // rows k0 + (i mod ntile)·BQ..) into buffer i&1.
    auto stage = [&](int i) {
        const int h = g * G + i / ntile, i0 = k0 + (i % ntile) * BQ, buf = i & 1;
        const float* lb = lse + ((long long)b * H + h) * T;
        const float* Db = Dbuf + ((long long)b * H + h) * T;
        ig_fa_load_tile<HS, BQ, NT>(Qs + buf * BQ * LDS, qkv + hd.q(h), QW, i0, n, tid);
        ig_fa_load_tile<HS, BQ, NT>(dOs + buf * BQ * LDS, dout + (long long)b * T * C + (long long)h * HS, C, i0, n,
                                    tid);
        if (tid < BQ) {
            const int q = i0 + tid;
            Ls[buf * BQ + tid] = q < n ? lb[q] * IG_LOG2EF : 0.0f;
            Ds[buf * BQ + tid] = q < n ? Db[q] : 0.0f;
        }
    };
    if (ntile > 0) {
        ig_fa_load_tile<HS, BK, NT>(Ks, qkv + hd.k(g * G), QW, k0, n, tid);
        ig_fa_load_tile<HS, BK, NT>(Vs, qkv + hd.v(g * G), QW, k0, n, tid);
        stage(0);
        ig_cp_async_commit();
    }

    const int kw = k0 + 16 * warp;  // the warp's first key
    const int kr[2] = {kw + (lane >> 2), kw + (lane >> 2) + 8};
    float dk[NO][4], dv[NO][4];
#pragma unroll
    for (int j = 0; j < NO; j++)
#pragma unroll
        for (int e = 0; e < 4; e++) dk[j][e] = dv[j][e] = 0.0f;

    for (int it = 0; it < G * ntile; it++) {
        const int i0 = k0 + (it % ntile) * BQ, buf = it & 1;
        const ig_bf16* Qt = Qs + buf * BQ * LDS;
        const ig_bf16* dOt = dOs + buf * BQ * LDS;
        if (it + 1 < G * ntile) {
            stage(it + 1);
            ig_cp_async_commit();
            ig_cp_async_wait<1>();
        } else {
            ig_cp_async_wait<0>();
        }
        __syncthreads();
        if (kw < n && i0 + BQ - 1 >= kw) {  // uniform per warp: some query here sees a key of the warp
            float s[NQ][4], dp[NQ][4];
#pragma unroll
            for (int j = 0; j < NQ; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) s[j][e] = dp[j][e] = 0.0f;
            ig_fa_mma_abt<HS, NQ>(s, Ks, Qt, LDS, 16 * warp, lane);    // Sᵀ: keys × queries
            ig_fa_mma_abt<HS, NQ>(dp, Vs, dOt, LDS, 16 * warp, lane);  // dPᵀ
            const bool mask = i0 < kw + 15 || i0 + BQ > n;  // the tile crosses the diagonal or n
#pragma unroll
            for (int j = 0; j < NQ; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int ql = 8 * j + 2 * tq + (e & 1), q = i0 + ql;
                    const float p = mask && (q < kr[e >> 1] || q >= n)
                                        ? 0.0f
                                        : exp2f(s[j][e] * scale2 - Ls[buf * BQ + ql]);
                    s[j][e] = p;
                    dp[j][e] = p * (dp[j][e] - Ds[buf * BQ + ql]);  // dSᵀ
                }
            ig_fa_mma_pb<BQ, NO>(dv, s, dOt, LDS, lane);
            ig_fa_mma_pb<BQ, NO>(dk, dp, Qt, LDS, lane);
        }
        __syncthreads();
    }

    const float fk[2] = {scale, scale}, fv[2] = {1.0f, 1.0f};
    ig_fa_store_rows<HS>(dqkv + hd.k(g * G), QW, kw, T, Ks + 16 * warp * LDS, dk, fk, lane);
    ig_fa_store_rows<HS>(dqkv + hd.v(g * G), QW, kw, T, Vs + 16 * warp * LDS, dv, fv, lane);
}

// smem is the dynamic shared memory of the launch in bytes and smemCode
// the flag code that reports it too small.
#define IG_FA_BWD(HS, BC)                                                                                     \
    extern "C" __global__ void __launch_bounds__(128, 1) attention_backward_dq_mma_hs##HS(                         \
        ig_bf16* __restrict__ dqkv, float* __restrict__ Dbuf, const ig_bf16* __restrict__ dout,               \
        const ig_bf16* __restrict__ qkv, const ig_bf16* __restrict__ out, const float* __restrict__ lse,      \
        const int* __restrict__ validLen, int T, int H, int KVH, float scale2, float scale, int smem,          \
        int smemCode, int* flag) {                                                                            \
        if (ig_failed(flag) || !ig_fa_smem_ok(smem, IG_FA_DQ_SMEM(HS, BC), smemCode, flag)) return;          \
        ig_fa_bwd_dq<HS, BC>(dqkv, Dbuf, dout, qkv, out, lse, validLen, T, H, KVH, scale2, scale);            \
    }                                                                                                         \
    extern "C" __global__ void __launch_bounds__(128, 1) attention_backward_dkdv_mma_hs##HS(                       \
        ig_bf16* __restrict__ dqkv, const float* __restrict__ Dbuf, const ig_bf16* __restrict__ dout,         \
        const ig_bf16* __restrict__ qkv, const float* __restrict__ lse, const int* __restrict__ validLen,     \
        int T, int H, int KVH, float scale2, float scale, int smem, int smemCode, int* flag) {                \
        if (ig_failed(flag) || !ig_fa_smem_ok(smem, IG_FA_DKV_SMEM(HS, BC), smemCode, flag)) return;         \
        ig_fa_bwd_dkdv<HS, BC>(dqkv, Dbuf, dout, qkv, lse, validLen, T, H, KVH, scale2, scale);               \
    }

IG_FA_BWD(32, 64)
IG_FA_BWD(64, 64)
IG_FA_BWD(128, 32)

#undef IG_FA_BWD
