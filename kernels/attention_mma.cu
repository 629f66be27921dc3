// Fused causal attention on the tensor cores, FlashAttention-2 class, for
// bf16 activations: the forward pass. Layout and padding rules as in
// attention.cu (qkv [B,T,(H+2·KVH)·HS] with grouped key/value heads,
// ig_attn_heads; out [B,T,C] bf16, lse [B,H,T] float32; rows
// t ≥ n = validLen[b] get out = 0 and lse = 0, keys j ≥ n are never read).
// Scores are fp32 accumulations of bf16 products (mma m16n8k16), kept in
// the log2 domain (s2 = q·k·scale·log2 e) as in attention.cu.
//
// attention_forward_mma_hs{32,64,128}: grid (B·H, ceil(T/64)), 128 threads
// (4 warps), dynamic shared memory IG_FA_FWD_SMEM(HS, BC) bytes. Block
// (bh, y) owns query rows [q0, q0+64), q0 = (gridDim.y−1−y)·64: the blocks
// that start first hold the longest rows. Warp w owns rows q0+16w..+15.
// The Q tile is loaded once; K and V tiles of BC = 64 keys stream through
// two shared buffers by cp.async (tile i+1 is in flight while tile i is
// used), up to the block's causal end min(q0+64, n): tiles past the
// diagonal are never loaded, and a warp skips the tiles that lie wholly
// past its own rows. Per tile a warp computes S = Q·Kᵀ (16×64, fp32
// registers), masks it only on tiles that cross the diagonal or the valid
// length, updates the running row maximum and the lane's partial row sums
// (online softmax, reduced over the row's 4 lanes at the end), rescales
// its 16×HS output accumulators, and adds P·V with P rounded to bf16 in
// the S registers' own fragment layout. The output is divided by the row
// sum, rounded once to bf16 and written through shared memory as 16-byte
// rows; lse = (m2 + log2 l)·ln 2 from the fp32 row sum.
//
// The wrapper uses these kernels when every bf16 tensor starts 16-byte
// aligned (every head then starts 16-byte aligned too: HS is a multiple of
// 8 elements); other head sizes and alignments take attention.cu's bf16
// kernels.
#include "attention_mma.cuh"

#define IG_FA_FWD_SMEM(HS, BC) ((IG_FA_BR + 4 * (BC)) * IG_FA_LDS(HS) * 2)

template <int HS, int BC>
static __device__ __forceinline__ void ig_fa_fwd(ig_bf16* __restrict__ out, float* __restrict__ lse,
                                                 const ig_bf16* __restrict__ qkv, const int* __restrict__ validLen,
                                                 int T, int H, int KVH, float scale2) {
    constexpr int BR = IG_FA_BR, NT = 128, LDS = IG_FA_LDS(HS), NS = BC / 8, NO = HS / 8;
    IG_DYN_SMEM(ig_bf16, smem);
    ig_bf16* Qs = smem;               // [BR][LDS]
    ig_bf16* Ks = Qs + BR * LDS;      // [2][BC][LDS]
    ig_bf16* Vs = Ks + 2 * BC * LDS;  // [2][BC][LDS]

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
    const int kend = q0 < n ? min(q0 + BR, n) : 0;  // keys the block's rows see
    const int ntile = (kend + BC - 1) / BC;
    if (ntile > 0) {
        ig_fa_load_tile<HS, BR, NT>(Qs, qb, QW, q0, n, tid);
        ig_fa_load_tile<HS, BC, NT>(Ks, kb, QW, 0, kend, tid);
        ig_fa_load_tile<HS, BC, NT>(Vs, vb, QW, 0, kend, tid);
        ig_cp_async_commit();
    }

    const int rw = q0 + 16 * warp;           // the warp's first row
    const int tr[2] = {rw + (lane >> 2), rw + (lane >> 2) + 8};  // this lane's rows
    float o[NO][4], m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
#pragma unroll
    for (int j = 0; j < NO; j++) o[j][0] = o[j][1] = o[j][2] = o[j][3] = 0.0f;

    for (int it = 0; it < ntile; it++) {
        const int j0 = it * BC;
        const ig_bf16* Kt = Ks + (it & 1) * BC * LDS;
        const ig_bf16* Vt = Vs + (it & 1) * BC * LDS;
        if (it + 1 < ntile) {  // the next tile into the other buffer, freed by the barrier below
            ig_fa_load_tile<HS, BC, NT>(Ks + ((it + 1) & 1) * BC * LDS, kb, QW, j0 + BC, kend, tid);
            ig_fa_load_tile<HS, BC, NT>(Vs + ((it + 1) & 1) * BC * LDS, vb, QW, j0 + BC, kend, tid);
            ig_cp_async_commit();
            ig_cp_async_wait<1>();  // this tile (and Q) landed; the next may be in flight
        } else {
            ig_cp_async_wait<0>();
        }
        __syncthreads();  // every thread's copies of this tile are visible
        if (rw < n && j0 <= rw + 15) {  // uniform per warp: some row of the warp sees a key here
            float s[NS][4];
#pragma unroll
            for (int j = 0; j < NS; j++) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.0f;
            ig_fa_mma_abt<HS, NS>(s, Qs, Kt, LDS, 16 * warp, lane);

            const bool mask = j0 + BC - 1 > rw || rw + 15 >= n;  // the tile crosses the diagonal or n
            float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int j = 0; j < NS; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int key = j0 + 8 * j + 2 * tq + (e & 1), t = tr[e >> 1];
                    float x = s[j][e] * scale2;
                    if (mask && (key > t || t >= n)) x = -INFINITY;
                    s[j][e] = x;
                    mx[e >> 1] = fmaxf(mx[e >> 1], x);
                }
            float mb[2];
#pragma unroll
            for (int r = 0; r < 2; r++) {
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(IG_FULL_MASK, mx[r], 1));
                mx[r] = fmaxf(mx[r], __shfl_xor_sync(IG_FULL_MASK, mx[r], 2));
                const float mnew = fmaxf(m[r], mx[r]);
                mb[r] = mnew == -INFINITY ? 0.0f : mnew;  // a row masked so far keeps p = 0
                const float alpha = exp2f(m[r] - mb[r]);  // 0 while m was −∞
                l[r] *= alpha;
#pragma unroll
                for (int j = 0; j < NO; j++) {
                    o[j][2 * r] *= alpha;
                    o[j][2 * r + 1] *= alpha;
                }
                m[r] = mnew;
            }
#pragma unroll
            for (int j = 0; j < NS; j++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    const float p = exp2f(s[j][e] - mb[e >> 1]);
                    s[j][e] = p;
                    l[e >> 1] += p;
                }
            ig_fa_mma_pb<BC, NO>(o, s, Vt, LDS, lane);
        }
        __syncthreads();  // the buffers are free for the copies of the next iteration
    }

    float f[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        l[r] += __shfl_xor_sync(IG_FULL_MASK, l[r], 1);
        l[r] += __shfl_xor_sync(IG_FULL_MASK, l[r], 2);
        f[r] = l[r] > 0.0f ? 1.0f / l[r] : 0.0f;  // padded rows: o = 0, l = 0
    }
    ig_fa_store_rows<HS>(out + (long long)b * T * C + (long long)h * HS, C, rw, T, Qs + 16 * warp * LDS, o, f,
                         lane);
    if (tq == 0) {
        float* lb = lse + (long long)bh * T;
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int t = tr[r];
            if (t < T) lb[t] = t < n ? (m[r] + log2f(l[r])) * IG_LN2F : 0.0f;
        }
    }
}

// smem is the dynamic shared memory of the launch in bytes and smemCode
// the flag code that reports it too small.
#define IG_FA_FWD(HS, BC)                                                                                     \
    extern "C" __global__ void __launch_bounds__(128, 1) attention_forward_mma_hs##HS(                             \
        ig_bf16* __restrict__ out, float* __restrict__ lse, const ig_bf16* __restrict__ qkv,                  \
        const int* __restrict__ validLen, int T, int H, int KVH, float scale2, int smem, int smemCode,         \
        int* flag) {                                                                                          \
        if (ig_failed(flag) || !ig_fa_smem_ok(smem, IG_FA_FWD_SMEM(HS, BC), smemCode, flag)) return;         \
        ig_fa_fwd<HS, BC>(out, lse, qkv, validLen, T, H, KVH, scale2);                                        \
    }

IG_FA_FWD(32, 64)
IG_FA_FWD(64, 64)
IG_FA_FWD(128, 64)

#undef IG_FA_FWD
