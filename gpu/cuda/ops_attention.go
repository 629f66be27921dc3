//go:build cuda

package cuda

import (
	"fmt"
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// Fused causal attention, FlashAttention-2 style, and single-query decode
// against a KV cache (kernels/attention*.cu, kernels/decode.cu), for the
// activation dtype the Checker returns:
//   - float32: the CUDA-core kernels, instantiated for padded head sizes of
//     32, 64, 96 and 128 (attention.cu);
//   - bf16: the tensor-core kernels (attention_mma*.cu) for head sizes 32,
//     64 and 128 when every bf16 tensor starts 16-byte aligned; otherwise
//     the CUDA-core kernels' bf16 instances (every head size up to 128, any
//     alignment). Decode stays on the CUDA cores for both dtypes.
// Grouped-query attention (kvHeads < nHead) runs in the same kernels: the
// forward and dQ blocks own query heads and read their group's key/value
// head in place; the dK/dV blocks own key/value heads and loop over their
// group's query heads. A head size above 128 is an error of this backend.
// No kernel uses atomics: every result is the same bits run to run.

// attnMaxHead is the largest head size the kernels handle.
const attnMaxHead = 128

// attnHSP is the padded head size of the CUDA-core kernel that handles hs,
// and the query rows per block of its forward pass (R·4 warps), its dQ
// pass, and the keys per block of its dK/dV pass (kernels/attention.cu).
func attnHSP(hs int) (hsp, fwdRows, dqRows, dkvRows int) {
	switch {
	case hs <= 32:
		return 32, 32, 32, 32
	case hs <= 64:
		return 64, 32, 32, 32
	case hs <= 96:
		return 96, 32, 16, 16
	default:
		return 128, 16, 8, 8
	}
}

// attnMMARows are the query rows (forward, dQ) or keys (dK/dV) of a block
// of the tensor-core kernels: 4 warps of 16 (IG_FA_BR).
const attnMMARows = 64

// attnMMABwdTile maps the head sizes of the tensor-core kernels to the
// tile of their backward pass: keys per K/V tile of the dQ kernel and
// queries per Q/dO tile of the dK/dV kernel (attention_mma_backward.cu).
// The forward's K/V tile is 64 keys for all three.
var attnMMABwdTile = map[int]int{32: 64, 64: 64, 128: 32}

// attnMMASmem is the dynamic shared memory in bytes of the tensor-core
// kernels for head size hs, by the layouts of IG_FA_FWD_SMEM, IG_FA_DQ_SMEM
// and IG_FA_DKV_SMEM: tiles of rows of hs+8 bf16, plus the dK/dV kernel's
// float32 lse and D of two query tiles. (A kernel given less raises the
// error flag and writes nothing.)
func attnMMASmem(hs int) (fwd, dq, dkv int) {
	row, bt := 2*(hs+8), attnMMABwdTile[hs]
	return (attnMMARows + 4*64) * row, (2*attnMMARows + 4*bt) * row, (2*attnMMARows+4*bt)*row + 16*bt
}

// attnUseMMA reports whether the tensor-core kernels take a call: bf16
// activations, a head size they are instantiated for, and every bf16
// tensor 16-byte aligned (their 16-byte cp.async and stores; every head
// then starts 16-byte aligned, hs being a multiple of 8).
func (b *Backend) attnUseMMA(d gpu.AttnDims, act ...*gpu.Tensor) bool {
	_, ok := attnMMABwdTile[d.HS]
	return d.Act == gpu.BF16 && ok && b.aligned16(act...)
}

// attnSmemCode is the error-flag code of a tensor-core kernel launched with
// less shared memory than its tiles need.
func (b *Backend) attnSmemCode() int32 {
	return b.checkCode(func(_ int, need int32) error {
		return fmt.Errorf("cuda attention: the tensor-core kernel needs %d bytes of shared memory, more than its launch gave", need)
	})
}

// attnFamily is the kernel family of attention.cu for the activation
// dtype: prefix + "hs" for float32, prefix + "bf16_hs" for bf16.
func attnFamily(prefix string, act gpu.DType) string {
	if act == gpu.BF16 {
		return prefix + "bf16_hs"
	}
	return prefix + "hs"
}

// attnScales returns 1/sqrt(hs) as the cpu backend rounds it, and that
// times log2(e), the kernels' scale of the scores in the log2 domain.
func attnScales(hs int) (scale, scale2 float32) {
	s := 1 / math.Sqrt(float64(hs))
	return float32(s), float32(s * math.Log2E)
}

// attnCheckSizes records an error unless the kernels can run these shapes:
// the CUDA-core kernels put B·H (or B·KVH ≤ B·H), the tensor-core ones the
// row blocks, in the grid's y dimension (at most 65535).
func (b *Backend) attnCheckSizes(op string, d gpu.AttnDims, mma bool) bool {
	if d.HS > attnMaxHead {
		b.failf("%s: head size %d exceeds the cuda kernels' limit of %d", op, d.HS, attnMaxHead)
		return false
	}
	if mma && (d.T+attnMMARows-1)/attnMMARows > 65535 {
		b.failf("%s: %d positions exceed the cuda kernels' limit of %d", op, d.T, 65535*attnMMARows)
		return false
	}
	if !mma && d.B*d.H > 65535 {
		b.failf("%s: %d sequences × %d heads exceed the cuda kernels' limit of 65535", op, d.B, d.H)
		return false
	}
	return !b.fail(fitsInt32(op, d.B*d.T, d.QKVWidth(), d.B*d.H*d.T))
}

// AttentionForward implements gpu.Backend.
func (b *Backend) AttentionForward(out, lse, qkv, validLen *gpu.Tensor, nHead, kvHeads int) {
	const op = "attention forward"
	if b.err != nil {
		return
	}
	d, checks, err := b.checker.AttentionForward(out, lse, qkv, validLen, nHead, kvHeads)
	if b.fail(err) || d.B == 0 || d.T == 0 {
		return
	}
	mma := b.attnUseMMA(d, out, qkv)
	if !b.attnCheckSizes(op, d, mma) || !b.runChecks(checks) {
		return
	}
	_, scale2 := attnScales(d.HS)
	if mma {
		smem, _, _ := attnMMASmem(d.HS)
		b.launch(kernelName("attention_forward_mma_hs", d.HS), [3]int{d.B * d.H, (d.T + attnMMARows - 1) / attnMMARows, 1},
			block1(128), smem, b.ptr(out), b.ptr(lse), b.ptr(qkv), b.ptr(validLen), i32(d.T), i32(d.H), i32(d.KVH),
			scale2, i32(smem), b.attnSmemCode(), b.flagPtr())
		return
	}
	hsp, rows, _, _ := attnHSP(d.HS)
	b.launch(kernelName(attnFamily("attention_forward_", d.Act), hsp), [3]int{(d.T + rows - 1) / rows, d.B * d.H, 1}, block1(128), 0,
		b.ptr(out), b.ptr(lse), b.ptr(qkv), b.ptr(validLen), i32(d.T), i32(d.H), i32(d.KVH), i32(d.HS), scale2, b.flagPtr())
}

// AttentionBackward implements gpu.Backend: the dQ kernel (which also
// stores D = rowsum(dO∘O) in float32 scratch) over query heads, then the
// dK/dV kernel over key/value heads; no atomics, so dqkv is deterministic.
func (b *Backend) AttentionBackward(dqkv, dout, qkv, out, lse, validLen *gpu.Tensor, nHead, kvHeads int) {
	const op = "attention backward"
	if b.err != nil {
		return
	}
	d, checks, err := b.checker.AttentionBackward(dqkv, dout, qkv, out, lse, validLen, nHead, kvHeads)
	if b.fail(err) || d.B == 0 || d.T == 0 {
		return
	}
	mma := b.attnUseMMA(d, dqkv, dout, qkv, out)
	if !b.attnCheckSizes(op, d, mma) || !b.runChecks(checks) {
		return
	}
	scale, scale2 := attnScales(d.HS)
	dbuf := b.scratch(4 * d.B * d.H * d.T)
	flag := b.flagPtr()
	if b.err != nil {
		return
	}
	if mma {
		_, smemDQ, smemDKV := attnMMASmem(d.HS)
		rowBlocks := (d.T + attnMMARows - 1) / attnMMARows
		code := b.attnSmemCode()
		b.launch(kernelName("attention_backward_dq_mma_hs", d.HS), [3]int{d.B * d.H, rowBlocks, 1}, block1(128), smemDQ,
			b.ptr(dqkv), dbuf, b.ptr(dout), b.ptr(qkv), b.ptr(out), b.ptr(lse), b.ptr(validLen),
			i32(d.T), i32(d.H), i32(d.KVH), scale2, scale, i32(smemDQ), code, flag)
		b.launch(kernelName("attention_backward_dkdv_mma_hs", d.HS), [3]int{d.B * d.KVH, rowBlocks, 1}, block1(128), smemDKV,
			b.ptr(dqkv), dbuf, b.ptr(dout), b.ptr(qkv), b.ptr(lse), b.ptr(validLen),
			i32(d.T), i32(d.H), i32(d.KVH), scale2, scale, i32(smemDKV), code, flag)
		return
	}
	hsp, _, dqRows, dkvRows := attnHSP(d.HS)
	b.launch(kernelName(attnFamily("attention_backward_dq_", d.Act), hsp), [3]int{(d.T + dqRows - 1) / dqRows, d.B * d.H, 1}, block1(128), 0,
		b.ptr(dqkv), dbuf, b.ptr(dout), b.ptr(qkv), b.ptr(out), b.ptr(lse), b.ptr(validLen),
		i32(d.T), i32(d.H), i32(d.KVH), i32(d.HS), scale2, scale, flag)
	b.launch(kernelName(attnFamily("attention_backward_dkdv_", d.Act), hsp), [3]int{(d.T + dkvRows - 1) / dkvRows, d.B * d.KVH, 1}, block1(128), 0,
		b.ptr(dqkv), dbuf, b.ptr(dout), b.ptr(qkv), b.ptr(lse), b.ptr(validLen),
		i32(d.T), i32(d.H), i32(d.KVH), i32(d.HS), scale2, scale, flag)
}

// kernelName appends a head size to a kernel family's name.
func kernelName(family string, hsp int) string {
	switch hsp {
	case 32:
		return family + "32"
	case 64:
		return family + "64"
	case 96:
		return family + "96"
	}
	return family + "128"
}

// KVCacheWrite implements gpu.Backend.
func (b *Backend) KVCacheWrite(kc, vc, qkv, start *gpu.Tensor, nHead, kvHeads int) {
	const op = "kv-cache write"
	if b.err != nil {
		return
	}
	d, checks, err := b.checker.KVCacheWrite(kc, vc, qkv, start, nHead, kvHeads)
	if b.fail(err) || d.B == 0 || d.T == 0 || b.fail(fitsInt32(op, d.B*d.T, d.QKVWidth(), d.S)) || !b.runChecks(checks) {
		return
	}
	name := "kvcache_write"
	if d.Act == gpu.BF16 {
		name = "kvcache_write_bf16"
	}
	b.launch(name, grid1(d.B*d.T), block1(128), 0,
		b.ptr(kc), b.ptr(vc), b.ptr(qkv), b.ptr(start), i32(d.B), i32(d.T), i32(d.H), i32(d.KVH), i32(d.HS), i32(d.S), b.flagPtr())
}

// AttentionDecode implements gpu.Backend.
func (b *Backend) AttentionDecode(out, qkv, kc, vc, lens *gpu.Tensor, nHead, kvHeads int) {
	const op = "attention decode"
	if b.err != nil {
		return
	}
	d, checks, err := b.checker.AttentionDecode(out, qkv, kc, vc, lens, nHead, kvHeads)
	if b.fail(err) || d.B == 0 {
		return
	}
	if d.HS > attnMaxHead {
		b.failf("%s: head size %d exceeds the cuda kernels' limit of %d", op, d.HS, attnMaxHead)
		return
	}
	if b.fail(fitsInt32(op, d.B*d.H, d.QKVWidth(), d.S)) || !b.runChecks(checks) {
		return
	}
	hsp, _, _, _ := attnHSP(d.HS)
	_, scale2 := attnScales(d.HS)
	b.launch(kernelName(attnFamily("attention_decode_", d.Act), hsp), grid1(d.B*d.H), block1(256), 0,
		b.ptr(out), b.ptr(qkv), b.ptr(kc), b.ptr(vc), b.ptr(lens), i32(d.B), i32(d.H), i32(d.KVH), i32(d.HS), i32(d.S), scale2, b.flagPtr())
}
