// RMS normalisation over the last dimension (the Llama family's norm),
// layernorm.cu's scheme without the mean and the bias: one warp per row.
//
// Forward: the sum of squares is accumulated in double (per lane, then
// across the warp), rstd = 1/sqrt(Σx²/C + eps) in double, and the output is
// x·rstd·weight in float with rstd rounded to float (stored as the
// statistic).
//
// Backward: dinp += rstd·(w·dy − norm·mean(w·dy·norm)), norm = x·rstd, per
// row (one warp per row, the row sum in float); dweight += Σ_rows dy·norm,
// deterministically: each warp adds its rows' terms to its own
// shared-memory row of C partial sums (a lane owns fixed columns), the
// block adds its warps' rows in warp order into one partial row per block,
// and rmsnorm_weight_finish adds the blocks' rows in block order, in
// double. Which rows a warp takes depends only on N and the grid.
//
// out, inp, weight, dinp and dout are of the activation type (a kernel per
// type, _f32 and _bf16; kernels/act.cuh): bf16 is widened on load and
// rounded once on store, dinp += included. rstd, the partial rows and
// dweight are float32 in both.
#include "common.cuh"
#include "act.cuh"

template <class T, int VW>
static __device__ __forceinline__ void ig_rms_forward(T* __restrict__ out, float* __restrict__ rstd,
                                                      const T* __restrict__ inp, const T* __restrict__ weight,
                                                      int N, int C, float eps) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;  // uniform per warp; no block-wide barrier follows
    const T* x = inp + (long long)row * C;
    double ss = 0.0;
    for (int c = lane * VW; c < C; c += 32 * VW) {
        float v[VW];
        ig_ldv<VW>(x + c, v);
#pragma unroll
        for (int k = 0; k < VW; k++) ss += (double)v[k] * (double)v[k];
    }
    const float rsf = (float)(1.0 / sqrt(ig_warp_sum_d(ss) / (double)C + (double)eps));
    T* o = out + (long long)row * C;
    for (int c = lane * VW; c < C; c += 32 * VW) {
        float v[VW], w[VW], r[VW];
        ig_ldv<VW>(x + c, v);
        ig_ldv<VW>(weight + c, w);
#pragma unroll
        for (int k = 0; k < VW; k++) r[k] = v[k] * rsf * w[k];
        ig_stv<VW>(o + c, r);
    }
    if (lane == 0 && rstd) rstd[row] = rsf;
}

// rmsnorm_forward_f32, rmsnorm_forward_bf16: out = inp·rstd·weight per row
// of inp [N,C], rstd = 1/sqrt(mean(inp²) + eps) stored in rstd [N]
// (float32; may be null).
// Launch: grid (ceil(N / W)), blocks of 32·W threads (the wrapper uses
// W = 8): warp w of block k normalises row k·W + w, each lane 16-byte
// vectors (4 floats, 8 bf16) when vec: C a multiple of that width and out,
// inp, weight 16-byte aligned.
extern "C" __global__ void rmsnorm_forward_f32(float* __restrict__ out, float* __restrict__ rstd,
                                               const float* __restrict__ inp, const float* __restrict__ weight,
                                               int N, int C, float eps, int vec) {
    if (vec)
        ig_rms_forward<float, 4>(out, rstd, inp, weight, N, C, eps);
    else
        ig_rms_forward<float, 1>(out, rstd, inp, weight, N, C, eps);
}

extern "C" __global__ void rmsnorm_forward_bf16(ig_bf16* __restrict__ out, float* __restrict__ rstd,
                                                const ig_bf16* __restrict__ inp, const ig_bf16* __restrict__ weight,
                                                int N, int C, float eps, int vec) {
    if (vec)
        ig_rms_forward<ig_bf16, 8>(out, rstd, inp, weight, N, C, eps);
    else
        ig_rms_forward<ig_bf16, 1>(out, rstd, inp, weight, N, C, eps);
}

template <class T, int VW>
static __device__ __forceinline__ void ig_rms_backward(T* __restrict__ dinp, float* __restrict__ partial,
                                                       const T* __restrict__ dout, const T* __restrict__ inp,
                                                       const T* __restrict__ weight, const float* __restrict__ rstd,
                                                       int N, int C) {
    IG_DYN_SMEM(float, acc);  // [W][C]: per warp, C dweight sums
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, W = blockDim.x >> 5;
    float* my = acc + (long long)warp * C;
    for (int c = lane; c < C; c += 32) my[c] = 0.0f;
    __syncwarp();
    const float invC = 1.0f / (float)C;
    for (int row = blockIdx.x * W + warp; row < N; row += gridDim.x * W) {
        const T* x = inp + (long long)row * C;
        const T* dy = dout + (long long)row * C;
        T* dx = dinp + (long long)row * C;
        const float rs = rstd[row];
        float sumDN = 0.0f;
        for (int c = lane * VW; c < C; c += 32 * VW) {
            float v[VW], g[VW], w[VW];
            ig_ldv<VW>(x + c, v);
            ig_ldv<VW>(dy + c, g);
            ig_ldv<VW>(weight + c, w);
#pragma unroll
            for (int k = 0; k < VW; k++) sumDN += w[k] * g[k] * (v[k] * rs);
        }
        const float meanDN = ig_warp_sum(sumDN) * invC;
        for (int c = lane * VW; c < C; c += 32 * VW) {
            float v[VW], g[VW], w[VW], d[VW], pw[VW];
            ig_ldv<VW>(x + c, v);
            ig_ldv<VW>(dy + c, g);
            ig_ldv<VW>(weight + c, w);
            ig_ldv<VW>(dx + c, d);
            ig_ldv<VW>(my + c, pw);
#pragma unroll
            for (int k = 0; k < VW; k++) {
                const float nrm = v[k] * rs;
                pw[k] += nrm * g[k];
                d[k] += (w[k] * g[k] - nrm * meanDN) * rs;
            }
            ig_stv<VW>(dx + c, d);
            ig_stv<VW>(my + c, pw);
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float s = 0.0f;
        for (int w = 0; w < W; w++) s += acc[(long long)w * C + c];
        partial[(long long)blockIdx.x * C + c] = s;
    }
}

// rmsnorm_backward_f32, rmsnorm_backward_bf16: dinp += the input gradient
// of every row of inp [N,C]; partial [gridDim.x, C] (float) receives each
// block's column sums of norm·dout, which rmsnorm_weight_finish adds.
// Launch: grid (G), blocks of 32·W threads, dynamic shared memory W·C·4
// bytes (the wrapper picks W ≤ 8 with that at most 48 KiB, and
// G = min(ceil(N/W), 512): both from N and C alone); warp w of block k
// takes rows k·W + w, then every G·W-th. vec: 16-byte vectors (4 floats,
// 8 bf16; the shared sums then as two float4s): C a multiple of that width
// and dinp, dout, inp, weight 16-byte aligned.
extern "C" __global__ void rmsnorm_backward_f32(float* __restrict__ dinp, float* __restrict__ partial,
                                                const float* __restrict__ dout, const float* __restrict__ inp,
                                                const float* __restrict__ weight, const float* __restrict__ rstd,
                                                int N, int C, int vec) {
    if (vec)
        ig_rms_backward<float, 4>(dinp, partial, dout, inp, weight, rstd, N, C);
    else
        ig_rms_backward<float, 1>(dinp, partial, dout, inp, weight, rstd, N, C);
}

extern "C" __global__ void rmsnorm_backward_bf16(ig_bf16* __restrict__ dinp, float* __restrict__ partial,
                                                 const ig_bf16* __restrict__ dout, const ig_bf16* __restrict__ inp,
                                                 const ig_bf16* __restrict__ weight, const float* __restrict__ rstd,
                                                 int N, int C, int vec) {
    if (vec)
        ig_rms_backward<ig_bf16, 8>(dinp, partial, dout, inp, weight, rstd, N, C);
    else
        ig_rms_backward<ig_bf16, 1>(dinp, partial, dout, inp, weight, rstd, N, C);
}

// rmsnorm_weight_finish: dweight[c] += Σ_k partial[k, c] over the G blocks
// in order, in double.
// Launch: 1-D, at least C threads in all (the wrapper uses 256-thread
// blocks); thread j < C finishes column j.
extern "C" __global__ void rmsnorm_weight_finish(float* __restrict__ dweight, const float* __restrict__ partial,
                                                 int C, int G) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= C) return;
    double s = 0.0;
    for (int k = 0; k < G; k++) s += (double)partial[(long long)k * C + j];
    dweight[j] += (float)s;
}
