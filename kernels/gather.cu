// GatherRows and ScatterAddRows: one row per sequence, for the scalar heads
// read at the last non-padding token.
//
// Launch: grid (B), blocks of 1-D threads of any size (the Go wrappers use
// 128); block b moves row idx[b] of sequence b, threads striding over the C
// columns. Both kernels write nothing once the error flag is set (an index
// outside [0,T) found by the check queued before them) and skip an index
// outside [0,T) in any case.
#include "common.cuh"

// gather_rows: out[b, :] = inp[b, idx[b], :].
extern "C" __global__ void gather_rows(float* __restrict__ out, const float* __restrict__ inp,
                                       const int* __restrict__ idx, int B, int T, int C, const int* flag) {
    if (ig_failed(flag)) return;
    const int b = blockIdx.x;
    if (b >= B) return;
    const int t = idx[b];
    if (t < 0 || t >= T) return;
    const float* src = inp + ((long long)b * T + t) * C;
    float* dst = out + (long long)b * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
}

// scatter_add_rows: dinp[b, idx[b], :] += dout[b, :]. Rows of different b
// are in different sequences, so no two blocks write the same element.
extern "C" __global__ void scatter_add_rows(float* __restrict__ dinp, const float* __restrict__ dout,
                                            const int* __restrict__ idx, int B, int T, int C, const int* flag) {
    if (ig_failed(flag)) return;
    const int b = blockIdx.x;
    if (b >= B) return;
    const int t = idx[b];
    if (t < 0 || t >= T) return;
    float* dst = dinp + ((long long)b * T + t) * C;
    const float* src = dout + (long long)b * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] += src[c];
}
