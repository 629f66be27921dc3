//go:build cuda

package cuda

import "github.com/instructgo/instructgo/gpu"

// The activation dtype of an op picks its kernel: the ops of the
// activation class have one kernel per type (kernels/act.cuh), named for
// the math with the suffix _f32 or _bf16. After the Checker has accepted
// a call, every activation-class tensor of it has the call's activation
// dtype, so a wrapper reads it from any of them.

// byAct returns f32 for a float32 activation dtype and bf16 for bf16.
func byAct(act gpu.DType, f32, bf16 string) string {
	if act == gpu.BF16 {
		return bf16
	}
	return f32
}

// vecWidth is the number of elements of dtype d in one 16-byte vector: a
// row-wise kernel takes vectors when the row length is a multiple of it
// and its pointers are aligned.
func vecWidth(d gpu.DType) int { return 16 / d.Size() }
