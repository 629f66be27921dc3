package cpu

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/instructgo/instructgo/gpu"
)

// Matrix multiplication is the hot spot of CPU training. It follows the
// Goto/BLIS scheme:
//
//	for jc over n in blocks of nc                  (B block lives in L3)
//	  for pc over k in blocks of kc
//	    pack op(B)[pc:pc+kc, jc:jc+nc] into nr-wide panels
//	    for ic over m in blocks of mc              (A block lives in L2)
//	      pack op(A)[ic:ic+mc, pc:pc+kc] into mr-tall panels
//	      for each B panel (kc×nr, stays in L1)
//	        for each A panel: micro-kernel → mr×nr tile of C
//
// Packing handles the transposes, so the micro-kernel streams a contiguous
// B panel. It reads A through two strides, so where each A panel meets few
// B columns (packing would cost more than it saves) whole A panels are read
// in place, row-major or transposed, and only a partial last panel is
// packed. Likewise, where C has few rows (decoding), whole B panels stored
// row-major are read in place through B's row stride. Panels are
// zero-padded to whole tiles; a tile hanging over C's
// edge is computed into a scratch tile and added with Go code. The first
// depth block applies beta (beta = 0 never reads C); later ones accumulate.
//
// Two workers (one per core) share out the work dynamically (gemmByRows,
// gemmByCols): a worker woken late, or slowed by a busy neighbour, just
// takes fewer pieces.

// microKernel is a register-blocked kernel and the cache blocking tuned for it.
type microKernel struct {
	name   string
	mr, nr int // register tile
	kc     int // depth of a packed block (B panel kc×nr should sit in L1)
	mc     int // rows of a packed A block (mc×kc should sit in L2); a multiple of mr
	nc     int // columns of a packed B block (kc×nc should sit in L3); a multiple of nr
	// directMaxCols: the kernel may read full mr-row panels of A where they
	// lie (through strides) instead of from a packed copy. That saves the
	// packing, which pays off when each A panel meets few columns of B: up
	// to directMaxCols (0: always pack). See useDirectA.
	directMaxCols int
	// tile computes c[mr×nr] = alpha·(op(A)·Bp) + beta·c over k steps, where
	// element (r, p) of the A panel is a[r·rsa + p·csa] (a packed panel has
	// rsa = 1, csa = mr), bp holds k steps of nr floats, and c has row
	// stride ldc. beta == 0 must store without reading c.
	tile func(k int, a []float32, rsa, csa int, bp, c []float32, ldc int, alpha, beta float32)
	// packRows and packCols, where set, pack one whole nr-wide B panel of
	// k steps: dst[nr·p+x] = src[ld·p+x] (rows of op(B) as stored) and
	// dst[nr·p+x] = src[ld·x+p] (the transpose of an nr×k block). Nil:
	// packB's loops, which also pack a partial panel.
	packRows, packCols func(dst, src []float32, ld, k int)
	// tileB, where set, is tile reading a whole B panel in place: k rows
	// of nr floats, ldb elements apart (see useDirectB).
	tileB func(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, alpha, beta float32)
}

// kernelGeneric is the portable pure-Go micro-kernel.
var kernelGeneric = &microKernel{
	name: "generic 4x4", mr: 4, nr: 4, kc: 256, mc: 128, nc: 2048,
	tile: tileGeneric,
}

// activeKernel is the micro-kernel MatMul uses; chosen at init from the CPU
// features (see bestKernel in matmul_amd64.go / matmul_generic.go).
var activeKernel atomic.Pointer[microKernel]

func init() { activeKernel.Store(bestKernel()) }

// setMatMulKernel switches the micro-kernel (tests use it to cover every
// path on one machine) and returns a function restoring the previous one.
func setMatMulKernel(k *microKernel) (restore func()) {
	old := activeKernel.Swap(k)
	return func() { activeKernel.Store(old) }
}

// MatMulKernel names the micro-kernel MatMul runs on this machine.
func MatMulKernel() string { return activeKernel.Load().name }

const (
	// directBMaxRows is the most rows of C for which whole B panels are
	// read in place (useDirectB).
	directBMaxRows = 48
	// smallGemm is the m·n·k at or below which a plain triple loop beats
	// packing.
	smallGemm = 2048
	// parallelFlops is the work (2·m·n·k) below which one worker runs alone:
	// waking an idle core takes tens of microseconds.
	parallelFlops = 1 << 21
)

// gemm is one C = alpha·op(A)·op(B) + beta·C on row-major slices.
type gemm struct {
	m, n, k     int
	a           []float32
	lda         int // row stride of A as stored
	transA      bool
	b           []float32
	ldb         int
	transB      bool
	c           []float32
	ldc         int
	alpha, beta float32
}

// MatMul implements gpu.Backend.
func (b *Backend) MatMul(c, a, b2 *gpu.Tensor, transA, transB bool, alpha, beta float32) {
	if b.err != nil {
		return
	}
	p, err := checker.MatMul(c, a, b2, transA, transB)
	if b.fail(err) {
		return
	}
	defer b.actFlush()
	as, bs := b.actIn(a), b.actIn(b2)
	var cs []float32
	if beta == 0 {
		cs = b.actOut(c) // C's old contents are ignored
	} else {
		cs = b.actInOut(c) // β·C reads them: a bf16 C's, widened
	}
	b.matMul(p, cs, as, bs, transA, transB, alpha, beta)
}

// matMul runs the product of geometry p on float32 slices (the staged
// operands of MatMul and of the fused linear layers).
func (b *Backend) matMul(p gpu.MatMulDims, cs, as, bs []float32, transA, transB bool, alpha, beta float32) {
	g := gemm{
		m: p.M, n: p.N, k: p.K,
		a: as, lda: p.LDA, transA: transA,
		b: bs, ldb: p.LDB, transB: transB,
		c: cs, ldc: p.N,
		alpha: alpha, beta: beta,
	}
	if p.Batch == 1 {
		runGemm(&g, b.threads)
		return
	}
	sizeA, sizeB, sizeC := p.M*p.K, p.K*p.N, p.M*p.N
	at := func(i int) gemm {
		gi := g
		gi.a = as[i*p.StrideA : i*p.StrideA+sizeA]
		gi.b = bs[i*p.StrideB : i*p.StrideB+sizeB]
		gi.c = cs[i*sizeC : (i+1)*sizeC]
		return gi
	}
	if flops := 2 * p.M * p.N * p.K; b.threads > 1 && p.Batch >= b.threads && flops < 64*parallelFlops {
		// Many small products: each worker takes whole batch elements.
		workers := b.threads
		if flops*p.Batch < parallelFlops {
			workers = 1
		}
		splitRun(workers, p.Batch, func(lo, hi int) {
			for i := lo; i < hi; i++ {
				gi := at(i)
				runGemm(&gi, 1)
			}
		})
		return
	}
	for i := 0; i < p.Batch; i++ {
		gi := at(i)
		runGemm(&gi, b.threads)
	}
}

// runGemm computes g with up to threads workers.
func runGemm(g *gemm, threads int) {
	switch {
	case g.m == 0 || g.n == 0:
		return
	case g.k == 0 || g.alpha == 0:
		scaleC(g)
		return
	case useSkinny(g):
		gemmSkinny(g, activeSkinny, threads)
		return
	case g.m*g.n*g.k <= smallGemm:
		gemmSmall(g)
		return
	}
	if 2*g.m*g.n*g.k < parallelFlops {
		threads = 1
	}
	gemmBlocked(g, activeKernel.Load(), threads)
}

// scaleC computes C = beta·C (beta 0 clears, ignoring old contents).
func scaleC(g *gemm) {
	for i := 0; i < g.m; i++ {
		scaleRow(g.c[i*g.ldc:i*g.ldc+g.n], g.beta)
	}
}

// scaleRow computes row = beta·row; beta 0 clears, so NaN or Inf in the old
// contents do not survive, as BLAS does.
func scaleRow(row []float32, beta float32) {
	switch beta {
	case 0:
		clear(row)
	case 1:
	default:
		for j := range row {
			row[j] *= beta
		}
	}
}

// gemmSmall is the plain triple loop for tiny products.
func gemmSmall(g *gemm) {
	sa, sk := g.lda, 1 // op(A)[i,p] = a[i*sa + p*sk]
	if g.transA {
		sa, sk = 1, g.lda
	}
	sb, sn := g.ldb, 1 // op(B)[p,j] = b[p*sb + j*sn]
	if g.transB {
		sb, sn = 1, g.ldb
	}
	for i := 0; i < g.m; i++ {
		for j := 0; j < g.n; j++ {
			var s float32
			for p := 0; p < g.k; p++ {
				s += g.a[i*sa+p*sk] * g.b[p*sb+j*sn]
			}
			idx := i*g.ldc + j
			if g.beta == 0 {
				g.c[idx] = g.alpha * s
			} else {
				g.c[idx] = g.alpha*s + g.beta*g.c[idx]
			}
		}
	}
}

// gemmBlocked runs the packed, cache-blocked product with kernel kern on
// up to threads workers, started once per call. Work is handed out
// dynamically through atomic counters, so a worker that starts late (waking
// an idle core takes tens of microseconds) or runs slow (a busy neighbour)
// just takes fewer pieces.
func gemmBlocked(g *gemm, kern *microKernel, threads int) {
	mr, nr := kern.mr, kern.nr
	rowPanels := ceilDiv(g.m, mr)
	if threads > 1 && g.n >= g.m {
		// Wide C: split columns when A can be read in place by column
		// groups of a few panels each.
		gcols := min(roundUp(ceilDiv(g.n, 4*threads), nr), roundUp(512, nr))
		if g.n >= 2*nr && useDirectA(g, kern, gcols) {
			gemmByCols(g, kern, threads, gcols)
			return
		}
	}
	threads = min(threads, rowPanels)
	gemmByRows(g, kern, threads)
}

// gemmByCols splits C into column groups of gcols; a worker takes a group
// and computes it whole (every depth block, every row), packing the group's
// B panels privately and reading A in place. Workers never wait for each
// other.
func gemmByCols(g *gemm, kern *microKernel, threads, gcols int) {
	mr, nr := kern.mr, kern.nr
	kc0 := min(kern.kc, g.k)
	mc0 := min(kern.mc, roundUp(g.m, mr))
	groups := ceilDiv(g.n, gcols)
	var next atomic.Int32
	splitRun(threads, threads, func(_, _ int) {
		bbufp := getBuf(&poolB, kc0*roundUp(gcols, nr))
		defer poolB.Put(bbufp)
		abufp := getBuf(&poolA, mr*kc0+mr*nr) // one edge panel
		defer poolA.Put(abufp)
		for {
			gi := int(next.Add(1)) - 1
			if gi >= groups {
				return
			}
			j0 := gi * gcols
			nc := min(gcols, g.n-j0)
			panels := ceilDiv(nc, nr)
			for pc := 0; pc < g.k; pc += kc0 {
				kc := min(kc0, g.k-pc)
				beta := g.beta
				if pc > 0 {
					beta = 1
				}
				bb := (*bbufp)[:kc*panels*nr]
				packB(bb, g, kern, pc, kc, j0, nc, packedFrom(g, kern, nc), panels)
				blockRows(g, kern, true, *abufp, mc0, bb, j0, nc, pc, kc, beta, 0, g.m, 0, panels)
			}
		}
	})
}

// gemmByRows runs the Goto/BLIS loop nest with the packed B block of each
// step (column block jc, depth block pc) shared by all workers. Within a
// step, workers first take B panel groups to pack, wait until the block is
// complete, then take row chunks to compute. B is double-buffered: step s+2
// reuses step s's buffer once every chunk of step s is done. A chunk of
// rows is computed at step s only after the same chunk finished step s−1,
// so accumulation over depth blocks keeps its order.
func gemmByRows(g *gemm, kern *microKernel, threads int) {
	mr, nr := kern.mr, kern.nr
	kc0 := min(kern.kc, g.k)
	// Even column blocks no wider than kern.nc.
	njc := ceilDiv(g.n, kern.nc)
	nc0 := roundUp(ceilDiv(g.n, njc), nr)
	npc := ceilDiv(g.k, kc0)
	steps := njc * npc
	rowPanels := ceilDiv(g.m, mr)
	// Row chunks: about four per worker, at most one A block (kern.mc rows).
	chunkPanels := kern.mc / mr
	if threads > 1 {
		chunkPanels = max(1, min(chunkPanels, ceilDiv(rowPanels, 4*threads)))
	}
	chunks := ceilDiv(rowPanels, chunkPanels)
	mc0 := chunkPanels * mr
	// Pack items: groups of B panels, a few per worker.
	packPanels := max(1, ceilDiv(ceilDiv(nc0, nr), 2*threads))
	if threads == 1 {
		packPanels = 1 << 30
	}
	bufs := min(2, steps)
	bbufp := getBuf(&poolB, bufs*kc0*nc0)
	defer poolB.Put(bbufp)
	bbuf := *bbufp

	type stepState struct {
		packNext, packDone, compNext, compDone atomic.Int32
	}
	states := make([]stepState, steps)
	progress := make([]atomic.Int32, chunks) // steps completed per chunk

	splitRun(threads, threads, func(_, _ int) {
		abufp := getBuf(&poolA, mc0*kc0+mr*nr)
		defer poolA.Put(abufp)
		abuf := *abufp
		for s := range steps {
			jc, pc := (s/npc)*nc0, (s%npc)*kc0
			nc, kc := min(nc0, g.n-jc), min(kc0, g.k-pc)
			panels := ceilDiv(nc, nr)
			from := packedFrom(g, kern, nc)
			packItems := ceilDiv(panels-from, packPanels)
			beta := g.beta
			if pc > 0 {
				beta = 1
			}
			bb := bbuf[(s%bufs)*kc0*nc0:][:kc*panels*nr]
			st := &states[s]
			if s >= bufs {
				// Nobody may still read the buffer this step overwrites.
				waitFor(&states[s-bufs].compDone, chunks)
			}
			for {
				it := int(st.packNext.Add(1)) - 1
				if it >= packItems {
					break
				}
				packB(bb, g, kern, pc, kc, jc, nc, from+it*packPanels, min(from+(it+1)*packPanels, panels))
				st.packDone.Add(1)
			}
			waitFor(&st.packDone, packItems)
			direct := useDirectA(g, kern, nc)
			for {
				c := int(st.compNext.Add(1)) - 1
				if c >= chunks {
					break
				}
				waitFor(&progress[c], s)
				i0 := c * mc0
				blockRows(g, kern, direct, abuf, mc0, bb, jc, nc, pc, kc, beta, i0, min(i0+mc0, g.m), 0, panels)
				progress[c].Store(int32(s + 1))
				st.compDone.Add(1)
			}
		}
	})
}

// useDirectA reports whether A panels are read in place when each meets
// cols columns of B. Packing costs about as much as a pass of the kernel
// over 200-500 columns, so wider blocks pack. A transposed A whose rows are
// a multiple of 4 KiB apart also packs: read in place, every step of a panel
// would fall in the same L1 set.
func useDirectA(g *gemm, kern *microKernel, cols int) bool {
	if cols > kern.directMaxCols {
		return false
	}
	return !g.transA || g.lda%1024 != 0
}

// useDirectB reports whether the whole B panels of g are read in place
// (kern.tileB) instead of packed: op(B) stored as it is read (not
// transposed), and C so short (at most directBMaxRows rows, decoding a
// batch of sequences) that each panel meets only a few A panels, which
// would not repay copying it; the weights of a decoding step would
// otherwise be packed anew at every token.
func useDirectB(g *gemm, kern *microKernel) bool {
	return kern.tileB != nil && !g.transB && g.m <= directBMaxRows
}

// packedFrom is the first B panel of a block of nc columns that packB
// must pack: 0, or with useDirectB only a partial last panel.
func packedFrom(g *gemm, kern *microKernel, nc int) int {
	if useDirectB(g, kern) {
		return nc / kern.nr
	}
	return 0
}

// share is worker w's part [lo, hi) of n items split evenly over workers.
func share(n, w, workers int) (lo, hi int) {
	return w * n / workers, (w + 1) * n / workers
}

// blockRows computes rows [i0, i1) of C against B panels [q0, q1) of the
// packed block bbuf (columns jc.., depth pc..pc+kc), in blocks of mc0 rows.
// direct: whole A panels are read in place (see useDirectA) and abuf needs
// room for one packed panel (mr·kc); otherwise A is packed a block at a
// time and abuf needs mc0·kc. Either way a scratch tile (mr·nr) ends abuf.
// With useDirectB, whole B panels come from g.b itself (bbuf holds only a
// partial last panel).
func blockRows(g *gemm, kern *microKernel, direct bool, abuf []float32, mc0 int, bbuf []float32, jc, nc, pc, kc int, beta float32, i0, i1, q0, q1 int) {
	if i0 >= i1 || q0 >= q1 {
		return
	}
	mr, nr := kern.mr, kern.nr
	tmp := abuf[len(abuf)-mr*nr:]
	directB := useDirectB(g, kern)
	for ic := i0; ic < i1; ic += mc0 {
		mc := min(mc0, i1-ic)
		full := mc / mr * mr // rows in whole panels
		if direct {
			if full < mc { // the one partial panel goes first in abuf
				packA(abuf, g, ic+full, mc-full, pc, kc, mr)
			}
		} else {
			packA(abuf, g, ic, mc, pc, kc, mr)
		}
		for q := q0; q < q1; q++ {
			j := jc + q*nr
			cols := min(nr, jc+nc-j)
			bp := bbuf[q*kc*nr : (q+1)*kc*nr]
			// tile computes one mr×nr tile into c (row stride ldc).
			tile := func(ap []float32, rsa, csa int, c []float32, ldc int, beta float32) {
				kern.tile(kc, ap, rsa, csa, bp, c, ldc, g.alpha, beta)
			}
			if directB && cols == nr {
				b := g.b[pc*g.ldb+j:]
				tile = func(ap []float32, rsa, csa int, c []float32, ldc int, beta float32) {
					kern.tileB(kc, ap, rsa, csa, b, g.ldb, c, ldc, g.alpha, beta)
				}
			}
			for ir := 0; ir < mc; ir += mr {
				rows := min(mr, mc-ir)
				i := ic + ir
				var ap []float32
				rsa, csa := 1, mr
				switch {
				case !direct:
					ap = abuf[ir*kc : (ir+mr)*kc]
				case rows < mr:
					ap = abuf[:mr*kc]
				default:
					if g.transA {
						ap, rsa, csa = g.a[pc*g.lda+i:], 1, g.lda
					} else {
						ap, rsa, csa = g.a[i*g.lda+pc:], g.lda, 1
					}
				}
				if rows == mr && cols == nr {
					tile(ap, rsa, csa, g.c[i*g.ldc+j:], g.ldc, beta)
					continue
				}
				tile(ap, rsa, csa, tmp, nr, 0)
				for r := 0; r < rows; r++ {
					crow := g.c[(i+r)*g.ldc+j:][:cols]
					trow := tmp[r*nr:][:cols]
					if beta == 0 {
						copy(crow, trow)
						continue
					}
					for x, v := range trow {
						crow[x] = beta*crow[x] + v
					}
				}
			}
		}
	}
}

// packA packs rows [i0, i0+mc) and columns [p0, p0+kc) of op(A) into dst as
// mr-tall panels, each kc steps of mr floats, zero-padding the last panel.
func packA(dst []float32, g *gemm, i0, mc, p0, kc, mr int) {
	for ir := 0; ir < mc; ir += mr {
		rows := min(mr, mc-ir)
		panel := dst[ir*kc : (ir+mr)*kc]
		if g.transA {
			// op(A)[i,p] = A[p,i]: each step is a contiguous run.
			off := (p0)*g.lda + i0 + ir
			if mr == 6 && rows == 6 {
				for p := 0; p < kc; p++ {
					d := panel[p*6 : p*6+6 : p*6+6]
					src := g.a[off+p*g.lda:][:6:6]
					d[0], d[1], d[2], d[3], d[4], d[5] = src[0], src[1], src[2], src[3], src[4], src[5]
				}
				continue
			}
			for p := 0; p < kc; p++ {
				d := panel[p*mr : p*mr+mr]
				copy(d, g.a[off+p*g.lda:][:rows])
				clear(d[rows:])
			}
			continue
		}
		if rows == 6 && mr == 6 {
			packRows6(panel, g.a, (i0+ir)*g.lda+p0, g.lda, kc)
			continue
		}
		for r := 0; r < rows; r++ {
			src := g.a[(i0+ir+r)*g.lda+p0:][:kc]
			for p, v := range src {
				panel[p*mr+r] = v
			}
		}
		for r := rows; r < mr; r++ {
			for p := 0; p < kc; p++ {
				panel[p*mr+r] = 0
			}
		}
	}
}

// packRows6 interleaves six rows of length kc (stride ld, from src[off])
// into dst as kc steps of 6.
func packRows6(dst, src []float32, off, ld, kc int) {
	s0 := src[off:][:kc]
	s1 := src[off+ld:][:kc]
	s2 := src[off+2*ld:][:kc]
	s3 := src[off+3*ld:][:kc]
	s4 := src[off+4*ld:][:kc]
	s5 := src[off+5*ld:][:kc]
	dst = dst[:6*kc]
	for p := range s0 {
		d := dst[6*p : 6*p+6 : 6*p+6]
		d[0], d[1], d[2], d[3], d[4], d[5] = s0[p], s1[p], s2[p], s3[p], s4[p], s5[p]
	}
}

// packB packs panels [q0, q1) of the block op(B)[p0:p0+kc, j0:j0+nc] into
// dst: panel q holds columns j0+q·nr.. as kc steps of nr floats, zero-padded.
func packB(dst []float32, g *gemm, kern *microKernel, p0, kc, j0, nc, q0, q1 int) {
	nr := kern.nr
	for q := q0; q < q1; q++ {
		j := j0 + q*nr
		cols := min(nr, j0+nc-j)
		panel := dst[q*kc*nr : (q+1)*kc*nr]
		if !g.transB {
			off := p0*g.ldb + j
			if cols == nr && kern.packRows != nil {
				kern.packRows(panel, g.b[off:], g.ldb, kc)
				continue
			}
			for p := 0; p < kc; p++ {
				d := panel[p*nr : p*nr+nr]
				copy(d, g.b[off+p*g.ldb:][:cols])
				clear(d[cols:])
			}
			continue
		}
		// op(B)[p,j] = B[j,p]: gather a column of the panel per row of B.
		if cols == nr && kern.packCols != nil {
			kern.packCols(panel, g.b[j*g.ldb+p0:], g.ldb, kc)
			continue
		}
		for x := 0; x < cols; x++ {
			src := g.b[(j+x)*g.ldb+p0:][:kc]
			for p, v := range src {
				panel[p*nr+x] = v
			}
		}
		for x := cols; x < nr; x++ {
			for p := 0; p < kc; p++ {
				panel[p*nr+x] = 0
			}
		}
	}
}

// tileGeneric is the pure-Go 4×4 micro-kernel.
func tileGeneric(k int, a []float32, rsa, csa int, bp, c []float32, ldc int, alpha, beta float32) {
	var c00, c01, c02, c03 float32
	var c10, c11, c12, c13 float32
	var c20, c21, c22, c23 float32
	var c30, c31, c32, c33 float32
	a = a[:3*rsa+(k-1)*csa+1]
	bp = bp[:4*k]
	for p := 0; p < k; p++ {
		o := p * csa
		a0, a1, a2, a3 := a[o], a[o+rsa], a[o+2*rsa], a[o+3*rsa]
		b := bp[4*p : 4*p+4 : 4*p+4]
		b0, b1, b2, b3 := b[0], b[1], b[2], b[3]
		c00 += a0 * b0
		c01 += a0 * b1
		c02 += a0 * b2
		c03 += a0 * b3
		c10 += a1 * b0
		c11 += a1 * b1
		c12 += a1 * b2
		c13 += a1 * b3
		c20 += a2 * b0
		c21 += a2 * b1
		c22 += a2 * b2
		c23 += a2 * b3
		c30 += a3 * b0
		c31 += a3 * b1
		c32 += a3 * b2
		c33 += a3 * b3
	}
	store4(c[0:4:4], c00, c01, c02, c03, alpha, beta)
	store4(c[ldc:ldc+4:ldc+4], c10, c11, c12, c13, alpha, beta)
	store4(c[2*ldc:2*ldc+4:2*ldc+4], c20, c21, c22, c23, alpha, beta)
	store4(c[3*ldc:3*ldc+4:3*ldc+4], c30, c31, c32, c33, alpha, beta)
}

func store4(c []float32, v0, v1, v2, v3, alpha, beta float32) {
	if beta == 0 {
		c[0], c[1], c[2], c[3] = alpha*v0, alpha*v1, alpha*v2, alpha*v3
		return
	}
	c[0] = alpha*v0 + beta*c[0]
	c[1] = alpha*v1 + beta*c[1]
	c[2] = alpha*v2 + beta*c[2]
	c[3] = alpha*v3 + beta*c[3]
}

// splitRun runs body over [0, n) in up to workers contiguous chunks, one
// goroutine each (the caller runs the first), and waits for all of them.
func splitRun(workers, n int, body func(lo, hi int)) {
	if n <= 0 {
		return
	}
	workers = min(workers, n)
	if workers <= 1 {
		body(0, n)
		return
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		lo, hi := share(n, w, workers)
		wg.Add(1)
		go func() {
			defer wg.Done()
			body(lo, hi)
		}()
	}
	body(share(n, 0, workers))
	wg.Wait()
}

// waitFor blocks until *ctr reaches target. The waits it serves last
// microseconds (another worker finishing a piece), less than parking and
// waking a thread, so it spins, yielding now and then, and only sleeps when
// the other worker is clearly descheduled (a busy machine).
func waitFor(ctr *atomic.Int32, target int) {
	for i := 0; int(ctr.Load()) < target; i++ {
		switch {
		case i >= 1<<14:
			time.Sleep(20 * time.Microsecond)
		case i&63 == 63:
			runtime.Gosched()
		}
	}
}

// poolA and poolB recycle packing buffers (A blocks, B blocks) between calls.
var poolA, poolB sync.Pool

// getBuf returns a buffer of n floats from pool, or a new one. Its contents
// are stale; packing overwrites every element it later reads.
func getBuf(pool *sync.Pool, n int) *[]float32 {
	if p, ok := pool.Get().(*[]float32); ok && cap(*p) >= n {
		*p = (*p)[:n]
		return p
	}
	s := make([]float32, n)
	return &s
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

func roundUp(a, b int) int { return ceilDiv(a, b) * b }
