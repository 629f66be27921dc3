// The warp-level matrix instructions the kernels use, on fragments laid out
// exactly as the PTX ISA's tables say (section names cited at each layout;
// the numbers are those of PTX ISA 9.0):
//
//   mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
//   mma.sync.aligned.m16n8k8.row.col.f32.bf16.bf16.f32
//   ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16
//
// Both are warp collectives (emu_internal.h): a lane's call hands its
// operand and result pointers to the scheduler, which runs the instruction
// once all 32 lanes are there, so an exited lane, a divergent lane or lanes
// that disagree on the shape are errors, as on hardware they are undefined.
//
// Rounding of mma: a product of two bf16 values (8-bit significands) is
// exact in fp32 and in double. The emulator adds c and the k products in
// double, in order of k, and rounds the sum once to fp32 (to nearest even):
// the result is the exact D = A·B + C correctly rounded, up to double's
// rounding of the sum, which is far below fp32's. Subnormal inputs and
// results are kept. The PTX ISA leaves the order and the intermediate
// precision of the hardware's sum unspecified, so a GPU's D may differ from
// the emulator's by a few fp32 ulps of |c| + Σ|a·b|: a kernel's parity
// tolerance must allow about K·2^-23 times Σ|a·b| over a chain of
// accumulated products of total length K, whichever runs it.
#include "emu.h"
#include "emu_internal.h"

namespace {

// Lane coordinates used by every table: PTX ISA "Matrix Fragments for
// mma.m16n8k16 with floating point type" and "... for mma.m16n8k8".
int group_of(int lane) { return lane >> 2; }         // groupID
int thread_in_group(int lane) { return lane % 4; }   // threadID_in_group

// Element i of a lane's fragment sits in register i/2, in the low half for
// even i ("Elements (low to high)").
float frag_elem(const uint32_t* regs, int i) {
    return emu_bf16_to_float((uint16_t)(regs[i / 2] >> (16 * (i & 1))));
}

// A (16×k, row-major), element a_i of a lane.
// 9.7.14.5.8, m16n8k16, .bf16 A: a0..a7,
//   row = groupID for 0 <= i < 2 || 4 <= i < 6, groupID + 8 otherwise;
//   col = threadID_in_group*2 + (i & 1), plus 8 for i >= 4.
// 9.7.14.5.7, m16n8k8, .bf16 A: a0..a3,
//   row = groupID for a0, a1, groupID + 8 for a2, a3;
//   col = threadID_in_group*2 + (i & 1).
int a_row(int k, int lane, int i) {
    if (k == 16) return group_of(lane) + ((i == 2 || i == 3 || i == 6 || i == 7) ? 8 : 0);
    return group_of(lane) + (i >= 2 ? 8 : 0);
}
int a_col(int k, int lane, int i) {
    return thread_in_group(lane) * 2 + (i & 1) + ((k == 16 && i >= 4) ? 8 : 0);
}

// B (k×8, column-major: "col"), element b_i of a lane.
// 9.7.14.5.8, m16n8k16, .bf16 B: b0..b3,
//   row = threadID_in_group*2 + (i & 1), plus 8 for i >= 2; col = groupID.
// 9.7.14.5.7, m16n8k8, .bf16 B: b0, b1,
//   row = threadID_in_group*2 + i; col = groupID.
int b_row(int k, int lane, int i) {
    if (k == 16) return thread_in_group(lane) * 2 + (i & 1) + (i >= 2 ? 8 : 0);
    return thread_in_group(lane) * 2 + i;
}
int b_col(int lane) { return group_of(lane); }

// C and D (16×8, .f32), element c_i of a lane; the same table for both
// shapes (9.7.14.5.7 and 9.7.14.5.8, "Accumulators (C or D)"):
//   row = groupID for c0, c1, groupID + 8 for c2, c3;
//   col = threadID_in_group*2 + (i & 1).
int c_row(int lane, int i) { return group_of(lane) + (i >= 2 ? 8 : 0); }
int c_col(int lane, int i) { return thread_in_group(lane) * 2 + (i & 1); }

struct MmaOperands {
    const uint32_t* a;
    const uint32_t* b;
    const float* c;
};

std::string run_mma(int k, const void* const in[32], void* const out[32]) {
    if (k != 16 && k != 8) return "mma.sync with k = " + std::to_string(k);
    float A[16][16], B[16][8], C[16][8];
    for (int lane = 0; lane < 32; lane++) {
        const MmaOperands* op = static_cast<const MmaOperands*>(in[lane]);
        for (int i = 0; i < k / 2; i++) A[a_row(k, lane, i)][a_col(k, lane, i)] = frag_elem(op->a, i);
        for (int i = 0; i < k / 4; i++) B[b_row(k, lane, i)][b_col(lane)] = frag_elem(op->b, i);
        for (int i = 0; i < 4; i++) C[c_row(lane, i)][c_col(lane, i)] = op->c[i];
    }
    // All operands are read before any result is written: d may alias c.
    for (int lane = 0; lane < 32; lane++) {
        float* d = static_cast<float*>(out[lane]);
        for (int i = 0; i < 4; i++) {
            const int r = c_row(lane, i), n = c_col(lane, i);
            double acc = C[r][n];
            for (int kk = 0; kk < k; kk++) acc += (double)A[r][kk] * (double)B[kk][n];
            d[i] = (float)acc;
        }
    }
    return "";
}

// ldmatrix: PTX ISA "Warp-level matrix load instruction: ldmatrix"
// (9.7.14.5.15). Matrix m (0 ≤ m < num) of 8×8 b16 elements has its row r
// at the address of lane 8m + r; lanes 8·num and up supply nothing. Each
// row is 16 contiguous bytes, naturally aligned. Lane l receives, in its
// register m, row l/4, elements 2·(l%4) (low half) and 2·(l%4)+1 (high
// half); with .trans the matrix is read column-major: elements of rows
// 2·(l%4) and 2·(l%4)+1, column l/4.
std::string run_ldmatrix(int arg, const void* const in[32], void* const out[32]) {
    const int num = arg & 7;
    const bool trans = (arg >> 3) & 1;
    if (num != 1 && num != 2 && num != 4) return "ldmatrix with .x" + std::to_string(num);
    uint16_t M[4][8][8];
    for (int m = 0; m < num; m++) {
        for (int r = 0; r < 8; r++) {
            const void* row = in[8 * m + r];
            if (row == nullptr || reinterpret_cast<uintptr_t>(row) % 16 != 0) {
                char msg[128];
                snprintf(msg, sizeof msg, "ldmatrix: lane %d gives row address %p, not 16-byte aligned", 8 * m + r, row);
                return msg;
            }
            std::memcpy(M[m][r], row, 16);
        }
    }
    for (int lane = 0; lane < 32; lane++) {
        uint32_t* r = static_cast<uint32_t*>(out[lane]);
        const int g = lane / 4, t = lane % 4;
        for (int m = 0; m < num; m++) {
            const uint16_t lo = trans ? M[m][2 * t][g] : M[m][g][2 * t];
            const uint16_t hi = trans ? M[m][2 * t + 1][g] : M[m][g][2 * t + 1];
            r[m] = (uint32_t)lo | ((uint32_t)hi << 16);
        }
    }
    return "";
}

}  // namespace

std::string emu_run_collective(int kind, int arg, const void* const in[32], void* const out[32]) {
    switch (kind) {
    case EMU_MMA_BF16: return run_mma(arg, in, out);
    case EMU_LDMATRIX: return run_ldmatrix(arg, in, out);
    }
    return "unknown warp collective " + std::to_string(kind);
}

void emu_mma_bf16(int k, float* d, const uint32_t* a, const uint32_t* b, const float* c) {
    const MmaOperands op{a, b, c};
    emu_warp_collective(EMU_MMA_BF16, k, &op, d);
}

void emu_ldmatrix(int num, bool trans, uint32_t* r, const void* row) {
    emu_warp_collective(EMU_LDMATRIX, num | (trans ? 8 : 0), row, r);
}
