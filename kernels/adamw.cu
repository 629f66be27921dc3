// AdamW, fused: clip scale, moment updates, bias correction and decoupled
// weight decay in one pass over params, grads, m and v, writing the bf16
// copy of the updated params the ops read in the bf16 precision mode.
#include "common.cuh"
#include "bf16.cuh"

// adamw_f32: per element, g = grads·s, m = β1·m + (1−β1)·g,
// v = β2·v + (1−β2)·g², p −= lr·(m·ibc1/(sqrt(v·ibc2) + eps) + wd·p), with
// ibc1 = 1/(1−β1^step), ibc2 = 1/(1−β2^step) computed by the host as the
// cpu backend does. The gradient scale s is computed on the device from
// normSq[0] exactly as gpu/cpu/adamw.go's adamWGradScale, in double:
// s = gradScale (0 means 1); with normSq given and maxNorm > 0,
// norm = |s|·sqrt(normSq[0]) and s ·= maxNorm/norm when norm > maxNorm, so
// a zero or NaN norm does not clip and an infinite one gives s = 0.
// lowp (may be null) gets each updated p rounded to bf16.
// Launch: the elementwise shape (elementwise.cu); float4 when all four
// arrays are 16-byte aligned.
static __device__ __forceinline__ void ig_adamw1(float& p, float g, float& m, float& v, float scale, float b1,
                                                 float b2, float c1, float c2, float lr, float eps, float wd,
                                                 float ibc1, float ibc2) {
    const float gi = g * scale;
    const float mi = b1 * m + c1 * gi;
    const float vi = b2 * v + c2 * gi * gi;
    m = mi;
    v = vi;
    const float den = sqrtf(vi * ibc2) + eps;
    p = p - lr * (mi * ibc1 / den + wd * p);
}

extern "C" __global__ void adamw_f32(float* __restrict__ params, ig_bf16* __restrict__ lowp, const float* __restrict__ grads,
                                     float* __restrict__ m, float* __restrict__ v, const float* __restrict__ normSq,
                                     long long n, float lr, float b1, float b2, float eps, float wd, float ibc1,
                                     float ibc2, float gradScale, float maxNorm) {
    double sd = gradScale == 0.0f ? 1.0 : (double)gradScale;
    if (normSq != nullptr && maxNorm > 0.0f) {
        const double norm = fabs(sd) * sqrt((double)normSq[0]);
        if (norm > (double)maxNorm) sd *= (double)maxNorm / norm;
    }
    const float scale = (float)sd;
    const float c1 = 1.0f - b1, c2 = 1.0f - b2;
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    if (ig_aligned16(params) && ig_aligned16(grads) && ig_aligned16(m) && ig_aligned16(v)) {
        const long long n4 = n >> 2;
        float4* p4 = reinterpret_cast<float4*>(params);
        const float4* g4 = reinterpret_cast<const float4*>(grads);
        float4* m4 = reinterpret_cast<float4*>(m);
        float4* v4 = reinterpret_cast<float4*>(v);
        for (long long i = tid; i < n4; i += stride) {
            float4 p = p4[i], mm = m4[i], vv = v4[i];
            const float4 g = g4[i];
            ig_adamw1(p.x, g.x, mm.x, vv.x, scale, b1, b2, c1, c2, lr, eps, wd, ibc1, ibc2);
            ig_adamw1(p.y, g.y, mm.y, vv.y, scale, b1, b2, c1, c2, lr, eps, wd, ibc1, ibc2);
            ig_adamw1(p.z, g.z, mm.z, vv.z, scale, b1, b2, c1, c2, lr, eps, wd, ibc1, ibc2);
            ig_adamw1(p.w, g.w, mm.w, vv.w, scale, b1, b2, c1, c2, lr, eps, wd, ibc1, ibc2);
            p4[i] = p;
            m4[i] = mm;
            v4[i] = vv;
            if (lowp != nullptr) {
                lowp[4 * i] = ig_bf16_from_float(p.x);
                lowp[4 * i + 1] = ig_bf16_from_float(p.y);
                lowp[4 * i + 2] = ig_bf16_from_float(p.z);
                lowp[4 * i + 3] = ig_bf16_from_float(p.w);
            }
        }
        for (long long i = (n4 << 2) + tid; i < n; i += stride) {
            ig_adamw1(params[i], grads[i], m[i], v[i], scale, b1, b2, c1, c2, lr, eps, wd, ibc1, ibc2);
            if (lowp != nullptr) lowp[i] = ig_bf16_from_float(params[i]);
        }
    } else {
        for (long long i = tid; i < n; i += stride) {
            ig_adamw1(params[i], grads[i], m[i], v[i], scale, b1, b2, c1, c2, lr, eps, wd, ibc1, ibc2);
            if (lowp != nullptr) lowp[i] = ig_bf16_from_float(params[i]);
        }
    }
}
