// Token and position embeddings: a gather on the forward pass, a
// deterministic scatter-add (no atomics) on the backward pass.
//
// Ids outside their table (token ids outside [0,V), positions outside
// [0,maxT)) are errors of the op: the Go wrapper queues check_index_range
// before these kernels, and they write nothing once the error flag is set.
// Independently of the flag, an out-of-range id is never dereferenced (its
// row is skipped).
//
// out, wte, wpe (forward) and dout (backward) are of the activation type, a
// kernel per type (_f32, _bf16; kernels/act.cuh): bf16 is widened on load
// and out rounded once on store. The gradient tables dwte, dwpe are float32
// in both.
#include "common.cuh"
#include "act.cuh"

// embedding_forward_f32, embedding_forward_bf16: out[i, :] = wte[tokens[i], :]
// + wpe[p_i, :] for the N = B·T rows i, with p_i = positions[i], or i mod T
// when positions is null.
// Launch: grid (N), 1-D blocks of any size (the wrapper uses 128); block i
// writes row i, threads striding over the columns, in 16-byte vectors
// (4 floats, 8 bf16) when vec: C a multiple of that width and out, wte, wpe
// 16-byte aligned.
template <class T, int VW>
static __device__ __forceinline__ void ig_embed_forward(T* __restrict__ out, const int* __restrict__ tokens,
                                                        const int* __restrict__ positions, const T* __restrict__ wte,
                                                        const T* __restrict__ wpe, int N, int seqT, int C, int V,
                                                        int maxT) {
    const int i = blockIdx.x;
    if (i >= N) return;
    const int id = tokens[i];
    const int p = positions ? positions[i] : i % seqT;
    if (id < 0 || id >= V || p < 0 || p >= maxT) return;
    T* o = out + (long long)i * C;
    const T* e = wte + (long long)id * C;
    const T* q = wpe + (long long)p * C;
    for (int c = threadIdx.x * VW; c < C; c += blockDim.x * VW) {
        float a[VW], b[VW];
        ig_ldv<VW>(e + c, a);
        ig_ldv<VW>(q + c, b);
#pragma unroll
        for (int k = 0; k < VW; k++) a[k] += b[k];
        ig_stv<VW>(o + c, a);
    }
}

extern "C" __global__ void embedding_forward_f32(float* __restrict__ out, const int* __restrict__ tokens,
                                                 const int* __restrict__ positions, const float* __restrict__ wte,
                                                 const float* __restrict__ wpe, int N, int T, int C, int V, int maxT,
                                                 int vec, const int* flag) {
    if (ig_failed(flag)) return;
    if (vec)
        ig_embed_forward<float, 4>(out, tokens, positions, wte, wpe, N, T, C, V, maxT);
    else
        ig_embed_forward<float, 1>(out, tokens, positions, wte, wpe, N, T, C, V, maxT);
}

extern "C" __global__ void embedding_forward_bf16(ig_bf16* __restrict__ out, const int* __restrict__ tokens,
                                                  const int* __restrict__ positions, const ig_bf16* __restrict__ wte,
                                                  const ig_bf16* __restrict__ wpe, int N, int T, int C, int V,
                                                  int maxT, int vec, const int* flag) {
    if (ig_failed(flag)) return;
    if (vec)
        ig_embed_forward<ig_bf16, 8>(out, tokens, positions, wte, wpe, N, T, C, V, maxT);
    else
        ig_embed_forward<ig_bf16, 1>(out, tokens, positions, wte, wpe, N, T, C, V, maxT);
}

// embedding_scatter_f32, embedding_scatter_bf16: table[ids[i], :] +=
// dout[i, :] for every i < N, the backward of a gather from the float32
// table [rows, C] (dwte with the token ids, or dwpe with explicit
// positions).
//
// Launch: grid (ceil(rows / R)), 1-D blocks of a multiple of 32 threads, at
// most 1024 (the wrapper uses 128). Block k owns the table rows
// [k·R, (k+1)·R): no other block writes them, so there are no atomics. It
// reads the ids in passes of blockDim.x and keeps, in index order, those in
// its rows (an order-preserving compaction with warp ballots); then each
// thread, owning fixed columns (a 16-byte vector of dout when vec: 4 floats
// or 8 bf16, C a multiple of that width, table and dout aligned), walks the
// matches in index order, summing consecutive matches of the same row in a
// register (float) and adding the sum to the table row when the row changes
// (runs of a repeated token, such as padding, cost one read-modify-write). The order of every addition depends
// only on the ids and the block size: the result is deterministic.
template <class T, int VW>
static __device__ __forceinline__ void ig_embed_scatter(float* __restrict__ table, const T* __restrict__ dout,
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
                float x[VW];
                ig_ldv<VW>(dout + (long long)list[j] * C + g * VW, x);
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

extern "C" __global__ void embedding_scatter_f32(float* __restrict__ table, const float* __restrict__ dout,
                                                 const int* __restrict__ ids, int N, int C, int rows, int R, int vec,
                                                 const int* flag) {
    if (ig_failed(flag)) return;
    if (vec)
        ig_embed_scatter<float, 4>(table, dout, ids, N, C, rows, R);
    else
        ig_embed_scatter<float, 1>(table, dout, ids, N, C, rows, R);
}

extern "C" __global__ void embedding_scatter_bf16(float* __restrict__ table, const ig_bf16* __restrict__ dout,
                                                  const int* __restrict__ ids, int N, int C, int rows, int R, int vec,
                                                  const int* flag) {
    if (ig_failed(flag)) return;
    if (vec)
        ig_embed_scatter<ig_bf16, 8>(table, dout, ids, N, C, rows, R);
    else
        ig_embed_scatter<ig_bf16, 1>(table, dout, ids, N, C, rows, R);
}

// embedding_positions_backward_f32, embedding_positions_backward_bf16:
// dwpe[p, :] += Σ_b dout[b·T + p, :] for p < T, the backward of the default
// positions 0..T−1 (summed over b in order in float, then added once).
// Launch: grid (T), 1-D blocks of any size (the wrapper uses 128); block p
// owns row p, threads striding over the columns (16-byte vectors of dout
// when vec, as in embedding_scatter).
template <class T, int VW>
static __device__ __forceinline__ void ig_embed_positions_backward(float* __restrict__ dwpe,
                                                                   const T* __restrict__ dout, int B, int seqT,
                                                                   int C) {
    const int p = blockIdx.x;
    if (p >= seqT) return;
    const long long rowStride = (long long)seqT * C;
    for (int c = threadIdx.x * VW; c < C; c += blockDim.x * VW) {
        float acc[VW], d[VW];
#pragma unroll
        for (int k = 0; k < VW; k++) acc[k] = 0.0f;
        for (int b = 0; b < B; b++) {
            ig_ldv<VW>(dout + b * rowStride + (long long)p * C + c, d);
#pragma unroll
            for (int k = 0; k < VW; k++) acc[k] += d[k];
        }
        float* w = dwpe + (long long)p * C + c;
        ig_ldv<VW>(w, d);
#pragma unroll
        for (int k = 0; k < VW; k++) d[k] += acc[k];
        ig_stv<VW>(w, d);
    }
}

extern "C" __global__ void embedding_positions_backward_f32(float* __restrict__ dwpe, const float* __restrict__ dout,
                                                            int B, int T, int C, int vec, const int* flag) {
    if (ig_failed(flag)) return;
    if (vec)
        ig_embed_positions_backward<float, 4>(dwpe, dout, B, T, C);
    else
        ig_embed_positions_backward<float, 1>(dwpe, dout, B, T, C);
}

extern "C" __global__ void embedding_positions_backward_bf16(float* __restrict__ dwpe,
                                                             const ig_bf16* __restrict__ dout, int B, int T, int C,
                                                             int vec, const int* flag) {
    if (ig_failed(flag)) return;
    if (vec)
        ig_embed_positions_backward<ig_bf16, 8>(dwpe, dout, B, T, C);
    else
        ig_embed_positions_backward<ig_bf16, 1>(dwpe, dout, B, T, C);
}
