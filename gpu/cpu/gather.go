package cpu

import (
	"github.com/instructgo/instructgo/gpu"
)

// Row gather and scatter-add: one position of every sequence, picked by an
// index per sequence.

// GatherRows implements gpu.Backend.
func (b *Backend) GatherRows(out, inp, idx *gpu.Tensor) {
	if b.err != nil {
		return
	}
	nb, nt, nc, checks, err := checker.GatherRows(out, inp, idx)
	if b.failChecked(err, checks) {
		return
	}
	ix := I32(idx)
	if out.DType() == gpu.BF16 { // a copy: the bits are the values
		o, x := BF(out), BF(inp)
		for i := 0; i < nb; i++ {
			r := (i*nt + int(ix[i])) * nc
			copy(o[i*nc:(i+1)*nc], x[r:r+nc])
		}
		return
	}
	o, x := F32(out), F32(inp)
	for i := 0; i < nb; i++ {
		r := (i*nt + int(ix[i])) * nc
		copy(o[i*nc:(i+1)*nc], x[r:r+nc])
	}
}

// ScatterAddRows implements gpu.Backend.
func (b *Backend) ScatterAddRows(dinp, dout, idx *gpu.Tensor) {
	if b.err != nil {
		return
	}
	nb, nt, nc, checks, err := checker.ScatterAddRows(dinp, dout, idx)
	if b.failChecked(err, checks) {
		return
	}
	defer b.actFlush()
	d, g, ix := b.actInOut(dinp), b.actIn(dout), I32(idx)
	for i := 0; i < nb; i++ {
		r := (i*nt + int(ix[i])) * nc
		dst := d[r : r+nc]
		for j, v := range g[i*nc : (i+1)*nc] {
			dst[j] += v
		}
	}
}
