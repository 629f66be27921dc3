//go:build cuda

package cuda

import (
	"github.com/instructgo/instructgo/gpu"
)

// The fused linear layers (gpu.Backend.MatMulBias, MatMulBiasGELU,
// MatMulDGELU). Where the product takes cuBLASLt (bf16, the library
// loaded, a plan for the shape: ltLinear) one cuBLASLt call with its
// epilogue runs the whole op. Otherwise MatMul's own path computes the
// product in float32, into the output itself (float32 activations) or into
// a float32 buffer (bf16), and a kernel of kernels/linear.cu finishes it
// and rounds each output once, as the epilogue does.

// linearAcc returns where the float32 product of a fused layer goes: out
// itself when it is float32, else the backend's float32 buffer, grown on
// demand and reused (ops on the one stream run in order), as [M,N].
func (b *Backend) linearAcc(p gpu.MatMulDims, out *gpu.Tensor) *gpu.Tensor {
	if out.DType() == gpu.Float32 {
		return out.MustReshape(p.M, p.N)
	}
	s := b.ops()
	if s.acc == nil || s.acc.Len() < p.M*p.N {
		t, err := b.Alloc(gpu.Float32, p.M*p.N)
		if b.fail(err) {
			return nil
		}
		s.acc = t // the old buffer returns to the allocator when collected
	}
	return s.acc.MustView(0, p.M, p.N)
}

// linearProduct computes acc = a·op(w) by MatMul's path (cuBLAS, cuBLASLt
// without epilogue, or our kernels) and returns acc, or nil when an error
// is recorded.
func (b *Backend) linearProduct(p gpu.MatMulDims, out, a, w *gpu.Tensor, transB bool) *gpu.Tensor {
	acc := b.linearAcc(p, out)
	if acc == nil {
		return nil
	}
	q := p
	q.Out = gpu.Float32
	if !b.blasMatMul(q, acc, a, w, false, transB, 1, 0) {
		b.kernelMatMul(q, acc, a, w, false, transB, 1, 0)
	}
	if b.err != nil {
		return nil
	}
	return acc
}

// MatMulBias implements gpu.Backend.
func (b *Backend) MatMulBias(c, a, w, bias *gpu.Tensor) {
	if b.err != nil {
		return
	}
	p, err := b.checker.MatMulBias(c, a, w, bias)
	if b.fail(err) || b.fail(fitsInt32("matmul bias", p.M, p.N, p.K, p.LDA, p.LDB)) || p.M == 0 || p.N == 0 {
		return
	}
	if b.ltLinear(p, c, a, w, false, epiBias, bias, nil) {
		return
	}
	acc := b.linearProduct(p, c, a, w, false)
	if acc == nil {
		return
	}
	b.launch(byAct(c.DType(), "linear_bias_f32", "linear_bias_bf16"), ewGrid(p.M*p.N, ewThreads), block1(ewThreads), 0,
		b.ptr(c), b.ptr(acc), b.ptr(bias), int64(p.M), i32(p.N))
}

// MatMulBiasGELU implements gpu.Backend.
func (b *Backend) MatMulBiasGELU(out, pre, a, w, bias *gpu.Tensor) {
	if b.err != nil {
		return
	}
	p, err := b.checker.MatMulBiasGELU(out, pre, a, w, bias)
	if b.fail(err) || b.fail(fitsInt32("matmul bias gelu", p.M, p.N, p.K, p.LDA, p.LDB)) || p.M == 0 || p.N == 0 {
		return
	}
	if b.ltLinear(p, out, a, w, false, epiBiasGELU, bias, pre) {
		return
	}
	acc := b.linearProduct(p, pre, a, w, false)
	if acc == nil {
		return
	}
	b.launch(byAct(pre.DType(), "linear_bias_gelu_f32", "linear_bias_gelu_bf16"), ewGrid(p.M*p.N, ewThreads),
		block1(ewThreads), 0, b.ptr(out), b.ptr(pre), b.ptr(acc), b.ptr(bias), int64(p.M), i32(p.N))
}

// MatMulDGELU implements gpu.Backend.
func (b *Backend) MatMulDGELU(dpre, dout, w, pre *gpu.Tensor) {
	if b.err != nil {
		return
	}
	p, err := b.checker.MatMulDGELU(dpre, dout, w, pre)
	if b.fail(err) || b.fail(fitsInt32("matmul dgelu", p.M, p.N, p.K, p.LDA, p.LDB)) || p.M == 0 || p.N == 0 {
		return
	}
	if b.ltLinear(p, dpre, dout, w, true, epiDGELU, nil, pre) {
		return
	}
	acc := b.linearProduct(p, dpre, dout, w, true)
	if acc == nil {
		return
	}
	n := p.M * p.N
	b.launch(byAct(dpre.DType(), "linear_dgelu_f32", "linear_dgelu_bf16"), ewGrid(n, ewThreads), block1(ewThreads), 0,
		b.ptr(dpre), b.ptr(acc), b.ptr(pre), int64(n))
}
