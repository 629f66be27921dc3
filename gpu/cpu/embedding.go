package cpu

import "github.com/instructgo/instructgo/gpu"

// Token and position embeddings: a gather on the forward pass, a scatter-add
// on the backward pass.

// EmbeddingForward implements gpu.Backend. Token ids outside [0,V) and
// positions outside [0,maxT) record an error before anything is written.
func (b *Backend) EmbeddingForward(out, tokens, positions, wte, wpe *gpu.Tensor) {
	if b.err != nil {
		return
	}
	d, checks, err := checker.EmbeddingForward(out, tokens, positions, wte, wpe)
	if b.failChecked(err, checks) {
		return
	}
	t, c := d.T, d.C
	n := d.B * t
	if n == 0 || c == 0 {
		return
	}
	defer b.actFlush()
	os, we, wp, tok := b.actOut(out), b.actIn(wte), b.actIn(wpe), I32(tokens)
	var pos []int32
	if positions != nil {
		pos = I32(positions)
	}
	b.parallelFor(n, max(1, ewMinChunk/c), func(lo, hi int) {
		for i := lo; i < hi; i++ {
			p := i % t
			if pos != nil {
				p = int(pos[i])
			}
			o := os[i*c : (i+1)*c]
			e := we[int(tok[i])*c : (int(tok[i])+1)*c]
			q := wp[p*c : (p+1)*c]
			for j := range o {
				o[j] = e[j] + q[j]
			}
		}
	})
}

// EmbeddingBackward implements gpu.Backend. Workers own disjoint blocks of
// the C columns, so repeated tokens accumulate without races and in a fixed
// order.
func (b *Backend) EmbeddingBackward(dwte, dwpe, dout, tokens, positions *gpu.Tensor) {
	if b.err != nil {
		return
	}
	d, checks, skip, err := checker.EmbeddingBackward(dwte, dwpe, dout, tokens, positions)
	if skip || b.failChecked(err, checks) {
		return
	}
	t, c := d.T, d.C
	n := d.B * t
	if n == 0 || c == 0 {
		return
	}
	defer b.actFlush()
	ds, tok := b.actIn(dout), I32(tokens)
	var dwe, dwp []float32
	if dwte != nil {
		dwe = F32(dwte)
	}
	if dwpe != nil {
		dwp = F32(dwpe)
	}
	var pos []int32
	if positions != nil {
		pos = I32(positions)
	}
	// Column blocks of 16 floats (one cache line) so workers do not share lines.
	const block = 16
	nblocks := (c + block - 1) / block
	b.parallelFor(nblocks, max(1, ewMinChunk/(n*block)), func(lo, hi int) {
		c0, c1 := lo*block, min(hi*block, c)
		for i := 0; i < n; i++ {
			d := ds[i*c+c0 : i*c+c1]
			if dwe != nil {
				row := int(tok[i]) * c
				g := dwe[row+c0 : row+c1]
				for j, v := range d {
					g[j] += v
				}
			}
			if dwp != nil {
				p := i % t
				if pos != nil {
					p = int(pos[i])
				}
				g := dwp[p*c+c0 : p*c+c1]
				for j, v := range d {
					g[j] += v
				}
			}
		}
	})
}
