// gemm.cu: the fallback SGEMM, used by MatMul when cuBLAS cannot be loaded
// (and by the parity tests, which cover both paths).
//
// Row-major, batched, with transposes:
//
//   C[z] = alpha · op(A[z]) · op(B[z]) + beta · C[z]      z = blockIdx.z
//
// op(A) is M×K: A is stored [M,K] (row stride lda) or, for the _t* kernels,
// [K,M]. op(B) is K×N: B is stored [K,N] (row stride ldb) or, for the *_t
// kernels, [N,K]. C is [M,N] with row stride ldc. Batch element z starts at
// A + z·strideA, B + z·strideB, C + z·strideC (a stride of 0 shares the
// operand). beta == 0 never reads C, so C may hold garbage (NaN) then.
// K == 0 gives C = beta·C (0 when beta == 0).
//
// Launch shape: block (16, 16, 1) = 256 threads; grid (ceil(N/64),
// ceil(M/64), batch). Each block computes a 64×64 tile of C; each thread a
// 4×4 sub-tile, rows ty + 16·i and columns tx + 16·j, so the stores of a
// warp are 16 consecutive floats. The K dimension is walked in steps of 16:
// the block stages a 64×16 slice of op(A) and a 16×64 slice of op(B) in
// shared memory (k-major, 2 × 16 × 65 floats = 8.3 KB), each thread loading
// 4 elements of each along the direction that is contiguous in global
// memory. All loads and stores are bounds-checked (out-of-range elements
// load as 0), and no alignment beyond 4 bytes is assumed, so any view of a
// tensor works.
//
// Registers: 16 accumulators plus 8 operands; ptxas reports no spills (see
// build/cuda/ptxas.txt after `make kernels`).

#define GEMM_BM 64
#define GEMM_BN 64
#define GEMM_BK 16
#define GEMM_THREADS 256

template <bool TA, bool TB>
__device__ __forceinline__ void gemm_tile(float *__restrict__ C, const float *__restrict__ A,
                                          const float *__restrict__ B, int M, int N, int K,
                                          int lda, int ldb, int ldc, long long strideA,
                                          long long strideB, long long strideC, float alpha,
                                          float beta) {
    // +1 column of padding keeps the transposing stores free of bank conflicts.
    __shared__ float As[GEMM_BK][GEMM_BM + 1];
    __shared__ float Bs[GEMM_BK][GEMM_BN + 1];

    const int tx = threadIdx.x;  // 0..15: column group
    const int ty = threadIdx.y;  // 0..15: row group
    const int t = ty * 16 + tx;  // 0..255
    const int row0 = blockIdx.y * GEMM_BM;
    const int col0 = blockIdx.x * GEMM_BN;
    const long long z = blockIdx.z;
    A += z * strideA;
    B += z * strideB;
    C += z * strideC;

    float acc[4][4];
#pragma unroll
    for (int i = 0; i < 4; i++)
#pragma unroll
        for (int j = 0; j < 4; j++) acc[i][j] = 0.0f;

    for (int k0 = 0; k0 < K; k0 += GEMM_BK) {
        // Stage op(A)[row0:row0+64, k0:k0+16] as As[p][i].
#pragma unroll
        for (int r = 0; r < 4; r++) {
            int i, p;
            if (TA) {  // stored [K,M]: contiguous along i
                i = t % GEMM_BM;
                p = t / GEMM_BM + 4 * r;
            } else {  // stored [M,K]: contiguous along p
                p = t % GEMM_BK;
                i = t / GEMM_BK + 16 * r;
            }
            const int gi = row0 + i, gp = k0 + p;
            float v = 0.0f;
            if (gi < M && gp < K) v = TA ? A[(long long)gp * lda + gi] : A[(long long)gi * lda + gp];
            As[p][i] = v;
        }
        // Stage op(B)[k0:k0+16, col0:col0+64] as Bs[p][j].
#pragma unroll
        for (int r = 0; r < 4; r++) {
            int j, p;
            if (TB) {  // stored [N,K]: contiguous along p
                p = t % GEMM_BK;
                j = t / GEMM_BK + 16 * r;
            } else {  // stored [K,N]: contiguous along j
                j = t % GEMM_BN;
                p = t / GEMM_BN + 4 * r;
            }
            const int gj = col0 + j, gp = k0 + p;
            float v = 0.0f;
            if (gj < N && gp < K) v = TB ? B[(long long)gj * ldb + gp] : B[(long long)gp * ldb + gj];
            Bs[p][j] = v;
        }
        __syncthreads();
#pragma unroll
        for (int p = 0; p < GEMM_BK; p++) {
            float a[4], b[4];
#pragma unroll
            for (int i = 0; i < 4; i++) a[i] = As[p][ty + 16 * i];
#pragma unroll
            for (int j = 0; j < 4; j++) b[j] = Bs[p][tx + 16 * j];
#pragma unroll
            for (int i = 0; i < 4; i++)
#pragma unroll
                for (int j = 0; j < 4; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        __syncthreads();
    }

#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int gi = row0 + ty + 16 * i;
        if (gi >= M) continue;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int gj = col0 + tx + 16 * j;
            if (gj >= N) continue;
            float *c = C + (long long)gi * ldc + gj;
            float v = alpha * acc[i][j];
            if (beta != 0.0f) v = fmaf(beta, *c, v);
            *c = v;
        }
    }
}

#define GEMM_KERNEL(name, TA, TB)                                                                  \
    extern "C" __global__ void __launch_bounds__(GEMM_THREADS)                                     \
        name(float *C, const float *A, const float *B, int M, int N, int K, int lda, int ldb,      \
             int ldc, long long strideA, long long strideB, long long strideC, float alpha,        \
             float beta) {                                                                         \
        gemm_tile<TA, TB>(C, A, B, M, N, K, lda, ldb, ldc, strideA, strideB, strideC, alpha,       \
                          beta);                                                                   \
    }

// gemm_fallback_XY: X is A's form (n: [M,K], t: [K,M]), Y is B's form
// (n: [K,N], t: [N,K]). Arguments, in order: C, A, B (float pointers);
// M, N, K, lda, ldb, ldc (int32); strideA, strideB, strideC (int64, in
// elements); alpha, beta (float32).
GEMM_KERNEL(gemm_fallback_nn, false, false)
GEMM_KERNEL(gemm_fallback_nt, false, true)
GEMM_KERNEL(gemm_fallback_tn, true, false)
GEMM_KERNEL(gemm_fallback_tt, true, true)
