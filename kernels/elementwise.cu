// Elementwise ops (Fill, Copy, Scale, Axpy, Add, Lerp, GELU, Dropout) and the
// bias ops (AddBias, BiasBackward).
//
// Launch shape of the elementwise kernels: a 1-D grid of 1-D blocks of any
// size (the Go wrappers use 256 threads and min(ceil(n/1024), 4096)
// blocks); threads stride over the elements (grid-stride loop), so any grid
// covers any n. When every pointer of the call is 16-byte aligned, threads
// step over float4s and a scalar loop finishes the last n mod 4 elements;
// otherwise the whole call is scalar. n is a long long element count.
//
// Ops that allow an output to be exactly an input (Add, GELU forward and
// backward, Dropout) do not mark those pointers __restrict__: each element is
// read before it is written by the same thread, so in place is safe.
#include "common.cuh"

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

// add_f32: out[i] = a[i] + b[i]; out may be exactly a or b.
extern "C" __global__ void add_f32(float* out, const float* a, const float* b, long long n) {
    IG_EW_BEGIN
    if (ig_aligned16(out) && ig_aligned16(a) && ig_aligned16(b)) {
        const long long n4 = n >> 2;
        float4* o4 = reinterpret_cast<float4*>(out);
        const float4* a4 = reinterpret_cast<const float4*>(a);
        const float4* b4 = reinterpret_cast<const float4*>(b);
        for (long long i = ig_tid; i < n4; i += ig_stride) {
            const float4 x = a4[i], y = b4[i];
            o4[i] = make_float4(x.x + y.x, x.y + y.y, x.z + y.z, x.w + y.w);
        }
        for (long long i = (n4 << 2) + ig_tid; i < n; i += ig_stride) out[i] = a[i] + b[i];
    } else {
        for (long long i = ig_tid; i < n; i += ig_stride) out[i] = a[i] + b[i];
    }
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

// ---- GELU, GPT-2's tanh approximation, as gpu/cpu/gelu.go computes it ----
//
// gelu(x) = 0.5·x·(1 + tanh(u)), u = sqrt(2/π)·(x + 0.044715·x³), evaluated
// as x·σ(2u) = x/(1 + e), e = exp(xc·(K + KC·xc²)) with x clamped to ±9
// (beyond, the float32 result no longer changes) so that exp stays finite.
// The constants are the float32 roundings of the cpu backend's (the exact
// products rounded once). NaN propagates: the clamps below keep a NaN.
#define IG_GELU_CLAMP 9.0f
#define IG_GELU_K (-0x1.988454p+00f)    // −2·sqrt(2/π)
#define IG_GELU_KC (-0x1.2444f2p-04f)   // −2·sqrt(2/π)·0.044715
#define IG_GELU_K2 (0x1.988454p+00f)    // 2·sqrt(2/π)
#define IG_GELU_K2C3 (0x1.b6676cp-03f)  // 2·sqrt(2/π)·3·0.044715

static __device__ __forceinline__ float ig_gelu(float v) {
    const float xm = v < -IG_GELU_CLAMP ? -IG_GELU_CLAMP : v;  // max(v, −9), NaN kept
    const float xc = xm > IG_GELU_CLAMP ? IG_GELU_CLAMP : xm;   // min(xm, 9), NaN kept
    const float e = expf(xc * (IG_GELU_K + IG_GELU_KC * xc * xc));
    return xm / (1.0f + e);
}

// ig_gelu_grad is gelu'(v)·dy: with σ = 1/(1 + e), d/dx x·σ(2u) =
// σ + x·2u'·σ(1−σ), and 1−σ = e·σ.
static __device__ __forceinline__ float ig_gelu_grad(float v, float dy) {
    float xc = v < -IG_GELU_CLAMP ? -IG_GELU_CLAMP : v;
    xc = xc > IG_GELU_CLAMP ? IG_GELU_CLAMP : xc;
    const float x2 = xc * xc;
    const float e = expf(xc * (IG_GELU_K + IG_GELU_KC * x2));
    const float sig = 1.0f / (1.0f + e);
    const float q = xc * (IG_GELU_K2 + IG_GELU_K2C3 * x2);
    return (sig + q * (e * sig) * sig) * dy;
}

// gelu_forward_f32: out[i] = gelu(inp[i]); out may be exactly inp.
extern "C" __global__ void gelu_forward_f32(float* out, const float* inp, long long n) {
    IG_EW_BEGIN
    if (ig_aligned16(out) && ig_aligned16(inp)) {
        const long long n4 = n >> 2;
        float4* o4 = reinterpret_cast<float4*>(out);
        const float4* x4 = reinterpret_cast<const float4*>(inp);
        for (long long i = ig_tid; i < n4; i += ig_stride) {
            const float4 x = x4[i];
            o4[i] = make_float4(ig_gelu(x.x), ig_gelu(x.y), ig_gelu(x.z), ig_gelu(x.w));
        }
        for (long long i = (n4 << 2) + ig_tid; i < n; i += ig_stride) out[i] = ig_gelu(inp[i]);
    } else {
        for (long long i = ig_tid; i < n; i += ig_stride) out[i] = ig_gelu(inp[i]);
    }
}

// gelu_backward_f32: dinp[i] = gelu'(inp[i])·dout[i]; dinp may be exactly
// dout (never inp).
extern "C" __global__ void gelu_backward_f32(float* dinp, const float* __restrict__ inp, const float* dout,
                                             long long n) {
    IG_EW_BEGIN
    if (ig_aligned16(dinp) && ig_aligned16(inp) && ig_aligned16(dout)) {
        const long long n4 = n >> 2;
        float4* d4 = reinterpret_cast<float4*>(dinp);
        const float4* x4 = reinterpret_cast<const float4*>(inp);
        const float4* g4 = reinterpret_cast<const float4*>(dout);
        for (long long i = ig_tid; i < n4; i += ig_stride) {
            const float4 x = x4[i], g = g4[i];
            d4[i] = make_float4(ig_gelu_grad(x.x, g.x), ig_gelu_grad(x.y, g.y), ig_gelu_grad(x.z, g.z),
                                ig_gelu_grad(x.w, g.w));
        }
        for (long long i = (n4 << 2) + ig_tid; i < n; i += ig_stride) dinp[i] = ig_gelu_grad(inp[i], dout[i]);
    } else {
        for (long long i = ig_tid; i < n; i += ig_stride) dinp[i] = ig_gelu_grad(inp[i], dout[i]);
    }
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

// dropout_f32: out[i] = inp[i]·keep_i·scale, for both Dropout and
// DropoutBackward (the same mask for the same seed). out may be exactly inp.
// The host handles p = 0 (a copy, or nothing in place).
extern "C" __global__ void dropout_f32(float* out, const float* inp, long long n, float p, float scale,
                                       unsigned long long seed) {
    IG_EW_BEGIN
    if (ig_aligned16(out) && ig_aligned16(inp)) {
        const long long n4 = n >> 2;
        float4* o4 = reinterpret_cast<float4*>(out);
        const float4* x4 = reinterpret_cast<const float4*>(inp);
        for (long long i = ig_tid; i < n4; i += ig_stride) {
            const float4 x = x4[i];
            const long long e = i << 2;
            o4[i] = make_float4(ig_drop(x.x, e, p, scale, seed), ig_drop(x.y, e + 1, p, scale, seed),
                                ig_drop(x.z, e + 2, p, scale, seed), ig_drop(x.w, e + 3, p, scale, seed));
        }
        for (long long i = (n4 << 2) + ig_tid; i < n; i += ig_stride) out[i] = ig_drop(inp[i], i, p, scale, seed);
    } else {
        for (long long i = ig_tid; i < n; i += ig_stride) out[i] = ig_drop(inp[i], i, p, scale, seed);
    }
}

// ---- bias ----

// add_bias_f32: out[r, c] += bias[c] for rows r < rows, columns c < C.
// Elementwise launch shape over rows·C elements; float4 when C is a multiple
// of 4 and both pointers are aligned.
extern "C" __global__ void add_bias_f32(float* __restrict__ out, const float* __restrict__ bias, long long rows,
                                        int C) {
    IG_EW_BEGIN
    const long long n = rows * C;
    if ((C & 3) == 0 && ig_aligned16(out) && ig_aligned16(bias)) {
        const int C4 = C >> 2;
        const long long n4 = n >> 2;
        float4* o4 = reinterpret_cast<float4*>(out);
        const float4* b4 = reinterpret_cast<const float4*>(bias);
        for (long long i = ig_tid; i < n4; i += ig_stride) {
            float4 v = o4[i];
            const float4 b = b4[(int)(i % C4)];
            v.x += b.x; v.y += b.y; v.z += b.z; v.w += b.w;
            o4[i] = v;
        }
    } else {
        for (long long i = ig_tid; i < n; i += ig_stride) out[i] += bias[(int)(i % C)];
    }
}

// BiasBackward, deterministic in two stages (no atomics):
//
// bias_backward_partial: grid (ceil(C / (32·VW)), chunks), block (32, 8):
// block (x, y) sums rows [y·rowsPerChunk, (y+1)·rowsPerChunk) of the
// 32·VW-column tile x. Warp w takes every 8th row from w, each lane VW
// consecutive columns (float4 loads when VW = 4: C a multiple of 4, dout
// aligned), summing in float; the 8 warps' sums are then added in warp
// order through shared memory and partial[y·C + c] receives the chunk's
// sum. bias_backward_finish: one thread per column (any 1-D launch of at
// least C threads) adds the chunks' partials in chunk order, in double, to
// dbias[c]. The result depends only on rows, C and rowsPerChunk.
template <int VW>
static __device__ __forceinline__ void ig_bias_partial(const float* __restrict__ dout, float* __restrict__ partial,
                                                       int rows, int C, int rowsPerChunk) {
    __shared__ float sh[8][32 * 4];
    const int lane = threadIdx.x, w = threadIdx.y;
    const int c0 = (blockIdx.x * 32 + lane) * VW;
    const int r0 = blockIdx.y * rowsPerChunk;
    const int r1 = min(rows, r0 + rowsPerChunk);
    float acc[VW];
#pragma unroll
    for (int k = 0; k < VW; k++) acc[k] = 0.0f;
    if (c0 < C) {
        for (int r = r0 + w; r < r1; r += 8) {
            const float* row = dout + (long long)r * C + c0;
            if (VW == 4) {
                const float4 v = *reinterpret_cast<const float4*>(row);
                acc[0] += v.x; acc[1] += v.y; acc[2] += v.z; acc[3] += v.w;
            } else {
                acc[0] += row[0];
            }
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

extern "C" __global__ void bias_backward_partial(const float* __restrict__ dout, float* __restrict__ partial, int rows,
                                                 int C, int rowsPerChunk, int vec4) {
    if (vec4)
        ig_bias_partial<4>(dout, partial, rows, C, rowsPerChunk);
    else
        ig_bias_partial<1>(dout, partial, rows, C, rowsPerChunk);
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
