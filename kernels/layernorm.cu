// Layer normalisation over the last dimension (eps 1e-5, biased variance),
// one warp per row.
//
// Forward: the row mean and the sum of squared deviations are accumulated in
// double (per lane, then across the warp), as the cpu backend does in
// float64, so rows far from zero keep their precision; the output is
// computed in float from (x − mean) (subtracted in double) times rstd. The
// fused residual form (add_layernorm_forward) first stores the row's sum
// a + b and then normalises it as stored, with the same arithmetic.
//
// Backward: dinp += per row (one warp per row, row sums in float); dweight
// and dbias += the column sums over all rows, deterministically: each warp
// adds its rows' contributions to its own shared-memory row of 2C partial
// sums (a lane owns fixed columns, so no races), the block adds its warps'
// rows in warp order and stores one partial row per block, and
// layernorm_params_finish adds the blocks' partial rows in block order, in
// double. Which rows a warp takes depends only on N and the grid.
//
// out, inp, weight, bias, dinp, dout and the fused form's res, a, b are of
// the activation type (a kernel per type, _f32 and _bf16; kernels/act.cuh):
// bf16 is widened on load and rounded once on store, dinp += included
// (widened, added, rounded). mean, rstd, the partial rows and dweight,
// dbias are float32 in both.
#include "common.cuh"
#include "act.cuh"

#define IG_LN_EPS 1e-5

// ig_ln_normalise finishes the forward pass of one row x of C elements in
// one warp, given each lane's double sum s of its elements (lane-strided in
// vectors of VW): the mean, the double sum of squared deviations (a second
// read of x), rstd, and o = (x − mean)·rstd·weight + bias (a third read).
template <class T, int VW>
static __device__ __forceinline__ void ig_ln_normalise(T* __restrict__ o, float* __restrict__ mean,
                                                       float* __restrict__ rstd, const T* x,
                                                       const T* __restrict__ weight, const T* __restrict__ bias,
                                                       int row, int C, double s) {
    const int lane = threadIdx.x & 31;
    const double m = ig_warp_sum_d(s) / (double)C;
    double ss = 0.0;
    for (int c = lane * VW; c < C; c += 32 * VW) {
        float v[VW];
        ig_ldv<VW>(x + c, v);
#pragma unroll
        for (int k = 0; k < VW; k++) {
            const double d = (double)v[k] - m;
            ss += d * d;
        }
    }
    const double rs = 1.0 / sqrt(ig_warp_sum_d(ss) / (double)C + IG_LN_EPS);
    const float rsf = (float)rs;
    for (int c = lane * VW; c < C; c += 32 * VW) {
        float v[VW], w[VW], b[VW], r[VW];
        ig_ldv<VW>(x + c, v);
        ig_ldv<VW>(weight + c, w);
        ig_ldv<VW>(bias + c, b);
#pragma unroll
        for (int k = 0; k < VW; k++) r[k] = (float)((double)v[k] - m) * rsf * w[k] + b[k];
        ig_stv<VW>(o + c, r);
    }
    if (lane == 0) {
        if (mean) mean[row] = (float)m;
        if (rstd) rstd[row] = rsf;
    }
}

template <class T, int VW>
static __device__ __forceinline__ void ig_ln_forward(T* __restrict__ out, float* __restrict__ mean,
                                                     float* __restrict__ rstd, const T* __restrict__ inp,
                                                     const T* __restrict__ weight, const T* __restrict__ bias,
                                                     int N, int C) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;  // uniform per warp; no block-wide barrier follows
    const T* x = inp + (long long)row * C;
    double s = 0.0;
    for (int c = lane * VW; c < C; c += 32 * VW) {
        float v[VW];
        ig_ldv<VW>(x + c, v);
#pragma unroll
        for (int k = 0; k < VW; k++) s += (double)v[k];
    }
    ig_ln_normalise<T, VW>(out + (long long)row * C, mean, rstd, x, weight, bias, row, C, s);
}

// layernorm_forward_f32, layernorm_forward_bf16: out = (inp − mean)·rstd·
// weight + bias per row of inp [N,C]; mean and rstd [N] (float32) may be
// null.
// Launch: grid (ceil(N / W)), blocks of 32·W threads (the wrapper uses
// W = 8): warp w of block k normalises row k·W + w, each lane 16-byte
// vectors (4 floats, 8 bf16) when vec: C a multiple of that width and out,
// inp, weight, bias 16-byte aligned.
extern "C" __global__ void layernorm_forward_f32(float* __restrict__ out, float* __restrict__ mean,
                                                 float* __restrict__ rstd, const float* __restrict__ inp,
                                                 const float* __restrict__ weight, const float* __restrict__ bias,
                                                 int N, int C, int vec) {
    if (vec)
        ig_ln_forward<float, 4>(out, mean, rstd, inp, weight, bias, N, C);
    else
        ig_ln_forward<float, 1>(out, mean, rstd, inp, weight, bias, N, C);
}

extern "C" __global__ void layernorm_forward_bf16(ig_bf16* __restrict__ out, float* __restrict__ mean,
                                                  float* __restrict__ rstd, const ig_bf16* __restrict__ inp,
                                                  const ig_bf16* __restrict__ weight,
                                                  const ig_bf16* __restrict__ bias, int N, int C, int vec) {
    if (vec)
        ig_ln_forward<ig_bf16, 8>(out, mean, rstd, inp, weight, bias, N, C);
    else
        ig_ln_forward<ig_bf16, 1>(out, mean, rstd, inp, weight, bias, N, C);
}

// ig_add_ln_forward: res = a + b stored (rounded once in bf16), and the
// row sum taken of the stored values in the order ig_ln_forward takes it;
// then ig_ln_normalise reads the row back from res. Each lane reads back
// only the elements it wrote, so no barrier is needed.
template <class T, int VW>
static __device__ __forceinline__ void ig_add_ln_forward(T* __restrict__ res, T* __restrict__ out,
                                                         float* __restrict__ mean, float* __restrict__ rstd,
                                                         const T* __restrict__ a, const T* __restrict__ b,
                                                         const T* __restrict__ weight, const T* __restrict__ bias,
                                                         int N, int C) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;  // uniform per warp; no block-wide barrier follows
    const long long base = (long long)row * C;
    T* x = res + base;
    double s = 0.0;
    for (int c = lane * VW; c < C; c += 32 * VW) {
        float u[VW], v[VW];
        ig_ldv<VW>(a + base + c, u);
        ig_ldv<VW>(b + base + c, v);
#pragma unroll
        for (int k = 0; k < VW; k++) v[k] = ig_stored(x, u[k] + v[k]);
        ig_stv<VW>(x + c, v);
#pragma unroll
        for (int k = 0; k < VW; k++) s += (double)v[k];
    }
    ig_ln_normalise<T, VW>(out + base, mean, rstd, x, weight, bias, row, C, s);
}

// add_layernorm_forward_f32, add_layernorm_forward_bf16: res = a + b and
// out = layernorm(res) per row of [N,C] (mean and rstd, float32, may be
// null), the normalisation reading the sum as stored, so the results are
// add's and layernorm_forward's. res is written once and read back twice
// (the squared deviations, the output) by the lane that wrote it; add then
// layernorm_forward write it once and read it three times.
// Launch: as layernorm_forward: grid (ceil(N / W)), blocks of 32·W threads
// (the wrapper uses W = 8), warp w of block k on row k·W + w; vec: 16-byte
// vectors when C is a multiple of their width and res, out, a, b, weight,
// bias are 16-byte aligned.
extern "C" __global__ void add_layernorm_forward_f32(float* __restrict__ res, float* __restrict__ out,
                                                     float* __restrict__ mean, float* __restrict__ rstd,
                                                     const float* __restrict__ a, const float* __restrict__ b,
                                                     const float* __restrict__ weight,
                                                     const float* __restrict__ bias, int N, int C, int vec) {
    if (vec)
        ig_add_ln_forward<float, 4>(res, out, mean, rstd, a, b, weight, bias, N, C);
    else
        ig_add_ln_forward<float, 1>(res, out, mean, rstd, a, b, weight, bias, N, C);
}

extern "C" __global__ void add_layernorm_forward_bf16(ig_bf16* __restrict__ res, ig_bf16* __restrict__ out,
                                                      float* __restrict__ mean, float* __restrict__ rstd,
                                                      const ig_bf16* __restrict__ a, const ig_bf16* __restrict__ b,
                                                      const ig_bf16* __restrict__ weight,
                                                      const ig_bf16* __restrict__ bias, int N, int C, int vec) {
    if (vec)
        ig_add_ln_forward<ig_bf16, 8>(res, out, mean, rstd, a, b, weight, bias, N, C);
    else
        ig_add_ln_forward<ig_bf16, 1>(res, out, mean, rstd, a, b, weight, bias, N, C);
}

template <class T, int VW>
static __device__ __forceinline__ void ig_ln_backward(T* __restrict__ dinp, float* __restrict__ partial,
                                                      const T* __restrict__ dout, const T* __restrict__ inp,
                                                      const T* __restrict__ weight, const float* __restrict__ mean,
                                                      const float* __restrict__ rstd, int N, int C) {
    IG_DYN_SMEM(float, acc);  // [W][2C]: per warp, C dweight then C dbias sums
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, W = blockDim.x >> 5;
    float* my = acc + (long long)warp * 2 * C;
    for (int c = lane; c < 2 * C; c += 32) my[c] = 0.0f;
    __syncwarp();
    const float invC = 1.0f / (float)C;
    for (int row = blockIdx.x * W + warp; row < N; row += gridDim.x * W) {
        const T* x = inp + (long long)row * C;
        const T* dy = dout + (long long)row * C;
        T* dx = dinp + (long long)row * C;
        const float m = mean[row], rs = rstd[row];
        // dnorm = w·dy; dx = rstd·(dnorm − mean(dnorm) − norm·mean(dnorm·norm)).
        float sumD = 0.0f, sumDN = 0.0f;
        for (int c = lane * VW; c < C; c += 32 * VW) {
            float v[VW], g[VW], w[VW];
            ig_ldv<VW>(x + c, v);
            ig_ldv<VW>(dy + c, g);
            ig_ldv<VW>(weight + c, w);
#pragma unroll
            for (int k = 0; k < VW; k++) {
                const float a = w[k] * g[k];
                sumD += a;
                sumDN += a * ((v[k] - m) * rs);
            }
        }
        const float meanD = ig_warp_sum(sumD) * invC;
        const float meanDN = ig_warp_sum(sumDN) * invC;
        for (int c = lane * VW; c < C; c += 32 * VW) {
            float v[VW], g[VW], w[VW], d[VW], pw[VW], pb[VW];
            ig_ldv<VW>(x + c, v);
            ig_ldv<VW>(dy + c, g);
            ig_ldv<VW>(weight + c, w);
            ig_ldv<VW>(dx + c, d);
            ig_ldv<VW>(my + c, pw);
            ig_ldv<VW>(my + C + c, pb);
#pragma unroll
            for (int k = 0; k < VW; k++) {
                const float nrm = (v[k] - m) * rs;
                pw[k] += nrm * g[k];
                pb[k] += g[k];
                d[k] += (w[k] * g[k] - meanD - nrm * meanDN) * rs;
            }
            ig_stv<VW>(dx + c, d);
            ig_stv<VW>(my + c, pw);
            ig_stv<VW>(my + C + c, pb);
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) {
        float s = 0.0f;
        for (int w = 0; w < W; w++) s += acc[(long long)w * 2 * C + c];
        partial[(long long)blockIdx.x * 2 * C + c] = s;
    }
}

// layernorm_backward_f32, layernorm_backward_bf16: dinp += the input
// gradient of every row of inp [N,C]; partial [gridDim.x, 2C] (float)
// receives each block's column sums of norm·dout (for dweight) and dout
// (for dbias), which layernorm_params_finish adds.
// Launch: grid (G), blocks of 32·W threads, dynamic shared memory
// W·2C·4 bytes (the wrapper picks W ≤ 8 with that at most 48 KiB, and
// G = min(ceil(N/W), 512): both from N and C alone); warp w of block k takes
// rows k·W + w, then every G·W-th.
// vec: 16-byte vectors (4 floats, 8 bf16; the shared sums then as two
// float4s): C a multiple of that width and dinp, dout, inp, weight 16-byte
// aligned.
extern "C" __global__ void layernorm_backward_f32(float* __restrict__ dinp, float* __restrict__ partial,
                                                  const float* __restrict__ dout, const float* __restrict__ inp,
                                                  const float* __restrict__ weight, const float* __restrict__ mean,
                                                  const float* __restrict__ rstd, int N, int C, int vec) {
    if (vec)
        ig_ln_backward<float, 4>(dinp, partial, dout, inp, weight, mean, rstd, N, C);
    else
        ig_ln_backward<float, 1>(dinp, partial, dout, inp, weight, mean, rstd, N, C);
}

extern "C" __global__ void layernorm_backward_bf16(ig_bf16* __restrict__ dinp, float* __restrict__ partial,
                                                   const ig_bf16* __restrict__ dout, const ig_bf16* __restrict__ inp,
                                                   const ig_bf16* __restrict__ weight,
                                                   const float* __restrict__ mean, const float* __restrict__ rstd,
                                                   int N, int C, int vec) {
    if (vec)
        ig_ln_backward<ig_bf16, 8>(dinp, partial, dout, inp, weight, mean, rstd, N, C);
    else
        ig_ln_backward<ig_bf16, 1>(dinp, partial, dout, inp, weight, mean, rstd, N, C);
}

// layernorm_params_finish: dweight[c] += Σ_k partial[k, c] and
// dbias[c] += Σ_k partial[k, C + c] over the G blocks in order, in double.
// Launch: 1-D, at least 2C threads in all (the wrapper uses 256-thread
// blocks); thread j < 2C finishes column j of the partial rows.
extern "C" __global__ void layernorm_params_finish(float* __restrict__ dweight, float* __restrict__ dbias,
                                                   const float* __restrict__ partial, int C, int G) {
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= 2 * C) return;
    double s = 0.0;
    for (int k = 0; k < G; k++) s += (double)partial[(long long)k * 2 * C + j];
    if (j < C)
        dweight[j] += (float)s;
    else
        dbias[j - C] += (float)s;
}
