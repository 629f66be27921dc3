// SumSquares and Dot: deterministic two-stage reductions into a one-element
// output.
//
// Stage 1 (sum_squares_partial, dot_partial): a 1-D grid of G blocks of 256
// threads (the Go wrapper picks G from n alone, at most 1024); thread t of
// the grid takes every (G·256)-th float4 from t (or every element, when a
// pointer is not 16-byte aligned). A float4's four products are added in
// float, and that sum is accumulated in double per thread; the block's
// threads are added in double by a fixed tree and partial[blockIdx.x]
// (double) receives the block's sum. Stage 2 (reduce_finish_f64, one block
// of 256 threads) adds the G partials in double by a fixed tree and stores
// the float rounding in out[0]. Which element goes to which thread and the
// order of every addition depend only on n and G, so a result is
// reproducible run to run; it differs from the cpu backend's float64 sum
// only by float rounding of each four-element group (relative 1e-7).
#include "common.cuh"

#define IG_RED_THREADS 256

extern "C" __global__ void sum_squares_partial(const float* __restrict__ x, long long n,
                                               double* __restrict__ partial) {
    __shared__ double sh[32];
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    double acc = 0.0;
    long long done = 0;
    if (ig_aligned16(x)) {
        const long long n4 = n >> 2;
        const float4* x4 = reinterpret_cast<const float4*>(x);
        for (long long i = tid; i < n4; i += stride) {
            const float4 v = x4[i];
            acc += (double)((v.x * v.x + v.y * v.y) + (v.z * v.z + v.w * v.w));
        }
        done = n4 << 2;
    }
    for (long long i = done + tid; i < n; i += stride) acc += (double)(x[i] * x[i]);
    acc = ig_block_sum_d(acc, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

extern "C" __global__ void dot_partial(const float* __restrict__ x, const float* __restrict__ y, long long n,
                                       double* __restrict__ partial) {
    __shared__ double sh[32];
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    double acc = 0.0;
    long long done = 0;
    if (ig_aligned16(x) && ig_aligned16(y)) {
        const long long n4 = n >> 2;
        const float4* x4 = reinterpret_cast<const float4*>(x);
        const float4* y4 = reinterpret_cast<const float4*>(y);
        for (long long i = tid; i < n4; i += stride) {
            const float4 a = x4[i], b = y4[i];
            acc += (double)((a.x * b.x + a.y * b.y) + (a.z * b.z + a.w * b.w));
        }
        done = n4 << 2;
    }
    for (long long i = done + tid; i < n; i += stride) acc += (double)(x[i] * y[i]);
    acc = ig_block_sum_d(acc, sh);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// reduce_finish_f64: out[0] = (float) Σ partial[0..count), one block.
extern "C" __global__ void reduce_finish_f64(const double* __restrict__ partial, int count,
                                             float* __restrict__ out) {
    __shared__ double sh[32];
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
    acc = ig_block_sum_d(acc, sh);
    if (threadIdx.x == 0) out[0] = (float)acc;
}
