// Data checks of Int32 operands (token ids, positions, targets, valid
// lengths, row indices, cache positions) that the cpu backend makes on the
// host before an op. On the device they run as a kernel queued before the
// op: a failure records the check's code and the lowest failing index with
// its value in the backend's error flag (common.cuh), which the host reads
// at the next Sync or Download. The guarded op's kernels test the flag
// first and write nothing once it is set, so a failed op leaves its outputs
// untouched as on the cpu.
#include "common.cuh"

// check_index_range: raise code unless lo ≤ x[i] < hi for every i < n.
// Launch: 1-D grid of 1-D blocks, any size (grid-stride loop); the Go
// wrapper uses 256 threads and min(ceil(n/256), 1024) blocks.
extern "C" __global__ void check_index_range(const int* __restrict__ x, long long n, long long lo, long long hi,
                                             int code, int* flag) {
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = tid; i < n; i += stride) {
        const long long v = x[i];
        if (v < lo || v >= hi) ig_raise(flag, code, i, (int)v);
    }
}

// reset_error_flag: flag = {0, 0, ~0, ~0}. Launch: one block of one thread
// (or more: the others do nothing).
extern "C" __global__ void reset_error_flag(int* flag) {
    if (blockIdx.x == 0 && threadIdx.x == 0) {
        flag[0] = 0;
        flag[1] = 0;
        *reinterpret_cast<unsigned long long*>(flag + 2) = ~0ull;
    }
}
