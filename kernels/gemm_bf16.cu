// gemm_bf16.cu: the fallback bf16 GEMM on tensor cores, used by MatMul
// with bf16 A and B when cuBLASLt cannot be loaded (and always in the
// emulated build, so CI checks the math the GPU runs without cuBLAS).
//
//   C[z] = alpha · op(A[z]) · op(B[z]) + beta · C[z]      z = blockIdx.z
//
// Operands as in gemm.cu: row-major, A stored [M,K] (or [K,M] for the t*
// kernels), B stored [K,N] (or [N,K] for the *t kernels), C [M,N] with row
// stride ldc, batch element z at A + z·strideA, B + z·strideB, C + z·strideC
// (in elements; 0 shares the operand). A and B are bf16; C is float32
// (_cf32) or bf16 (_cbf16). Products are exact in fp32 and summed in fp32
// by mma.sync; the epilogue computes alpha·acc + beta·C in fp32 and rounds
// once to C's type. beta == 0 never reads C (it may hold NaN). K == 0 gives
// C = beta·C.
//
// Block tile 128 (M) × 128 (N), K in steps of 32, 256 threads = 8 warps
// arranged 2 (M) × 4 (N), each warp owning a 64 × 32 tile of C: 4 × 4
// mma.m16n8k16 tiles, 64 fp32 accumulators per thread. Per 16-wide k step
// a warp loads its A fragments with 4 ldmatrix.x4 and its B fragments with
// 2 ldmatrix.x4 (with .trans where the stored tile runs along k: a
// transposed A, a plain B) and issues 16 mma.
//
// Shared memory: two stages (double buffering) of one A and one B tile,
// each stored as in global memory: a k-contiguous tile is 128 rows × 32
// bf16, a k-strided one 32 rows × 128 bf16, every row padded by 8 bf16 (16
// bytes) so that the 8 row addresses of an ldmatrix fall in 8 different
// 4-bank groups. 2 stages × 2 tiles × 128·40 bf16 = 40 KiB, static.
//
// Loads: each tile is 512 chunks of 8 bf16, two per thread. The aligned
// kernels copy a chunk with one 16-byte cp.async (zero-filled past the
// matrix edge): stage k+1 is in flight while stage k is multiplied. They
// need A, B 16-byte aligned and lda, ldb, strideA, strideB multiples of 8
// (the caller checks). The _ua kernels load the same chunks element by
// element with bounds checks (any pointer, any leading dimension), storing
// them into the next stage before the current one is multiplied.
//
// Launch: block (256, 1, 1), grid (ceil(N/128), ceil(M/128), batch), no
// dynamic shared memory. Needs sm_80 (bf16 mma, ldmatrix, cp.async).
// Registers: 64 accumulators, 16 A and 8 B fragment registers; ptxas must
// report no spills (make kernels checks every gemm kernel).
//
// Verified against the CPU backend under the emulator only (gpu/cuda
// matmul_bf16_parity_test.go); no claim about its speed on hardware.
#include "common.cuh"
#include "mma.cuh"

#define GB_BM 128
#define GB_BN 128
#define GB_BK 32
#define GB_PAD 8
#define GB_THREADS 256
#define GB_TILE_ELEMS (GB_BM * (GB_BK + GB_PAD))  // the larger of the two tile forms

static_assert(GB_BM == GB_BN, "gb_load_tile assumes square block tiles");
static_assert(GB_BM * (GB_BK + GB_PAD) >= GB_BK * (GB_BM + GB_PAD), "tile storage too small");

// gb_load_tile stages one operand tile in shared memory s, laid out as the
// operand is stored. KC: the stored rows run along the block's M or N and
// are contiguous in k (a tile of GB_BM rows × GB_BK); otherwise the rows
// run along k (GB_BK rows × GB_BM). (r0, c0) is the tile's first stored row
// and column in g, whose stored size is rows × cols with row stride ld.
template <bool KC, bool VEC>
__device__ __forceinline__ void gb_load_tile(ig_bf16* s, const ig_bf16* __restrict__ g, int ld, int rows,
                                             int cols, int r0, int c0) {
    constexpr int COLS = KC ? GB_BK : GB_BM;
    constexpr int SLD = COLS + GB_PAD;
    constexpr int CPR = COLS / 8;  // 16-byte chunks per stored row
#pragma unroll
    for (int i = 0; i < 2; i++) {
        const int c = threadIdx.x + i * GB_THREADS;
        const int r = c / CPR, cc = (c % CPR) * 8;
        const int gr = r0 + r, gc = c0 + cc;
        ig_bf16* dst = s + r * SLD + cc;
        if (VEC) {
            const int n = gr < rows ? max(0, min(8, cols - gc)) : 0;
            // A chunk past the edge copies nothing from g itself (aligned).
            const ig_bf16* src = n > 0 ? g + (long long)gr * ld + gc : g;
            ig_cp_async_16_zfill(dst, src, 2 * n);
        } else {
            uint32_t w[4];
#pragma unroll
            for (int e = 0; e < 4; e++) {
                uint32_t lo = 0, hi = 0;
                if (gr < rows) {
                    const ig_bf16* p = g + (long long)gr * ld + gc + 2 * e;
                    if (gc + 2 * e < cols) lo = p[0].bits;
                    if (gc + 2 * e + 1 < cols) hi = p[1].bits;
                }
                w[e] = lo | (hi << 16);
            }
            uint32_t* d = reinterpret_cast<uint32_t*>(dst);
#pragma unroll
            for (int e = 0; e < 4; e++) d[e] = w[e];
        }
    }
}

// gb_frag_a loads the A fragments (mma.cuh's a[0..3]) of the four 16×16
// tiles rows wm..wm+63, k columns kk..kk+15 of the stage's A tile. A
// k-contiguous tile holds A row-major: ldmatrix.x4 of the quarters
// top-left, bottom-left, top-right, bottom-right. A k-strided tile holds
// Aᵀ: the same quarters read with .trans.
template <bool KC>
__device__ __forceinline__ void gb_frag_a(uint32_t af[4][4], const ig_bf16* s, int wm, int kk, int lane) {
    const int r8 = lane & 7, q = lane >> 3;  // row in a quarter, quarter 0..3
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
        // Quarter q covers rows 8·(q&1).. and k columns 8·(q>>1).. of the tile.
        const int m = wm + mi * 16 + 8 * (q & 1), k = kk + 8 * (q >> 1);
        if (KC) {
            ig_ldmatrix_x4(af[mi], s + (m + r8) * (GB_BK + GB_PAD) + k);
        } else {
            ig_ldmatrix_x4_trans(af[mi], s + (k + r8) * (GB_BM + GB_PAD) + m);
        }
    }
}

// gb_frag_b loads the B fragments (mma.cuh's b[0..1]) of the four 16×8
// tiles k rows kk..kk+15, columns wn..wn+31. Each ldmatrix.x4 covers two
// n8 tiles: matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15),
// (k 8-15, n 8-15). A k-contiguous tile holds Bᵀ (rows n): its rows are
// mma's "col" B as is; a k-strided tile holds B (rows k) and is read with
// .trans.
template <bool KC>
__device__ __forceinline__ void gb_frag_b(uint32_t bf[4][2], const ig_bf16* s, int wn, int kk, int lane) {
    const int r8 = lane & 7, q = lane >> 3;
#pragma unroll
    for (int p = 0; p < 2; p++) {
        uint32_t r[4];
        const int k = kk + 8 * (q & 1), n = wn + p * 16 + 8 * (q >> 1);
        if (KC) {
            ig_ldmatrix_x4(r, s + (n + r8) * (GB_BK + GB_PAD) + k);
        } else {
            ig_ldmatrix_x4_trans(r, s + (k + r8) * (GB_BN + GB_PAD) + n);
        }
        bf[2 * p][0] = r[0];
        bf[2 * p][1] = r[1];
        bf[2 * p + 1][0] = r[2];
        bf[2 * p + 1][1] = r[3];
    }
}

__device__ __forceinline__ float gb_load_c(const float* c) { return *c; }
__device__ __forceinline__ float gb_load_c(const ig_bf16* c) { return ig_bf16_to_float(*c); }
__device__ __forceinline__ void gb_store_c(float* c, float v) { *c = v; }
__device__ __forceinline__ void gb_store_c(ig_bf16* c, float v) { *c = ig_bf16_from_float(v); }

template <bool TA, bool TB, bool VEC, typename OutT>
__device__ __forceinline__ void gemm_bf16_tile(OutT* __restrict__ C, const ig_bf16* __restrict__ A,
                                               const ig_bf16* __restrict__ B, int M, int N, int K, int lda,
                                               int ldb, int ldc, long long strideA, long long strideB,
                                               long long strideC, float alpha, float beta) {
    __shared__ __align__(16) ig_bf16 As[2][GB_TILE_ELEMS];
    __shared__ __align__(16) ig_bf16 Bs[2][GB_TILE_ELEMS];
    // A is k-contiguous when not transposed, B when transposed.
    constexpr bool AKC = !TA, BKC = TB;

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
    const int m0 = blockIdx.y * GB_BM, n0 = blockIdx.x * GB_BN;
    const long long z = blockIdx.z;
    A += z * strideA;
    B += z * strideB;
    C += z * strideC;

    // The stored extents and tile origins of A and B (see gb_load_tile).
    const int arows = TA ? K : M, acols = TA ? M : K;
    const int brows = TB ? N : K, bcols = TB ? K : N;
    auto load_stage = [&](int st, int k0) {
        gb_load_tile<AKC, VEC>(As[st], A, lda, arows, acols, TA ? k0 : m0, TA ? m0 : k0);
        gb_load_tile<BKC, VEC>(Bs[st], B, ldb, brows, bcols, TB ? n0 : k0, TB ? k0 : n0);
        if (VEC) ig_cp_async_commit();
    };

    float acc[4][4][4];
#pragma unroll
    for (int mi = 0; mi < 4; mi++)
#pragma unroll
        for (int nj = 0; nj < 4; nj++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[mi][nj][i] = 0.0f;

    const int nk = (K + GB_BK - 1) / GB_BK;
    if (nk > 0) load_stage(0, 0);
    for (int kt = 0; kt < nk; kt++) {
        // Stage (kt+1)&1 was last read in iteration kt-1, before its
        // closing barrier: it is free.
        if (kt + 1 < nk) {
            load_stage((kt + 1) & 1, (kt + 1) * GB_BK);
        } else if (VEC) {
            ig_cp_async_commit();  // an empty group keeps the wait below uniform
        }
        if (VEC) ig_cp_async_wait<1>();  // this thread's copies of stage kt landed
        __syncthreads();                 // ... and everyone else's
        const ig_bf16* as = As[kt & 1];
        const ig_bf16* bs = Bs[kt & 1];
#pragma unroll
        for (int kk = 0; kk < GB_BK; kk += 16) {
            uint32_t af[4][4], bf[4][2];
            gb_frag_a<AKC>(af, as, wm, kk, lane);
            gb_frag_b<BKC>(bf, bs, wn, kk, lane);
#pragma unroll
            for (int mi = 0; mi < 4; mi++)
#pragma unroll
                for (int nj = 0; nj < 4; nj++) ig_mma_m16n8k16_bf16_f32(acc[mi][nj], af[mi], bf[nj], acc[mi][nj]);
        }
        __syncthreads();  // stage kt&1 is refilled in the next iteration
    }

    // Accumulator i of tile (mi, nj): row groupID (+8 for i >= 2), column
    // 2·threadID_in_group + i%2 (mma.cuh's C/D layout).
    const int g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int mi = 0; mi < 4; mi++) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int row = m0 + wm + mi * 16 + g + (i >= 2 ? 8 : 0);
            if (row >= M) continue;
#pragma unroll
            for (int nj = 0; nj < 4; nj++) {
                const int col = n0 + wn + nj * 8 + 2 * t + (i & 1);
                if (col >= N) continue;
                OutT* c = C + (long long)row * ldc + col;
                float v = alpha * acc[mi][nj][i];
                if (beta != 0.0f) v = fmaf(beta, gb_load_c(c), v);
                gb_store_c(c, v);
            }
        }
    }
}

#define GEMM_BF16_KERNEL(name, TA, TB, VEC, OutT)                                                       \
    extern "C" __global__ void __launch_bounds__(GB_THREADS)                                            \
        name(OutT *C, const ig_bf16 *A, const ig_bf16 *B, int M, int N, int K, int lda, int ldb, int ldc, \
             long long strideA, long long strideB, long long strideC, float alpha, float beta) {         \
        gemm_bf16_tile<TA, TB, VEC, OutT>(C, A, B, M, N, K, lda, ldb, ldc, strideA, strideB, strideC,   \
                                          alpha, beta);                                                 \
    }

// gemm_bf16_XY_cT[_ua]: X is A's form (n: [M,K], t: [K,M]), Y is B's form
// (n: [K,N], t: [N,K]), T is C's type (f32 or bf16); _ua loads without
// cp.async, for operands that are not 16-byte aligned. Arguments, in
// order: C, A, B (pointers); M, N, K, lda, ldb, ldc (int32); strideA,
// strideB, strideC (int64, in elements); alpha, beta (float32).
GEMM_BF16_KERNEL(gemm_bf16_nn_cf32, false, false, true, float)
GEMM_BF16_KERNEL(gemm_bf16_nt_cf32, false, true, true, float)
GEMM_BF16_KERNEL(gemm_bf16_tn_cf32, true, false, true, float)
GEMM_BF16_KERNEL(gemm_bf16_tt_cf32, true, true, true, float)
GEMM_BF16_KERNEL(gemm_bf16_nn_cbf16, false, false, true, ig_bf16)
GEMM_BF16_KERNEL(gemm_bf16_nt_cbf16, false, true, true, ig_bf16)
GEMM_BF16_KERNEL(gemm_bf16_tn_cbf16, true, false, true, ig_bf16)
GEMM_BF16_KERNEL(gemm_bf16_tt_cbf16, true, true, true, ig_bf16)
GEMM_BF16_KERNEL(gemm_bf16_nn_cf32_ua, false, false, false, float)
GEMM_BF16_KERNEL(gemm_bf16_nt_cf32_ua, false, true, false, float)
GEMM_BF16_KERNEL(gemm_bf16_tn_cf32_ua, true, false, false, float)
GEMM_BF16_KERNEL(gemm_bf16_tt_cf32_ua, true, true, false, float)
GEMM_BF16_KERNEL(gemm_bf16_nn_cbf16_ua, false, false, false, ig_bf16)
GEMM_BF16_KERNEL(gemm_bf16_nt_cbf16_ua, false, true, false, ig_bf16)
GEMM_BF16_KERNEL(gemm_bf16_tn_cbf16_ua, true, false, false, ig_bf16)
GEMM_BF16_KERNEL(gemm_bf16_tt_cbf16_ua, true, true, false, ig_bf16)
