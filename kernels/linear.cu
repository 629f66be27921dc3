// The epilogues of the fused linear layers (gpu.Backend.MatMulBias,
// MatMulBiasGELU, MatMulDGELU) where cuBLASLt does not run them: the
// product is already in acc, float32 [rows, C] (the output itself when T is
// float, a scratch buffer for bf16), and each kernel finishes it in float32
// and rounds each output element once on store. So the one rounding per
// output of the contract holds on this path as on cuBLASLt's.
//
// Launch shape: the elementwise one (elementwise.cu), a 1-D grid of 1-D
// blocks striding over rows·C elements. acc may be exactly an output (T
// float): each element is read before the same thread writes it, so no
// pointer is __restrict__.
#include "common.cuh"
#include "act.cuh"
#include "gelu.cuh"

// linear_bias_f32, linear_bias_bf16: out[r,c] = acc[r,c] + bias[c].
template <class T>
static __device__ __forceinline__ void ig_linear_bias(T* out, const float* acc, const T* bias, long long rows, int C) {
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long n = rows * C;
    for (long long i = tid; i < n; i += stride) ig_st(out + i, acc[i] + ig_ld(bias + (int)(i % C)));
}
extern "C" __global__ void linear_bias_f32(float* out, const float* acc, const float* bias, long long rows, int C) {
    ig_linear_bias(out, acc, bias, rows, C);
}
extern "C" __global__ void linear_bias_bf16(ig_bf16* out, const float* acc, const ig_bf16* bias, long long rows,
                                            int C) {
    ig_linear_bias(out, acc, bias, rows, C);
}

// linear_bias_gelu_f32, linear_bias_gelu_bf16: pre[r,c] = acc[r,c] +
// bias[c] and out[r,c] = gelu of that float32 sum (not of the rounded pre,
// as cuBLASLt's GELU_AUX_BIAS epilogue computes it).
template <class T>
static __device__ __forceinline__ void ig_linear_bias_gelu(T* out, T* pre, const float* acc, const T* bias,
                                                           long long rows, int C) {
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    const long long n = rows * C;
    for (long long i = tid; i < n; i += stride) {
        const float v = acc[i] + ig_ld(bias + (int)(i % C));
        ig_st(pre + i, v);
        ig_st(out + i, ig_gelu(v));
    }
}
extern "C" __global__ void linear_bias_gelu_f32(float* out, float* pre, const float* acc, const float* bias,
                                                long long rows, int C) {
    ig_linear_bias_gelu(out, pre, acc, bias, rows, C);
}
extern "C" __global__ void linear_bias_gelu_bf16(ig_bf16* out, ig_bf16* pre, const float* acc, const ig_bf16* bias,
                                                 long long rows, int C) {
    ig_linear_bias_gelu(out, pre, acc, bias, rows, C);
}

// linear_dgelu_f32, linear_dgelu_bf16: dpre[i] = gelu'(pre[i])·acc[i].
template <class T>
static __device__ __forceinline__ void ig_linear_dgelu(T* dpre, const float* acc, const T* pre, long long n) {
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = tid; i < n; i += stride) ig_st(dpre + i, ig_gelu_grad(ig_ld(pre + i), acc[i]));
}
extern "C" __global__ void linear_dgelu_f32(float* dpre, const float* acc, const float* pre, long long n) {
    ig_linear_dgelu(dpre, acc, pre, n);
}
extern "C" __global__ void linear_dgelu_bf16(ig_bf16* dpre, const float* acc, const ig_bf16* pre, long long n) {
    ig_linear_dgelu(dpre, acc, pre, n);
}
