// Conversions between float32 and bf16 tensors, and the bf16 fill and copy
// (the float32 ones are in elementwise.cu). Rounding is kernels/bf16.cuh's,
// the same as gpu.BF16Bits on the host.
// Launch: the elementwise shape (elementwise.cu): a grid-stride loop over n.
#include "common.cuh"
#include "bf16.cuh"

// convert_f32_bf16: dst[i] = bf16(src[i]), rounded to nearest even.
extern "C" __global__ void convert_f32_bf16(ig_bf16* __restrict__ dst, const float* __restrict__ src, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = ig_bf16_from_float(src[i]);
}

// convert_bf16_f32: dst[i] = src[i] widened (exact).
extern "C" __global__ void convert_bf16_f32(float* __restrict__ dst, const ig_bf16* __restrict__ src, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = ig_bf16_to_float(src[i]);
}

// fill_bf16: x[i] = the bf16 value whose bits are the low half of bits (the
// host rounds the fill value once).
extern "C" __global__ void fill_bf16(ig_bf16* __restrict__ x, long long n, unsigned int bits) {
    const ig_bf16 v{(uint16_t)bits};
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) x[i] = v;
}

// copy_bf16: dst[i] = src[i] (dst and src do not overlap).
extern "C" __global__ void copy_bf16(ig_bf16* __restrict__ dst, const ig_bf16* __restrict__ src, long long n) {
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) dst[i] = src[i];
}
