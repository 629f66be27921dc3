// GELU, GPT-2's tanh approximation, as gpu/cpu/gelu.go computes it: the
// function and its derivative, shared by the GELU ops (elementwise.cu) and
// the fused linear layers' epilogues (linear.cu).
#pragma once

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

