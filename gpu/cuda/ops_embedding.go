//go:build cuda

package cuda

import (
	"github.com/instructgo/instructgo/gpu"
)

// Token and position embeddings (kernels/embedding.cu). Token ids and
// positions are range-checked on the device before the kernels run (see
// ops_state.go): an id outside its table is the op's error, reported at the
// next Sync or Download, and nothing is written.

// embedThreads is the block size of the embedding kernels.
const embedThreads = 128

// EmbeddingForward implements gpu.Backend.
func (b *Backend) EmbeddingForward(out, tokens, positions, wte, wpe *gpu.Tensor) {
	const op = "embedding forward"
	if b.err != nil {
		return
	}
	d, checks, err := b.checker.EmbeddingForward(out, tokens, positions, wte, wpe)
	if b.fail(err) || b.fail(fitsInt32(op, d.B*d.T, d.C, d.V, d.MaxT)) || d.B*d.T == 0 || d.C == 0 {
		return
	}
	if !b.runChecks(checks) {
		return
	}
	act := out.DType()
	vec := d.C%vecWidth(act) == 0 && b.aligned16(out, wte, wpe)
	b.launch(byAct(act, "embedding_forward_f32", "embedding_forward_bf16"), grid1(d.B*d.T), block1(embedThreads), 0,
		b.ptr(out), b.ptr(tokens), b.ptr(positions), b.ptr(wte), b.ptr(wpe),
		i32(d.B*d.T), i32(d.T), i32(d.C), i32(d.V), i32(d.MaxT), bool32(vec), b.flagPtr())
}

// scatterRows is the number of table rows each block of
// embedding_scatter owns: about 512 blocks over the table.
func scatterRows(rows int) int { return max(1, (rows+511)/512) }

// EmbeddingBackward implements gpu.Backend: deterministic scatter-adds, no
// atomics (each block owns a range of table rows; see embedding.cu).
func (b *Backend) EmbeddingBackward(dwte, dwpe, dout, tokens, positions *gpu.Tensor) {
	const op = "embedding backward"
	if b.err != nil {
		return
	}
	d, checks, skip, err := b.checker.EmbeddingBackward(dwte, dwpe, dout, tokens, positions)
	if b.fail(err) || skip || b.fail(fitsInt32(op, d.B*d.T, d.C, d.V, d.MaxT)) || d.B*d.T == 0 || d.C == 0 {
		return
	}
	if !b.runChecks(checks) {
		return
	}
	n := d.B * d.T
	flag := b.flagPtr()
	act := dout.DType()
	scatter := byAct(act, "embedding_scatter_f32", "embedding_scatter_bf16")
	vw := vecWidth(act)
	if dwte != nil {
		r := scatterRows(d.V)
		vec := d.C%vw == 0 && b.aligned16(dwte, dout)
		b.launch(scatter, grid1((d.V+r-1)/r), block1(embedThreads), 0,
			b.ptr(dwte), b.ptr(dout), b.ptr(tokens), i32(n), i32(d.C), i32(d.V), i32(r), bool32(vec), flag)
	}
	if dwpe != nil {
		vec := d.C%vw == 0 && b.aligned16(dwpe, dout)
		if positions == nil {
			b.launch(byAct(act, "embedding_positions_backward_f32", "embedding_positions_backward_bf16"),
				grid1(d.T), block1(embedThreads), 0,
				b.ptr(dwpe), b.ptr(dout), i32(d.B), i32(d.T), i32(d.C), bool32(vec), flag)
		} else {
			r := scatterRows(d.MaxT)
			b.launch(scatter, grid1((d.MaxT+r-1)/r), block1(embedThreads), 0,
				b.ptr(dwpe), b.ptr(dout), b.ptr(positions), i32(n), i32(d.C), i32(d.MaxT), i32(r), bool32(vec), flag)
		}
	}
}
