// Loads and stores of activation-class tensors, for kernels templated on the
// activation type T (float or ig_bf16). A value is widened to float on load
// and rounded once, to nearest even, on store (kernels/bf16.cuh); the
// arithmetic between is float32 (or double) whatever T is, as
// docs/PRECISION.md says.
//
// Vectors are 16 bytes: IG_VW(T) elements, 4 floats or 8 bf16, one load or
// store at a 16-byte-aligned address. A kernel takes them where every
// pointer involved is aligned (and, for rows, the row length is a multiple
// of the width), tested at run time, and one element at a time otherwise.
// Float buffers that pair with bf16 vectors (shared-memory sums, float32
// parameter gradients) are read and written 8 at a time as two float4s.
#pragma once
#include "bf16.cuh"

// IG_VW(T) is the elements of T in 16 bytes.
#define IG_VW(T) ((int)(16 / sizeof(T)))

// ig_bf16x8 is 8 bf16 as four packed pairs (element 2k in the low half of
// w[k]), the unit of a 16-byte bf16 load or store.
struct __align__(16) ig_bf16x8 {
    uint32_t w[4];
};

// ig_ld and ig_st read and write one element.
static __device__ __forceinline__ float ig_ld(const float* p) { return *p; }
static __device__ __forceinline__ float ig_ld(const ig_bf16* p) { return ig_bf16_to_float(*p); }
static __device__ __forceinline__ void ig_st(float* p, float v) { *p = v; }
static __device__ __forceinline__ void ig_st(ig_bf16* p, float v) { *p = ig_bf16_from_float(v); }

// ig_stored is v as a store into p's type keeps it: v for float, v rounded
// to bf16 and widened for ig_bf16 (p only picks the type). A kernel that
// reads back what it stores uses it to compute with the stored value.
static __device__ __forceinline__ float ig_stored(const float*, float v) { return v; }
static __device__ __forceinline__ float ig_stored(const ig_bf16*, float v) {
    return ig_bf16_to_float(ig_bf16_from_float(v));
}

// ig_ldv reads VW consecutive elements at p into x: VW = 1, or 4 or 8
// floats (one or two float4s), or 8 bf16, at a 16-byte-aligned p.
template <int VW>
static __device__ __forceinline__ void ig_ldv(const float* p, float* x) {
    static_assert(VW == 1 || VW == 4 || VW == 8, "float vectors are 1, 4 or 8 wide");
    if constexpr (VW == 1) {
        x[0] = p[0];
    } else {
#pragma unroll
        for (int h = 0; h < VW / 4; h++) {
            const float4 v = reinterpret_cast<const float4*>(p)[h];
            x[4 * h] = v.x; x[4 * h + 1] = v.y; x[4 * h + 2] = v.z; x[4 * h + 3] = v.w;
        }
    }
}

template <int VW>
static __device__ __forceinline__ void ig_ldv(const ig_bf16* p, float* x) {
    static_assert(VW == 1 || VW == 8, "bf16 vectors are 1 or 8 wide");
    if constexpr (VW == 1) {
        x[0] = ig_bf16_to_float(p[0]);
    } else {
        const ig_bf16x8 v = *reinterpret_cast<const ig_bf16x8*>(p);
#pragma unroll
        for (int k = 0; k < 4; k++) {
            x[2 * k] = ig_bf16x2_lo(v.w[k]);
            x[2 * k + 1] = ig_bf16x2_hi(v.w[k]);
        }
    }
}

// ig_stv writes VW consecutive elements, as ig_ldv reads them; a bf16 store
// rounds each element once.
template <int VW>
static __device__ __forceinline__ void ig_stv(float* p, const float* x) {
    static_assert(VW == 1 || VW == 4 || VW == 8, "float vectors are 1, 4 or 8 wide");
    if constexpr (VW == 1) {
        p[0] = x[0];
    } else {
#pragma unroll
        for (int h = 0; h < VW / 4; h++)
            reinterpret_cast<float4*>(p)[h] = make_float4(x[4 * h], x[4 * h + 1], x[4 * h + 2], x[4 * h + 3]);
    }
}

template <int VW>
static __device__ __forceinline__ void ig_stv(ig_bf16* p, const float* x) {
    static_assert(VW == 1 || VW == 8, "bf16 vectors are 1 or 8 wide");
    if constexpr (VW == 1) {
        p[0] = ig_bf16_from_float(x[0]);
    } else {
        ig_bf16x8 v;
#pragma unroll
        for (int k = 0; k < 4; k++) v.w[k] = ig_bf16x2_pack(x[2 * k], x[2 * k + 1]);
        *reinterpret_cast<ig_bf16x8*>(p) = v;
    }
}

// ig_head16 is the number of elements of T before the first 16-byte
// boundary at or after p, at most n: the scalar head of a row that is
// otherwise read in vectors.
template <class T>
static __device__ __forceinline__ int ig_head16(const T* p, int n) {
    const unsigned mis = (unsigned)(reinterpret_cast<unsigned long long>(p) & 15ull);
    const int head = (int)(((16u - mis) & 15u) / sizeof(T));
    return head < n ? head : n;
}
