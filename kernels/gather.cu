// GatherRows and ScatterAddRows: one row per sequence, for the scalar heads
// read at the last non-padding token and for Prefill's last position.
// Templated on the activation type T (float or ig_bf16, kernels/act.cuh):
// the gather copies elements; the scatter-add widens, adds in float32 and
// rounds once.
//
// Launch: grid (B), blocks of 1-D threads of any size (the Go wrappers use
// 128); block b moves row idx[b] of sequence b, threads striding over the C
// columns. Both kernels write nothing once the error flag is set (an index
// outside [0,T) found by the check queued before them) and skip an index
// outside [0,T) in any case.
#include "common.cuh"
#include "act.cuh"

// gather_rows: out[b, :] = inp[b, idx[b], :].
template <typename T>
static __device__ __forceinline__ void ig_gather_rows(T* __restrict__ out, const T* __restrict__ inp,
                                                      const int* __restrict__ idx, int B, int T_, int C,
                                                      const int* flag) {
    if (ig_failed(flag)) return;
    const int b = blockIdx.x;
    if (b >= B) return;
    const int t = idx[b];
    if (t < 0 || t >= T_) return;
    const T* src = inp + ((long long)b * T_ + t) * C;
    T* dst = out + (long long)b * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
}

// scatter_add_rows: dinp[b, idx[b], :] += dout[b, :]. Rows of different b
// are in different sequences, so no two blocks write the same element.
template <typename T>
static __device__ __forceinline__ void ig_scatter_add_rows(T* __restrict__ dinp, const T* __restrict__ dout,
                                                           const int* __restrict__ idx, int B, int T_, int C,
                                                           const int* flag) {
    if (ig_failed(flag)) return;
    const int b = blockIdx.x;
    if (b >= B) return;
    const int t = idx[b];
    if (t < 0 || t >= T_) return;
    T* dst = dinp + ((long long)b * T_ + t) * C;
    const T* src = dout + (long long)b * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) ig_st(dst + c, ig_ld(dst + c) + ig_ld(src + c));
}

extern "C" __global__ void gather_rows_f32(float* out, const float* inp, const int* idx, int B, int T, int C, const int* flag) {
    ig_gather_rows(out, inp, idx, B, T, C, flag);
}
extern "C" __global__ void gather_rows_bf16(ig_bf16* out, const ig_bf16* inp, const int* idx, int B, int T, int C, const int* flag) {
    ig_gather_rows(out, inp, idx, B, T, C, flag);
}
extern "C" __global__ void scatter_add_rows_f32(float* dinp, const float* dout, const int* idx, int B, int T, int C, const int* flag) {
    ig_scatter_add_rows(dinp, dout, idx, B, T, C, flag);
}
extern "C" __global__ void scatter_add_rows_bf16(ig_bf16* dinp, const ig_bf16* dout, const int* idx, int B, int T, int C, const int* flag) {
    ig_scatter_add_rows(dinp, dout, idx, B, T, C, flag);
}
