// Tile and fragment helpers of the tensor-core attention kernels
// (attention_mma.cu: forward; attention_mma_backward.cu: backward), bf16
// activations with fp32 accumulation (mma.cuh).
//
// Shared-memory tiles hold rows of HS bf16 at a stride of HS + 8 elements
// (IG_FA_LDS): the 16 bytes of padding put the 8 rows one ldmatrix matrix
// reads in 8 different 16-byte bank groups (the stride is 16 mod 128
// bytes for HS = 32, 64, 128), so ldmatrix is free of bank conflicts.
// Tiles are filled by cp.async in 16-byte chunks, rows past the valid
// range zero-filled: a masked key or query contributes exact zeros, never
// NaN from padding.
//
// Fragments (mma.cuh): a warp owns 16 rows of every product. For a row-major
// tile X in shared memory,
//  - ig_fa_frag_a loads the A fragment of rows r0..r0+15, columns
//    k0..k0+15 of X (ldmatrix.x4);
//  - ig_fa_frag_b loads the B fragments of two n-tiles for B = Xᵀ, i.e.
//    B[k][n] = X[n0+n][k0+k], n = 0..15 (ldmatrix.x4): b[0..1] for
//    n0..n0+7, b[2..3] for n0+8..n0+15 — the keys of S = Q·Kᵀ;
//  - ig_fa_frag_bt loads them for B = X itself, B[k][n] = X[k0+k][n0+n]
//    (ldmatrix.x4.trans) — the values of P·V.
// An fp32 accumulator of a 16×16 block (two n-tiles, 8 floats) packs into
// the A fragment of the next product (ig_fa_pack_a): FlashAttention-2's
// reuse of the score registers as the probabilities' operand.
#pragma once
#include "attention.cuh"
#include "mma.cuh"

#define IG_FA_LDS(HS) ((HS) + 8)

// IG_FA_BR is the rows a block owns: 4 warps of 16 (query rows in the
// forward and dQ passes, keys in the dK/dV pass).
#define IG_FA_BR 64

// ig_fa_chunk is 16 bytes of a tile row, copied as one vector load and store.
struct __align__(16) ig_fa_chunk {
    uint32_t x, y, z, w;
};

// ig_fa_load_tile issues cp.async copies of rows [row0, row0+ROWS) of a
// head's part of a bf16 matrix (g: its row 0, ld: the row stride in
// elements) into the tile s; rows ≥ lim are zero-filled. All NT threads of
// the block call it; the caller commits and waits. g and ld·2 bytes are
// multiples of 16.
template <int HS, int ROWS, int NT>
static __device__ __forceinline__ void ig_fa_load_tile(ig_bf16* s, const ig_bf16* g, long long ld, int row0, int lim,
                                                       int tid) {
    constexpr int CPR = HS / 8;  // 16-byte chunks per row
    static_assert(ROWS * CPR % NT == 0, "a tile is a whole number of chunks per thread");
#pragma unroll
    for (int i = 0; i < ROWS * CPR / NT; i++) {
        const int c = tid + i * NT;
        const int r = c / CPR, k = (c % CPR) * 8, row = row0 + r;
        const bool ok = row < lim;
        // A zero-filled chunk reads nothing, but its address stays valid.
        ig_cp_async_16_zfill(s + r * IG_FA_LDS(HS) + k, g + (ok ? row * ld : 0) + k, ok ? 16 : 0);
    }
}

// ig_fa_frag_a: the A fragment of rows r0..r0+15, columns k0..k0+15 of the
// tile x (row stride lds).
static __device__ __forceinline__ void ig_fa_frag_a(uint32_t a[4], const ig_bf16* x, int lds, int r0, int k0,
                                                    int lane) {
    ig_ldmatrix_x4(a, x + (r0 + (lane & 15)) * lds + k0 + 8 * (lane >> 4));
}

// ig_fa_frag_b: the B fragments of n-tiles n0 and n0+8 for B[k][n] =
// x[n0+n][k0+k] (x holds B transposed: rows are n).
static __device__ __forceinline__ void ig_fa_frag_b(uint32_t b[4], const ig_bf16* x, int lds, int n0, int k0,
                                                    int lane) {
    ig_ldmatrix_x4(b, x + (n0 + 8 * (lane >> 4) + (lane & 7)) * lds + k0 + 8 * ((lane >> 3) & 1));
}

// ig_fa_frag_bt: the B fragments of n-tiles n0 and n0+8 for B[k][n] =
// x[k0+k][n0+n] (x holds B row-major: rows are k).
static __device__ __forceinline__ void ig_fa_frag_bt(uint32_t b[4], const ig_bf16* x, int lds, int k0, int n0,
                                                     int lane) {
    ig_ldmatrix_x4_trans(b, x + (k0 + 8 * ((lane >> 3) & 1) + (lane & 7)) * lds + n0 + 8 * (lane >> 4));
}

// ig_fa_pack_a rounds the accumulators of n-tiles c0 (columns 0..7) and c1
// (8..15) of a 16-row block to the bf16 A fragment of those 16 columns.
static __device__ __forceinline__ void ig_fa_pack_a(uint32_t a[4], const float c0[4], const float c1[4]) {
    a[0] = ig_bf16x2_pack(c0[0], c0[1]);
    a[1] = ig_bf16x2_pack(c0[2], c0[3]);
    a[2] = ig_bf16x2_pack(c1[0], c1[1]);
    a[3] = ig_bf16x2_pack(c1[2], c1[3]);
}

// ig_fa_mma_abt accumulates acc[n-tile] += A·B over a K-deep product of a
// warp's 16 rows: A = rows r0.. of the tile a (row stride lds, K columns),
// B[k][n] = bt[n][k] for the NT8 n-tiles of rows 0.. of the tile bt (the
// product X·Yᵀ of two row-major tiles: S = Q·Kᵀ, dP = dO·Vᵀ).
template <int K, int NT8>
static __device__ __forceinline__ void ig_fa_mma_abt(float acc[][4], const ig_bf16* a, const ig_bf16* bt, int lds,
                                                     int r0, int lane) {
#pragma unroll
    for (int k0 = 0; k0 < K; k0 += 16) {
        uint32_t fa[4];
        ig_fa_frag_a(fa, a, lds, r0, k0, lane);
#pragma unroll
        for (int j = 0; j < NT8; j += 2) {
            uint32_t fb[4];
            ig_fa_frag_b(fb, bt, lds, 8 * j, k0, lane);
            ig_mma_m16n8k16_bf16_f32(acc[j], fa, fb, acc[j]);
            ig_mma_m16n8k16_bf16_f32(acc[j + 1], fa, fb + 2, acc[j + 1]);
        }
    }
}

// ig_fa_mma_pb accumulates acc[n-tile] += P·B for the warp's 16 rows: P is
// the 16×K block of fp32 accumulators p (K/8 n-tiles), rounded to bf16; B
// is rows 0..K−1 of the row-major tile b with NT8 n-tiles (P·V, dS·K,
// Pᵀ·dO, dSᵀ·Q).
template <int K, int NT8>
static __device__ __forceinline__ void ig_fa_mma_pb(float acc[][4], const float p[][4], const ig_bf16* b, int lds,
                                                    int lane) {
#pragma unroll
    for (int k0 = 0; k0 < K; k0 += 16) {
        uint32_t fa[4];
        ig_fa_pack_a(fa, p[k0 / 8], p[k0 / 8 + 1]);
#pragma unroll
        for (int j = 0; j < NT8; j += 2) {
            uint32_t fb[4];
            ig_fa_frag_bt(fb, b, lds, k0, 8 * j, lane);
            ig_mma_m16n8k16_bf16_f32(acc[j], fa, fb, acc[j]);
            ig_mma_m16n8k16_bf16_f32(acc[j + 1], fa, fb + 2, acc[j + 1]);
        }
    }
}

// ig_fa_store_rows writes a warp's 16×HS accumulators acc·f (f[0] for row
// groupID, f[1] for groupID+8), rounded to bf16, to rows t0..t0+15 of a
// head's part of a bf16 matrix (g: row 0, ld: row stride; rows ≥ T are
// skipped). The rows pass through the warp's own 16 rows of the tile
// stage (row stride IG_FA_LDS(HS)), which nothing else reads any more, so
// that each row leaves as whole 16-byte stores.
template <int HS>
static __device__ __forceinline__ void ig_fa_store_rows(ig_bf16* g, long long ld, int t0, int T, ig_bf16* stage,
                                                        const float acc[][4], const float f[2], int lane) {
    constexpr int LDS = IG_FA_LDS(HS), CPR = HS / 8;
    const int gr = lane >> 2, tq = lane & 3;
#pragma unroll
    for (int j = 0; j < HS / 8; j++) {
        const int c = 8 * j + 2 * tq;
        *reinterpret_cast<uint32_t*>(stage + gr * LDS + c) = ig_bf16x2_pack(acc[j][0] * f[0], acc[j][1] * f[0]);
        *reinterpret_cast<uint32_t*>(stage + (gr + 8) * LDS + c) = ig_bf16x2_pack(acc[j][2] * f[1], acc[j][3] * f[1]);
    }
    __syncwarp();
#pragma unroll
    for (int i = 0; i < 16 * CPR / 32; i++) {
        const int c = lane + 32 * i, r = c / CPR, k = (c % CPR) * 8;
        if (t0 + r < T)
            *reinterpret_cast<ig_fa_chunk*>(g + (t0 + r) * ld + k) =
                *reinterpret_cast<const ig_fa_chunk*>(stage + r * LDS + k);
    }
}

// ig_fa_smem_ok reports whether the launch gave the block at least need
// bytes of dynamic shared memory (smem, passed by the wrapper); if not it
// raises code on the flag with need as the value, and the kernel writes
// nothing.
static __device__ __forceinline__ bool ig_fa_smem_ok(int smem, int need, int code, int* flag) {
    if (smem >= need) return true;
    if (threadIdx.x == 0) ig_raise(flag, code, 0, need);
    return false;
}
