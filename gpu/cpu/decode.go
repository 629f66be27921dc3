package cpu

import (
	"math"
	"sync/atomic"

	"github.com/instructgo/instructgo/gpu"
)

// Incremental decoding: a KV cache holds each layer's keys and values per
// sequence as [B,KVH,S,hs] (KVH key/value heads), so one head's keys are
// contiguous rows; a decode step appends one position per sequence and runs
// one query against the cached keys. Work is split over (sequence, query
// head) pairs, a query head reading its group's key/value head; the scratch
// is one row of S scores per worker. Scores and probabilities are float32
// (the training attention's softmax row kernel, vecKernel.attnSoftmax); the
// softmax denominator is summed in float64.

// KVCacheWrite implements gpu.Backend. It moves elements without arithmetic,
// so bf16 caches take qkv's bits as they are (as Copy does): what widening
// and rounding them gives, but for the payload of a NaN, at the cost of the
// positions written rather than of the whole cache.
func (b *Backend) KVCacheWrite(kc, vc, qkv, start *gpu.Tensor, nHead, kvHeads int) {
	if b.err != nil {
		return
	}
	d, checks, err := checker.KVCacheWrite(kc, vc, qkv, start, nHead, kvHeads)
	if b.failChecked(err, checks) || d.B == 0 || d.T == 0 {
		return
	}
	var st []int32
	if start != nil {
		st = I32(start)
	}
	if d.Act == gpu.BF16 {
		kvCacheWrite(b, BF(kc), BF(vc), BF(qkv), st, d)
		return
	}
	kvCacheWrite(b, F32(kc), F32(vc), F32(qkv), st, d)
}

// kvCacheWrite copies the keys and values of x (qkv) into the caches k and
// v for KVCacheWrite; st is start (nil: 0 everywhere).
func kvCacheWrite[E float32 | uint16](b *Backend, k, v, x []E, st []int32, d gpu.DecodeDims) {
	B, T, W, S := d.B, d.T, d.QKVWidth(), d.S
	H, KVH, hs := d.H, d.KVH, d.HS
	b.parallelFor(B*KVH, max(1, 4096/(T*hs)), func(lo, hi int) {
		for bh := lo; bh < hi; bh++ {
			bi, h := bh/KVH, bh%KVH
			s0 := 0
			if st != nil {
				if st[bi] < 0 {
					continue // inactive sequence: nothing written
				}
				s0 = int(st[bi])
			}
			xb := x[bi*T*W : (bi+1)*T*W]
			base := (bh*S + s0) * hs
			kb, vb := k[base:base+T*hs], v[base:base+T*hs]
			kc, vc := (H+h)*hs, (H+KVH+h)*hs
			for t := 0; t < T; t++ {
				row := xb[t*W : (t+1)*W]
				copy(kb[t*hs:(t+1)*hs], row[kc:kc+hs])
				copy(vb[t*hs:(t+1)*hs], row[vc:vc+hs])
			}
		}
	})
}

// decodeKernel holds loops over all of one head's cached keys, where the
// CPU has them (head sizes a multiple of 8): scores sets s[j] = scale·q·k_j
// for the contiguous key rows k_j, mix sets o = Σ_j w[j]·v_j (len(w) ≥ 1)
// with the FMAs of an axpy per key, in key order. One call per head
// instead of one per key: at head size 32 the calls cost more than the
// arithmetic.
type decodeKernel struct {
	scores func(s, q, k []float32, scale float32)
	mix    func(o, w, v []float32)
}

// activeDecode is the machine's decodeKernel (nil: none); tests switch it
// off to cover the per-key loops too.
var activeDecode atomic.Pointer[decodeKernel]

func init() { activeDecode.Store(bestDecode()) }

// AttentionDecode implements gpu.Backend.
func (b *Backend) AttentionDecode(out, qkv, kc, vc, lens *gpu.Tensor, nHead, kvHeads int) {
	if b.err != nil {
		return
	}
	d, checks, err := checker.AttentionDecode(out, qkv, kc, vc, lens, nHead, kvHeads)
	if b.failChecked(err, checks) || d.B == 0 {
		return
	}
	B, C, W, S := d.B, d.C, d.QKVWidth(), d.S
	ls := I32(lens)
	defer b.actFlush()
	x, o, k, v := b.actIn(qkv), b.actOut(out), b.actIn(kc), b.actIn(vc)
	H, G, hs := d.H, d.H/d.KVH, d.HS
	scale := float32(1 / math.Sqrt(float64(hs)))
	maxLen := 0
	for _, l := range ls {
		maxLen = max(maxLen, int(l))
	}
	// From head size 16 on, the vector dot and axpy of the few-row matmul
	// path beat the unrolled scalar loops (1.7× at 32, 3.8× at 128 on the
	// 2-core AMD EPYC; instructgo bench --match decode-attn).
	var vec *skinnyKernel
	if hs >= 16 {
		vec = activeSkinny
	}
	fused := activeDecode.Load()
	if hs%8 != 0 {
		fused = nil
	}
	softmax := activeVec.Load().attnSoftmax
	b.parallelFor(B*H, max(1, 8192/max(1, maxLen*hs)), func(lo, hi int) {
		scores := make([]float32, maxLen)
		for bh := lo; bh < hi; bh++ {
			bi, h := bh/H, bh%H
			n := int(ls[bi])
			ob := o[bi*C+h*hs : bi*C+h*hs+hs]
			if n == 0 {
				clear(ob) // inactive sequence
				continue
			}
			q := x[bi*W+h*hs : bi*W+h*hs+hs]
			base := (bi*d.KVH + h/G) * S * hs
			kh, vh := k[base:base+n*hs], v[base:base+n*hs]
			s := scores[:n]
			if fused != nil {
				fused.scores(s, q, kh, scale)
				_, sum := softmax(s)
				fused.mix(ob, s, vh)
				scaleRow(ob, float32(1/sum))
				continue
			}
			if vec != nil {
				decodeScoresVec(vec, s, q, kh, scale)
				_, sum := softmax(s)
				clear(ob)
				for j, w := range s {
					vec.axpy(ob, vh[j*hs:(j+1)*hs], w)
				}
				scaleRow(ob, float32(1/sum))
				continue
			}
			decodeScores(s, q, kh, scale)
			_, sum := softmax(s)
			decodeWeightedSum(ob, s, vh)
			scaleRow(ob, float32(1/sum))
		}
	})
}

// decodeScores sets s[j] = scale·(q·k_j) for the key rows k_j of the
// contiguous [len(s),hs] matrix k.
func decodeScores(s, q, k []float32, scale float32) {
	hs := len(q)
	for j := range s {
		kj := k[j*hs : (j+1)*hs]
		kj = kj[:len(q)]
		var s0, s1, s2, s3 float32
		i := 0
		for ; i+4 <= len(q); i += 4 {
			qq, kk := q[i:i+4:i+4], kj[i:i+4:i+4]
			s0 += qq[0] * kk[0]
			s1 += qq[1] * kk[1]
			s2 += qq[2] * kk[2]
			s3 += qq[3] * kk[3]
		}
		for ; i < len(q); i++ {
			s0 += q[i] * kj[i]
		}
		s[j] = ((s0 + s1) + (s2 + s3)) * scale
	}
}

// decodeScoresVec is decodeScores with the vector dot product of the
// few-row matmul path.
func decodeScoresVec(kern *skinnyKernel, s, q, k []float32, scale float32) {
	hs := len(q)
	for j := range s {
		s[j] = kern.dot(q, k[j*hs:(j+1)*hs]) * scale
	}
}

// decodeWeightedSum sets acc = Σ_j w[j]·x_j over the rows x_j of the
// contiguous [len(w),len(acc)] matrix x, four rows at a time so acc is
// loaded and stored once per four.
func decodeWeightedSum(acc, w, x []float32) {
	hs := len(acc)
	clear(acc)
	j := 0
	for ; j+4 <= len(w); j += 4 {
		w0, w1, w2, w3 := w[j], w[j+1], w[j+2], w[j+3]
		x0 := x[j*hs : (j+1)*hs]
		x1 := x[(j+1)*hs : (j+2)*hs]
		x2 := x[(j+2)*hs : (j+3)*hs]
		x3 := x[(j+3)*hs : (j+4)*hs]
		x0, x1, x2, x3 = x0[:len(acc)], x1[:len(acc)], x2[:len(acc)], x3[:len(acc)]
		for i := range acc {
			acc[i] += (w0*x0[i] + w1*x1[i]) + (w2*x2[i] + w3*x3[i])
		}
	}
	for ; j < len(w); j++ {
		wj := w[j]
		xj := x[j*hs : (j+1)*hs]
		xj = xj[:len(acc)]
		for i := range acc {
			acc[i] += wj * xj[i]
		}
	}
}
