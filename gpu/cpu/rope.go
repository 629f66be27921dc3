package cpu

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// Rotary position embeddings, in place on the query and key heads of a
// packed qkv. Work is split over rows (sequence, position): a row's angles
// θ_i = p·invFreq[i] are float32 products, as the kernels and Hugging Face
// form them; their cosine and sine are computed in float64 and rounded
// once, then every query and key head of the row is rotated in float32.

// RoPEForward implements gpu.Backend.
func (b *Backend) RoPEForward(qkv, invFreq, start *gpu.Tensor, nHead, kvHeads int) {
	b.rope(false, qkv, invFreq, start, nHead, kvHeads)
}

// RoPEBackward implements gpu.Backend.
func (b *Backend) RoPEBackward(dqkv, invFreq, start *gpu.Tensor, nHead, kvHeads int) {
	b.rope(true, dqkv, invFreq, start, nHead, kvHeads)
}

// rope rotates the query and key heads of x by the angles of each row's
// position, by their negatives for the backward pass.
func (b *Backend) rope(backward bool, x, invFreq, start *gpu.Tensor, nHead, kvHeads int) {
	if b.err != nil {
		return
	}
	d, err := checker.RoPE(backward, x, invFreq, start, nHead, kvHeads)
	if b.fail(err) || d.B == 0 || d.T == 0 {
		return
	}
	defer b.actFlush()
	xs, inv := b.actInOut(x), F32(invFreq)
	var st []int32
	if start != nil {
		st = I32(start)
	}
	T, W, hs, half := d.T, d.QKVWidth(), d.HS, d.HS/2
	rotated := (d.H + d.KVH) * hs // the query and key heads lead each row
	// Without start offsets every sequence has positions 0..T−1: their
	// angles are computed once per call (T rows of cosines then sines),
	// not once per sequence, which made the sines most of a training
	// call's cost.
	var table []float32
	if st == nil {
		table = make([]float32, T*hs)
		b.parallelFor(T, max(1, ewMinChunk/(16*hs)), func(lo, hi int) {
			for pos := lo; pos < hi; pos++ {
				cs := table[pos*hs : (pos+1)*hs]
				ropeAngles(cs[:half], cs[half:], inv, pos, backward)
			}
		})
	}
	b.parallelFor(d.B*T, max(1, ewMinChunk/rotated), func(lo, hi int) {
		var own []float32 // the row's cosines, then its sines
		if st != nil {
			own = make([]float32, hs)
		}
		for r := lo; r < hi; r++ {
			bi, pos := r/T, r%T
			cs := own
			if st == nil {
				cs = table[pos*hs : (pos+1)*hs]
			} else {
				if st[bi] < 0 {
					continue // an inactive sequence
				}
				pos += int(st[bi])
				ropeAngles(cs[:half], cs[half:], inv, pos, backward)
			}
			row := xs[r*W : r*W+rotated]
			for h := 0; h < len(row); h += hs {
				ropeRotate(row[h:h+half], row[h+half:h+hs], cs[:half], cs[half:])
			}
		}
	})
}

// ropeAngles sets cos[i], sin[i] to the cosine and sine of
// θ_i = float32(pos)·inv[i] (of −θ_i when negate).
func ropeAngles(cos, sin, inv []float32, pos int, negate bool) {
	p := float32(pos)
	sin = sin[:len(cos)]
	inv = inv[:len(cos)]
	for i, f := range inv {
		s, c := math.Sincos(float64(p * f))
		if negate {
			s = -s
		}
		cos[i], sin[i] = float32(c), float32(s)
	}
}

// ropeRotate rotates the pairs (x1[i], x2[i]) by the angles of cos, sin:
// x1' = x1·cos − x2·sin, x2' = x2·cos + x1·sin, each product rounded to
// float32.
func ropeRotate(x1, x2, cos, sin []float32) {
	x2, cos, sin = x2[:len(x1)], cos[:len(x1)], sin[:len(x1)]
	for i, a := range x1 {
		c, s, z := cos[i], sin[i], x2[i]
		x1[i] = float32(a*c) - float32(z*s)
		x2[i] = float32(z*c) + float32(a*s)
	}
}
