//go:build cuda

package cuda

import (
	"github.com/instructgo/instructgo/gpu"
)

// The fused log-softmax over the vocabulary (kernels/logsoftmax.cu), one
// block per row. A target ≥ V is the op's error, found on the device before
// the kernel runs (see ops_state.go).

// lsmThreads is the block size of the log-softmax kernels.
const lsmThreads = 256

// LogSoftmaxForward implements gpu.Backend.
func (b *Backend) LogSoftmaxForward(logp, entropy, lse, logits, targets *gpu.Tensor) {
	const op = "log-softmax forward"
	if b.err != nil {
		return
	}
	n, v, checks, err := b.checker.LogSoftmaxForward(logp, entropy, lse, logits, targets)
	if b.fail(err) || n == 0 || b.fail(fitsInt32(op, n, v)) || !b.runChecks(checks) {
		return
	}
	b.launch(byAct(logits.DType(), "logsoftmax_forward_f32", "logsoftmax_forward_bf16"), grid1(n), block1(lsmThreads), 0,
		b.ptr(logp), b.ptr(entropy), b.ptr(lse), b.ptr(logits), b.ptr(targets), i32(n), i32(v), b.flagPtr())
}

// LogSoftmaxBackward implements gpu.Backend.
func (b *Backend) LogSoftmaxBackward(logits, lse, entropy, targets, dlogp, dentropy *gpu.Tensor) {
	const op = "log-softmax backward"
	if b.err != nil {
		return
	}
	n, v, checks, err := b.checker.LogSoftmaxBackward(logits, lse, entropy, targets, dlogp, dentropy)
	if b.fail(err) || n == 0 || b.fail(fitsInt32(op, n, v)) || !b.runChecks(checks) {
		return
	}
	if dentropy == nil {
		entropy = nil // unused without dentropy
	}
	b.launch(byAct(logits.DType(), "logsoftmax_backward_f32", "logsoftmax_backward_bf16"), grid1(n), block1(lsmThreads), 0,
		b.ptr(logits), b.ptr(lse), b.ptr(entropy), b.ptr(targets), b.ptr(dlogp), b.ptr(dentropy), i32(n), i32(v), b.flagPtr())
}

// CrossEntropy implements gpu.Backend: one block per row computes the
// row's statistics (the entropy too when asked: a null pointer otherwise)
// and then writes its gradient (kernels/logsoftmax.cu).
func (b *Backend) CrossEntropy(logp, entropy, lse, logits, targets, dlogp *gpu.Tensor) {
	const op = "cross-entropy"
	if b.err != nil {
		return
	}
	n, v, checks, err := b.checker.CrossEntropy(logp, entropy, lse, logits, targets, dlogp)
	if b.fail(err) || n == 0 || b.fail(fitsInt32(op, n, v)) || !b.runChecks(checks) {
		return
	}
	b.launch(byAct(logits.DType(), "crossentropy_f32", "crossentropy_bf16"), grid1(n), block1(lsmThreads), 0,
		b.ptr(logp), b.ptr(entropy), b.ptr(lse), b.ptr(logits), b.ptr(targets), b.ptr(dlogp), i32(n), i32(v), b.flagPtr())
}
