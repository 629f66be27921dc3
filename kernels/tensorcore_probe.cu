// Probes of the tensor-core helpers (bf16.cuh, mma.cuh) for the tests of
// gpu/cuda/tensorcore_test.go, which check every lane's registers against
// the PTX ISA's fragment tables and the products against float64. No op
// uses them; they are in the fatbin so that the same tests check a GPU
// (make gpu-bundle) as well as the emulator: the emulator's layouts are
// only proven once hardware agrees with them.
//
// bf16 data travels as int32 words holding two bf16 values each (the lower
// address in the low half).
#include "common.cuh"
#include "mma.cuh"

// tc_probe_bf16: bits[i] = the bf16 bits of x[i] rounded (ig_bf16_from_float),
// back[i] = that bf16 widened to float, packed[j] = ig_bf16x2_pack(x[2j],
// x[2j+1]) for j < n/2. Launch: 1-D grid of 1-D blocks, any size.
extern "C" __global__ void tc_probe_bf16(const float* x, int n, int* bits, float* back, int* packed) {
    const int stride = gridDim.x * blockDim.x;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const ig_bf16 h = ig_bf16_from_float(x[i]);
        bits[i] = h.bits;
        back[i] = ig_bf16_to_float(h);
        if (i % 2 == 0 && i + 1 < n) packed[i / 2] = (int)ig_bf16x2_pack(x[i], x[i + 1]);
    }
}

// tc_probe_ldmatrix: rows holds 32 rows of 8 bf16 (4 words each). One warp
// stages them in shared memory (cp.async, row i by lane i), then lane i
// gives the address of shared row row_of[i] to every ldmatrix form, in the
// order x1, x2, x4, x1.trans, x2.trans, x4.trans: register m of lane l of
// form f goes to out[(f·32 + l)·4 + m]; registers a form does not have are
// left alone. Launch: one block of 32 threads.
extern "C" __global__ void tc_probe_ldmatrix(const int* rows, const int* row_of, int* out) {
    __shared__ __align__(16) ig_bf16 S[32][8];
    const int lane = threadIdx.x;
    ig_cp_async_16(&S[lane][0], rows + 4 * lane);
    ig_cp_async_commit();
    ig_cp_async_wait<0>();
    __syncwarp();
    const void* row = &S[row_of[lane]][0];
    uint32_t r[4];
    int* o = out + 4 * lane;
    ig_ldmatrix_x1(r, row);
    o[0] = (int)r[0];
    o += 128;
    ig_ldmatrix_x2(r, row);
    for (int m = 0; m < 2; m++) o[m] = (int)r[m];
    o += 128;
    ig_ldmatrix_x4(r, row);
    for (int m = 0; m < 4; m++) o[m] = (int)r[m];
    o += 128;
    ig_ldmatrix_x1_trans(r, row);
    o[0] = (int)r[0];
    o += 128;
    ig_ldmatrix_x2_trans(r, row);
    for (int m = 0; m < 2; m++) o[m] = (int)r[m];
    o += 128;
    ig_ldmatrix_x4_trans(r, row);
    for (int m = 0; m < 4; m++) o[m] = (int)r[m];
}

// tc_probe_mma: block z runs one mma of shape m16n8k{k} (k = 16 or 8) on
// registers given lane by lane: lane l's a[i] = a[(z·32 + l)·4 + i] (4
// registers for k = 16, the first 2 for k = 8), b[i] = b[(z·32 + l)·2 + i]
// (2 or 1), c[i] = c[(z·32 + l)·4 + i]; d likewise. Launch: grid (trials),
// blocks of 32 threads.
extern "C" __global__ void tc_probe_mma(const int* a, const int* b, const float* c, float* d, int k) {
    const int lane = (blockIdx.x * 32 + threadIdx.x);
    uint32_t ra[4], rb[2];
    float rc[4], rd[4];
    for (int i = 0; i < 4; i++) ra[i] = (uint32_t)a[lane * 4 + i];
    for (int i = 0; i < 2; i++) rb[i] = (uint32_t)b[lane * 2 + i];
    for (int i = 0; i < 4; i++) rc[i] = c[lane * 4 + i];
    if (k == 16)
        ig_mma_m16n8k16_bf16_f32(rd, ra, rb, rc);
    else
        ig_mma_m16n8k8_bf16_f32(rd, ra, rb, rc);
    for (int i = 0; i < 4; i++) d[lane * 4 + i] = rd[i];
}

// tc_probe_tile: block z computes D = A·B + C as a kernel would, for A
// 16×16 bf16 row-major (128 words at A + z·128) of which only columns
// k < kvalid are read (the rest is zero-filled), B 16×8 bf16 row-major
// (k-major, 64 words at B + z·64), C and D 16×8 fp32 row-major (at
// z·128): cp.async stages A, B and C in three groups (16-byte zero-filling,
// 8-byte and 4-byte copies), each read after its own wait; ldmatrix.x4
// loads A's fragments, ldmatrix.x2.trans B's, and one m16n8k16 mma gives D.
// D8 gets the same product from two chained m16n8k8 mmas on halves of the
// same fragments. Launch: grid (trials), blocks of 32 threads.
extern "C" __global__ void tc_probe_tile(const int* A, const int* B, const float* C, float* D, float* D8,
                                         int kvalid) {
    __shared__ __align__(16) ig_bf16 As[16][16];
    __shared__ __align__(16) ig_bf16 Bs[16][8];
    __shared__ __align__(16) float Cs[16][8];
    const int lane = threadIdx.x, z = blockIdx.x;
    const ig_bf16* a = reinterpret_cast<const ig_bf16*>(A + z * 128);
    const ig_bf16* b = reinterpret_cast<const ig_bf16*>(B + z * 64);
    C += z * 128;
    D += z * 128;
    D8 += z * 128;

    // A: lane l copies 8 elements of row l/2 from column 8·(l%2).
    const int ar = lane / 2, ac = 8 * (lane % 2);
    const int avalid = min(max(kvalid - ac, 0), 8);
    ig_cp_async_16_zfill(&As[ar][ac], a + ar * 16 + ac, 2 * avalid);
    ig_cp_async_commit();
    // B: lane l copies 4 elements of row l/2 from column 4·(l%2).
    ig_cp_async_8(&Bs[lane / 2][4 * (lane % 2)], b + (lane / 2) * 8 + 4 * (lane % 2));
    ig_cp_async_commit();
    for (int j = 0; j < 4; j++) ig_cp_async_4(&Cs[0][0] + 4 * lane + j, C + 4 * lane + j);
    ig_cp_async_commit();

    uint32_t fa[4], fb[2];
    ig_cp_async_wait<2>();  // A has landed
    __syncwarp();
    // x4 matrices: rows 0-7 and 8-15 of columns 0-7, then of columns 8-15.
    ig_ldmatrix_x4(fa, &As[lane % 16][8 * (lane / 16)]);
    ig_cp_async_wait<1>();  // and B
    __syncwarp();
    // x2.trans matrices: rows k = 0-7, then 8-15 (lanes 16-31 are ignored).
    ig_ldmatrix_x2_trans(fb, &Bs[lane % 16][0]);
    ig_cp_async_wait<0>();  // and C
    __syncwarp();

    const int g = lane / 4, t = lane % 4;
    float c[4], d[4], d8[4];
    for (int i = 0; i < 4; i++) c[i] = Cs[g + 8 * (i / 2)][2 * t + i % 2];
    ig_mma_m16n8k16_bf16_f32(d, fa, fb, c);
    // k = 8 halves: columns 0-7 of A are fa[0..1] with rows 0-7 of B in
    // fb[0]; columns 8-15 are fa[2..3] with fb[1].
    ig_mma_m16n8k8_bf16_f32(d8, fa, fb, c);
    ig_mma_m16n8k8_bf16_f32(d8, fa + 2, fb + 1, d8);
    for (int i = 0; i < 4; i++) {
        D[(g + 8 * (i / 2)) * 8 + 2 * t + i % 2] = d[i];
        D8[(g + 8 * (i / 2)) * 8 + 2 * t + i % 2] = d8[i];
    }
}
