// SwiGLU, the gated activation of the Llama family's MLP: out[r,j] =
// silu(g)·u with g = inp[r,j] (the gate columns [0,F)) and u = inp[r,F+j]
// (the up columns [F,2F)); the backward pass writes d gate =
// dout·u·σ(g)·(1 + g·(1−σ(g))) and d up = dout·silu(g) into dinp [N,2F].
// σ(g) is computed from e = e^−|g| (never overflowing): 1/(1+e) for g ≥ 0,
// e/(1+e) below, as the cpu backend does (gpu/cpu/swiglu.go).
//
// inp, out, dout and dinp are of the activation type (a kernel per type,
// _f32 and _bf16; kernels/act.cuh): bf16 is widened on load and each output
// element rounded once.
//
// Launch (all four): 1-D grid-stride over the N·F output elements, any
// grid (the wrapper uses the elementwise shape: 256 threads, about four
// elements a thread); element e = r·F + j.
#include "common.cuh"
#include "act.cuh"

// ig_sigmoid is 1/(1 + e^−g) from e^−|g|.
static __device__ __forceinline__ float ig_sigmoid(float g) {
    const float e = expf(-fabsf(g));
    return g >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

template <class T>
static __device__ __forceinline__ void ig_swiglu_forward(T* __restrict__ out, const T* __restrict__ inp,
                                                         long long n, int F) {
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        const long long r = e / F, j = e - r * F;
        const T* row = inp + r * 2 * F;
        const float g = ig_ld(row + j), u = ig_ld(row + F + j);
        ig_st(out + e, g * ig_sigmoid(g) * u);
    }
}

template <class T>
static __device__ __forceinline__ void ig_swiglu_backward(T* __restrict__ dinp, const T* __restrict__ inp,
                                                          const T* __restrict__ dout, long long n, int F) {
    for (long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x; e < n; e += (long long)gridDim.x * blockDim.x) {
        const long long r = e / F, j = e - r * F;
        const T* row = inp + r * 2 * F;
        const float g = ig_ld(row + j), u = ig_ld(row + F + j), dy = ig_ld(dout + e);
        const float s = ig_sigmoid(g);
        T* drow = dinp + r * 2 * F;
        ig_st(drow + j, dy * u * (s * (1.0f + g * (1.0f - s))));
        ig_st(drow + F + j, dy * (g * s));
    }
}

// swiglu_forward_f32, swiglu_forward_bf16: out [N,F] from inp [N,2F];
// n = N·F.
extern "C" __global__ void swiglu_forward_f32(float* __restrict__ out, const float* __restrict__ inp, long long n,
                                              int F) {
    ig_swiglu_forward(out, inp, n, F);
}
extern "C" __global__ void swiglu_forward_bf16(ig_bf16* __restrict__ out, const ig_bf16* __restrict__ inp,
                                               long long n, int F) {
    ig_swiglu_forward(out, inp, n, F);
}

// swiglu_backward_f32, swiglu_backward_bf16: dinp [N,2F] (overwritten)
// from inp [N,2F] and dout [N,F]; n = N·F.
extern "C" __global__ void swiglu_backward_f32(float* __restrict__ dinp, const float* __restrict__ inp,
                                               const float* __restrict__ dout, long long n, int F) {
    ig_swiglu_backward(dinp, inp, dout, n, F);
}
extern "C" __global__ void swiglu_backward_bf16(ig_bf16* __restrict__ dinp, const ig_bf16* __restrict__ inp,
                                                const ig_bf16* __restrict__ dout, long long n, int F) {
    ig_swiglu_backward(dinp, inp, dout, n, F);
}
