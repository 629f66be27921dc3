// CPU emulation of the CUDA subset the instructgo kernels use. Blocks run
// one after another; the threads of a block are fibers (ucontext) switched
// at every barrier and warp-level operation, so __syncthreads, __syncwarp,
// shuffles and ballots have their real semantics, and misuse (a barrier not
// reached by all threads, a warp op with exited lanes) is detected. The
// tensor-core subset (bf16 mma.sync, ldmatrix, cp.async) is at the end.
#pragma once
#include <cstdint>
#include <cstring>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <type_traits>
using std::min;
using std::max;

struct uint3 { unsigned x, y, z; };
struct alignas(16) float4 { float x, y, z, w; };
static inline float4 make_float4(float x, float y, float z, float w) { return float4{x, y, z, w}; }

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
#define __shared__ static

// Kernel headers test this to choose the emulator's implementation of what
// nvcc compiles to inline PTX (kernels/bf16.cuh, mma.cuh, async_copy.cuh).
#define INSTRUCTGO_EMU 1

extern unsigned char* emu_dyn_smem;
#define IG_DYN_SMEM(T, name) T* name = reinterpret_cast<T*>(emu_dyn_smem)

struct EmuThread;
extern EmuThread* emu_cur;
extern uint3 emu_blockIdx, emu_blockDim, emu_gridDim;
const uint3& emu_tid();
#define threadIdx (emu_tid())
#define blockIdx emu_blockIdx
#define blockDim emu_blockDim
#define gridDim emu_gridDim

// Blocking operations (implemented in emu_runtime.cpp).
void emu_syncthreads();
unsigned long long emu_warp_op(int kind, unsigned long long v, int arg, unsigned mask);
enum { EMU_SYNCWARP = 1, EMU_SHFL_XOR, EMU_SHFL_UP, EMU_BALLOT };

static inline void __syncthreads() { emu_syncthreads(); }
static inline void __syncwarp(unsigned mask = 0xffffffffu) { emu_warp_op(EMU_SYNCWARP, 0, 0, mask); }

template <class T>
static inline unsigned long long emu_bits(T v) {
    static_assert(sizeof(T) <= 8, "shuffle of a type wider than 8 bytes");
    unsigned long long u = 0;
    std::memcpy(&u, &v, sizeof(T));
    return u;
}
template <class T>
static inline T emu_from(unsigned long long u) {
    T v;
    std::memcpy(&v, &u, sizeof(T));
    return v;
}
template <class T>
static inline T __shfl_xor_sync(unsigned mask, T v, int laneMask) {
    return emu_from<T>(emu_warp_op(EMU_SHFL_XOR, emu_bits(v), laneMask, mask));
}
template <class T>
static inline T __shfl_up_sync(unsigned mask, T v, unsigned delta) {
    return emu_from<T>(emu_warp_op(EMU_SHFL_UP, emu_bits(v), (int)delta, mask));
}
static inline unsigned __ballot_sync(unsigned mask, int pred) {
    return (unsigned)emu_warp_op(EMU_BALLOT, pred ? 1 : 0, 0, mask);
}
static inline int __popc(unsigned x) { return __builtin_popcount(x); }

// Fibers never run concurrently: plain read-modify-write is atomic.
static inline int atomicAdd(int* p, int v) { int o = *p; *p = o + v; return o; }
static inline int atomicCAS(int* p, int cmp, int v) { int o = *p; if (o == cmp) *p = v; return o; }
static inline unsigned long long atomicMin(unsigned long long* p, unsigned long long v) {
    unsigned long long o = *p; if (v < o) *p = v; return o;
}

static inline unsigned __float_as_uint(float f) { return emu_bits(f); }
static inline long long __double_as_longlong(double d) { return (long long)emu_bits(d); }
static inline double __longlong_as_double(long long v) { return emu_from<double>((unsigned long long)v); }

// ---- bf16 and tensor cores (emu_tensorcore.cpp, emu_async_copy.cpp) ----

// emu_float_to_bf16 is cvt.rn.bf16.f32 (__float2bfloat16_rn): round to
// nearest, ties to even, on the bits. Subnormals are kept, overflow goes to
// infinity; every NaN becomes the canonical 0x7FFF, as cuda_bf16.hpp's own
// non-sm_80 path returns (PTX says only that the result is a NaN).
static inline uint16_t emu_float_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fff;
    // Adding 0x7FFF rounds the dropped half down below the midpoint and up
    // above it; the kept bit's parity breaks the tie towards even.
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

// emu_bf16_to_float widens exactly (the bf16 bits are the float's top half).
static inline float emu_bf16_to_float(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

// Warp collectives on fragments: every lane of the warp calls them with the
// same shape and qualifiers; the operation runs once all 32 have arrived.
// k is 16 or 8 (mma.sync.aligned.m16n8k{k}.row.col.f32.bf16.bf16.f32);
// num is 1, 2 or 4 (ldmatrix.sync.aligned.m8n8.x{num}{.trans}.shared.b16).
void emu_mma_bf16(int k, float* d, const uint32_t* a, const uint32_t* b, const float* c);
void emu_ldmatrix(int num, bool trans, uint32_t* r, const void* row);

// cp.async of this thread: bytes is the cp-size (4, 8 or 16), src_bytes
// (0..bytes) how many come from src, the rest are zeros.
void emu_cp_async(void* dst, const void* src, int bytes, int src_bytes);
void emu_cp_async_commit();
void emu_cp_async_wait(int n);
