//go:build cuda

package cuda

import (
	"github.com/instructgo/instructgo/gpu"
)

// Sample (kernels/sample.cu): one block per row, the contract's procedure
// without sorting (radix select for top-k, a threshold bisection for top-p,
// an id-ordered scan for the draw). A row without a finite maximum is the
// op's error, reported through the device error flag at the next Sync or
// Download (the token is then −1).

// sampleThreads is the block size of sample_rows.
const sampleThreads = 512

// Sample implements gpu.Backend.
func (b *Backend) Sample(tokens, logits *gpu.Tensor, s gpu.Sampling, seed uint64) {
	const op = "sample"
	if b.err != nil {
		return
	}
	n, v, err := b.checker.Sample(tokens, logits, s)
	if b.fail(err) || n == 0 || b.fail(fitsInt32(op, n, v)) {
		return
	}
	// The weights of a launch's rows go to scratch: at most about 32 MiB,
	// so a large batch is sampled in several launches.
	rows := n
	if s.Temperature > 0 {
		rows = min(n, max(1, (32<<20)/(8*v)))
	}
	wbuf := b.scratch(8)
	if s.Temperature > 0 {
		wbuf = b.scratch(8 * rows * v)
	}
	topk := int32(min(s.TopK, v)) // TopK ≥ V means no limit: the kernel sees topk = V
	code := b.checkCode(func(i int, _ int32) error { return gpu.SampleRowError(i) })
	flag := b.flagPtr()
	if b.err != nil {
		return
	}
	kernel := byAct(logits.DType(), "sample_rows_f32", "sample_rows_bf16")
	for r0 := 0; r0 < n; r0 += rows {
		b.launch(kernel, grid1(min(rows, n-r0)), block1(sampleThreads), 0,
			b.ptr(tokens), b.ptr(logits), wbuf, i32(r0), i32(n), i32(v), s.Temperature, topk, s.TopP, seed, code, flag)
	}
}

// DecodeAdvance implements gpu.Backend (kernels/decode.cu): one block, so
// that live is counted without a second pass.
func (b *Backend) DecodeAdvance(ids, state, out, live, sampled *gpu.Tensor, eos int32, ctx int) {
	const op = "decode advance"
	if b.err != nil {
		return
	}
	d, err := b.checker.DecodeAdvance(ids, state, out, live, sampled, ctx)
	if b.fail(err) || b.fail(fitsInt32(op, d.B, d.M)) {
		return
	}
	code := b.checkCode(func(i int, _ int32) error { return gpu.DecodeStateError(i) })
	flag := b.flagPtr()
	if b.err != nil {
		return
	}
	b.launch("decode_advance", grid1(1), block1(256), 0,
		b.ptr(ids), b.ptr(state), b.ptr(out), b.ptr(live), b.ptr(sampled), i32(d.B), i32(d.M), eos, i32(ctx), code, flag)
}
