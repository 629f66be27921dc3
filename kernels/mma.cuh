// Tensor-core helpers of the kernels: bf16 mma.sync with fp32 accumulators,
// ldmatrix and cp.async, as inline PTX for nvcc (sm_80 and newer) and as
// calls into the CPU emulator (gpu/cuda/emu/emu_tensorcore.cpp and
// emu_async_copy.cpp) when emu.h is the CUDA header. The same kernel source
// compiles in both builds.
//
// mma and ldmatrix are warp collectives: all 32 lanes of the warp call
// the same one with the same shape, outside divergent code (the PTX
// .sync.aligned qualifiers). Fragments are the registers of the PTX ISA's
// tables, "Matrix Fragments for mma.m16n8k16 with floating point type" and
// "Matrix Fragments for mma.m16n8k8" (PTX ISA 9.0, 9.7.14.5.8 and 9.7.14.5.7),
// with groupID = lane / 4 and threadID_in_group = lane % 4:
//
//   A (16×k, row-major), a bf16 pair per register, element i of the lane
//     k = 16: a[0..3] hold a0..a7, row groupID (+8 for i = 2, 3, 6, 7),
//             column threadID_in_group·2 + i%2 (+8 for i ≥ 4);
//     k = 8:  a[0..1] hold a0..a3, row groupID (+8 for i ≥ 2),
//             column threadID_in_group·2 + i%2;
//   B (k×8, "col"): k = 16: b[0..1] hold b0..b3, row threadID_in_group·2 +
//     i%2 (+8 for i ≥ 2); k = 8: b[0] holds b0, b1, row
//     threadID_in_group·2 + i; column groupID;
//   C and D (16×8 fp32): c0..c3 / d0..d3, row groupID (+8 for i ≥ 2),
//     column threadID_in_group·2 + i%2.
//
// In each register the even element is the low half. ldmatrix.x4 of the
// four 8×8 quarters of a row-major 16×16 A tile (top-left, bottom-left,
// top-right, bottom-right) yields a[0..3]; ldmatrix.x2.trans of a row-major
// 16×8 B tile (k-major: rows 0-7, then 8-15) yields b[0..1].
#pragma once
#include "bf16.cuh"

#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#error "mma.cuh needs sm_80 or newer"
#endif

// ig_mma_m16n8k16_bf16_f32: D = A·B + C for A 16×16, B 16×8 in bf16, C and
// D 16×8 in fp32. d may be c (accumulate in place).
static __device__ __forceinline__ void ig_mma_m16n8k16_bf16_f32(float d[4], const uint32_t a[4],
                                                                const uint32_t b[2], const float c[4]) {
#ifdef INSTRUCTGO_EMU
    emu_mma_bf16(16, d, a, b, c);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, {%10, %11, %12, %13};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]),
          "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}

// ig_mma_m16n8k8_bf16_f32: D = A·B + C for A 16×8, B 8×8 in bf16.
static __device__ __forceinline__ void ig_mma_m16n8k8_bf16_f32(float d[4], const uint32_t a[2],
                                                               const uint32_t b[1], const float c[4]) {
#ifdef INSTRUCTGO_EMU
    emu_mma_bf16(8, d, a, b, c);
#else
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32 "
        "{%0, %1, %2, %3}, {%4, %5}, {%6}, {%7, %8, %9, %10};\n"
        : "=f"(d[0]), "=f"(d[1]), "=f"(d[2]), "=f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(b[0]), "f"(c[0]), "f"(c[1]), "f"(c[2]), "f"(c[3]));
#endif
}

#ifndef INSTRUCTGO_EMU
// ig_shared_addr is the .shared window address of a generic pointer into
// shared memory, as ldmatrix and cp.async take it.
static __device__ __forceinline__ unsigned ig_shared_addr(const void* p) {
    return (unsigned)__cvta_generic_to_shared(p);
}
#endif

// ldmatrix: PTX ISA "Warp-level matrix load instruction: ldmatrix" (9.0:
// 9.7.14.5.15). Loads num 8×8 matrices of 16-bit elements from shared
// memory. row is this lane's row address: lanes 8m..8m+7 give rows 0..7 of
// matrix m (lanes 8·num and up are ignored, but pass a shared address
// anyway), each row 16 contiguous bytes, 16-byte aligned. Register m of
// lane l receives row l/4, columns 2·(l%4) (low half) and 2·(l%4)+1 of
// matrix m; the _trans forms read it column-major: rows 2·(l%4) and
// 2·(l%4)+1 of column l/4.
static __device__ __forceinline__ void ig_ldmatrix_x1(uint32_t r[1], const void* row) {
#ifdef INSTRUCTGO_EMU
    emu_ldmatrix(1, false, r, row);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.shared.b16 {%0}, [%1];\n"
                 : "=r"(r[0])
                 : "r"(ig_shared_addr(row))
                 : "memory");
#endif
}

static __device__ __forceinline__ void ig_ldmatrix_x2(uint32_t r[2], const void* row) {
#ifdef INSTRUCTGO_EMU
    emu_ldmatrix(2, false, r, row);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(ig_shared_addr(row))
                 : "memory");
#endif
}

static __device__ __forceinline__ void ig_ldmatrix_x4(uint32_t r[4], const void* row) {
#ifdef INSTRUCTGO_EMU
    emu_ldmatrix(4, false, r, row);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(ig_shared_addr(row))
                 : "memory");
#endif
}

static __device__ __forceinline__ void ig_ldmatrix_x1_trans(uint32_t r[1], const void* row) {
#ifdef INSTRUCTGO_EMU
    emu_ldmatrix(1, true, r, row);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x1.trans.shared.b16 {%0}, [%1];\n"
                 : "=r"(r[0])
                 : "r"(ig_shared_addr(row))
                 : "memory");
#endif
}

static __device__ __forceinline__ void ig_ldmatrix_x2_trans(uint32_t r[2], const void* row) {
#ifdef INSTRUCTGO_EMU
    emu_ldmatrix(2, true, r, row);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0, %1}, [%2];\n"
                 : "=r"(r[0]), "=r"(r[1])
                 : "r"(ig_shared_addr(row))
                 : "memory");
#endif
}

static __device__ __forceinline__ void ig_ldmatrix_x4_trans(uint32_t r[4], const void* row) {
#ifdef INSTRUCTGO_EMU
    emu_ldmatrix(4, true, r, row);
#else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(ig_shared_addr(row))
                 : "memory");
#endif
}

// ---- cp.async: global -> shared copies that do not block the thread ----
//
// PTX ISA "cp.async", "cp.async.commit_group", "cp.async.wait_group"
// (9.0: 9.7.9.25.3). A thread issues copies, closes them into a group with
// ig_cp_async_commit, and ig_cp_async_wait<N>() returns once at most its N
// most recent groups are pending, so every older group has landed. A copy's
// bytes are visible to the issuing thread after that wait, and to the rest
// of the block only after a barrier that follows it (__syncthreads, or
// __syncwarp within the warp). Until then the destination must be neither
// read nor written. smem and gmem are aligned to the copy's size.

// ig_cp_async_16 copies 16 bytes, caching in L2 only (.cg: tiles are read once).
static __device__ __forceinline__ void ig_cp_async_16(void* smem, const void* gmem) {
#ifdef INSTRUCTGO_EMU
    emu_cp_async(smem, gmem, 16, 16);
#else
    asm volatile("{\n .reg .u64 g;\n cvta.to.global.u64 g, %1;\n cp.async.cg.shared.global [%0], [g], 16;\n}\n"
                 :
                 : "r"(ig_shared_addr(smem)), "l"(gmem)
                 : "memory");
#endif
}

// ig_cp_async_16_zfill copies src_bytes (0..16) bytes and fills the rest of
// the 16 with zeros: the bounds check of a tile's edge. gmem must still be
// a 16-byte aligned address.
static __device__ __forceinline__ void ig_cp_async_16_zfill(void* smem, const void* gmem, int src_bytes) {
#ifdef INSTRUCTGO_EMU
    emu_cp_async(smem, gmem, 16, src_bytes);
#else
    asm volatile("{\n .reg .u64 g;\n cvta.to.global.u64 g, %1;\n cp.async.cg.shared.global [%0], [g], 16, %2;\n}\n"
                 :
                 : "r"(ig_shared_addr(smem)), "l"(gmem), "r"(src_bytes)
                 : "memory");
#endif
}

// ig_cp_async_8 and ig_cp_async_4 copy 8 and 4 bytes (.ca: .cg takes 16 only).
static __device__ __forceinline__ void ig_cp_async_8(void* smem, const void* gmem) {
#ifdef INSTRUCTGO_EMU
    emu_cp_async(smem, gmem, 8, 8);
#else
    asm volatile("{\n .reg .u64 g;\n cvta.to.global.u64 g, %1;\n cp.async.ca.shared.global [%0], [g], 8;\n}\n"
                 :
                 : "r"(ig_shared_addr(smem)), "l"(gmem)
                 : "memory");
#endif
}

static __device__ __forceinline__ void ig_cp_async_4(void* smem, const void* gmem) {
#ifdef INSTRUCTGO_EMU
    emu_cp_async(smem, gmem, 4, 4);
#else
    asm volatile("{\n .reg .u64 g;\n cvta.to.global.u64 g, %1;\n cp.async.ca.shared.global [%0], [g], 4;\n}\n"
                 :
                 : "r"(ig_shared_addr(smem)), "l"(gmem)
                 : "memory");
#endif
}

// ig_cp_async_commit closes this thread's copies issued since the last
// commit into a group (possibly empty).
static __device__ __forceinline__ void ig_cp_async_commit() {
#ifdef INSTRUCTGO_EMU
    emu_cp_async_commit();
#else
    asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

// ig_cp_async_wait<N> waits until at most N of this thread's most recent
// groups are pending; copies not yet committed are not waited for.
template <int N>
static __device__ __forceinline__ void ig_cp_async_wait() {
    static_assert(N >= 0, "cp.async.wait_group takes N >= 0");
#ifdef INSTRUCTGO_EMU
    emu_cp_async_wait(N);
#else
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}
