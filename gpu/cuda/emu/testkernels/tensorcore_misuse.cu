// Kernels that misuse the tensor-core helpers on purpose, for the tests of
// the emulator's checks (gpu/cuda/tensorcore_emu_test.go). Built into the
// emulator only (build.sh), never into the fatbin: on a GPU each of them
// is a race or undefined behaviour.
#include "common.cuh"
#include "mma.cuh"

// emu_tc_misuse: one warp; mode picks the misuse. src holds 128 floats,
// out receives 128. Launch: one block of 32 threads.
//   0  correct: each lane copies 4 floats with cp.async, waits, then the
//      warp reads them back after __syncwarp (the control case);
//   1  reads the copies without waiting (then waits, so it exits clean);
//   2  commits two groups (floats 0-63, then 64-127) and reads everything
//      after wait_group 1, which completes only the first;
//   3  exits with a copy never waited for;
//   4  lane 31 exits before an mma.sync;
//   5  lanes 0-15 run m16n8k16, lanes 16-31 m16n8k8;
//   6  lanes 0-15 run ldmatrix, lanes 16-31 mma.sync;
//   7  ldmatrix from an address 2 bytes past a 16-byte boundary;
//   8  a 16-byte cp.async to an address 8 bytes past a 16-byte boundary.
extern "C" __global__ void emu_tc_misuse(const float* src, float* out, int mode) {
    __shared__ __align__(16) float S[128 + 4];
    const int lane = threadIdx.x;
    uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0}, r[4];
    float c[4] = {1, 2, 3, 4}, d[4];
    switch (mode) {
    case 0:
    case 1:
        ig_cp_async_16(&S[4 * lane], src + 4 * lane);
        ig_cp_async_commit();
        if (mode == 0) ig_cp_async_wait<0>();
        break;
    case 2:
        if (lane < 16) ig_cp_async_16(&S[4 * lane], src + 4 * lane);
        ig_cp_async_commit();
        if (lane >= 16) ig_cp_async_16(&S[4 * lane], src + 4 * lane);
        ig_cp_async_commit();
        ig_cp_async_wait<1>();
        break;
    case 3:
        ig_cp_async_16(&S[4 * lane], src + 4 * lane);
        ig_cp_async_commit();
        return;
    case 4:
        if (lane == 31) return;
        ig_mma_m16n8k16_bf16_f32(d, a, b, c);
        return;
    case 5:
        if (lane < 16)
            ig_mma_m16n8k16_bf16_f32(d, a, b, c);
        else
            ig_mma_m16n8k8_bf16_f32(d, a, b, c);
        return;
    case 6:
        if (lane < 16)
            ig_ldmatrix_x4(r, &S[0]);
        else
            ig_mma_m16n8k16_bf16_f32(d, a, b, c);
        return;
    case 7:
        ig_ldmatrix_x1(r, reinterpret_cast<const char*>(&S[0]) + 2);
        return;
    case 8:
        ig_cp_async_16(&S[2], src);
        ig_cp_async_commit();
        ig_cp_async_wait<0>();
        return;
    }
    __syncwarp();
    for (int j = 0; j < 4; j++) out[4 * lane + j] = S[4 * lane + j];
    ig_cp_async_wait<0>();
}
