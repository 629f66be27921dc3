// CPU emulation of the CUDA subset the instructgo kernels use. Blocks run
// one after another; the threads of a block are fibers (ucontext) switched
// at every barrier and warp-level operation, so __syncthreads, __syncwarp,
// shuffles and ballots have their real semantics, and misuse (a barrier not
// reached by all threads, a warp op with exited lanes) is detected.
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
