// Token and position embeddings: a gather on the forward pass, a
// deterministic scatter-add (no atomics) on the backward pass.
//
// Ids outside their table (token ids outside [0,V), positions outside
// [0,maxT)) are errors of the op: the Go wrapper queues check_index_range
// before these kernels, and they write nothing once the error flag is set.
// Independently of the flag, an out-of-range id is never dereferenced (its
// row is skipped).
#include "common.cuh"

// embedding_forward: out[i, :] = wte[tokens[i], :] + wpe[p_i, :] for the
// N = B·T rows i, with p_i = positions[i], or i mod T when positions is
// null.
// Launch: grid (N), 1-D blocks of any size (the wrapper uses 128); block i
// writes row i, threads striding over the columns, float4 when vec4 (C a
// multiple of 4 and out, wte, wpe 16-byte aligned).
extern "C" __global__ void embedding_forward(float* __restrict__ out, const int* __restrict__ tokens,
                                             const int* __restrict__ positions, const float* __restrict__ wte,
                                             const float* __restrict__ wpe, int N, int T, int C, int V, int maxT,
                                             int vec4, const int* flag) {
    if (ig_failed(flag)) return;
    const int i = blockIdx.x;
    if (i >= N) return;
    const int id = tokens[i];
    const int p = positions ? positions[i] : i % T;
    if (id < 0 || id >= V || p < 0 || p >= maxT) return;
    float* o = out + (long long)i * C;
    const float* e = wte + (long long)id * C;
    const float* q = wpe + (long long)p * C;
    if (vec4) {
        const int C4 = C >> 2;
        for (int c = threadIdx.x; c < C4; c += blockDim.x) {
            const float4 a = reinterpret_cast<const float4*>(e)[c];
            const float4 b = reinterpret_cast<const float4*>(q)[c];
            reinterpret_cast<float4*>(o)[c] = make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
        }
    } else {
        for (int c = threadIdx.x; c < C; c += blockDim.x) o[c] = e[c] + q[c];
    }
}

// embedding_scatter: table[ids[i], :] += dout[i, :] for every i < N, the
// backward of a gather from table [rows, C] (dwte with the token ids, or
// dwpe with explicit positions).
//
// Launch: grid (ceil(rows / R)), 1-D blocks of a multiple of 32 threads, at
// most 1024 (the wrapper uses 128). Block k owns the table rows
// [k·R, (k+1)·R): no other block writes them, so there are no atomics. It
// reads the ids in passes of blockDim.x and keeps, in index order, those in
// its rows (an order-preserving compaction with warp ballots); then each
// thread, owning fixed columns (a float4 of them when vec4: C a multiple of
// 4, table and dout aligned), walks the matches in index order, summing
// consecutive matches of the same row in a register and adding the sum to
// the table row when the row changes (runs of a repeated token, such as
// padding, cost one read-modify-write). The order of every addition depends
// only on the ids and the block size: the result is deterministic.
template <int VW>
static __device__ __forceinline__ void ig_embed_scatter(float* __restrict__ table, const float* __restrict__ dout,
                                                        const int* __restrict__ ids, int N, int C, int rows, int R) {
    __shared__ int list[1024];
    __shared__ int listv[1024];
    __shared__ int wcount[32];
    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, nw = blockDim.x >> 5;
    const int v0 = blockIdx.x * R;
    const int v1 = min(rows, v0 + R);
    const int G = C / VW;  // column granules per row
    for (int base = 0; base < N; base += blockDim.x) {
        const int i = base + tid;
        const int id = i < N ? ids[i] : -1;
        const bool m = i < N && id >= v0 && id < v1;
        const unsigned bal = __ballot_sync(IG_FULL_MASK, m);
        if (lane == 0) wcount[warp] = __popc(bal);
        __syncthreads();
        int off = 0, total = 0;
        for (int w = 0; w < nw; w++) {
            const int c = wcount[w];
            if (w < warp) off += c;
            total += c;
        }
        if (m) {
            const int pos = off + __popc(bal & ((1u << lane) - 1u));
            list[pos] = i;
            listv[pos] = id;
        }
        __syncthreads();
        for (int g = tid; g < G; g += blockDim.x) {
            int cur = -1;
            float acc[VW];
#pragma unroll
            for (int k = 0; k < VW; k++) acc[k] = 0.0f;
            for (int j = 0; j < total; j++) {
                const int v = listv[j];
                const float* d = dout + (long long)list[j] * C + g * VW;
                float x[VW];
                if (VW == 4) {
                    const float4 q = *reinterpret_cast<const float4*>(d);
                    x[0] = q.x; x[1] = q.y; x[2] = q.z; x[3] = q.w;
                } else {
                    x[0] = d[0];
                }
                if (v != cur) {
                    if (cur >= 0) {
                        float* t = table + (long long)cur * C + g * VW;
#pragma unroll
                        for (int k = 0; k < VW; k++) t[k] += acc[k];
                    }
                    cur = v;
#pragma unroll
                    for (int k = 0; k < VW; k++) acc[k] = x[k];
                } else {
#pragma unroll
                    for (int k = 0; k < VW; k++) acc[k] += x[k];
                }
            }
            if (cur >= 0) {
                float* t = table + (long long)cur * C + g * VW;
#pragma unroll
                for (int k = 0; k < VW; k++) t[k] += acc[k];
            }
        }
        __syncthreads();  // list and wcount are rewritten by the next pass
    }
}

extern "C" __global__ void embedding_scatter(float* __restrict__ table, const float* __restrict__ dout,
                                             const int* __restrict__ ids, int N, int C, int rows, int R, int vec4,
                                             const int* flag) {
    if (ig_failed(flag)) return;
    if (vec4)
        ig_embed_scatter<4>(table, dout, ids, N, C, rows, R);
    else
        ig_embed_scatter<1>(table, dout, ids, N, C, rows, R);
}

// embedding_positions_backward: dwpe[p, :] += Σ_b dout[b·T + p, :] for
// p < T, the backward of the default positions 0..T−1 (summed over b in
// order, then added once).
// Launch: grid (T), 1-D blocks of any size (the wrapper uses 128); block p
// owns row p, threads striding over the columns (float4 when vec4).
extern "C" __global__ void embedding_positions_backward(float* __restrict__ dwpe, const float* __restrict__ dout,
                                                        int B, int T, int C, int vec4, const int* flag) {
    if (ig_failed(flag)) return;
    const int p = blockIdx.x;
    if (p >= T) return;
    const long long rowStride = (long long)T * C;
    if (vec4) {
        const int C4 = C >> 2;
        for (int c = threadIdx.x; c < C4; c += blockDim.x) {
            float4 acc = make_float4(0.f, 0.f, 0.f, 0.f);
            for (int b = 0; b < B; b++) {
                const float4 d = reinterpret_cast<const float4*>(dout + b * rowStride + (long long)p * C)[c];
                acc.x += d.x; acc.y += d.y; acc.z += d.z; acc.w += d.w;
            }
            float4* w = reinterpret_cast<float4*>(dwpe + (long long)p * C) + c;
            float4 o = *w;
            o.x += acc.x; o.y += acc.y; o.z += acc.z; o.w += acc.w;
            *w = o;
        }
    } else {
        for (int c = threadIdx.x; c < C; c += blockDim.x) {
            float acc = 0.0f;
            for (int b = 0; b < B; b++) acc += dout[b * rowStride + (long long)p * C + c];
            dwpe[(long long)p * C + c] += acc;
        }
    }
}
