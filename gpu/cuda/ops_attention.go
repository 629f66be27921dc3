//go:build cuda

package cuda

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// Fused causal attention, FlashAttention-2 style, and single-query decode
// against a KV cache (kernels/attention.cu, kernels/decode.cu). The kernels
// are instantiated for padded head sizes of 32, 64, 96 and 128; a head size
// above 128 is an error of this backend.

// attnMaxHead is the largest head size the kernels handle.
const attnMaxHead = 128

// attnHSP is the padded head size of the kernel that handles hs, and the
// query rows per block of its forward pass (R·4 warps), its dQ pass, and
// the keys per block of its dK/dV pass (kernels/attention.cu).
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

// attnScales returns 1/sqrt(hs) as the cpu backend rounds it, and that
// times log2(e), the kernels' scale of the scores in the log2 domain.
func attnScales(hs int) (scale, scale2 float32) {
	s := 1 / math.Sqrt(float64(hs))
	return float32(s), float32(s * math.Log2E)
}

// attnCheckSizes records an error unless the kernels can run these shapes.
func (b *Backend) attnCheckSizes(op string, d gpu.AttnDims) bool {
	if d.HS > attnMaxHead {
		b.failf("%s: head size %d exceeds the cuda kernels' limit of %d", op, d.HS, attnMaxHead)
		return false
	}
	if d.B*d.H > 65535 {
		b.failf("%s: %d sequences × %d heads exceed the cuda kernels' limit of 65535", op, d.B, d.H)
		return false
	}
	return !b.fail(fitsInt32(op, d.B*d.T, 3*d.C, d.B*d.H*d.T))
}

// AttentionForward implements gpu.Backend.
func (b *Backend) AttentionForward(out, lse, qkv, validLen *gpu.Tensor, nHead int) {
	const op = "attention forward"
	if b.err != nil {
		return
	}
	d, checks, err := b.checker.AttentionForward(out, lse, qkv, validLen, nHead)
	if b.fail(err) || d.B == 0 || d.T == 0 || !b.attnCheckSizes(op, d) || !b.runChecks(checks) {
		return
	}
	hsp, rows, _, _ := attnHSP(d.HS)
	_, scale2 := attnScales(d.HS)
	b.launch(kernelName("attention_forward_hs", hsp), [3]int{(d.T + rows - 1) / rows, d.B * d.H, 1}, block1(128), 0,
		b.ptr(out), b.ptr(lse), b.ptr(qkv), b.ptr(validLen), i32(d.T), i32(d.C), i32(d.H), i32(d.HS), scale2, b.flagPtr())
}

// AttentionBackward implements gpu.Backend: the dQ kernel (which also
// stores D = rowsum(dO∘O) in scratch) then the dK/dV kernel; no atomics.
func (b *Backend) AttentionBackward(dqkv, dout, qkv, out, lse, validLen *gpu.Tensor, nHead int) {
	const op = "attention backward"
	if b.err != nil {
		return
	}
	d, checks, err := b.checker.AttentionBackward(dqkv, dout, qkv, out, lse, validLen, nHead)
	if b.fail(err) || d.B == 0 || d.T == 0 || !b.attnCheckSizes(op, d) || !b.runChecks(checks) {
		return
	}
	hsp, _, dqRows, dkvRows := attnHSP(d.HS)
	scale, scale2 := attnScales(d.HS)
	dbuf := b.scratch(4 * d.B * d.H * d.T)
	flag := b.flagPtr()
	if b.err != nil {
		return
	}
	b.launch(kernelName("attention_backward_dq_hs", hsp), [3]int{(d.T + dqRows - 1) / dqRows, d.B * d.H, 1}, block1(128), 0,
		b.ptr(dqkv), dbuf, b.ptr(dout), b.ptr(qkv), b.ptr(out), b.ptr(lse), b.ptr(validLen),
		i32(d.T), i32(d.C), i32(d.H), i32(d.HS), scale2, scale, flag)
	b.launch(kernelName("attention_backward_dkdv_hs", hsp), [3]int{(d.T + dkvRows - 1) / dkvRows, d.B * d.H, 1}, block1(128), 0,
		b.ptr(dqkv), dbuf, b.ptr(dout), b.ptr(qkv), b.ptr(lse), b.ptr(validLen),
		i32(d.T), i32(d.C), i32(d.H), i32(d.HS), scale2, scale, flag)
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
func (b *Backend) KVCacheWrite(kc, vc, qkv, start *gpu.Tensor, nHead int) {
	const op = "kv-cache write"
	if b.err != nil {
		return
	}
	d, checks, err := b.checker.KVCacheWrite(kc, vc, qkv, start, nHead)
	if b.fail(err) || d.B == 0 || d.T == 0 || b.fail(fitsInt32(op, d.B*d.T, 3*d.C, d.S)) || !b.runChecks(checks) {
		return
	}
	b.launch("kvcache_write", grid1(d.B*d.T), block1(128), 0,
		b.ptr(kc), b.ptr(vc), b.ptr(qkv), b.ptr(start), i32(d.B), i32(d.T), i32(d.C), i32(d.H), i32(d.HS), i32(d.S), b.flagPtr())
}

// AttentionDecode implements gpu.Backend.
func (b *Backend) AttentionDecode(out, qkv, kc, vc, lens *gpu.Tensor, nHead int) {
	const op = "attention decode"
	if b.err != nil {
		return
	}
	d, checks, err := b.checker.AttentionDecode(out, qkv, kc, vc, lens, nHead)
	if b.fail(err) || d.B == 0 {
		return
	}
	if d.HS > attnMaxHead {
		b.failf("%s: head size %d exceeds the cuda kernels' limit of %d", op, d.HS, attnMaxHead)
		return
	}
	if b.fail(fitsInt32(op, d.B*d.H, 3*d.C, d.S)) || !b.runChecks(checks) {
		return
	}
	hsp, _, _, _ := attnHSP(d.HS)
	_, scale2 := attnScales(d.HS)
	b.launch(kernelName("attention_decode_hs", hsp), grid1(d.B*d.H), block1(256), 0,
		b.ptr(out), b.ptr(qkv), b.ptr(kc), b.ptr(vc), b.ptr(lens), i32(d.B), i32(d.C), i32(d.H), i32(d.HS), i32(d.S), scale2, b.flagPtr())
}
