//go:build cuda

package cuda

import (
	"github.com/instructgo/instructgo/gpu"
)

// Rotary position embeddings (kernels/rope.cu): one thread per (row,
// frequency), rotating that pair in every query and key head of the row.

// ropeThreads is the block size of the rotary kernels.
const ropeThreads = 256

// RoPEForward implements gpu.Backend.
func (b *Backend) RoPEForward(qkv, invFreq, start *gpu.Tensor, nHead, kvHeads int) {
	b.rope(false, qkv, invFreq, start, nHead, kvHeads)
}

// RoPEBackward implements gpu.Backend.
func (b *Backend) RoPEBackward(dqkv, invFreq, start *gpu.Tensor, nHead, kvHeads int) {
	b.rope(true, dqkv, invFreq, start, nHead, kvHeads)
}

// rope rotates by the positions' angles, by their negatives backward.
func (b *Backend) rope(backward bool, x, invFreq, start *gpu.Tensor, nHead, kvHeads int) {
	if b.err != nil {
		return
	}
	d, err := b.checker.RoPE(backward, x, invFreq, start, nHead, kvHeads)
	if b.fail(err) || d.B == 0 || d.T == 0 {
		return
	}
	threads := d.B * d.T * (d.HS / 2)
	if b.fail(fitsInt32("rope", d.B*d.T, d.QKVWidth(), threads)) {
		return
	}
	sign := float32(1)
	if backward {
		sign = -1
	}
	b.launch(byAct(d.Act, "rope_f32", "rope_bf16"), grid1((threads+ropeThreads-1)/ropeThreads), block1(ropeThreads), 0,
		b.ptr(x), b.ptr(invFreq), b.ptr(start), i32(d.B), i32(d.T), i32(d.H), i32(d.KVH), i32(d.HS), sign)
}
