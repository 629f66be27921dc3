// Layer normalisation over the last dimension (eps 1e-5, biased variance),
// one warp per row.
//
// Forward: the row mean and the sum of squared deviations are accumulated in
// double (per lane, then across the warp), as the cpu backend does in
// float64, so rows far from zero keep their precision; the output is
// computed in float from (x − mean) (subtracted in double) times rstd.
//
// Backward: dinp += per row (one warp per row, row sums in float); dweight
// and dbias += the column sums over all rows, deterministically: each warp
// adds its rows' contributions to its own shared-memory row of 2C partial
// sums (a lane owns fixed columns, so no races), the block adds its warps'
// rows in warp order and stores one partial row per block, and
// layernorm_params_finish adds the blocks' partial rows in block order, in
// double. Which rows a warp takes depends only on N and the grid.
#include "common.cuh"

#define IG_LN_EPS 1e-5

// ig_ln_load reads VW consecutive floats at p (16-byte aligned when VW = 4).
template <int VW>
static __device__ __forceinline__ void ig_ln_load(const float* p, float* x) {
    if (VW == 4) {
        const float4 v = *reinterpret_cast<const float4*>(p);
        x[0] = v.x; x[1] = v.y; x[2] = v.z; x[3] = v.w;
    } else {
        x[0] = p[0];
    }
}

template <int VW>
static __device__ __forceinline__ void ig_ln_store(float* p, const float* x) {
    if (VW == 4) {
        *reinterpret_cast<float4*>(p) = make_float4(x[0], x[1], x[2], x[3]);
    } else {
        p[0] = x[0];
    }
}

template <int VW>
static __device__ __forceinline__ void ig_ln_forward(float* __restrict__ out, float* __restrict__ mean,
                                                     float* __restrict__ rstd, const float* __restrict__ inp,
                                                     const float* __restrict__ weight,
                                                     const float* __restrict__ bias, int N, int C) {
    const int lane = threadIdx.x & 31;
    const int row = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (row >= N) return;  // uniform per warp; no block-wide barrier follows
    const float* x = inp + (long long)row * C;
    float* o = out + (long long)row * C;
    double s = 0.0;
    for (int c = lane * VW; c < C; c += 32 * VW) {
        float v[VW];
        ig_ln_load<VW>(x + c, v);
#pragma unroll
        for (int k = 0; k < VW; k++) s += (double)v[k];
    }
    const double m = ig_warp_sum_d(s) / (double)C;
    double ss = 0.0;
    for (int c = lane * VW; c < C; c += 32 * VW) {
        float v[VW];
        ig_ln_load<VW>(x + c, v);
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
        ig_ln_load<VW>(x + c, v);
        ig_ln_load<VW>(weight + c, w);
        ig_ln_load<VW>(bias + c, b);
#pragma unroll
        for (int k = 0; k < VW; k++) r[k] = (float)((double)v[k] - m) * rsf * w[k] + b[k];
        ig_ln_store<VW>(o + c, r);
    }
    if (lane == 0) {
        if (mean) mean[row] = (float)m;
        if (rstd) rstd[row] = rsf;
    }
}

// layernorm_forward: out = (inp − mean)·rstd·weight + bias per row of
// inp [N,C]; mean and rstd [N] may be null.
// Launch: grid (ceil(N / W)), blocks of 32·W threads (the wrapper uses
// W = 8): warp w of block k normalises row k·W + w. vec4: C a multiple of 4
// and out, inp, weight, bias 16-byte aligned.
extern "C" __global__ void layernorm_forward(float* __restrict__ out, float* __restrict__ mean,
                                             float* __restrict__ rstd, const float* __restrict__ inp,
                                             const float* __restrict__ weight, const float* __restrict__ bias, int N,
                                             int C, int vec4) {
    if (vec4)
        ig_ln_forward<4>(out, mean, rstd, inp, weight, bias, N, C);
    else
        ig_ln_forward<1>(out, mean, rstd, inp, weight, bias, N, C);
}

template <int VW>
static __device__ __forceinline__ void ig_ln_backward(float* __restrict__ dinp, float* __restrict__ partial,
                                                      const float* __restrict__ dout, const float* __restrict__ inp,
                                                      const float* __restrict__ weight,
                                                      const float* __restrict__ mean,
                                                      const float* __restrict__ rstd, int N, int C) {
    IG_DYN_SMEM(float, acc);  // [W][2C]: per warp, C dweight then C dbias sums
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, W = blockDim.x >> 5;
    float* my = acc + (long long)warp * 2 * C;
    for (int c = lane; c < 2 * C; c += 32) my[c] = 0.0f;
    __syncwarp();
    const float invC = 1.0f / (float)C;
    for (int row = blockIdx.x * W + warp; row < N; row += gridDim.x * W) {
        const float* x = inp + (long long)row * C;
        const float* dy = dout + (long long)row * C;
        float* dx = dinp + (long long)row * C;
        const float m = mean[row], rs = rstd[row];
        // dnorm = w·dy; dx = rstd·(dnorm − mean(dnorm) − norm·mean(dnorm·norm)).
        float sumD = 0.0f, sumDN = 0.0f;
        for (int c = lane * VW; c < C; c += 32 * VW) {
            float v[VW], g[VW], w[VW];
            ig_ln_load<VW>(x + c, v);
            ig_ln_load<VW>(dy + c, g);
            ig_ln_load<VW>(weight + c, w);
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
            ig_ln_load<VW>(x + c, v);
            ig_ln_load<VW>(dy + c, g);
            ig_ln_load<VW>(weight + c, w);
            ig_ln_load<VW>(dx + c, d);
            ig_ln_load<VW>(my + c, pw);
            ig_ln_load<VW>(my + C + c, pb);
#pragma unroll
            for (int k = 0; k < VW; k++) {
                const float nrm = (v[k] - m) * rs;
                pw[k] += nrm * g[k];
                pb[k] += g[k];
                d[k] += (w[k] * g[k] - meanD - nrm * meanDN) * rs;
            }
            ig_ln_store<VW>(dx + c, d);
            ig_ln_store<VW>(my + c, pw);
            ig_ln_store<VW>(my + C + c, pb);
        }
    }
    __syncthreads();
    for (int c = threadIdx.x; c < 2 * C; c += blockDim.x) {
        float s = 0.0f;
        for (int w = 0; w < W; w++) s += acc[(long long)w * 2 * C + c];
        partial[(long long)blockIdx.x * 2 * C + c] = s;
    }
}

// layernorm_backward: dinp += the input gradient of every row of inp [N,C];
// partial [gridDim.x, 2C] receives each block's column sums of norm·dout
// (for dweight) and dout (for dbias), which layernorm_params_finish adds.
// Launch: grid (G), blocks of 32·W threads, dynamic shared memory
// W·2C·4 bytes (the wrapper picks W ≤ 8 with that at most 48 KiB, and
// G = min(ceil(N/W), 512): both from N and C alone); warp w of block k takes
// rows k·W + w, then every G·W-th.
// vec4: C a multiple of 4 and dinp, dout, inp, weight 16-byte aligned.
extern "C" __global__ void layernorm_backward(float* __restrict__ dinp, float* __restrict__ partial,
                                              const float* __restrict__ dout, const float* __restrict__ inp,
                                              const float* __restrict__ weight, const float* __restrict__ mean,
                                              const float* __restrict__ rstd, int N, int C, int vec4) {
    if (vec4)
        ig_ln_backward<4>(dinp, partial, dout, inp, weight, mean, rstd, N, C);
    else
        ig_ln_backward<1>(dinp, partial, dout, inp, weight, mean, rstd, N, C);
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
