// The PPO math: clipped surrogate loss and its gradient, clipped value loss
// and its gradient, KL-penalised per-token rewards, GAE and masked
// whitening (gpu.Backend.PPOPolicyLoss, PPOValueLoss, KLPenalizedRewards,
// GAE, MaskedWhiten; gpu/cuda/ops_ppo.go launches them).
//
// Per-token tensors are float32 [B,T], row-major; mask[i] != 0 marks a
// response token (its value is never used otherwise). As in the cpu backend
// (gpu/cpu/ppo.go), every per-token formula is evaluated in double from the
// float32 inputs and rounded to float once, and every sum is a double, so
// the backends differ only by the order of double additions, FMA
// contraction and last-bit differences of exp/expm1.
//
// Reductions are deterministic, without atomics: a stage-1 kernel over a
// 1-D grid of G blocks of 256 threads (the Go wrapper picks G from n alone)
// writes one double per block and component into partial[c·G + block]; a
// later kernel adds each component's G partials in a fixed order
// (ppo_sum_partials). Every kernel is a grid-stride loop, so any grid covers
// any n; blocks are whole warps, at most 1024 threads.
#include "common.cuh"

// ppo_sum_partials returns Σ p[0..count) to every thread of the block, added
// in an order that depends only on count and the block size. sh: 32 doubles.
static __device__ __forceinline__ double ppo_sum_partials(const double* __restrict__ p, int count, double* sh) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += p[i];
    return ig_block_sum_d(acc, sh);
}

// ppo_policy_loss: per masked token, with d = logp − old_logp, r = exp(d),
// A = adv: surr = min(r·A, clip(r, 1−ε, 1+ε)·A), the clipped branch active
// only when strictly smaller (A > 0 and r > 1+ε, or A < 0 and r < 1−ε);
// dlogp = 0 if active, else −scale·A·r; dlogp = 0 outside the mask.
// clip_eps ≤ 0 disables clipping. partial receives 4 rows of G doubles:
// Σ −surr, the clipped count, Σ (expm1(d) − d) (the k3 estimate), the
// masked count.
// Launch: grid (G), block (256); G = gridDim.x rows in partial.
extern "C" __global__ void ppo_policy_loss(float* __restrict__ dlogp, double* __restrict__ partial,
                                           const float* __restrict__ logp, const float* __restrict__ old_logp,
                                           const float* __restrict__ adv, const float* __restrict__ mask,
                                           long long n, float clip_eps, float scale) {
    __shared__ double sh[32];
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    const bool clip = clip_eps > 0.0f;
    const double eps = (double)clip_eps, lo = 1.0 - eps, hi = 1.0 + eps, sc = (double)scale;
    double s_loss = 0.0, s_clip = 0.0, s_kl = 0.0, s_n = 0.0;
    for (long long i = tid; i < n; i += stride) {
        if (mask[i] == 0.0f) {
            dlogp[i] = 0.0f;
            continue;
        }
        const double d = (double)logp[i] - (double)old_logp[i];
        const double r = exp(d);
        const double a = (double)adv[i];
        double surr = r * a;
        bool clipped = false;
        if (clip) {
            if (a > 0.0 && r > hi) {
                surr = hi * a;
                clipped = true;
            } else if (a < 0.0 && r < lo) {
                surr = lo * a;
                clipped = true;
            }
        }
        dlogp[i] = clipped ? 0.0f : (float)(-sc * a * r);
        s_loss -= surr;
        s_clip += clipped ? 1.0 : 0.0;
        s_kl += expm1(d) - d;
        s_n += 1.0;
    }
    const int G = gridDim.x, blk = blockIdx.x;
    s_loss = ig_block_sum_d(s_loss, sh);
    s_clip = ig_block_sum_d(s_clip, sh);
    s_kl = ig_block_sum_d(s_kl, sh);
    s_n = ig_block_sum_d(s_n, sh);
    if (threadIdx.x == 0) {
        partial[blk] = s_loss;
        partial[G + blk] = s_clip;
        partial[2 * G + blk] = s_kl;
        partial[3 * G + blk] = s_n;
    }
}

// ppo_value_loss: per masked token, with vc = old + clip(v − old, −ε, ε)
// (vc = v when clip_eps ≤ 0), l1 = (v−R)², l2 = (vc−R)²: loss ½·max(l1, l2),
// the clipped term active when l2 > l1 strictly; dvalues = 0 if active,
// else scale·(v−R); 0 outside the mask. partial receives 3 rows of G
// doubles: Σ loss, the clipped count, the masked count.
// Launch: grid (G), block (256).
extern "C" __global__ void ppo_value_loss(float* __restrict__ dvalues, double* __restrict__ partial,
                                          const float* __restrict__ values, const float* __restrict__ old_values,
                                          const float* __restrict__ returns, const float* __restrict__ mask,
                                          long long n, float clip_eps, float scale) {
    __shared__ double sh[32];
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    const bool clip = clip_eps > 0.0f;
    const double eps = (double)clip_eps, sc = (double)scale;
    double s_loss = 0.0, s_clip = 0.0, s_n = 0.0;
    for (long long i = tid; i < n; i += stride) {
        if (mask[i] == 0.0f) {
            dvalues[i] = 0.0f;
            continue;
        }
        const double v = (double)values[i], o = (double)old_values[i], ret = (double)returns[i];
        const double vc = clip ? o + fmin(fmax(v - o, -eps), eps) : v;
        const double e1 = v - ret, e2 = vc - ret;
        const double l1 = e1 * e1, l2 = e2 * e2;
        const bool clipped = l2 > l1;
        dvalues[i] = clipped ? 0.0f : (float)(sc * e1);
        s_loss += 0.5 * (clipped ? l2 : l1);
        s_clip += clipped ? 1.0 : 0.0;
        s_n += 1.0;
    }
    const int G = gridDim.x, blk = blockIdx.x;
    s_loss = ig_block_sum_d(s_loss, sh);
    s_clip = ig_block_sum_d(s_clip, sh);
    s_n = ig_block_sum_d(s_n, sh);
    if (threadIdx.x == 0) {
        partial[blk] = s_loss;
        partial[G + blk] = s_clip;
        partial[2 * G + blk] = s_n;
    }
}

// ppo_stats_finish: the stats of a loss from its ncomp (2..8) rows of G
// partials, the last row being the masked count N: stats[0] = scale·Σ row 0,
// stats[c] = Σ row c / N (0 when N = 0) for 0 < c < ncomp−1,
// stats[ncomp−1] = N.
// Launch: grid (1), block (256).
extern "C" __global__ void ppo_stats_finish(const double* __restrict__ partial, int G, int ncomp, float scale,
                                            float* __restrict__ stats) {
    __shared__ double sh[32];
    __shared__ double tot[8];
    if (ncomp < 2 || ncomp > 8) return;  // uniform over the block
    for (int c = 0; c < ncomp; ++c) {
        const double s = ppo_sum_partials(partial + (long long)c * G, G, sh);
        if (threadIdx.x == 0) tot[c] = s;
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        const double cnt = tot[ncomp - 1];
        stats[0] = (float)((double)scale * tot[0]);
        for (int c = 1; c < ncomp - 1; ++c) stats[c] = (float)(cnt == 0.0 ? 0.0 : tot[c] / cnt);
        stats[ncomp - 1] = (float)cnt;
    }
}

// ppo_kl_check_last: raise code (index b, value last[b]) for every sequence
// b whose last[b] is not a masked position. The range of last[b] is checked
// before by check_index_range; an index outside [0,T) is skipped here, and
// nothing runs once the flag is set.
// Launch: grid (ceil(B/128)), block (128).
extern "C" __global__ void ppo_kl_check_last(const float* __restrict__ mask, const int* __restrict__ last, int B,
                                             int T, int code, int* flag) {
    if (ig_failed(flag)) return;
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    const int l = last[b];
    if (l < 0 || l >= T) return;
    if (mask[(long long)b * T + l] == 0.0f) ig_raise(flag, code, b, l);
}

// ppo_kl_rewards: per masked token, d = logp − ref_logp and k = d
// (estimator 0, k1) or expm1(−d) + d (estimator 1, k3: (ρ−1) − log ρ with
// ρ = exp(−d)); kl = k (kl may be null), rewards = −beta·k, plus score[b] at
// position last[b] of row b; both 0 outside the mask. Writes nothing once
// the flag is set (a failed lastIdx check).
// Launch: grid-stride over B·T; the Go wrapper uses blocks of 256 and
// min(ceil(B·T/1024), 4096) of them (ewGrid).
extern "C" __global__ void ppo_kl_rewards(float* __restrict__ rewards, float* __restrict__ kl,
                                          const float* __restrict__ logp, const float* __restrict__ ref_logp,
                                          const float* __restrict__ mask, const float* __restrict__ score,
                                          const int* __restrict__ last, int B, int T, float beta, int estimator,
                                          const int* flag) {
    if (ig_failed(flag)) return;
    const long long n = (long long)B * T;
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    const double nbeta = -(double)beta;
    for (long long i = tid; i < n; i += stride) {
        if (mask[i] == 0.0f) {
            rewards[i] = 0.0f;
            if (kl != nullptr) kl[i] = 0.0f;
            continue;
        }
        const double d = (double)logp[i] - (double)ref_logp[i];
        const double k = estimator == 1 ? expm1(-d) + d : d;
        double r = nbeta * k;
        const long long b = i / T;
        if (i - b * T == (long long)last[b]) r += (double)score[b];
        rewards[i] = (float)r;
        if (kl != nullptr) kl[i] = (float)k;
    }
}

// GAE: one block per sequence. The block stages a tile of IG_PPO_GAE_TILE
// positions of its row (rewards, values, mask; coalesced) in shared memory,
// walking the row from its end; thread 0 runs the reverse scan over the
// tile in double, carrying V_{t+1} and A_{t+1} across tiles:
//   masked t:   δ = r_t + γ·V_{t+1} − V_t, A_t = δ + γλ·A_{t+1},
//               adv = A_t, returns = A_t + V_t;
//   unmasked t: adv = returns = 0 and V_{t+1} = A_{t+1} = 0 for t−1 (the
//               position ends an episode; so does the row's end);
// and the block writes the tile's adv and returns back (coalesced).
// Launch: grid (B), block (32) (any multiple of 32 works).
#define IG_PPO_GAE_TILE 1024

extern "C" __global__ void ppo_gae(float* __restrict__ adv, float* __restrict__ returns,
                                   const float* __restrict__ rewards, const float* __restrict__ values,
                                   const float* __restrict__ mask, int T, float gamma, float lambda) {
    __shared__ float s_a[IG_PPO_GAE_TILE];  // rewards in, advantages out
    __shared__ float s_v[IG_PPO_GAE_TILE];  // values in, returns out
    __shared__ float s_m[IG_PPO_GAE_TILE];
    const long long row = (long long)blockIdx.x * T;
    const double g = (double)gamma, gl = (double)gamma * (double)lambda;
    double next_v = 0.0, next_a = 0.0;  // thread 0's scan state
    for (int end = T; end > 0; end -= IG_PPO_GAE_TILE) {
        const int start = end > IG_PPO_GAE_TILE ? end - IG_PPO_GAE_TILE : 0;
        const int len = end - start;
        for (int j = threadIdx.x; j < len; j += blockDim.x) {
            s_a[j] = rewards[row + start + j];
            s_v[j] = values[row + start + j];
            s_m[j] = mask[row + start + j];
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int j = len - 1; j >= 0; --j) {
                if (s_m[j] == 0.0f) {
                    s_a[j] = 0.0f;
                    s_v[j] = 0.0f;
                    next_v = 0.0;
                    next_a = 0.0;
                    continue;
                }
                const double vt = (double)s_v[j];
                const double delta = (double)s_a[j] + g * next_v - vt;
                const double at = delta + gl * next_a;
                s_a[j] = (float)at;
                s_v[j] = (float)(at + vt);
                next_v = vt;
                next_a = at;
            }
        }
        __syncthreads();
        for (int j = threadIdx.x; j < len; j += blockDim.x) {
            adv[row + start + j] = s_a[j];
            returns[row + start + j] = s_v[j];
        }
        __syncthreads();  // the next tile overwrites the shared arrays
    }
}

// Masked whitening: three launches over a 1-D grid of G blocks of 256
// threads (the same G for all three), with partial 3 rows of G doubles.
//   ppo_whiten_sum:   partial rows 0 and 1 get each block's Σ x and count
//                     over masked elements;
//   ppo_whiten_sqdev: every block adds rows 0 and 1 (the same fixed order in
//                     every block, so the same mean μ = Σx/N), and row 2
//                     gets the block's Σ (x−μ)² over masked elements;
//   ppo_whiten_apply: every block recomputes μ and the biased variance
//                     σ² = row 2 / N, and masked x ← (x−μ)/sqrt(σ²+1e-8)
//                     (+ μ unless shift_mean); with N = 0 nothing changes.
#define IG_PPO_WHITEN_EPS 1e-8

extern "C" __global__ void ppo_whiten_sum(const float* __restrict__ x, const float* __restrict__ mask, long long n,
                                          double* __restrict__ partial) {
    __shared__ double sh[32];
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    double s = 0.0, c = 0.0;
    for (long long i = tid; i < n; i += stride) {
        if (mask[i] != 0.0f) {
            s += (double)x[i];
            c += 1.0;
        }
    }
    s = ig_block_sum_d(s, sh);
    c = ig_block_sum_d(c, sh);
    if (threadIdx.x == 0) {
        partial[blockIdx.x] = s;
        partial[gridDim.x + blockIdx.x] = c;
    }
}

extern "C" __global__ void ppo_whiten_sqdev(const float* __restrict__ x, const float* __restrict__ mask, long long n,
                                            double* __restrict__ partial) {
    __shared__ double sh[32];
    const int G = gridDim.x;
    const double cnt = ppo_sum_partials(partial + G, G, sh);
    const double mean = cnt == 0.0 ? 0.0 : ppo_sum_partials(partial, G, sh) / cnt;
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    double s = 0.0;
    for (long long i = tid; i < n; i += stride) {
        if (mask[i] != 0.0f) {
            const double d = (double)x[i] - mean;
            s += d * d;
        }
    }
    s = ig_block_sum_d(s, sh);
    if (threadIdx.x == 0) partial[2 * G + blockIdx.x] = s;
}

extern "C" __global__ void ppo_whiten_apply(float* __restrict__ x, const float* __restrict__ mask, long long n,
                                            const double* __restrict__ partial, int shift_mean) {
    __shared__ double sh[32];
    const int G = gridDim.x;
    const double cnt = ppo_sum_partials(partial + G, G, sh);
    if (cnt == 0.0) return;  // uniform over the grid
    const double mean = ppo_sum_partials(partial, G, sh) / cnt;
    const double var = ppo_sum_partials(partial + 2 * G, G, sh) / cnt;
    const double inv = 1.0 / sqrt(var + IG_PPO_WHITEN_EPS);
    const double add = shift_mean ? 0.0 : mean;
    const long long tid = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    const long long stride = (long long)gridDim.x * blockDim.x;
    for (long long i = tid; i < n; i += stride) {
        if (mask[i] != 0.0f) x[i] = (float)(((double)x[i] - mean) * inv + add);
    }
}
