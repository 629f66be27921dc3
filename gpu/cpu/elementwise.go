package cpu

import (
	"strings"

	"github.com/instructgo/instructgo/gpu"
)

// Elementwise ops, reductions and bias ops, plus the validation helpers the
// ops in this package's other files share.

const (
	// ewMinChunk is the smallest chunk of a streaming elementwise op worth a
	// goroutine of its own (about 10µs of work).
	ewMinChunk = 1 << 15
	// ewMinReduce is the smallest chunk of a float64 reduction per worker.
	ewMinReduce = 1 << 15
)

// opArgName returns the i-th space-separated word of names, for messages.
func opArgName(names string, i int) string {
	if f := strings.Fields(names); i < len(f) {
		return f[i]
	}
	return "tensor"
}

// okF32 reports whether the op may run: no error is recorded yet and every
// tensor is a float32 cpu tensor. names lists the tensors space-separated for
// the error message. It records the first failure.
func (b *Backend) okF32(op, names string, ts ...*gpu.Tensor) bool {
	if b.err != nil {
		return false
	}
	for i, t := range ts {
		if err := checkTensor(op, opArgName(names, i), t, gpu.Float32); err != nil {
			b.fail(err)
			return false
		}
	}
	return true
}

// okI32 is okF32 for Int32 tensors.
func (b *Backend) okI32(op, names string, ts ...*gpu.Tensor) bool {
	if b.err != nil {
		return false
	}
	for i, t := range ts {
		if err := checkTensor(op, opArgName(names, i), t, gpu.Int32); err != nil {
			b.fail(err)
			return false
		}
	}
	return true
}

// okLen records an error unless every tensor has n elements.
func (b *Backend) okLen(op string, n int, names string, ts ...*gpu.Tensor) bool {
	for i, t := range ts {
		if t.Len() != n {
			b.failf("%s: %s is %v (%d elements), want %d elements", op, opArgName(names, i), t, t.Len(), n)
			return false
		}
	}
	return true
}

// viewsOverlap reports whether a and b view intersecting element ranges of
// one storage. Empty and nil tensors overlap nothing.
func viewsOverlap(a, b *gpu.Tensor) bool {
	if a == nil || b == nil || a.Len() == 0 || b.Len() == 0 || a.Storage() != b.Storage() {
		return false
	}
	return a.Offset() < b.Offset()+b.Len() && b.Offset() < a.Offset()+a.Len()
}

// sameElems reports whether a and b view exactly the same elements.
func sameElems(a, b *gpu.Tensor) bool {
	return a.Storage() == b.Storage() && a.Offset() == b.Offset() && a.Len() == b.Len()
}

// okDisjoint records an error when output out overlaps any of the other
// tensors (nil ones are skipped): the contract's "an output may not alias an
// input", which the cuda kernels rely on.
func (b *Backend) okDisjoint(op, outName string, out *gpu.Tensor, names string, ts ...*gpu.Tensor) bool {
	for i, t := range ts {
		if viewsOverlap(out, t) {
			b.failf("%s: %s %v overlaps %s %v", op, outName, out, opArgName(names, i), t)
			return false
		}
	}
	return true
}

// okInPlace records an error when out overlaps in without being exactly the
// same elements; ops documented with "out may alias inp" allow only that.
func (b *Backend) okInPlace(op, outName string, out *gpu.Tensor, inName string, in *gpu.Tensor) bool {
	if viewsOverlap(out, in) && !sameElems(out, in) {
		b.failf("%s: %s %v partly overlaps %s %v", op, outName, out, inName, in)
		return false
	}
	return true
}

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
	if !b.okF32("fill", "t", t) {
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
	const op = "copy"
	if !b.okF32(op, "dst src", dst, src) || !b.okLen(op, src.Len(), "dst", dst) ||
		!b.okDisjoint(op, "dst", dst, "src", src) {
		return
	}
	d, s := F32(dst), F32(src)
	b.parallelFor(len(d), ewMinChunk, func(lo, hi int) { copy(d[lo:hi], s[lo:hi]) })
}

// Scale implements gpu.Backend.
func (b *Backend) Scale(t *gpu.Tensor, alpha float32) {
	if !b.okF32("scale", "t", t) {
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
	const op = "axpy"
	if !b.okF32(op, "y x", y, x) || !b.okLen(op, y.Len(), "x", x) ||
		!b.okDisjoint(op, "y", y, "x", x) {
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
	const op = "add"
	if !b.okF32(op, "out a b", out, a, c) || !b.okLen(op, out.Len(), "a b", a, c) ||
		!b.okInPlace(op, "out", out, "a", a) || !b.okInPlace(op, "out", out, "b", c) {
		return
	}
	os, as, cs := F32(out), F32(a), F32(c)
	b.parallelFor(len(os), ewMinChunk, func(lo, hi int) {
		o, x, y := os[lo:hi], as[lo:hi], cs[lo:hi]
		for i := range o {
			o[i] = x[i] + y[i]
		}
	})
}

// Lerp implements gpu.Backend.
func (b *Backend) Lerp(avg, x *gpu.Tensor, t float32) {
	const op = "lerp"
	if !b.okF32(op, "avg x", avg, x) || !b.okLen(op, avg.Len(), "x", x) ||
		!b.okDisjoint(op, "avg", avg, "x", x) {
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
	const op = "sum squares"
	if !b.okF32(op, "out x", out, x) || !b.okLen(op, 1, "out", out) ||
		!b.okDisjoint(op, "out", out, "x", x) {
		return
	}
	xs := F32(x)
	s := b.sumChunks(len(xs), ewMinReduce, func(lo, hi int) float64 { return sumSquares64(xs[lo:hi]) })
	F32(out)[0] = float32(s)
}

// Dot implements gpu.Backend; it accumulates in float64.
func (b *Backend) Dot(out, x, y *gpu.Tensor) {
	const op = "dot"
	if !b.okF32(op, "out x y", out, x, y) || !b.okLen(op, 1, "out", out) ||
		!b.okLen(op, x.Len(), "y", y) || !b.okDisjoint(op, "out", out, "x y", x, y) {
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

// rowsOf returns the row count of t read as [N,C], recording an error when t
// has rank 0 or its last dimension is not c.
func (b *Backend) rowsOf(op, name string, t *gpu.Tensor, c int) (n int, ok bool) {
	if t.Rank() == 0 || t.Dim(-1) != c {
		b.failf("%s: %s is %v, want last dimension %d", op, name, t, c)
		return 0, false
	}
	if c == 0 {
		return 0, true
	}
	return t.Len() / c, true
}

// AddBias implements gpu.Backend. out may have any rank ≥ 1; its last
// dimension must equal bias's length.
func (b *Backend) AddBias(out, bias *gpu.Tensor) {
	const op = "add bias"
	if !b.okF32(op, "out bias", out, bias) || !b.okDisjoint(op, "out", out, "bias", bias) {
		return
	}
	c := bias.Len()
	n, ok := b.rowsOf(op, "out", out, c)
	if !ok || n == 0 {
		return
	}
	os, bs := F32(out), F32(bias)
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
	const op = "bias backward"
	if !b.okF32(op, "dbias dout", dbias, dout) || !b.okDisjoint(op, "dbias", dbias, "dout", dout) {
		return
	}
	c := dbias.Len()
	n, ok := b.rowsOf(op, "dout", dout, c)
	if !ok || n == 0 {
		return
	}
	ds, db := F32(dout), F32(dbias)
	count, size := b.workChunks(n, max(1, ewMinReduce/c))
	partial := make([]float64, count*c)
	b.parallelFor(count, 1, func(c0, c1 int) {
		for k := c0; k < c1; k++ {
			acc := partial[k*c : (k+1)*c]
			for r := k * size; r < min((k+1)*size, n); r++ {
				row := ds[r*c : (r+1)*c]
				for j, v := range row {
					acc[j] += float64(v)
				}
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
