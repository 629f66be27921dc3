// Shared device helpers of the instructgo kernels: warp and block reductions,
// the counter-based RNG of package gpu (rng.go), alignment tests and the
// device error flag. Every kernel file includes it; all helpers are static
// inline so that the files can be compiled one by one or together as one
// translation unit.
//
// Conventions of every kernel (see each kernel's comment for its launch
// shape):
//   - extern "C", float32 data, int32 ids and sizes unless a size can pass
//     2^31 (element counts of whole tensors are long long);
//   - bounds-checked: any grid at least as large as documented is safe, extra
//     threads do nothing;
//   - no early return before a __syncthreads unless the condition is uniform
//     over the block;
//   - every warp-level primitive is called by all 32 lanes of a warp (full
//     mask), and blocks are whole warps;
//   - float4 loads and stores only where every pointer involved is 16-byte
//     aligned (tested at run time, uniformly per launch or per row), with a
//     scalar path or tail otherwise;
//   - no fast-math assumptions: results rely on IEEE division, sqrtf and the
//     non-approximate expf/exp/log of CUDA's math library.
#pragma once

#define IG_FULL_MASK 0xffffffffu
#define IG_WARP 32

// IG_DYN_SMEM declares name as a T* to the block's dynamic shared memory
// (aligned to 16 bytes). An emulator may redefine it.
#ifndef IG_DYN_SMEM
#define IG_DYN_SMEM(T, name)                                        \
    extern __shared__ __align__(16) unsigned char ig_dyn_smem_[];   \
    T* name = reinterpret_cast<T*>(ig_dyn_smem_)
#endif

// ---- reductions ----

static __device__ __forceinline__ float ig_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(IG_FULL_MASK, v, o);
    return v;
}

static __device__ __forceinline__ double ig_warp_sum_d(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(IG_FULL_MASK, v, o);
    return v;
}

// ig_warp_max returns the largest v of the warp; a NaN in any lane gives NaN.
static __device__ __forceinline__ float ig_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float w = __shfl_xor_sync(IG_FULL_MASK, v, o);
        v = (w > v || w != w) ? w : v;
    }
    return v;
}

// ig_block_sum_d returns the sum of v over the block to every thread. sh
// holds at least 32 doubles; blockDim.x is a multiple of 32 (at most 1024)
// and blockDim.y = blockDim.z = 1. The order of additions depends only on
// the block size: the result is deterministic.
static __device__ __forceinline__ double ig_block_sum_d(double v, double* sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    v = ig_warp_sum_d(v);
    __syncthreads();  // sh may still be read by a previous call
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nwarps ? sh[lane] : 0.0;
    return ig_warp_sum_d(v);
}

// ig_block_sum is ig_block_sum_d for floats (sh: at least 32 floats).
static __device__ __forceinline__ float ig_block_sum(float v, float* sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int nwarps = blockDim.x >> 5;
    v = ig_warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nwarps ? sh[lane] : 0.0f;
    return ig_warp_sum(v);
}

// ---- the counter-based RNG (gpu/rng.go), bit for bit ----

// ig_mix64 is gpu.Mix64: the SplitMix64 finaliser of seed + (counter+1)·φ,
// in wrapping 64-bit unsigned arithmetic exactly as Go computes it.
static __device__ __forceinline__ unsigned long long ig_mix64(unsigned long long seed,
                                                              unsigned long long counter) {
    unsigned long long z = seed + (counter + 1ull) * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// ig_uniform is gpu.Uniform: the top 24 bits of ig_mix64 times 2^-24. Both
// the conversion of a 24-bit integer and the product with a power of two are
// exact in float32, so the value equals Go's bit for bit.
static __device__ __forceinline__ float ig_uniform(unsigned long long seed, unsigned long long counter) {
    return (float)(unsigned int)(ig_mix64(seed, counter) >> 40) * (1.0f / 16777216.0f);
}

// ig_uniform53 is the draw of Backend.Sample: the top 53 bits of ig_mix64
// times 2^-53, a double in [0, 1), exact.
static __device__ __forceinline__ double ig_uniform53(unsigned long long seed, unsigned long long counter) {
    return (double)(ig_mix64(seed, counter) >> 11) * (1.0 / 9007199254740992.0);
}

// ---- alignment ----

static __device__ __forceinline__ bool ig_aligned16(const void* p) {
    return (reinterpret_cast<unsigned long long>(p) & 15ull) == 0;
}

// ---- the device error flag ----
//
// flag points to 4 ints owned by the backend: flag[0] is the code of the
// first failed check (0: none), flag[2..3] hold, as one unsigned 64-bit
// word, the smallest (index << 32 | (unsigned)value) of that check's
// failures, so the host reports the lowest failing index with its value,
// as the cpu backend does. The host resets the flag to {0, 0, ~0, ~0}.
// Kernels that must not write after a failed check test ig_failed first.

static __device__ __forceinline__ void ig_raise(int* flag, int code, long long index, int value) {
    if (flag == nullptr) return;
    int old = atomicCAS(flag, 0, code);
    if (old == 0 || old == code) {
        unsigned long long packed =
            ((unsigned long long)index << 32) | (unsigned long long)(unsigned int)value;
        atomicMin(reinterpret_cast<unsigned long long*>(flag + 2), packed);
    }
}

static __device__ __forceinline__ bool ig_failed(const int* flag) {
    return flag != nullptr && *reinterpret_cast<const volatile int*>(flag) != 0;
}
