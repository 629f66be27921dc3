package cpu

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/instructgo/instructgo/gpu"
)

// Fused causal multi-head attention, FlashAttention-2 style, with every
// inner product on the GEMM micro-kernel of matmul.go (kern.tile, one
// mr×nr register tile at a time, 6×16 with AVX2).
//
// Work is split over (batch, head) pairs, handed out dynamically; when
// there are few pairs for the workers, each head's query rows are split
// too (the backward pass then sums per-piece partial dK and dV). With
// grouped-query attention the forward pass still takes (batch, query head)
// pairs, reading the group's key/value head in place; the backward pass
// takes (batch, key/value head) pairs and runs the group's query heads one
// after the other, accumulating their dK and dV in the same scratch, so a
// shared head's gradient is summed in a fixed order without extra memory. For its
// rows of a head a worker packs the operands once, the way the GEMM packs
// B panels: keys and values transposed into nr-key panels (for S = Q·Kᵀ
// and dP = dO·Vᵀ), and keys, values, queries and output gradients as
// nr-column panels (for O = P·V, dQ = dS·K, dK = dSᵀ·Q and dV = Pᵀ·dO).
// Queries and output gradients are read in place as the A operand, whole
// mr-row panels through the qkv/dout row stride; a partial last panel is
// copied and zero-padded. Only rows below validLen are ever read, so
// padding (even NaN) cannot leak in: every padded entry of an operand is a
// zero written here.
//
// The forward pass walks the query rows one register panel (mr rows) at a
// time: the scores of the panel against the keys up to its causal end
// (whole nr-key tiles, so the upper triangle is skipped to within a tile),
// a softmax per row (vecKernel.attnSoftmax: the row maximum, then the
// exponentials and their sum, 8 lanes at a time with AVX2), then O = P·V
// over the same keys. Its scratch is one panel of scores, mr×T. Packing
// goes through the micro-kernel's panel packers. The backward pass recomputes
// P = exp(S − lse) and dP for a block of attnBwdBlock query rows, forms
// dS = P∘(dP − D)·scale with D_t = dO_t·O_t (no row reduction over P),
// writes dQ = dS·K per panel and accumulates dK += dSᵀ·Q and dV += Pᵀ·dO
// over the block, reading P and dS transposed in place: two block×T
// scratch matrices. Scores, probabilities and sums are float32 (the
// softmax denominator is summed in float64).

// attnLens returns the valid lengths of a checked call (nil: all T).
func attnLens(validLen *gpu.Tensor) []int32 {
	if validLen == nil {
		return nil
	}
	return I32(validLen)
}

// attnBwdBlock is the number of query rows (rounded up to whole register
// panels) of one backward block: the depth of the dK and dV products. Two
// block×T scratch matrices (P and dS) stay in L2 for T up to about 1024.
var attnBwdBlock = 64

// attnMinSplitRows is about the fewest query rows a work item gets when
// heads are split between workers.
const attnMinSplitRows = 64

// attnFwdPool and attnBwdPool recycle the per-worker scratch arenas of the
// two passes (sized differently), attnPartPool the partial key and value
// gradients of a backward pass split within heads.
var attnFwdPool, attnBwdPool, attnPartPool sync.Pool

// attnGeom is the geometry of one call shared by all its heads.
type attnGeom struct {
	kern   *microKernel
	vec    *vecKernel // the softmax rows' exp
	mr, nr int
	C, W   int // the row widths of out (H·hs) and of qkv ((H+2·KVH)·hs)
	H, KVH int
	hs     int
	hsP    int // hs rounded up to whole nr-column panels
	scale  float32
}

func newAttnGeom(d gpu.AttnDims) attnGeom {
	k := activeKernel.Load()
	return attnGeom{
		kern: k, vec: activeVec.Load(), mr: k.mr, nr: k.nr,
		C: d.C, W: d.QKVWidth(), H: d.H, KVH: d.KVH, hs: d.HS, hsP: roundUp(d.HS, k.nr),
		scale: float32(1 / math.Sqrt(float64(d.HS))),
	}
}

// group is the number of query heads sharing one key/value head.
func (g *attnGeom) group() int { return g.H / g.KVH }

// cols returns the first qkv columns of query head h and of the key and
// value parts of its key/value head h/group.
func (g *attnGeom) cols(h int) (q, k, v int) {
	kvh := h / g.group()
	return h * g.hs, (g.H + kvh) * g.hs, (g.H + g.KVH + kvh) * g.hs
}

// ld is the row stride of a score scratch matrix for n keys: whole mr- and
// nr-wide tiles, and not a multiple of 64 floats, so that a column read
// down many rows (the transposed A operand of dK and dV) does not fall into
// few L1 sets.
func (g *attnGeom) ld(n int) int {
	ld := max(roundUp(n, g.nr), roundUp(n, g.mr))
	if ld%64 == 0 {
		ld += 16
	}
	return ld
}

// ldBound is at least ld(n) for every n ≤ T. ld itself is not monotonic
// (ld(126) = 144 > ld(127) = 132 for 6×16 tiles, because of the bump off
// multiples of 64), so scratch sized by ld(T) could be too small for a
// shorter sequence; the bump is at most 16.
func (g *attnGeom) ldBound(T int) int { return g.ld(T) + 16 }

// attnArena carves consecutive slices out of one scratch buffer.
type attnArena struct{ buf []float32 }

func (a *attnArena) take(n int) []float32 {
	s := a.buf[:n:n]
	a.buf = a.buf[n:]
	return s
}

// attnWorkers runs body(item) for every item in [0, n) on up to threads
// workers that take items dynamically, each with its own scratch arena of
// size floats (stale contents) from pool.
func attnWorkers(threads, n int, pool *sync.Pool, size int, body func(item int, scratch []float32)) {
	var next atomic.Int32
	splitRun(min(threads, n), min(threads, n), func(_, _ int) {
		var scratch []float32
		if size > 0 {
			bp := getBuf(pool, size)
			defer pool.Put(bp)
			scratch = *bp
		}
		for {
			it := int(next.Add(1)) - 1
			if it >= n {
				return
			}
			body(it, scratch)
		}
	})
}

// attnPanelA returns the register panel of rows [r0, r0+mr) of columns
// col..col+hs of a [·,stride] matrix as a GEMM A operand (element (r, p)
// at a[r·rsa+p]): in place when all mr rows are below n, else copied into
// pad (mr·hs floats) with zero rows from n on, so rows at or beyond n are
// never read.
func attnPanelA(src []float32, r0, n, mr, stride, col, hs int, pad []float32) (a []float32, rsa int) {
	if r0+mr <= n {
		return src[r0*stride+col:], stride
	}
	for r := 0; r < mr; r++ {
		d := pad[r*hs : (r+1)*hs]
		if r0+r < n {
			copy(d, src[(r0+r)*stride+col:][:hs])
		} else {
			clear(d)
		}
	}
	return pad, hs
}

// attnPackT packs rows [0,n) of columns col..col+hs of a [·,stride] matrix
// X as the GEMM B operand Xᵀ: panel q holds rows q·nr.. as hs steps of nr
// floats, rows at or beyond n are zero. Whole panels go through the
// kernel's packCols where it has one.
func attnPackT(kern *microKernel, dst, src []float32, n, stride, col, hs int) {
	nr := kern.nr
	for q := 0; q*nr < n; q++ {
		panel := dst[q*hs*nr : (q+1)*hs*nr]
		rows := min(nr, n-q*nr)
		if rows == nr && kern.packCols != nil {
			kern.packCols(panel, src[q*nr*stride+col:], stride, hs)
			continue
		}
		x := 0
		// Four rows at a time: one bounds check per four stores.
		for ; x+4 <= rows; x += 4 {
			off := (q*nr+x)*stride + col
			r0 := src[off:][:hs]
			r1 := src[off+stride:][:len(r0)]
			r2 := src[off+2*stride:][:len(r0)]
			r3 := src[off+3*stride:][:len(r0)]
			for p := range r0 {
				d := panel[p*nr+x : p*nr+x+4 : p*nr+x+4]
				d[0], d[1], d[2], d[3] = r0[p], r1[p], r2[p], r3[p]
			}
		}
		for ; x < rows; x++ {
			for p, v := range src[(q*nr+x)*stride+col:][:hs] {
				panel[p*nr+x] = v
			}
		}
		for ; x < nr; x++ {
			for p := 0; p < hs; p++ {
				panel[p*nr+x] = 0
			}
		}
	}
}

// attnPackN packs rows [0,n) of columns col..col+hs of a [·,stride] matrix
// X as the GEMM B operand X: panel c holds columns c·nr.. as n steps of nr
// floats (panel stride n·nr), columns at or beyond hs are zero. Whole
// panels go through the kernel's packRows where it has one.
func attnPackN(kern *microKernel, dst, src []float32, n, stride, col, hs int) {
	nr := kern.nr
	for c := 0; c*nr < hs; c++ {
		panel := dst[c*n*nr : (c+1)*n*nr]
		cols := min(nr, hs-c*nr)
		if cols == nr && kern.packRows != nil {
			if n > 0 {
				kern.packRows(panel, src[col+c*nr:], stride, n)
			}
			continue
		}
		for t := 0; t < n; t++ {
			d := panel[t*nr : t*nr+nr]
			copy(d, src[t*stride+col+c*nr:][:cols])
			clear(d[cols:])
		}
	}
}

// attnSplit is the number of work items each head's query rows are split
// into: 1 when there are enough heads for the workers (a few per worker,
// for balance), else enough items of at least attnMinSplitRows rows.
func attnSplit(heads, T, threads int) int {
	if heads >= 4*threads {
		return 1
	}
	return max(1, min(ceilDiv(4*threads, heads), T/attnMinSplitRows))
}

// attnSplitRows returns the start of chunk c of split chunks of query rows
// [0,n): chunk c of a causal head costs about its share of n²/2, so the
// boundaries go as n·sqrt(c/split), rounded to whole panels of mr rows.
func attnSplitRows(n, c, split, mr int) int {
	if c >= split {
		return n
	}
	r := int(float64(n) * math.Sqrt(float64(c)/float64(split)))
	return min(r/mr*mr, n)
}

// AttentionForward implements gpu.Backend.
func (b *Backend) AttentionForward(out, lse, qkv, validLen *gpu.Tensor, nHead, kvHeads int) {
	if b.err != nil {
		return
	}
	d, checks, err := checker.AttentionForward(out, lse, qkv, validLen, nHead, kvHeads)
	if b.failChecked(err, checks) {
		return
	}
	lens := attnLens(validLen)
	if d.B == 0 || d.T == 0 {
		return
	}
	defer b.actFlush()
	x, o, l := b.actIn(qkv), b.actOut(out), F32(lse)
	g := newAttnGeom(d)
	T, C, W, H := d.T, d.C, g.W, d.H
	split := attnSplit(d.B*H, T, b.threads)
	mr, nr, hs, hsP := g.mr, g.nr, g.hs, g.hsP
	ldMax := g.ldBound(T)
	size := mr*hs + roundUp(T, nr)*hs + hsP*T + mr*ldMax + mr*hsP + mr
	attnWorkers(b.threads, d.B*H*split, &attnFwdPool, size, func(item int, scratch []float32) {
		bh, c := item/split, item%split
		bi, h := bh/H, bh%H
		n := T
		if lens != nil {
			n = int(lens[bi])
		}
		xb := x[bi*T*W : (bi+1)*T*W]
		ob := o[bi*T*C : (bi+1)*T*C]
		lb := l[(bi*H+h)*T : (bi*H+h+1)*T]
		lo, hi := attnSplitRows(n, c, split, mr), attnSplitRows(n, c+1, split, mr)
		if lo < hi {
			g.forwardRows(ob[h*hs:], lb, xb, lo, hi, h, scratch)
		}
		if c == split-1 {
			for t := n; t < T; t++ {
				clear(ob[t*C+h*hs : t*C+h*hs+hs])
				lb[t] = 0
			}
		}
	})
}

// forwardRows computes the output rows [lo,hi) (lo a multiple of mr,
// hi ≤ validLen) of query head h of one sequence: xb is its [T,W] qkv, o
// its output from column h·hs on (row stride C), lse its [T] log-sum-exps.
func (g *attnGeom) forwardRows(o, lse, xb []float32, lo, hi, h int, scratch []float32) {
	mr, nr, hs, hsP, C, W := g.mr, g.nr, g.hs, g.hsP, g.C, g.W
	qc, kc, vc := g.cols(h)
	tile := g.kern.tile
	ld := g.ld(hi)
	ar := attnArena{scratch}
	pad := ar.take(mr * hs)             // a partial last panel of queries
	kt := ar.take(roundUp(hi, nr) * hs) // keys, packed transposed
	vn := ar.take(hsP * hi)             // values, packed by columns
	s := ar.take(mr * ld)               // one panel of scores / probabilities
	ot := ar.take(mr * hsP)             // one panel of (unnormalized) outputs
	inv := ar.take(mr)                  // 1/Σ of the panel's rows
	attnPackT(g.kern, kt, xb, hi, W, kc, hs)
	attnPackN(g.kern, vn, xb, hi, W, vc, hs)
	for r0 := lo; r0 < hi; r0 += mr {
		// Keys [0, kd) are seen by some row of the panel.
		kd := min(r0+mr, hi)
		qa, rsa := attnPanelA(xb, r0, hi, mr, W, qc, hs, pad)
		for j := 0; j < kd; j += nr {
			tile(hs, qa, rsa, 1, kt[j*hs:], s[j:], ld, g.scale, 0)
		}
		for r := 0; r < mr; r++ {
			i := r0 + r
			row := s[r*ld : r*ld+r0+mr]
			if i >= hi {
				clear(row) // rows past the range: no output
				continue
			}
			m, sum := g.vec.attnSoftmax(row[:i+1])
			clear(row[i+1:])
			inv[r] = float32(1 / sum)
			lse[i] = float32(float64(m) + math.Log(sum))
		}
		for c := 0; c < hsP; c += nr {
			tile(kd, s, ld, 1, vn[c*hi:], ot[c:], hsP, 1, 0)
		}
		for r := 0; r < mr && r0+r < hi; r++ {
			dst := o[(r0+r)*C:][:hs]
			src := ot[r*hsP:][:hs]
			f := inv[r]
			for x := range dst {
				dst[x] = src[x] * f
			}
		}
	}
}

// AttentionBackward implements gpu.Backend. A work item is a key/value
// head of one sequence (or a piece of its query rows): it runs the group's
// query heads in turn, writing their dQ and accumulating their dK and dV.
func (b *Backend) AttentionBackward(dqkv, dout, qkv, out, lse, validLen *gpu.Tensor, nHead, kvHeads int) {
	if b.err != nil {
		return
	}
	d, checks, err := checker.AttentionBackward(dqkv, dout, qkv, out, lse, validLen, nHead, kvHeads)
	if b.failChecked(err, checks) {
		return
	}
	lens := attnLens(validLen)
	if d.B == 0 || d.T == 0 {
		return
	}
	defer b.actFlush()
	x, dx, do, o, l := b.actIn(qkv), b.actOut(dqkv), b.actIn(dout), b.actIn(out), F32(lse)
	g := newAttnGeom(d)
	T, C, W, H, KVH, G := d.T, d.C, g.W, d.H, d.KVH, g.group()
	mr, nr, hs, hsP := g.mr, g.nr, g.hs, g.hsP
	blk := roundUp(max(1, attnBwdBlock), mr)
	split := attnSplit(d.B*KVH, T, b.threads)
	tM, ldMax := roundUp(T, mr), g.ldBound(T)
	size := 2*mr*hs + // partial panels of q and dO
		2*roundUp(T, nr)*hs + // kt, vt
		3*hsP*T + // kn, qn, don
		mr*hsP + // dq panel
		2*blk*ldMax + // p, ds
		T // D
	dkvSize := 2 * tM * hsP // dK and dV of one head (or of one item)
	var parts []float32     // split > 1: each item's partial dK and dV
	if split > 1 {
		pp := getBuf(&attnPartPool, d.B*KVH*split*dkvSize)
		defer attnPartPool.Put(pp)
		parts = *pp
	} else {
		size += dkvSize
	}
	// clearPadded zeroes the gradient of a padded row t of key/value head
	// kvh: its group's queries, its key and its value.
	clearPadded := func(r []float32, kvh int) {
		for h := kvh * G; h < (kvh+1)*G; h++ {
			clear(r[h*hs : h*hs+hs])
		}
		_, kc, vc := g.cols(kvh * G)
		clear(r[kc : kc+hs])
		clear(r[vc : vc+hs])
	}
	attnWorkers(b.threads, d.B*KVH*split, &attnBwdPool, size, func(item int, scratch []float32) {
		bh, c := item/split, item%split
		bi, kvh := bh/KVH, bh%KVH
		n := T
		if lens != nil {
			n = int(lens[bi])
		}
		xb := x[bi*T*W : (bi+1)*T*W]
		dxb := dx[bi*T*W : (bi+1)*T*W]
		lo, hi := attnSplitRows(n, c, split, mr), attnSplitRows(n, c+1, split, mr)
		var dkv []float32
		if split > 1 {
			dkv = parts[item*dkvSize:][:dkvSize]
		} else {
			dkv, scratch = scratch[:dkvSize], scratch[dkvSize:]
		}
		dk, dv := dkv[:tM*hsP], dkv[tM*hsP:]
		if lo < hi {
			dob := do[bi*T*C : (bi+1)*T*C]
			ob := o[bi*T*C : (bi+1)*T*C]
			for h := kvh * G; h < (kvh+1)*G; h++ {
				lb := l[(bi*H+h)*T : (bi*H+h+1)*T]
				g.backwardRows(dxb, dk, dv, xb, dob, ob, lb, lo, hi, h, blk, h > kvh*G, scratch)
			}
		}
		if split > 1 {
			return // the partial dK and dV are summed below
		}
		_, kc, vc := g.cols(kvh * G)
		for t := 0; t < T; t++ {
			r := dxb[t*W : (t+1)*W]
			if t >= n {
				clearPadded(r, kvh)
				continue
			}
			copy(r[kc:kc+hs], dk[t*hsP:][:hs])
			copy(r[vc:vc+hs], dv[t*hsP:][:hs])
		}
	})
	if split == 1 {
		return
	}
	// Sum the items' partial dK and dV: item c of a head covered the keys
	// [0, hi_c). Workers take (head, row range) pieces.
	attnWorkers(b.threads, d.B*KVH*split, nil, 0, func(item int, _ []float32) {
		bh, rc := item/split, item%split
		bi, kvh := bh/KVH, bh%KVH
		n := T
		if lens != nil {
			n = int(lens[bi])
		}
		dxb := dx[bi*T*W : (bi+1)*T*W]
		_, kc, vc := g.cols(kvh * G)
		for t := rc * T / split; t < (rc+1)*T/split; t++ {
			r := dxb[t*W : (t+1)*W]
			if t >= n {
				clearPadded(r, kvh)
				continue
			}
			dk, dv := r[kc:kc+hs], r[vc:vc+hs]
			clear(dk)
			clear(dv)
			for c := 0; c < split; c++ {
				lo, hi := attnSplitRows(n, c, split, mr), attnSplitRows(n, c+1, split, mr)
				if lo >= hi || t >= hi {
					continue
				}
				part := parts[(bh*split+c)*dkvSize:][:dkvSize]
				pk, pv := part[t*hsP:][:hs], part[tM*hsP+t*hsP:][:hs]
				for x := range dk {
					dk[x] += pk[x]
					dv[x] += pv[x]
				}
			}
		}
	})
}

// backwardRows handles the query rows [lo,hi) (lo a multiple of mr,
// hi ≤ validLen) of query head h of one sequence, from its qkv xb ([T,W]),
// output gradient dob and output ob ([T,C]) and log-sum-exps lse [T]: it
// writes their q gradients into dxb [T,W] and sets dk and dv (at least
// roundUp(hi, mr) rows of hsP) to their contributions to the k and v
// gradients of keys [0,hi) of h's key/value head, or adds them to what dk
// and dv hold when accumulate (the next query head of a group).
func (g *attnGeom) backwardRows(dxb, dk, dv, xb, dob, ob, lse []float32, lo, hi, h, blk int, accumulate bool, scratch []float32) {
	mr, nr, hs, hsP, C, W := g.mr, g.nr, g.hs, g.hsP, g.C, g.W
	qc, kc, vc := g.cols(h)
	tile := g.kern.tile
	scale := g.scale
	ld := g.ld(hi)
	rows := hi - lo
	ar := attnArena{scratch}
	padQ := ar.take(mr * hs)
	padO := ar.take(mr * hs)
	kt := ar.take(roundUp(hi, nr) * hs) // keys, packed transposed (for S)
	vt := ar.take(roundUp(hi, nr) * hs) // values, packed transposed (for dP)
	kn := ar.take(hsP * hi)             // keys by columns (for dQ)
	qn := ar.take(hsP * rows)           // queries lo.. by columns (for dK)
	don := ar.take(hsP * rows)          // output gradients lo.. by columns (for dV)
	dq := ar.take(mr * hsP)
	p := ar.take(blk * ld)
	ds := ar.take(blk * ld)
	dd := ar.take(rows)
	attnPackT(g.kern, kt, xb, hi, W, kc, hs)
	attnPackT(g.kern, vt, xb, hi, W, vc, hs)
	attnPackN(g.kern, kn, xb, hi, W, kc, hs)
	attnPackN(g.kern, qn, xb[lo*W:], rows, W, qc, hs)
	attnPackN(g.kern, don, dob[lo*C:], rows, C, h*hs, hs)
	dk, dv = dk[:roundUp(hi, mr)*hsP], dv[:roundUp(hi, mr)*hsP]
	if !accumulate {
		clear(dk)
		clear(dv)
	}
	for i := lo; i < hi; i++ {
		dd[i-lo] = attnDot(dob[i*C+h*hs:][:hs], ob[i*C+h*hs:][:hs]) // D = dO·O
	}
	for i0 := lo; i0 < hi; i0 += blk {
		i1 := min(i0+blk, hi)
		for r0 := i0; r0 < i1; r0 += mr {
			kd := min(r0+mr, hi)
			pr, dr := p[(r0-i0)*ld:], ds[(r0-i0)*ld:]
			// S and dP of the panel over keys [0, kd), whole tiles.
			qa, rsq := attnPanelA(xb, r0, hi, mr, W, qc, hs, padQ)
			oa, rso := attnPanelA(dob, r0, hi, mr, C, h*hs, hs, padO)
			for j := 0; j < kd; j += nr {
				tile(hs, qa, rsq, 1, kt[j*hs:], pr[j:], ld, scale, 0)
				tile(hs, oa, rso, 1, vt[j*hs:], dr[j:], ld, 1, 0)
			}
			// P and dS. Entries with j > i up to the panel's end are
			// zero: the products below read them.
			for r := 0; r < mr; r++ {
				i := r0 + r
				prow, drow := pr[r*ld:r*ld+r0+mr], dr[r*ld:r*ld+r0+mr]
				if i >= hi {
					clear(prow)
					clear(drow)
					continue
				}
				g.vec.attnGrad(prow[:i+1], drow[:i+1], lse[i], dd[i-lo], scale)
				clear(prow[i+1:])
				clear(drow[i+1:])
			}
			// dQ = dS·K for the panel.
			for c := 0; c < hsP; c += nr {
				tile(kd, dr, ld, 1, kn[c*hi:], dq[c:], hsP, 1, 0)
			}
			for r := 0; r < mr && r0+r < hi; r++ {
				copy(dxb[(r0+r)*W+qc:][:hs], dq[r*hsP:][:hs])
			}
		}
		// dK += dSᵀ·Q and dV += Pᵀ·dO over the block's rows that see each
		// key panel [j0, j0+mr): rows i ≥ j0.
		for j0 := 0; j0 < i1; j0 += mr {
			a0 := max(i0, j0)
			depth := i1 - a0
			off := (a0-i0)*ld + j0
			for c := 0; c < hsP; c += nr {
				tile(depth, ds[off:], 1, ld, qn[c*rows+(a0-lo)*nr:], dk[j0*hsP+c:], hsP, 1, 1)
				tile(depth, p[off:], 1, ld, don[c*rows+(a0-lo)*nr:], dv[j0*hsP+c:], hsP, 1, 1)
			}
		}
	}
}

// attnGradRow turns one query row's scaled scores p and dP values ds into
// probabilities p = exp(p − lse) and score gradients ds = p·(dP − d)·scale.
func attnGradRow(p, ds []float32, lse, d, scale float32) {
	ds = ds[:len(p)]
	j := 0
	for ; j+4 <= len(p); j += 4 {
		pp, dd := p[j:j+4:j+4], ds[j:j+4:j+4]
		p0 := exp32(pp[0] - lse)
		p1 := exp32(pp[1] - lse)
		p2 := exp32(pp[2] - lse)
		p3 := exp32(pp[3] - lse)
		pp[0], pp[1], pp[2], pp[3] = p0, p1, p2, p3
		dd[0] = p0 * (dd[0] - d) * scale
		dd[1] = p1 * (dd[1] - d) * scale
		dd[2] = p2 * (dd[2] - d) * scale
		dd[3] = p3 * (dd[3] - d) * scale
	}
	for ; j < len(p); j++ {
		pv := exp32(p[j] - lse)
		p[j] = pv
		ds[j] = pv * (ds[j] - d) * scale
	}
}

// attnMax returns the largest element of s (len(s) ≥ 1). The builtin max
// compiles to branch-free code; compare-and-branch would mispredict on
// every new maximum of these short rows. A NaN score gives a NaN maximum,
// so it reaches the row's output.
func attnMax(s []float32) float32 {
	m0 := s[0]
	m1, m2, m3 := m0, m0, m0
	j := 0
	for ; j+4 <= len(s); j += 4 {
		v := s[j : j+4 : j+4]
		m0 = max(m0, v[0])
		m1 = max(m1, v[1])
		m2 = max(m2, v[2])
		m3 = max(m3, v[3])
	}
	for ; j < len(s); j++ {
		m0 = max(m0, s[j])
	}
	return max(m0, m1, m2, m3)
}

// attnDot returns a·b (len(b) ≥ len(a)) with four partial sums.
func attnDot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	for len(a) >= 4 && len(b) >= 4 {
		s0 += a[0] * b[0]
		s1 += a[1] * b[1]
		s2 += a[2] * b[2]
		s3 += a[3] * b[3]
		a, b = a[4:], b[4:]
	}
	for i := range a {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// attnSoftmax replaces s[j] by exp(s[j] − m), m the row maximum, and
// returns m and the sum in float64 (every term is at most 1). A NaN score
// makes the maximum, the sum and so the whole row's output NaN.
func attnSoftmax(s []float32) (m float32, sum float64) {
	m = attnMax(s)
	return m, attnExpShift(s, m)
}

// attnExpShift replaces s[j] by exp(s[j] − m) and returns the sum in
// float64.
func attnExpShift(s []float32, m float32) float64 {
	var sum float64
	for len(s) >= 4 {
		e0 := exp32(s[0] - m)
		e1 := exp32(s[1] - m)
		e2 := exp32(s[2] - m)
		e3 := exp32(s[3] - m)
		s[0], s[1], s[2], s[3] = e0, e1, e2, e3
		sum += float64((e0 + e1) + (e2 + e3))
		s = s[4:]
	}
	for i := range s {
		e := exp32(s[i] - m)
		s[i] = e
		sum += float64(e)
	}
	return sum
}
