package cpu

import "github.com/instructgo/instructgo/gpu"

// Token and position embeddings: a gather on the forward pass, a scatter-add
// on the backward pass.

// embedShape validates the tensors of an embedding op and returns B, T, C,
// V and maxT. x is out or dout: [B,T,C], or any shape of that many elements
// whose last dimension is C. One of wte and wpe may be nil (backward skips
// that gradient); the caller rules out both.
func (b *Backend) embedShape(op string, x, tokens, positions, wte, wpe *gpu.Tensor) (bsz, t, c, v, maxT int, ok bool) {
	if !b.okF32(op, "activations", x) || !b.okI32(op, "tokens", tokens) {
		return
	}
	if positions != nil && !b.okI32(op, "positions", positions) {
		return
	}
	if tokens.Rank() != 2 {
		b.failf("%s: tokens is %v, want [B,T]", op, tokens)
		return
	}
	bsz, t = tokens.Dim(0), tokens.Dim(1)
	if positions != nil && !gpu.SameShape(positions, tokens) {
		b.failf("%s: positions is %v, want the shape of tokens %v", op, positions, tokens)
		return
	}
	c = -1
	for _, w := range []struct {
		name string
		t    *gpu.Tensor
	}{{"wte", wte}, {"wpe", wpe}} {
		if w.t == nil {
			continue
		}
		if !b.okF32(op, w.name, w.t) {
			return
		}
		if w.t.Rank() != 2 || (c >= 0 && w.t.Dim(1) != c) {
			b.failf("%s: %s is %v, want a [rows,C] table as wide as the other", op, w.name, w.t)
			return
		}
		c = w.t.Dim(1)
	}
	if wte != nil {
		v = wte.Dim(0)
	}
	if wpe != nil {
		maxT = wpe.Dim(0)
	}
	if x.Rank() == 0 || x.Dim(-1) != c || x.Len() != bsz*t*c ||
		(x.Rank() == 3 && (x.Dim(0) != bsz || x.Dim(1) != t)) {
		b.failf("%s: activations are %v, want [%d,%d,%d]", op, x, bsz, t, c)
		return
	}
	if wte != nil {
		for i, id := range I32(tokens) {
			if id < 0 || int(id) >= v {
				b.failf("%s: token id %d at position %d outside the vocabulary [0,%d)", op, id, i, v)
				return
			}
		}
	}
	if wpe != nil {
		if positions == nil {
			if t > maxT {
				b.failf("%s: sequence length %d exceeds the %d positions of wpe", op, t, maxT)
				return
			}
		} else {
			for i, p := range I32(positions) {
				if p < 0 || int(p) >= maxT {
					b.failf("%s: position %d at index %d outside [0,%d)", op, p, i, maxT)
					return
				}
			}
		}
	}
	return bsz, t, c, v, maxT, true
}

// EmbeddingForward implements gpu.Backend. Token ids outside [0,V) and
// positions outside [0,maxT) record an error before anything is written.
func (b *Backend) EmbeddingForward(out, tokens, positions, wte, wpe *gpu.Tensor) {
	const op = "embedding forward"
	if b.err != nil {
		return
	}
	if wte == nil || wpe == nil {
		b.failf("%s: wte and wpe are required", op)
		return
	}
	bsz, t, c, _, _, ok := b.embedShape(op, out, tokens, positions, wte, wpe)
	if !ok || !b.okDisjoint(op, "out", out, "wte wpe", wte, wpe) {
		return
	}
	n := bsz * t
	if n == 0 || c == 0 {
		return
	}
	os, we, wp, tok := F32(out), F32(wte), F32(wpe), I32(tokens)
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
	const op = "embedding backward"
	if b.err != nil {
		return
	}
	if dwte == nil && dwpe == nil {
		return
	}
	bsz, t, c, _, _, ok := b.embedShape(op, dout, tokens, positions, dwte, dwpe)
	if !ok || !b.okDisjoint(op, "dwte", dwte, "dwpe dout", dwpe, dout) ||
		!b.okDisjoint(op, "dwpe", dwpe, "dout", dout) {
		return
	}
	n := bsz * t
	if n == 0 || c == 0 {
		return
	}
	ds, tok := F32(dout), I32(tokens)
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
