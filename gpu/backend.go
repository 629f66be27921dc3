package gpu

import (
	"fmt"
	"math"
)

// Backend allocates tensors, moves data between the host and its memory, and
// runs the ops of a GPT training step.
//
// Ops return nothing. On cuda they are queued on one stream and run
// asynchronously; only Download (and Sync) wait for them. A backend records
// the first failure of any op (a shape mismatch, a launch error) and ignores
// every op after it; Err reports it. Callers check Err once per step, the
// way bufio.Writer is checked once after many writes.
//
// Unless an op says otherwise: tensors are row-major and contiguous;
// outputs are overwritten; an output may not overlap an input (where an op
// allows aliasing, it means the very same tensor, never a partial overlap).
//
// Float tensors are Float32 or BF16 (docs/PRECISION.md). Each argument of
// an op is of one of two classes, which gpu.Checker states op by op: the
// activation class (activations, their gradients and the weights the ops
// read), whose arguments in one call share one dtype, Float32 or BF16; and
// the float32 class (statistics, losses, log-probs, values, parameter
// gradients, optimizer state), always Float32. An op reads bf16 inputs
// exactly, computes in float32 (or float64 where it says so) and rounds
// each bf16 output element once, with BF16Bits; "+=" into a bf16 output
// widens the old value, adds in float32 and rounds once. So every backend
// rounds at the same places.
// "+=" in a doc comment means the op accumulates into that output, so
// gradients of a tensor used twice add up. Elementwise ops need equal
// lengths, not equal shapes ([B,T,C] and [B·T,C] views mix); row-wise ops
// (LayerNorm, RMSNorm, SwiGLU, AddBias, BiasBackward, LogSoftmax) read the
// last dimension as the row width. Reductions are deterministic for a
// given backend and thread count, not bit-identical across thread counts.
type Backend interface {
	// Name identifies the backend and device, e.g. "cpu (2 threads)".
	Name() string

	// Alloc returns a zero-filled tensor of the given type and shape.
	Alloc(dtype DType, shape ...int) (*Tensor, error)
	// Upload copies host data into a float tensor t (rounded with
	// BF16Bits into a BF16 one); len(src) must equal t.Len().
	Upload(t *Tensor, src []float32) error
	// UploadInt32 copies host int32 data into an Int32 tensor.
	UploadInt32(t *Tensor, src []int32) error
	// Download waits for queued ops and copies a float tensor t into dst
	// (len t.Len()); BF16 values widen exactly.
	Download(dst []float32, t *Tensor) error
	// DownloadInt32 is Download for Int32 tensors.
	DownloadInt32(dst []int32, t *Tensor) error
	// Sync waits until every queued op has run and returns Err.
	Sync() error
	// Err is the first error any op recorded, or nil.
	Err() error
	// Close releases the backend's memory. Tensors must not be used after.
	Close() error

	// Fill sets every element of a float tensor t to v (rounded once for
	// BF16).
	Fill(t *Tensor, v float32)
	// Copy copies src into dst: one float dtype, one length.
	Copy(dst, src *Tensor)
	// Convert copies src into dst converting between float dtypes (one
	// length): Float32 to BF16 rounds with BF16Bits, BF16 to Float32 is
	// exact, one dtype to itself copies.
	Convert(dst, src *Tensor)
	// Scale, Axpy, Lerp, SumSquares and Dot are float32-class: they serve
	// parameters, gradients, optimizer state and losses.

	// Scale multiplies t by alpha in place.
	Scale(t *Tensor, alpha float32)
	// Axpy computes y += alpha·x.
	Axpy(y *Tensor, alpha float32, x *Tensor)
	// Add computes out = a + b (the residual connection). out may alias a or b.
	Add(out, a, b *Tensor)
	// Lerp computes avg += t·(x − avg): an exponential moving average with
	// decay 1−t.
	Lerp(avg, x *Tensor, t float32)
	// SumSquares writes Σ x² into out, a tensor of one element.
	SumSquares(out, x *Tensor)
	// Dot writes Σ x·y into out, a tensor of one element.
	Dot(out, x, y *Tensor)

	// MatMul computes C = alpha·op(A)·op(B) + beta·C for row-major matrices,
	// where op(X) is X or Xᵀ. A and B share the activation dtype; C is of
	// that dtype or Float32 (bf16 products summed in float32 into a float32
	// parameter gradient). Products are summed in float32. A is [m,k] ([k,m] when transA), B is [k,n]
	// ([n,k] when transB), C is [m,n]. Rank-3 tensors [batch,·,·] multiply
	// batch-wise; a rank-2 A or B is shared by every batch element.
	// beta = 1 accumulates (gradients); beta = 0 ignores C's old contents.
	MatMul(c, a, b *Tensor, transA, transB bool, alpha, beta float32)
	// AddBias adds bias [C] to every row of out [N,C].
	AddBias(out, bias *Tensor)
	// BiasBackward computes dbias [C] += Σ over rows of dout [N,C].
	BiasBackward(dbias, dout *Tensor)

	// The linear layers fused with what follows their product (GEMM
	// epilogues): a [M,K] is an activation (rank 2, or [B,T,K] read as B·T
	// rows), the weight b is rank 2, and every operand is of the activation
	// dtype. Each computes what the unfused ops compute, with one rounding
	// per output element (bf16): the float32 result of the product and its
	// epilogue is rounded once when stored, where the unfused ops round the
	// product too. In float32 nothing is rounded between, so the results
	// are the unfused ops' (the cpu backend's bit for bit). No output may
	// overlap an input or another output.

	// MatMulBias computes c [M,N] = a·b + bias, b [K,N], bias [N] added to
	// every row: MatMul then AddBias.
	MatMulBias(c, a, b, bias *Tensor)
	// MatMulBiasGELU computes pre [M,N] = a·b + bias, the pre-activation
	// the backward pass reads, and out [M,N] = gelu(pre) (GeluForward's
	// function) of the float32 pre before it is rounded: MatMul, AddBias,
	// GeluForward.
	MatMulBiasGELU(out, pre, a, b, bias *Tensor)
	// MatMulDGELU computes dpre [M,N] = gelu'(pre)·(dout·bᵀ) (overwrites),
	// dout [M,K], b [N,K] the weight the forward multiplied by, pre the
	// forward's pre-activation: MatMul with transB, then GeluBackward.
	MatMulDGELU(dpre, dout, b, pre *Tensor)

	// EmbeddingForward computes out[b,t] = wte[tokens[b,t]] + wpe[pos[b,t]],
	// out [B,T,C], tokens Int32 [B,T], wte [V,C], wpe [maxT,C]. positions is
	// Int32 [B,T], or nil for 0..T−1 in every row.
	EmbeddingForward(out, tokens, positions, wte, wpe *Tensor)
	// EmbeddingBackward computes dwte += and dwpe += the scatter of dout.
	// Either gradient may be nil to skip it. A token id outside [0,V) or a
	// position outside [0,maxT) is an error, in either direction, and
	// nothing is written.
	EmbeddingBackward(dwte, dwpe, dout, tokens, positions *Tensor)

	// LayerNormForward normalises each row of inp [N,C]:
	// out = (x − mean)·rstd·weight + bias, with rstd = 1/sqrt(var + 1e-5)
	// (biased variance). mean and rstd [N] receive the statistics for the
	// backward pass; both may be nil when no backward follows.
	LayerNormForward(out, mean, rstd, inp, weight, bias *Tensor)
	// AddLayerNormForward is Add then LayerNormForward in one pass over the
	// residual stream: resOut = a + b (the residual connection), then
	// lnOut, mean and rstd as LayerNormForward(lnOut, mean, rstd, resOut,
	// weight, bias) gives them. The normalisation reads the sum as stored:
	// in bf16 the rounded resOut, so the results are the two ops' up to
	// the order of float32 sums (the cpu backend's bit for bit, in either
	// dtype). a, b, resOut and lnOut have one length, [N,C] read by rows;
	// mean and rstd may be nil. No output may overlap an input or another
	// output.
	AddLayerNormForward(resOut, lnOut, mean, rstd, a, b, weight, bias *Tensor)
	// LayerNormBackward computes dinp +=, dweight += and dbias += from dout,
	// using the statistics saved by the forward pass.
	LayerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd *Tensor)

	// GeluForward applies GPT-2's tanh-approximated GELU elementwise. out
	// may alias inp.
	GeluForward(out, inp *Tensor)
	// GeluBackward computes dinp = gelu'(inp)·dout (overwrites; dinp may
	// alias dout).
	GeluBackward(dinp, inp, dout *Tensor)

	// Dropout computes out = inp·keep/(1−p), where element i is kept unless
	// DropoutUniform(seed, i) < p. p = 0 copies. out may alias inp.
	Dropout(out, inp *Tensor, p float32, seed uint64)
	// DropoutBackward computes dinp = dout·keep/(1−p) with the same mask as
	// the Dropout call with this seed. dinp may alias dout. Masks depend
	// only on (seed, element index): every call site and step needs its own
	// seed.
	DropoutBackward(dinp, dout *Tensor, p float32, seed uint64)

	// AttentionForward is fused causal multi-head self-attention with
	// grouped-query attention: nHead query heads share kvHeads key/value
	// heads (kvHeads divides nHead; kvHeads = nHead is multi-head attention,
	// as GPT-2 has it). qkv [B,T,(H+2·KVH)·hs] holds, per row, the query
	// heads, then the key heads, then the value heads, hs columns each (one
	// matmul by the concatenated q, k and v projections gives it; with
	// KVH = H the columns [0,C), [C,2C), [2C,3C) of [B,T,3C]). Query head h
	// reads key/value head h/(H/KVH), in place. out [B,T,C], C = H·hs, gets
	// softmax(q·kᵀ/sqrt(hs))·v over keys j ≤ t; lse [B,H,T] gets each row's
	// log-sum-exp of the scaled scores, which the backward pass uses to
	// recompute probabilities. validLen Int32 [B] (nil: all T) marks right
	// padding: query rows t ≥ validLen[b] get out = 0 and lse = 0 and pass
	// no gradient. lse is required.
	AttentionForward(out, lse, qkv, validLen *Tensor, nHead, kvHeads int)
	// AttentionBackward computes dqkv [B,T,(H+2·KVH)·hs] (overwrites) from
	// dout, the forward inputs and the forward outputs out and lse; a shared
	// key/value head gets the sum over its query heads. Padded rows get a
	// zero gradient in all three parts; keys at or beyond validLen get none.
	AttentionBackward(dqkv, dout, qkv, out, lse, validLen *Tensor, nHead, kvHeads int)

	// KVCacheWrite appends keys and values to a decoding cache: for every
	// sequence b, position t and key/value head g it copies key head g of
	// qkv [B,T,(H+2·KVH)·hs] (the layout AttentionForward reads) to
	// kc[b,g,start[b]+t] and value head g to vc[b,g,start[b]+t], with
	// caches kc, vc [B,KVH,S,hs]. start is Int32 [B], or nil for 0
	// everywhere; a negative start[b] skips sequence b (an inactive
	// sequence: nothing written). A position ≥ S is an error and nothing is
	// written. kc and vc must not overlap.
	KVCacheWrite(kc, vc, qkv, start *Tensor, nHead, kvHeads int)
	// AttentionDecode is causal attention for one new query per sequence
	// against a KV cache: out [B,C] gets, per query head h,
	// softmax(q·kᵀ/sqrt(hs))·v over cache positions [0, lens[b]) of key/value
	// head h/(H/KVH) of kc, vc [B,KVH,S,hs], where q is query head h of qkv
	// [B,(H+2·KVH)·hs]. lens is Int32 [B], each in 0..S; lens[b] = 0 marks
	// an inactive sequence, whose output row is 0. With the cache holding
	// the keys and values of positions 0..t, the result equals row t of
	// AttentionForward over the whole sequence.
	AttentionDecode(out, qkv, kc, vc, lens *Tensor, nHead, kvHeads int)
	// DecodeAdvance is generation's per-token bookkeeping, on the device so
	// that decoding needs no host round trip per token. state Int32 [3,B]
	// holds per sequence b its cached length n[b], its count of generated
	// tokens g[b] and its stop code s[b] (DecodeActive while it runs, else
	// a DecodeStop*). With t = sampled[b] (Int32 [B], just sampled after
	// the sequence's last token), an active sequence
	//   - stops with DecodeStopEOS if t = eos (t is not kept; eos < 0:
	//     never);
	//   - else keeps t: out[b,g[b]] = t, g[b]++ (out is Int32 [B,M], M the
	//     most tokens generated); then stops with DecodeStopMaxNew if
	//     g[b] = M, else with DecodeStopContext if n[b]+1 = ctx (prompt and
	//     completion fill the context), else goes on: t is fed at position
	//     n[b] and n[b]++.
	// ids Int32 [4,B] receives the next decoding step's input as rows of
	// tokens, positions, write starts and lengths (the layout the KV cache
	// ops read): (t, n, n, n+1) for a sequence fed, (0, 0, −1, 0) for every
	// other (inactive: nothing written, an attention row of 0). live Int32
	// [1] receives the number of sequences fed. Stopped sequences are left
	// alone; ctx must be positive.
	DecodeAdvance(ids, state, out, live, sampled *Tensor, eos int32, ctx int)

	// The Llama family's ops: RMSNorm, rotary position embeddings, SwiGLU.

	// RMSNormForward normalises each row of inp [N,C] by its root mean
	// square: out = x·rstd·weight, rstd = 1/sqrt(mean(x²) + eps), eps > 0
	// (the model's rms_norm_eps). rstd [N] (float32) receives the
	// statistic for the backward pass; it may be nil when no backward
	// follows.
	RMSNormForward(out, rstd, inp, weight *Tensor, eps float32)
	// RMSNormBackward computes dinp += and dweight += from dout, using the
	// rstd saved by the forward pass.
	RMSNormBackward(dinp, dweight, dout, inp, weight, rstd *Tensor)

	// RoPEForward applies rotary position embeddings in place to the query
	// and key heads of qkv [B,T,(H+2·KVH)·hs] (AttentionForward's layout;
	// the value heads are untouched), in the rotate_half convention of
	// Hugging Face's Llama: element i of a head pairs with element
	// i + hs/2, and at position p, with θ = p·invFreq[i] (a float32
	// product; p is exact in float32 below 2²⁴),
	//   x'[i]      = x[i]·cos θ − x[i+hs/2]·sin θ
	//   x'[i+hs/2] = x[i+hs/2]·cos θ + x[i]·sin θ   for i < hs/2.
	// invFreq [hs/2] (float32) holds the inverse frequencies, computed on
	// the host (RoPEInvFreq: rope_theta and any frequency scaling), so one
	// kernel serves every scaling. Row t of sequence b is at position
	// start[b] + t: start Int32 [B] is the offset of a decoding step (the
	// tokens already cached), nil for 0; a negative start[b] skips sequence
	// b (an inactive sequence: its rows are left as they are). A separate
	// op (one extra pass over q and k) rather than folded into the
	// attention kernels: simple and testable; folding it in is the follow-up
	// to measure.
	RoPEForward(qkv, invFreq, start *Tensor, nHead, kvHeads int)
	// RoPEBackward is RoPEForward's backward: the inverse rotation (θ
	// negated) of the query and key parts of the gradient dqkv, in place.
	RoPEBackward(dqkv, invFreq, start *Tensor, nHead, kvHeads int)

	// SwiGLUForward is the gated MLP activation of the Llama family:
	// out[r,j] = silu(gate)·up, silu(g) = g·σ(g), with gate = inp[r,j] and
	// up = inp[r,F+j] for inp [N,2F] (the gate projection's outputs first,
	// then the up projection's: one matmul by the two weight matrices
	// concatenated gives it) and out [N,F].
	SwiGLUForward(out, inp *Tensor)
	// SwiGLUBackward computes dinp [N,2F] (overwrites) from inp and dout
	// [N,F]: d gate = dout·up·σ(g)·(1 + g·(1−σ(g))), d up = dout·silu(g).
	SwiGLUBackward(dinp, inp, dout *Tensor)

	// LogSoftmaxForward reads logits [N,V] and targets Int32 [N] and writes,
	// per row, logp[i] = log softmax(logits[i])[targets[i]], lse[i] the
	// row's log-sum-exp, and entropy[i] = −Σ p log p (entropy may be nil).
	// A negative target marks an ignored row: its logp is 0; a target ≥ V is
	// an error. Leading dimensions may be kept: logits [B,T,V] with per-row
	// tensors [B,T].
	LogSoftmaxForward(logp, entropy, lse, logits, targets *Tensor)
	// LogSoftmaxBackward overwrites logits [N,V] in place with the gradient
	// dlogp[i]·∂logp[i]/∂logits[i] + dentropy[i]·∂entropy[i]/∂logits[i],
	// recomputing the probabilities from lse. dentropy may be nil (no
	// entropy term; entropy is then unused); given dentropy, entropy is
	// required. Ignored rows get dlogp treated as 0.
	LogSoftmaxBackward(logits, lse, entropy, targets, dlogp, dentropy *Tensor)

	// CrossEntropy is LogSoftmaxForward and LogSoftmaxBackward fused for a
	// loss L = Σ_i dlogp[i]·logp[i] whose weights dlogp [N] (float32) are
	// known before the forward pass: the next-token loss, e.g. dlogp[i] =
	// −1/count on the counted targets. Per row it writes logp[i], lse[i]
	// and, when entropy is not nil, entropy[i] = −Σ p log p, as
	// LogSoftmaxForward does (the entropy comes from the same pass over the
	// row, at no extra read; it takes no part in the gradient), and
	// overwrites logits [N,V]
	// with ∂L/∂logits = dlogp[i]·(onehot(targets[i]) − softmax(logits[i])),
	// as LogSoftmaxBackward(logits, lse, nil, targets, dlogp, nil) does: the
	// probabilities come from the float32 lse, and bf16 logits are read
	// exactly and each gradient element rounded once. A negative target
	// marks an ignored row: logp 0, a zero gradient row (dlogp[i] is
	// treated as 0); a target ≥ V is an error, and nothing is written. The
	// results are the two ops' up to the order of float32 sums (the cpu
	// backend's bit for bit, in either dtype). Leading dimensions may be
	// kept, as in LogSoftmaxForward. logp, entropy, lse and dlogp may not
	// overlap the logits or each other.
	CrossEntropy(logp, entropy, lse, logits, targets, dlogp *Tensor)

	// GatherRows picks one row per sequence: out[b] = inp[b, idx[b]],
	// out [B,C], inp [B,T,C], idx Int32 [B]. It reads scalar heads at the
	// last non-padding token.
	GatherRows(out, inp, idx *Tensor)
	// ScatterAddRows is GatherRows' backward: dinp[b, idx[b]] += dout[b].
	ScatterAddRows(dinp, dout, idx *Tensor)

	// Sample draws one token per row of logits [N,V] into tokens Int32 [N].
	// With s.Temperature = 0 it is greedy: the lowest id of the row's
	// largest logit (TopK and TopP are ignored). Otherwise, per row i:
	//  1. candidates: every id, or with s.TopK > 0 the s.TopK ids of
	//     largest logit (ties: lower id first); ids of logit −Inf never
	//     count;
	//  2. weights w_j = exp(z_j/T − max_j z_j/T), computed in float64
	//     (z_j/T is a float64 division), so the probabilities are the
	//     softmax of z/T renormalised over the candidates;
	//  3. with 0 < s.TopP < 1, keep the shortest prefix of the candidates
	//     sorted by descending weight (ties: lower id first) whose weights
	//     add up to at least s.TopP × the candidates' total weight;
	//  4. draw u = (Mix64(seed, i) >> 11)·2⁻⁵³, a float64 in [0, 1) with 53
	//     random bits, and return the first kept id, in ascending id order,
	//     whose cumulative weight exceeds u × the kept tokens' total weight.
	// Sums are float64 and a backend may add in any order, so backends
	// choose identically unless u or a top-p threshold falls within float64
	// rounding (about 1e-16 relative) of a boundary. Callers vary seed per
	// decoding step (e.g. Mix64(runSeed, step)); the draw depends only on
	// (seed, row), not on the thread count. It is an error for s to have
	// T < 0 or non-finite, TopK < 0 or TopP outside [0, 1], and for a row
	// to hold a NaN or +Inf or only −Inf; tokens are then unspecified.
	Sample(tokens, logits *Tensor, s Sampling, seed uint64)

	// AdamW updates params in place with decoupled weight decay, and
	// writes the updated params rounded to bf16 into lowp (BF16, params'
	// length; nil: none), the copy the ops read in the bf16 precision mode:
	//   g = grad·s, s = h.GradScale·min(1, h.MaxNorm/‖h.GradScale·grad‖)
	//   m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
	//   p −= h.LR·(m̂/(sqrt(v̂)+ε) + h.WeightDecay·p)
	// with bias-corrected m̂, v̂ at step h.Step (1-based). normSq [1] holds
	// ‖grad‖² of the whole model (from SumSquares); it may be nil, or
	// h.MaxNorm 0, for no clipping; a zero or NaN norm also means no clip
	// (a NaN gradient then reaches the parameters, never hidden), an
	// infinite one a scale of 0. h.Step must be ≥ 1 and betas in [0, 1).
	// params, grads, m, v have one length.
	AdamW(params, lowp, grads, m, v, normSq *Tensor, h AdamW)

	// The PPO math. Per-token tensors are [B,T] (B sequences of T
	// positions, row-major; the two losses and MaskedWhiten need only equal
	// lengths). mask is float32 of the same layout: mask[i] ≠ 0 marks a
	// response token, the only tokens the ops read; the value itself is
	// never used (a 0.5 counts as 1, not as a weight). Every per-token
	// formula is evaluated in float64 from the float32 inputs and rounded
	// once; sums are float64.

	// PPOPolicyLoss is PPO's clipped surrogate objective (Schulman et al.
	// 2017) as a loss, with its gradient. Per masked token, with
	// r = exp(logp − oldLogp), A = adv, ε = clipEps:
	//   surr = min(r·A, clip(r, 1−ε, 1+ε)·A),  loss = −scale·Σ surr,
	// scale chosen by the caller (1/Σmask for the token mean). dlogp
	// (overwrites) = ∂loss/∂logp = −scale·A·r where the unclipped term is
	// the minimum, 0 where the clipped term is strictly smaller (r > 1+ε
	// with A > 0, or r < 1−ε with A < 0), and 0 outside the mask. On ties
	// (r inside [1−ε, 1+ε], its ends included, or A = 0) the unclipped
	// gradient flows: the gradient PyTorch's autograd gives for
	// max(−r·A, −clamp(r, 1−ε, 1+ε)·A). stats [4] (overwrites): the loss;
	// the clip fraction, the share of masked tokens whose clipped term is
	// strictly smaller; the approximate KL(old‖new), the mean over masked
	// tokens of the k3 estimator (r−1) − log r; Σmask, the masked token
	// count. With no masked token the fraction and the mean are 0.
	// clipEps ≤ 0 disables clipping; clipEps and scale must be finite.
	// logp, oldLogp, adv, mask and dlogp have one length.
	PPOPolicyLoss(dlogp, stats, logp, oldLogp, adv, mask *Tensor, clipEps, scale float32)
	// PPOValueLoss is the clipped value loss of PPO implementations
	// (OpenAI baselines, TRL), with its gradient. Per masked token, with
	// vc = oldValues + clip(values − oldValues, −ε, ε), ε = clipEps, R =
	// returns: loss = scale·Σ ½·max((v−R)², (vc−R)²). dvalues (overwrites)
	// = ∂loss/∂values = scale·(v−R), or 0 where the clipped term is
	// strictly larger (v then lies outside oldValues ± ε), and 0 outside the
	// mask; ties take the unclipped gradient. stats [3] (overwrites): the
	// loss, the value clip fraction (share of masked tokens whose clipped
	// term is strictly larger), Σmask. clipEps ≤ 0 disables clipping (the
	// plain ½(v−R)²); clipEps and scale must be finite.
	PPOValueLoss(dvalues, stats, values, oldValues, returns, mask *Tensor, clipEps, scale float32)
	// KLPenalizedRewards builds InstructGPT's per-token rewards from the
	// log-probs of the sampled tokens under the policy and the reference
	// model, logp and refLogp [B,T], mask [B,T] (rank 2), the reward
	// model's score [B] and lastIdx Int32 [B], the position of each
	// sequence's last response token. Per masked token, with
	// d = logp − refLogp: kl = d (estimator KLK1) or expm1(−d) + d
	// = (ρ−1) − log ρ with ρ = exp(refLogp − logp) (KLK3); rewards = −β·kl,
	// plus score[b] at position lastIdx[b] of row b. Both outputs
	// (overwritten) are 0 outside the mask; kl may be nil. It is an error,
	// and nothing is written, when a lastIdx[b] is outside [0,T) or a
	// position whose mask is 0, when β is not finite, or for an unknown
	// estimator.
	KLPenalizedRewards(rewards, kl, logp, refLogp, mask, score, lastIdx *Tensor, beta float32, estimator int)
	// GAE computes generalised advantage estimates (Schulman et al. 2016)
	// by a reverse scan over each row of rewards and values [B,T] with mask
	// [B,T] (rank 2): for masked t, from the row's end to its start,
	//   δ_t = r_t + γ·V_{t+1} − V_t,  A_t = δ_t + γλ·A_{t+1},
	// where V_{t+1} and A_{t+1} are 0 when t+1 is unmasked or t = T−1: a
	// position outside the mask ends an episode, so the value after a
	// response's last token is the terminal 0. A response is normally one
	// contiguous run per row (prompt before, padding after); a gap inside it
	// splits it into independent episodes. adv = A and returns = A + V
	// (overwritten) are 0 outside the mask; rewards and values there are
	// ignored. gamma and lambda must be finite.
	GAE(adv, returns, rewards, values, mask *Tensor, gamma, lambda float32)
	// MaskedWhiten normalises x in place over its masked elements, all
	// rows together: with their mean μ and biased variance
	// σ² = Σ(x−μ)²/n over the n masked elements,
	// x ← (x−μ)/sqrt(σ² + 1e-8), plus μ again unless shiftMean (TRL's
	// whiten(shift_mean=False); TRL uses the unbiased variance, which
	// differs by n/(n−1)). Unmasked elements are unchanged, and so is
	// everything when n = 0. mask has x's length.
	MaskedWhiten(x, mask *Tensor, shiftMean bool)
}

// AdamW holds the hyper-parameters of one AdamW update.
type AdamW struct {
	LR          float32
	Beta1       float32
	Beta2       float32
	Eps         float32
	WeightDecay float32
	Step        int     // 1-based, for bias correction
	MaxNorm     float32 // global-norm clip threshold; 0 disables clipping
	GradScale   float32 // multiplies the gradient first (1/accumulation steps); 0 means 1
}

// Sampling chooses how Backend.Sample picks one token from a row of logits.
// The zero value is greedy decoding.
type Sampling struct {
	// Temperature divides the logits before the softmax; 0 means greedy
	// (the argmax, lowest id on ties, TopK and TopP ignored).
	Temperature float32
	// TopK keeps only the TopK largest logits (ties: lower id first);
	// 0 means no limit.
	TopK int
	// TopP keeps the nucleus: the fewest most probable tokens whose
	// probabilities add up to at least TopP. 1, or 0, means no limit.
	TopP float32
}

// Validate reports settings Sample rejects: a negative or non-finite
// temperature, a negative TopK, a TopP outside [0, 1].
func (s Sampling) Validate() error {
	t := float64(s.Temperature)
	switch {
	case !(t >= 0) || math.IsInf(t, 0):
		return fmt.Errorf("sampling: temperature %g must be finite and ≥ 0", s.Temperature)
	case s.TopK < 0:
		return fmt.Errorf("sampling: top-k %d must be ≥ 0", s.TopK)
	case !(s.TopP >= 0 && s.TopP <= 1):
		return fmt.Errorf("sampling: top-p %g must be in [0, 1]", s.TopP)
	}
	return nil
}

// The per-token KL estimates of Backend.KLPenalizedRewards (its estimator
// argument): both are unbiased for KL(π‖π_ref) on tokens sampled from the
// policy π.
const (
	// KLK1 is log π − log π_ref: the plain log-ratio (John Schulman's k1),
	// negative on some tokens.
	KLK1 = 0
	// KLK3 is (ρ−1) − log ρ with ρ = π_ref/π = exp(log π_ref − log π)
	// (Schulman's k3): never negative, of lower variance than k1.
	KLK3 = 1
)

// Device is a Backend whose ops queue on an accelerator and run while the
// host goes on, so that every read of a result (Download, Sync) leaves the
// device idle until the host queues more: callers keep such reads few (one
// per batch of tokens or minibatch, not one per op). HostSyncs counts them,
// for the tests that hold callers to that. The cpu backend runs each op
// before returning and is not a Device.
type Device interface {
	Backend
	HostSyncs() int64
}

// Graphs is a Backend that can record the ops queued between BeginCapture
// and EndCapture, without running them, as a Graph whose Launch replays
// them all at once (CUDA graphs): a decoding step becomes one launch
// instead of hundreds. A recorded op keeps the tensors, shapes and scalars
// it was called with, so whatever varies between replays must be read from
// device memory, and the recorded tensors must outlive the graph. No
// transfer or Sync may happen while capturing (it is an error), and an op's
// error during capture fails EndCapture.
type Graphs interface {
	Backend
	BeginCapture() error
	EndCapture() (Graph, error)
}

// Graph is a recorded sequence of ops (see Graphs).
type Graph interface {
	// Launch queues the recorded ops.
	Launch() error
	// Close frees the graph; it may not be launched again.
	Close() error
}

// MemoryReporter is a Backend that can tell how much of its device memory
// is free, for callers that size optional buffers (a larger decoding batch)
// to what is left.
type MemoryReporter interface {
	FreeMemory() (int64, error)
}
