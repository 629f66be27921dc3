// Token sampling, one block per row of logits, following the procedure of
// gpu.Backend.Sample (and gpu/cpu/sample.go) exactly:
//   greedy (temperature 0): the lowest id of the row's largest logit;
//   otherwise
//   1. candidates: every id of finite logit, or with 0 < topk < V the topk ids
//      of largest logit, ties to the lower id (−Inf logits never count);
//   2. weights w_j = exp((double)z_j / T − (double)zmax / T) in double;
//   3. with 0 < topp < 1 the nucleus: the shortest prefix of the candidates
//      sorted by descending weight (ties: lower id first) whose weights add up
//      to at least topp × the candidates' total;
//   4. u = (Mix64(seed, row) >> 11)·2^−53 and the first kept id, in ascending
//      id order, whose cumulative weight exceeds u × the kept total.
// A row holding a NaN or +Inf, or only −Inf, is an error: tokens[row] = −1
// and the error flag gets code with index row.
//
// No sort is needed:
//  - top-k is a radix select on the logits' order-preserving 32-bit keys
//    (four 8-bit digits, histograms with shared-memory integer atomics, which
//    are order-independent): it yields the k-th largest key κ and how many
//    ids of key κ are taken, which are the lowest ids of that key (a block
//    scan over contiguous id chunks gives each tie its rank in id order);
//  - the weights go to wbuf [N,V] (double, device scratch);
//  - the nucleus is a threshold on the weights' 64-bit patterns (positive
//    doubles order like their bit patterns): the largest pattern τ with
//    mass(w ≥ τ) ≥ P = topp·total is found by an 8-way bisection of the
//    pattern range (each round evaluates 8 thresholds in one pass, so about
//    21 rounds), every mass a deterministic block reduction. The nucleus is
//    then every w > τ, plus the lowest-id ties of weight τ needed to reach P:
//    cnt = ⌈(P − mass(w > τ))/w_τ⌉ of them, exactly the cpu's sorted prefix
//    (which sums the same weights sequentially; the sums differ only by
//    rounding, as the contract allows);
//  - the draw walks the kept weights in id order: every thread sums its
//    contiguous id chunk, a block scan gives the chunk offsets, and the
//    chunk where the cumulative weight passes u × total is walked by its
//    thread.
// Every sum has a fixed order (thread chunks, fixed trees), so the result
// depends only on (logits, settings, seed, row) and the block size.
//
// Launch: grid (rows), 512 threads (any multiple of 32 up to 1024 works; the
// wrapper uses 512): block x samples row rowBase + x of logits [N,V] (rows
// past N do nothing), so a large batch can go in several launches; wbuf
// holds gridDim.x·V doubles (unused when greedy).
//
// The logits are of the activation type, a kernel per type (sample_rows_f32,
// sample_rows_bf16; kernels/act.cuh): bf16 logits are widened exactly on
// load, so a bf16 row samples as the float32 row of the same values.
#include "common.cuh"
#include "act.cuh"

struct IgSampleShared {
    int hist[256];
    int ibuf[32];
    double dbuf[32];
    double mass[8][32];
    double res[8];
    float fbuf[32];
    int sel[4];
    unsigned long long ubuf[4];
};

// ig_ord maps a float to a 32-bit key with the same order (for non-NaN).
// −0 maps to +0's key: the CPU compares the floats, for which they are
// equal, so a tie between them is broken by id there and must be here.
static __device__ __forceinline__ unsigned ig_ord(float x) {
    unsigned b = __float_as_uint(x);
    if (b == 0x80000000u) b = 0u;
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

// ig_scan_excl_i returns the exclusive prefix sum of v over the block in
// thread order and sets total. sh: 32 ints.
static __device__ __forceinline__ int ig_scan_excl_i(int v, int* sh, int& total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    int x = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const int y = __shfl_up_sync(IG_FULL_MASK, x, o);
        if (lane >= o) x += y;
    }
    int ex = __shfl_up_sync(IG_FULL_MASK, x, 1);
    if (lane == 0) ex = 0;
    __syncthreads();
    if (lane == 31) sh[warp] = x;
    __syncthreads();
    if (warp == 0) {
        int s = lane < nw ? sh[lane] : 0;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int y = __shfl_up_sync(IG_FULL_MASK, s, o);
            if (lane >= o) s += y;
        }
        if (lane < nw) sh[lane] = s;
    }
    __syncthreads();
    total = sh[nw - 1];
    return (warp > 0 ? sh[warp - 1] : 0) + ex;
}

// ig_scan_excl_d is ig_scan_excl_i for doubles (sh: 32 doubles).
static __device__ __forceinline__ double ig_scan_excl_d(double v, double* sh, double& total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    double x = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const double y = __shfl_up_sync(IG_FULL_MASK, x, o);
        if (lane >= o) x += y;
    }
    double ex = __shfl_up_sync(IG_FULL_MASK, x, 1);
    if (lane == 0) ex = 0.0;
    __syncthreads();
    if (lane == 31) sh[warp] = x;
    __syncthreads();
    if (warp == 0) {
        double s = lane < nw ? sh[lane] : 0.0;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const double y = __shfl_up_sync(IG_FULL_MASK, s, o);
            if (lane >= o) s += y;
        }
        if (lane < nw) sh[lane] = s;
    }
    __syncthreads();
    total = sh[nw - 1];
    return (warp > 0 ? sh[warp - 1] : 0.0) + ex;
}

static __device__ __forceinline__ int ig_block_sum_i(int v, int* sh) {
    int total;
    ig_scan_excl_i(v, sh, total);
    return total;
}

// ig_block_min_i returns the smallest v of the block (sh: 32 ints).
static __device__ __forceinline__ int ig_block_min_i(int v, int* sh) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = min(v, __shfl_xor_sync(IG_FULL_MASK, v, o));
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    int r = sh[0];
    for (int w = 1; w < nw; w++) r = min(r, sh[w]);
    return r;
}

// ig_block_max_i returns the largest v of the block (sh: 32 ints).
static __device__ __forceinline__ int ig_block_max_i(int v, int* sh) {
    return -ig_block_min_i(-v, sh);
}

template <class T>
static __device__ __forceinline__ void ig_sample_rows(int* __restrict__ tokens, const T* __restrict__ logits,
                                                      double* __restrict__ wbuf, int rowBase, int N, int V,
                                                      float temperature, int topk, float topp,
                                                      unsigned long long seed, int code, int* flag) {
    __shared__ IgSampleShared sh;
    const int row = rowBase + blockIdx.x;
    if (row >= N) return;
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nt = blockDim.x, nw = nt >> 5;
    const T* z = logits + (long long)row * V;

    // 1. The largest logit (lowest id on ties), validity, the finite count.
    float m = -INFINITY;
    int best = 0x7fffffff, bad = 0, finite = 0;
    for (int j = tid; j < V; j += nt) {
        const float x = ig_ld(z + j);
        if (x != x || x == INFINITY) bad = 1;
        else if (x > m) { m = x; best = j; }  // j ascends per thread: the first max is the lowest id
        if (x > -INFINITY && x == x) finite++;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float m2 = __shfl_xor_sync(IG_FULL_MASK, m, o);
        const int b2 = __shfl_xor_sync(IG_FULL_MASK, best, o);
        if (m2 > m || (m2 == m && b2 < best)) { m = m2; best = b2; }
    }
    if (lane == 0) {
        sh.fbuf[warp] = m;
        sh.ibuf[warp] = best;
    }
    __syncthreads();
    if (tid == 0) {
        float mm = sh.fbuf[0];
        int bb = sh.ibuf[0];
        for (int w = 1; w < nw; w++) {
            if (sh.fbuf[w] > mm || (sh.fbuf[w] == mm && sh.ibuf[w] < bb)) { mm = sh.fbuf[w]; bb = sh.ibuf[w]; }
        }
        sh.fbuf[0] = mm;
        sh.sel[0] = bb;
    }
    __syncthreads();
    m = sh.fbuf[0];
    best = sh.sel[0];
    bad = ig_block_max_i(bad, sh.ibuf);
    finite = ig_block_sum_i(finite, sh.ibuf);
    if (bad || m == -INFINITY) {  // uniform
        if (tid == 0) {
            tokens[row] = -1;
            ig_raise(flag, code, row, 0);
        }
        return;
    }
    if (temperature == 0.0f) {
        if (tid == 0) tokens[row] = best;
        return;
    }

    // Contiguous id chunks, for everything that depends on id order.
    const int chunk = (V + nt - 1) / nt;
    const int c0 = min(V, tid * chunk), c1 = min(V, c0 + chunk);

    // 2. Top-k: the k-th largest key kth and how many of its ties to take.
    const bool useK = topk > 0 && topk < V;
    unsigned kth = 0;
    int needTies = 0, tieBase = 0;
    if (useK) {
        int remaining = min(topk, finite);
        unsigned prefix = 0, pmask = 0;
        for (int shift = 24; shift >= 0; shift -= 8) {
            for (int i = tid; i < 256; i += nt) sh.hist[i] = 0;
            __syncthreads();
            for (int j = tid; j < V; j += nt) {
                const float x = ig_ld(z + j);
                if (x == -INFINITY) continue;
                const unsigned key = ig_ord(x);
                if ((key & pmask) == prefix) atomicAdd(&sh.hist[(key >> shift) & 255u], 1);
            }
            __syncthreads();
            if (tid == 0) {
                int cum = 0, d = 255;
                for (; d > 0; d--) {
                    if (cum + sh.hist[d] >= remaining) break;
                    cum += sh.hist[d];
                }
                sh.sel[1] = d;
                sh.sel[2] = remaining - cum;
            }
            __syncthreads();
            prefix |= (unsigned)sh.sel[1] << shift;
            pmask |= 255u << shift;
            remaining = sh.sel[2];
            __syncthreads();
        }
        kth = prefix;
        needTies = remaining;
        int ties = 0;
        for (int j = c0; j < c1; j++) {
            const float x = ig_ld(z + j);
            if (x != -INFINITY && ig_ord(x) == kth) ties++;
        }
        int unused;
        tieBase = ig_scan_excl_i(ties, sh.ibuf, unused);
    }

    // 3. Weights of the candidates (0 elsewhere) and their total.
    double* w = wbuf + (long long)blockIdx.x * V;
    const double Td = (double)temperature;
    const double xmax = (double)m / Td;
    double local = 0.0;
    {
        int rank = tieBase;
        for (int j = c0; j < c1; j++) {
            const float x = ig_ld(z + j);
            bool cand = x != -INFINITY;
            if (cand && useK) {
                const unsigned key = ig_ord(x);
                if (key < kth) cand = false;
                else if (key == kth) cand = rank++ < needTies;
            }
            const double wj = cand ? exp((double)x / Td - xmax) : 0.0;
            w[j] = wj;
            local += wj;
        }
    }
    double total;
    ig_scan_excl_d(local, sh.dbuf, total);
    __syncthreads();  // every w[j] is written before the strided passes read them

    // 4. The nucleus threshold tau on the weights' bit patterns.
    const bool nucleus = topp > 0.0f && topp < 1.0f;
    unsigned long long tau = 0;
    int cnt = 0, tieBase2 = 0;
    if (nucleus) {
        const double P = (double)topp * total;
        unsigned long long lo = 0, hi = (unsigned long long)__double_as_longlong(1.0) + 1ull;
        double massHi = 0.0;
        while (hi - lo > 1ull) {
            unsigned long long th[8];
            const unsigned long long range = hi - lo;
            if (range <= 9ull) {
#pragma unroll
                for (int i = 0; i < 8; i++) th[i] = min(lo + 1ull + (unsigned long long)i, hi);
            } else {
                const unsigned long long step = range / 9ull;
#pragma unroll
                for (int i = 0; i < 8; i++) th[i] = lo + step * (unsigned long long)(i + 1);
            }
            double acc[8];
#pragma unroll
            for (int i = 0; i < 8; i++) acc[i] = 0.0;
            for (int j = tid; j < V; j += nt) {
                const double wj = w[j];
                const unsigned long long bits = (unsigned long long)__double_as_longlong(wj);
#pragma unroll
                for (int i = 0; i < 8; i++) acc[i] += bits >= th[i] ? wj : 0.0;
            }
#pragma unroll
            for (int i = 0; i < 8; i++) {
                const double s = ig_warp_sum_d(acc[i]);
                if (lane == 0) sh.mass[i][warp] = s;
            }
            __syncthreads();
            if (warp == 0) {
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    const double s = ig_warp_sum_d(lane < nw ? sh.mass[i][lane] : 0.0);
                    if (lane == 0) sh.res[i] = s;
                }
            }
            __syncthreads();
            for (int i = 0; i < 8; i++) {
                if (th[i] >= hi) break;
                if (sh.res[i] >= P) {
                    lo = th[i];
                } else {
                    hi = th[i];
                    massHi = sh.res[i];
                    break;
                }
            }
            __syncthreads();  // sh.res is rewritten by the next round
        }
        tau = lo;
        const double wt = __longlong_as_double((long long)tau);
        int ties = 0;
        for (int j = c0; j < c1; j++)
            if ((unsigned long long)__double_as_longlong(w[j]) == tau) ties++;
        int nties;
        tieBase2 = ig_scan_excl_i(ties, sh.ibuf, nties);
        double need = wt > 0.0 ? ceil((P - massHi) / wt) : (double)nties;
        need = need < 1.0 ? 1.0 : need;
        cnt = need > (double)nties ? nties : (int)need;
    }

    // 5. The draw: kept weights summed in id order.
    double kept = 0.0;
    {
        int rank = tieBase2;
        for (int j = c0; j < c1; j++) {
            const double wj = w[j];
            bool k = true;
            if (nucleus) {
                const unsigned long long bits = (unsigned long long)__double_as_longlong(wj);
                k = bits > tau || (bits == tau && rank++ < cnt);
            }
            if (k) kept += wj;
        }
    }
    double keptTotal;
    const double before = ig_scan_excl_d(kept, sh.dbuf, keptTotal);
    const double target = ig_uniform53(seed, (unsigned long long)row) * keptTotal;
    // The first thread whose chunk ends past the target walks it.
    const int mine = (kept > 0.0 && target < before + kept) ? tid : 0x7fffffff;
    const int walker = ig_block_min_i(mine, sh.ibuf);
    // The fallback (only through rounding): the last kept id of positive
    // weight.
    int lastPos = -1;
    int choice = -1;
    {
        int rank = tieBase2;
        double c = before;
        bool found = false;
        for (int j = c0; j < c1; j++) {
            const double wj = w[j];
            bool k = true;
            if (nucleus) {
                const unsigned long long bits = (unsigned long long)__double_as_longlong(wj);
                k = bits > tau || (bits == tau && rank++ < cnt);
            }
            if (!k) continue;
            if (wj > 0.0) lastPos = j;
            if (tid == walker && !found) {
                c += wj;
                if (target < c) {
                    choice = j;
                    found = true;
                }
            }
        }
        if (tid == walker && !found) choice = lastPos;
    }
    const int lastAll = ig_block_max_i(lastPos, sh.ibuf);
    if (walker == 0x7fffffff) {
        if (tid == 0) tokens[row] = lastAll;
    } else if (tid == walker) {
        tokens[row] = choice;
    }
}

extern "C" __global__ void __launch_bounds__(512, 1) sample_rows_f32(int* __restrict__ tokens,
                                                                  const float* __restrict__ logits,
                                                                  double* __restrict__ wbuf, int rowBase, int N, int V,
                                                                  float temperature, int topk, float topp,
                                                                  unsigned long long seed, int code, int* flag) {
    ig_sample_rows(tokens, logits, wbuf, rowBase, N, V, temperature, topk, topp, seed, code, flag);
}

extern "C" __global__ void __launch_bounds__(512, 1) sample_rows_bf16(int* __restrict__ tokens,
                                                                   const ig_bf16* __restrict__ logits,
                                                                   double* __restrict__ wbuf, int rowBase, int N,
                                                                   int V, float temperature, int topk, float topp,
                                                                   unsigned long long seed, int code, int* flag) {
    ig_sample_rows(tokens, logits, wbuf, rowBase, N, V, temperature, topk, topp, seed, code, flag);
}
