package cpu

import (
	"github.com/instructgo/instructgo/gpu"
)

// Elementwise ops, reductions and bias ops. Like every op of this package,
// each validates its arguments with the shared checker first (cpu.go); a
// rejected op records the error and does nothing.

const (
	// ewMinChunk is the smallest chunk of a streaming elementwise op worth a
	// goroutine of its own (about 10µs of work).
	ewMinChunk = 1 << 15
	// ewMinReduce is the smallest chunk of a float64 reduction per worker.
	ewMinReduce = 1 << 15
)

// workChunks splits [0,n) into contiguous chunks of at least minChunk items
// (at least one chunk) for a reduction that keeps one partial result per
// chunk, and returns their count and size. There are up to reduceChunks per
// worker: parallelFor hands chunks out as workers come, so a worker that
// wakes late still gets a share. The split depends only on n, minChunk and
// Threads(), so a given thread count always gives the same result.
func (b *Backend) workChunks(n, minChunk int) (count, size int) {
	if minChunk < 1 {
		minChunk = 1
	}
	count = (n + minChunk - 1) / minChunk
	if b.threads == 1 {
		count = 1
	}
	count = min(count, reduceChunks*b.threads)
	if count < 1 {
		count = 1
	}
	size = (n + count - 1) / count
	if size > 0 {
		count = (n + size - 1) / size // no empty chunks at the end
	}
	return count, size
}

// reduceChunks is the number of chunks per worker workChunks aims for.
const reduceChunks = 4

// sumChunks runs f on chunks of [0,n) in parallel and returns the sum of
// their float64 results, added in chunk order so a given thread count always
// gives the same answer.
func (b *Backend) sumChunks(n, minChunk int, f func(lo, hi int) float64) float64 {
	count, size := b.workChunks(n, minChunk)
	if count == 1 {
		return f(0, n)
	}
	partial := make([]float64, count)
	b.parallelFor(count, 1, func(c0, c1 int) {
		for c := c0; c < c1; c++ {
			lo := min(c*size, n)
			partial[c] = f(lo, min(lo+size, n))
		}
	})
	var s float64
	for _, p := range partial {
		s += p
	}
	return s
}

// Fill implements gpu.Backend.
func (b *Backend) Fill(t *gpu.Tensor, v float32) {
	if b.err != nil || b.fail(checker.Fill(t)) {
		return
	}
	if t.DType() == gpu.BF16 {
		x, bits := BF(t), gpu.BF16Bits(v)
		b.parallelFor(len(x), ewMinChunk, func(lo, hi int) {
			s := x[lo:hi]
			for i := range s {
				s[i] = bits
			}
		})
		return
	}
	x := F32(t)
	b.parallelFor(len(x), ewMinChunk, func(lo, hi int) {
		s := x[lo:hi]
		for i := range s {
			s[i] = v
		}
	})
}

// Copy implements gpu.Backend.
func (b *Backend) Copy(dst, src *gpu.Tensor) {
	if b.err != nil || b.fail(checker.Copy(dst, src)) {
		return
	}
	if dst.DType() == gpu.BF16 {
		d, s := BF(dst), BF(src)
		b.parallelFor(len(d), ewMinChunk, func(lo, hi int) { copy(d[lo:hi], s[lo:hi]) })
		return
	}
	d, s := F32(dst), F32(src)
	b.parallelFor(len(d), ewMinChunk, func(lo, hi int) { copy(d[lo:hi], s[lo:hi]) })
}

// Convert implements gpu.Backend.
func (b *Backend) Convert(dst, src *gpu.Tensor) {
	if b.err != nil || b.fail(checker.Convert(dst, src)) {
		return
	}
	switch {
	case dst.DType() == src.DType():
		b.Copy(dst, src)
	case dst.DType() == gpu.BF16:
		b.round(BF(dst), F32(src))
	default:
		b.widen(F32(dst), BF(src))
	}
}

// Scale implements gpu.Backend.
func (b *Backend) Scale(t *gpu.Tensor, alpha float32) {
	if b.err != nil || b.fail(checker.Scale(t)) {
		return
	}
	x := F32(t)
	b.parallelFor(len(x), ewMinChunk, func(lo, hi int) {
		s := x[lo:hi]
		for i := range s {
			s[i] *= alpha
		}
	})
}

// Axpy implements gpu.Backend.
func (b *Backend) Axpy(y *gpu.Tensor, alpha float32, x *gpu.Tensor) {
	if b.err != nil || b.fail(checker.Axpy(y, x)) {
		return
	}
	ys, xs := F32(y), F32(x)
	b.parallelFor(len(ys), ewMinChunk, func(lo, hi int) {
		yy, xx := ys[lo:hi], xs[lo:hi]
		for i := range yy {
			yy[i] += alpha * xx[i]
		}
	})
}

// Add implements gpu.Backend.
func (b *Backend) Add(out, a, c *gpu.Tensor) {
	if b.err != nil || b.fail(checker.Add(out, a, c)) {
		return
	}
	defer b.actFlush()
	os, as, cs := b.actOut(out), b.actIn(a), b.actIn(c)
	b.parallelFor(len(os), ewMinChunk, func(lo, hi int) {
		o, x, y := os[lo:hi], as[lo:hi], cs[lo:hi]
		for i := range o {
			o[i] = x[i] + y[i]
		}
	})
}

// Lerp implements gpu.Backend.
func (b *Backend) Lerp(avg, x *gpu.Tensor, t float32) {
	if b.err != nil || b.fail(checker.Lerp(avg, x)) {
		return
	}
	as, xs := F32(avg), F32(x)
	b.parallelFor(len(as), ewMinChunk, func(lo, hi int) {
		a, xx := as[lo:hi], xs[lo:hi]
		for i := range a {
			a[i] += t * (xx[i] - a[i])
		}
	})
}

// SumSquares implements gpu.Backend; it accumulates in float64.
func (b *Backend) SumSquares(out, x *gpu.Tensor) {
	if b.err != nil || b.fail(checker.SumSquares(out, x)) {
		return
	}
	xs := F32(x)
	s := b.sumChunks(len(xs), ewMinReduce, func(lo, hi int) float64 { return sumSquares64(xs[lo:hi]) })
	F32(out)[0] = float32(s)
}

// Dot implements gpu.Backend; it accumulates in float64.
func (b *Backend) Dot(out, x, y *gpu.Tensor) {
	if b.err != nil || b.fail(checker.Dot(out, x, y)) {
		return
	}
	xs, ys := F32(x), F32(y)
	s := b.sumChunks(len(xs), ewMinReduce, func(lo, hi int) float64 { return dot64(xs[lo:hi], ys[lo:hi]) })
	F32(out)[0] = float32(s)
}

// sumSquares64 is Σ x² in float64 with four independent accumulators.
func sumSquares64(x []float32) float64 {
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		a, b, c, d := float64(x[i]), float64(x[i+1]), float64(x[i+2]), float64(x[i+3])
		s0 += a * a
		s1 += b * b
		s2 += c * c
		s3 += d * d
	}
	for ; i < len(x); i++ {
		a := float64(x[i])
		s0 += a * a
	}
	return (s0 + s1) + (s2 + s3)
}

// dot64 is Σ x·y in float64 with four independent accumulators; len(y) ≥ len(x).
func dot64(x, y []float32) float64 {
	y = y[:len(x)]
	var s0, s1, s2, s3 float64
	i := 0
	for ; i+4 <= len(x); i += 4 {
		s0 += float64(x[i]) * float64(y[i])
		s1 += float64(x[i+1]) * float64(y[i+1])
		s2 += float64(x[i+2]) * float64(y[i+2])
		s3 += float64(x[i+3]) * float64(y[i+3])
	}
	for ; i < len(x); i++ {
		s0 += float64(x[i]) * float64(y[i])
	}
	return (s0 + s1) + (s2 + s3)
}

// AddBias implements gpu.Backend. out may have any rank ≥ 1; its last
// dimension must equal bias's length.
func (b *Backend) AddBias(out, bias *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, c, err := checker.AddBias(out, bias)
	if b.fail(err) || n == 0 {
		return
	}
	defer b.actFlush()
	b.addBias(b.actInOut(out), b.actIn(bias), n, c)
}

// addBias adds bs [c] to each of the n rows of os: AddBias on float32
// values, and the bias step of the fused linear layers.
func (b *Backend) addBias(os, bs []float32, n, c int) {
	b.parallelFor(n, max(1, ewMinChunk/c), func(lo, hi int) {
		for r := lo; r < hi; r++ {
			addRow(os[r*c:(r+1)*c], bs)
		}
	})
}

// addRow adds x to y element by element, with the vector axpy where the
// machine has one: y + 1·x rounds once, as y + x does, so both give the
// same bits.
func addRow(y, x []float32) {
	if activeSkinny != nil {
		activeSkinny.axpy(y, x, 1)
		return
	}
	for j := range y {
		y[j] += x[j]
	}
}

// BiasBackward implements gpu.Backend. Rows are summed in float64 per
// worker, then added to dbias.
func (b *Backend) BiasBackward(dbias, dout *gpu.Tensor) {
	if b.err != nil {
		return
	}
	n, c, err := checker.BiasBackward(dbias, dout)
	if b.fail(err) || n == 0 {
		return
	}
	defer b.actFlush()
	ds, db := b.actIn(dout), F32(dbias)
	count, size := b.workChunks(n, max(1, ewMinReduce/c))
	partial := make([]float64, count*c)
	colSum := activeVec.Load().colSum64
	b.parallelFor(count, 1, func(c0, c1 int) {
		for k := c0; k < c1; k++ {
			acc := partial[k*c : (k+1)*c]
			for r := k * size; r < min((k+1)*size, n); r++ {
				colSum(acc, ds[r*c:(r+1)*c])
			}
		}
	})
	for j := range db {
		var s float64
		for k := 0; k < count; k++ {
			s += partial[k*c+j]
		}
		db[j] += float32(s)
	}
}

// colSum64 adds x[j] to acc[j] in float64 (vecKernel.colSum64's portable
// form).
func colSum64(acc []float64, x []float32) {
	acc = acc[:len(x)]
	for j, v := range x {
		acc[j] += float64(v)
	}
}
