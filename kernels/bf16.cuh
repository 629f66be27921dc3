// bfloat16 storage for the kernels: one type and its conversions, the same
// source for nvcc (sm_80 and newer: inline PTX cvt) and for the CPU
// emulator (gpu/cuda/emu/emu.h, bit for bit the same rounding).
//
// A bf16 value is kept as its raw 16 bits in ig_bf16, not as cuda_bf16.h's
// __nv_bfloat16: the type is the same struct in both builds, has no
// implicit conversions or arithmetic (a kernel converts to float on load
// and back on store, and computes in fp32, as the precision policy says),
// and needs nothing of cuda_bf16.h, whose operators and intrinsics the
// emulator would otherwise have to copy. Memory holds a bf16 tensor as
// these 16-bit words (little-endian, so a pair packed into a uint32_t has
// the lower-addressed element in its low half, as mma and ldmatrix expect).
#pragma once
#include <stdint.h>

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "bf16.cuh needs sm_80 or newer"
#endif

struct ig_bf16 {
    uint16_t bits;
};

// ig_bf16_from_float rounds to nearest, ties to even (cvt.rn.bf16.f32, the
// rounding of __float2bfloat16_rn); overflow gives infinity, subnormals are
// kept, NaN stays NaN.
static __device__ __forceinline__ ig_bf16 ig_bf16_from_float(float x) {
    ig_bf16 r;
#ifdef INSTRUCTGO_EMU
    r.bits = emu_float_to_bf16(x);
#else
    asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(r.bits) : "f"(x));
#endif
    return r;
}

// ig_bf16_to_float is exact: the bf16 bits are the float's upper half.
static __device__ __forceinline__ float ig_bf16_to_float(ig_bf16 x) {
#ifdef INSTRUCTGO_EMU
    return emu_bf16_to_float(x.bits);
#else
    return __uint_as_float((uint32_t)x.bits << 16);
#endif
}

// ig_bf16x2_pack rounds lo and hi to bf16 (as ig_bf16_from_float) and packs
// them: lo in bits 0..15, hi in bits 16..31 (a fragment register's element
// order "low to high").
static __device__ __forceinline__ uint32_t ig_bf16x2_pack(float lo, float hi) {
#ifdef INSTRUCTGO_EMU
    return (uint32_t)emu_float_to_bf16(lo) | ((uint32_t)emu_float_to_bf16(hi) << 16);
#else
    uint32_t r;
    // cvt.rn.bf16x2.f32 d, a, b puts a in the upper half and b in the lower.
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
    return r;
#endif
}

// ig_bf16x2_lo and ig_bf16x2_hi widen the two halves of a packed pair.
static __device__ __forceinline__ float ig_bf16x2_lo(uint32_t v) {
    return ig_bf16_to_float(ig_bf16{(uint16_t)(v & 0xffffu)});
}
static __device__ __forceinline__ float ig_bf16x2_hi(uint32_t v) {
    return ig_bf16_to_float(ig_bf16{(uint16_t)(v >> 16)});
}
