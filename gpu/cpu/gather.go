package cpu

import (
	"github.com/instructgo/instructgo/gpu"
)

// gatherCheck validates a GatherRows / ScatterAddRows call: rows [B,C],
// seq [B,T,C], idx Int32 [B] with every index in [0,T). It returns B, T, C.
func (b *Backend) gatherCheck(op, rowsName, seqName string, rows, seq, idx *gpu.Tensor) (nb, nt, nc int, ok bool) {
	if b.err != nil {
		return 0, 0, 0, false
	}
	if b.fail(checkTensor(op, rowsName, rows, gpu.Float32)) ||
		b.fail(checkTensor(op, seqName, seq, gpu.Float32)) ||
		b.fail(checkTensor(op, "idx", idx, gpu.Int32)) {
		return 0, 0, 0, false
	}
	if seq.Rank() != 3 {
		b.failf("%s: %s is %v, want [B,T,C]", op, seqName, seq)
		return 0, 0, 0, false
	}
	nb, nt, nc = seq.Dim(0), seq.Dim(1), seq.Dim(2)
	if !attnHasShape(rows, nb, nc) {
		b.failf("%s: %s is %v, want [%d,%d]", op, rowsName, rows, nb, nc)
		return 0, 0, 0, false
	}
	if !attnHasShape(idx, nb) {
		b.failf("%s: idx is %v, want [%d]", op, idx, nb)
		return 0, 0, 0, false
	}
	for i, t := range I32(idx) {
		if t < 0 || int(t) >= nt {
			b.failf("%s: idx[%d] = %d outside [0,%d)", op, i, t, nt)
			return 0, 0, 0, false
		}
	}
	return nb, nt, nc, true
}

// GatherRows implements gpu.Backend.
func (b *Backend) GatherRows(out, inp, idx *gpu.Tensor) {
	nb, nt, nc, ok := b.gatherCheck("gather rows", "out", "inp", out, inp, idx)
	if !ok {
		return
	}
	o, x, ix := F32(out), F32(inp), I32(idx)
	for i := 0; i < nb; i++ {
		r := (i*nt + int(ix[i])) * nc
		copy(o[i*nc:(i+1)*nc], x[r:r+nc])
	}
}

// ScatterAddRows implements gpu.Backend.
func (b *Backend) ScatterAddRows(dinp, dout, idx *gpu.Tensor) {
	nb, nt, nc, ok := b.gatherCheck("scatter-add rows", "dout", "dinp", dout, dinp, idx)
	if !ok {
		return
	}
	d, g, ix := F32(dinp), F32(dout), I32(idx)
	for i := 0; i < nb; i++ {
		r := (i*nt + int(ix[i])) * nc
		dst := d[r : r+nc]
		for j, v := range g[i*nc : (i+1)*nc] {
			dst[j] += v
		}
	}
}
