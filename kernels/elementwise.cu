// Elementwise ops (Fill, Copy, Scale, Axpy, Add, Lerp, GELU, Dropout) and the
// bias ops (AddBias, BiasBackward).
//
// Launch shape of the elementwise kernels: a 1-D grid of 1-D blocks of any
// size (the Go wrappers use 256 threads and min(ceil(n/1024), 4096)
// blocks); threads stride over the elements (grid-stride loop), so any grid
// covers any n. When every pointer of the call is 16-byte aligned, threads
// step over 16-byte vectors (4 floats, 8 bf16) and a scalar loop finishes
// the last elements; otherwise the whole call is scalar. n is a long long
// element count.
//
// The activation-class ops (Add, GELU, Dropout, AddBias, BiasBackward's
// dout) have a kernel per activation type, _f32 and _bf16, instantiating
// one template: bf16 elements are widened on load, the math is float32, and
// each output element is rounded once on store (kernels/act.cuh).
//
// Ops that allow an output to be exactly an input (Add, GELU forward and
// backward, Dropout) do not mark those pointers __restrict__: each element is
// read before it is written by the same thread, so in place is safe.
#include "common.cuh"
#include "act.cuh"
#include "gelu.cuh"

#define IG_EW_BEGIN                                                             \
    const long long ig_tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;  \
    const long long ig_stride = (long long)gridDim.x * blockDim.x;

// fill_f32: x[i] = v.
extern "C" __global__ void fill_f32(float* __restrict__ x, long long n, float v) {
    IG_EW_BEGIN
    if (ig_aligned16(x)) {
        const long long n4 = n >> 2;
        float4* x4 = reinterpret_cast<float4*>(x);
        const float4 v4 = make_float4(v, v, v, v);
        for (long long i = ig_tid; i < n4; i += ig_stride) x4[i] = v4;
        for (long long i = (n4 << 2) + ig_tid; i < n; i += ig_stride) x[i] = v;
    } else {
        for (long long i = ig_tid; i < n; i += ig_stride) x[i] = v;
    }
}

// copy_f32: dst[i] = src[i] (dst and src do not overlap).
extern "C" __global__ void copy_f32(float* __restrict__ dst, const float* __restrict__ src, long long n) {
    IG_EW_BEGIN
    if (ig_aligned16(dst) && ig_aligned16(src)) {
        const long long n4 = n >> 2;
        float4* d4 = reinterpret_cast<float4*>(dst);
        const float4* s4 = reinterpret_cast<const float4*>(src);
        for (long long i = ig_tid; i < n4; i += ig_stride) d4[i] = s4[i];
        for (long long i = (n4 << 2) + ig_tid; i < n; i += ig_stride) dst[i] = src[i];
    } else {
        for (long long i = ig_tid; i < n; i += ig_stride) dst[i] = src[i];
    }
}

// scale_f32: x[i] *= alpha.
extern "C" __global__ void scale_f32(float* __restrict__ x, long long n, float alpha) {
    IG_EW_BEGIN
    if (ig_aligned16(x)) {
        const long long n4 = n >> 2;
        float4* x4 = reinterpret_cast<float4*>(x);
        for (long long i = ig_tid; i < n4; i += ig_stride) {
            float4 v = x4[i];
            v.x *= alpha; v.y *= alpha; v.z *= alpha; v.w *= alpha;
            x4[i] = v;
        }
        for (long long i = (n4 << 2) + ig_tid; i < n; i += ig_stride) x[i] *= alpha;
    } else {
        for (long long i = ig_tid; i < n; i += ig_stride) x[i] *= alpha;
    }
}

// axpy_f32: y[i] += alpha·x[i] (no overlap).
extern "C" __global__ void axpy_f32(float* __restrict__ y, const float* __restrict__ x, long long n, float alpha) {
    IG_EW_BEGIN
    if (ig_aligned16(y) && ig_aligned16(x)) {
        const long long n4 = n >> 2;
        float4* y4 = reinterpret_cast<float4*>(y);
        const float4* x4 = reinterpret_cast<const float4*>(x);
        for (long long i = ig_tid; i < n4; i += ig_stride) {
            float4 a = y4[i];
            const float4 b = x4[i];
            a.x += alpha * b.x; a.y += alpha * b.y; a.z += alpha * b.z; a.w += alpha * b.w;
            y4[i] = a;
        }
        for (long long i = (n4 << 2) + ig_tid; i < n; i += ig_stride) y[i] += alpha * x[i];
    } else {
        for (long long i = ig_tid; i < n; i += ig_stride) y[i] += alpha * x[i];
    }
}

// ig_ew_map1 sets out[i] = f(x[i], i) and ig_ew_map2 out[i] = f(a[i], b[i], i)
// for i < n, with the elementwise launch shape: 16-byte vectors of T when
// every pointer is aligned, one element at a time otherwise. out may be
// exactly an input.
template <class T, class F>
static __device__ __forceinline__ void ig_ew_map1(T* out, const T* x, long long n, F f) {
    IG_EW_BEGIN
    constexpr int VW = IG_VW(T);
    if (ig_aligned16(out) && ig_aligned16(x)) {
        const long long nv = n / VW;
        for (long long i = ig_tid; i < nv; i += ig_stride) {
            float v[VW];
            ig_ldv<VW>(x + i * VW, v);
#pragma unroll
            for (int k = 0; k < VW; k++) v[k] = f(v[k], i * VW + k);
            ig_stv<VW>(out + i * VW, v);
        }
        for (long long i = nv * VW + ig_tid; i < n; i += ig_stride) ig_st(out + i, f(ig_ld(x + i), i));
    } else {
        for (long long i = ig_tid; i < n; i += ig_stride) ig_st(out + i, f(ig_ld(x + i), i));
    }
}

template <class T, class F>
static __device__ __forceinline__ void ig_ew_map2(T* out, const T* a, const T* b, long long n, F f) {
    IG_EW_BEGIN
    constexpr int VW = IG_VW(T);
    if (ig_aligned16(out) && ig_aligned16(a) && ig_aligned16(b)) {
        const long long nv = n / VW;
        for (long long i = ig_tid; i < nv; i += ig_stride) {
            float u[VW], v[VW];
            ig_ldv<VW>(a + i * VW, u);
            ig_ldv<VW>(b + i * VW, v);
#pragma unroll
            for (int k = 0; k < VW; k++) u[k] = f(u[k], v[k], i * VW + k);
            ig_stv<VW>(out + i * VW, u);
        }
        for (long long i = nv * VW + ig_tid; i < n; i += ig_stride)
            ig_st(out + i, f(ig_ld(a + i), ig_ld(b + i), i));
    } else {
        for (long long i = ig_tid; i < n; i += ig_stride) ig_st(out + i, f(ig_ld(a + i), ig_ld(b + i), i));
    }
}

// add_f32, add_bf16: out[i] = a[i] + b[i]; out may be exactly a or b.
template <class T>
static __device__ __forceinline__ void ig_add(T* out, const T* a, const T* b, long long n) {
    ig_ew_map2(out, a, b, n, [](float x, float y, long long) { return x + y; });
}
extern "C" __global__ void add_f32(float* out, const float* a, const float* b, long long n) { ig_add(out, a, b, n); }
extern "C" __global__ void add_bf16(ig_bf16* out, const ig_bf16* a, const ig_bf16* b, long long n) {
    ig_add(out, a, b, n);
}

// lerp_f32: avg[i] += t·(x[i] − avg[i]) (no overlap).
extern "C" __global__ void lerp_f32(float* __restrict__ avg, const float* __restrict__ x, long long n, float t) {
    IG_EW_BEGIN
    if (ig_aligned16(avg) && ig_aligned16(x)) {
        const long long n4 = n >> 2;
        float4* a4 = reinterpret_cast<float4*>(avg);
        const float4* x4 = reinterpret_cast<const float4*>(x);
        for (long long i = ig_tid; i < n4; i += ig_stride) {
            float4 a = a4[i];
            const float4 b = x4[i];
            a.x += t * (b.x - a.x); a.y += t * (b.y - a.y); a.z += t * (b.z - a.z); a.w += t * (b.w - a.w);
            a4[i] = a;
        }
        for (long long i = (n4 << 2) + ig_tid; i < n; i += ig_stride) avg[i] += t * (x[i] - avg[i]);
    } else {
        for (long long i = ig_tid; i < n; i += ig_stride) avg[i] += t * (x[i] - avg[i]);
    }
}

// ---- GELU (kernels/gelu.cuh) ----

// gelu_forward_f32, gelu_forward_bf16: out[i] = gelu(inp[i]); out may be
// exactly inp.
template <class T>
static __device__ __forceinline__ void ig_gelu_forward(T* out, const T* inp, long long n) {
    ig_ew_map1(out, inp, n, [](float x, long long) { return ig_gelu(x); });
}
extern "C" __global__ void gelu_forward_f32(float* out, const float* inp, long long n) {
    ig_gelu_forward(out, inp, n);
}
extern "C" __global__ void gelu_forward_bf16(ig_bf16* out, const ig_bf16* inp, long long n) {
    ig_gelu_forward(out, inp, n);
}

// gelu_backward_f32, gelu_backward_bf16: dinp[i] = gelu'(inp[i])·dout[i];
// dinp may be exactly dout (never inp).
template <class T>
static __device__ __forceinline__ void ig_gelu_backward(T* dinp, const T* inp, const T* dout, long long n) {
    ig_ew_map2(dinp, inp, dout, n, [](float x, float dy, long long) { return ig_gelu_grad(x, dy); });
}
extern "C" __global__ void gelu_backward_f32(float* dinp, const float* inp, const float* dout, long long n) {
    ig_gelu_backward(dinp, inp, dout, n);
}
extern "C" __global__ void gelu_backward_bf16(ig_bf16* dinp, const ig_bf16* inp, const ig_bf16* dout, long long n) {
    ig_gelu_backward(dinp, inp, dout, n);
}

// ---- dropout ----

// ig_drop keeps v·scale unless element i's draw gpu.DropoutUniform(seed, i)
// = ig_uniform(seed, i) is below p. The draw and the comparison are exact,
// and the product v·scale is one IEEE multiplication with the float32 scale
// 1/(1−p) the host computed as the cpu backend does, so the output equals
// the cpu backend's bit for bit.
static __device__ __forceinline__ float ig_drop(float v, long long i, float p, float scale,
                                                unsigned long long seed) {
    return ig_uniform(seed, (unsigned long long)i) < p ? 0.0f : v * scale;
}

// dropout_f32, dropout_bf16: out[i] = inp[i]·keep_i·scale, for both Dropout
// and DropoutBackward (the same mask for the same seed). out may be exactly
// inp. The host handles p = 0 (a copy, or nothing in place). In bf16 the
// product is rounded once: the cpu backend's float32 result, rounded.
template <class T>
static __device__ __forceinline__ void ig_dropout(T* out, const T* inp, long long n, float p, float scale,
                                                  unsigned long long seed) {
    ig_ew_map1(out, inp, n, [=](float x, long long i) { return ig_drop(x, i, p, scale, seed); });
}
extern "C" __global__ void dropout_f32(float* out, const float* inp, long long n, float p, float scale,
                                       unsigned long long seed) {
    ig_dropout(out, inp, n, p, scale, seed);
}
extern "C" __global__ void dropout_bf16(ig_bf16* out, const ig_bf16* inp, long long n, float p, float scale,
                                        unsigned long long seed) {
    ig_dropout(out, inp, n, p, scale, seed);
}

// ---- bias ----

// add_bias_f32, add_bias_bf16: out[r, c] += bias[c] for rows r < rows,
// columns c < C (in bf16: widened, added, rounded once). Elementwise launch
// shape over rows·C elements; 16-byte vectors when C is a multiple of the
// width and both pointers are aligned.
template <class T>
static __device__ __forceinline__ void ig_add_bias(T* __restrict__ out, const T* __restrict__ bias, long long rows,
                                                   int C) {
    IG_EW_BEGIN
    constexpr int VW = IG_VW(T);
    const long long n = rows * C;
    if (C % VW == 0 && ig_aligned16(out) && ig_aligned16(bias)) {
        const int Cv = C / VW;
        const long long nv = n / VW;
        for (long long i = ig_tid; i < nv; i += ig_stride) {
            float v[VW], b[VW];
            ig_ldv<VW>(out + i * VW, v);
            ig_ldv<VW>(bias + (long long)(i % Cv) * VW, b);
#pragma unroll
            for (int k = 0; k < VW; k++) v[k] += b[k];
            ig_stv<VW>(out + i * VW, v);
        }
    } else {
        for (long long i = ig_tid; i < n; i += ig_stride) ig_st(out + i, ig_ld(out + i) + ig_ld(bias + (int)(i % C)));
    }
}
extern "C" __global__ void add_bias_f32(float* __restrict__ out, const float* __restrict__ bias, long long rows,
                                        int C) {
    ig_add_bias(out, bias, rows, C);
}
extern "C" __global__ void add_bias_bf16(ig_bf16* __restrict__ out, const ig_bf16* __restrict__ bias,
                                         long long rows, int C) {
    ig_add_bias(out, bias, rows, C);
}

// BiasBackward, deterministic in two stages (no atomics):
//
// bias_backward_partial_f32, bias_backward_partial_bf16 (dout of the
// activation type, partial float): grid (ceil(C / (32·VW)), chunks), block
// (32, 8): block (x, y) sums rows [y·rowsPerChunk, (y+1)·rowsPerChunk) of
// the 32·VW-column tile x. Warp w takes every 8th row from w, each lane VW
// consecutive columns (VW = 4 floats or 8 bf16 in one 16-byte load when
// vec: C a multiple of that and dout aligned; VW = 1 otherwise), summing in
// float; the 8 warps' sums are then added in warp order through shared
// memory and partial[y·C + c] receives the chunk's sum.
// bias_backward_finish: one thread per column (any 1-D launch of at least C
// threads) adds the chunks' partials in chunk order, in double, to
// dbias[c]. The result depends only on rows, C and rowsPerChunk.
template <class T, int VW>
static __device__ __forceinline__ void ig_bias_partial(const T* __restrict__ dout, float* __restrict__ partial,
                                                       int rows, int C, int rowsPerChunk) {
    __shared__ float sh[8][32 * VW];
    const int lane = threadIdx.x, w = threadIdx.y;
    const int c0 = (blockIdx.x * 32 + lane) * VW;
    const int r0 = blockIdx.y * rowsPerChunk;
    const int r1 = min(rows, r0 + rowsPerChunk);
    float acc[VW];
#pragma unroll
    for (int k = 0; k < VW; k++) acc[k] = 0.0f;
    if (c0 < C) {
        for (int r = r0 + w; r < r1; r += 8) {
            float v[VW];
            ig_ldv<VW>(dout + (long long)r * C + c0, v);
#pragma unroll
            for (int k = 0; k < VW; k++) acc[k] += v[k];
        }
    }
#pragma unroll
    for (int k = 0; k < VW; k++) sh[w][lane * VW + k] = acc[k];
    __syncthreads();
    // 32·VW columns, 256 threads: thread t finishes column t of the tile.
    const int t = w * 32 + lane;
    if (t < 32 * VW) {
        const int c = blockIdx.x * 32 * VW + t;
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; k++) s += sh[k][t];
        if (c < C) partial[(long long)blockIdx.y * C + c] = s;
    }
}

extern "C" __global__ void bias_backward_partial_f32(const float* __restrict__ dout, float* __restrict__ partial,
                                                     int rows, int C, int rowsPerChunk, int vec) {
    if (vec)
        ig_bias_partial<float, 4>(dout, partial, rows, C, rowsPerChunk);
    else
        ig_bias_partial<float, 1>(dout, partial, rows, C, rowsPerChunk);
}

extern "C" __global__ void bias_backward_partial_bf16(const ig_bf16* __restrict__ dout, float* __restrict__ partial,
                                                      int rows, int C, int rowsPerChunk, int vec) {
    if (vec)
        ig_bias_partial<ig_bf16, 8>(dout, partial, rows, C, rowsPerChunk);
    else
        ig_bias_partial<ig_bf16, 1>(dout, partial, rows, C, rowsPerChunk);
}

extern "C" __global__ void bias_backward_finish(float* __restrict__ dbias, const float* __restrict__ partial, int C,
                                                int chunks) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0.0;
    for (int k = 0; k < chunks; k++) s += (double)partial[(long long)k * C + c];
    dbias[c] += (float)s;
}

#undef IG_EW_BEGIN
