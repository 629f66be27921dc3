package cpu

import "github.com/instructgo/instructgo/gpu"

// Activations in bf16. The contract's rounding points (docs/PRECISION.md):
// an op reads its bf16 inputs exactly, computes in float32 and rounds each
// bf16 output element once; "+=" into a bf16 output widens the old value,
// adds in float32 and rounds once. Every op meets them with one mechanism:
// it asks for the float32 values of each activation-class argument through
// actIn (an input), actOut (an output it overwrites) or actInOut (an output
// it reads: "+=", in place) and defers actFlush. For a float32 tensor these
// return the tensor's own slice and actFlush has nothing to do; for a bf16
// one they return float32 scratch, widened from the tensor unless it is a
// pure output, and actFlush rounds the scratch of every output into its
// tensor. The float32 kernel in between is the float32 op itself, so a
// bf16 call gives exactly the bits of the float32 op run on the widened
// inputs, with its bf16 outputs rounded.
//
// A tensor asked for twice in one op (out aliasing inp, A = B) gets one
// scratch, so in-place ops stay in place. The scratch lives in a pool owned
// by the backend: after the first calls of each shape, ops allocate none.
// Like the rest of a Backend, it is not safe for concurrent use.

// actStage is the scratch of the op running now and the pool it comes from.
type actStage struct {
	staged []stagedAct
	// free holds the pooled buffers not in use; their number stays at the
	// most any one op has used at once.
	free [][]float32
}

// stagedAct is one bf16 argument of the running op and its float32 scratch.
type stagedAct struct {
	t     *gpu.Tensor
	f     []float32
	read  bool // f holds t's values, widened
	write bool // actFlush rounds f into t
}

// actIn returns the float32 values of an activation-class input t (nil for
// nil).
func (b *Backend) actIn(t *gpu.Tensor) []float32 { return b.stage(t, true, false) }

// actOut returns where the op writes an activation-class output t that it
// overwrites whole: t's own slice, or scratch of stale contents.
func (b *Backend) actOut(t *gpu.Tensor) []float32 { return b.stage(t, false, true) }

// actInOut returns the float32 values of an activation-class output t the
// op also reads (it accumulates into t or works in place).
func (b *Backend) actInOut(t *gpu.Tensor) []float32 { return b.stage(t, true, true) }

// stage returns the float32 values of t for the running op: t's own slice
// for a float32 tensor, else t's scratch (one per tensor and op), widened
// from t if read.
func (b *Backend) stage(t *gpu.Tensor, read, write bool) []float32 {
	switch {
	case t == nil:
		return nil
	case t.DType() != gpu.BF16:
		return F32(t)
	}
	st := &b.act
	for i := range st.staged {
		e := &st.staged[i]
		if !gpu.SameElems(e.t, t) {
			continue
		}
		if read && !e.read {
			b.widen(e.f, BF(t))
			e.read = true
		}
		e.write = e.write || write
		return e.f
	}
	f := st.scratch(t.Len())
	if read {
		b.widen(f, BF(t))
	}
	st.staged = append(st.staged, stagedAct{t: t, f: f, read: read, write: write})
	return f
}

// actFlush ends the running op's use of bf16 scratch: it rounds each
// output's scratch into its tensor, once, and returns the scratch to the
// pool. Ops defer it, so no scratch outlives its op.
func (b *Backend) actFlush() {
	st := &b.act
	for i := range st.staged {
		e := &st.staged[i]
		if e.write {
			b.round(BF(e.t), e.f)
		}
		st.free = append(st.free, e.f[:0])
		*e = stagedAct{}
	}
	st.staged = st.staged[:0]
}

// scratch takes the smallest free buffer of at least n floats from the
// pool. When none is large enough it allocates one in place of the largest
// free buffer, so the pool keeps as many buffers as an op needs at once,
// each as large as the largest request it served.
func (st *actStage) scratch(n int) []float32 {
	best, largest := -1, -1
	for i, f := range st.free {
		if cap(f) >= n && (best < 0 || cap(f) < cap(st.free[best])) {
			best = i
		}
		if largest < 0 || cap(f) > cap(st.free[largest]) {
			largest = i
		}
	}
	if best < 0 {
		f := make([]float32, n)
		if largest < 0 {
			return f
		}
		best, st.free[largest] = largest, f
	}
	f := st.free[best][:n]
	last := len(st.free) - 1
	st.free[best], st.free[last] = st.free[last], nil
	st.free = st.free[:last]
	return f
}

// widen stores the bf16 values src, widened exactly, in dst (len(src)),
// with the active kernel set, in parallel when that pays.
func (b *Backend) widen(dst []float32, src []uint16) {
	f := activeVec.Load().widenBF16
	if b.threads == 1 || len(src) <= bf16MinChunk {
		f(dst, src) // no closure: no allocation
		return
	}
	b.parallelFor(len(src), bf16MinChunk, func(lo, hi int) { f(dst[lo:hi], src[lo:hi]) })
}

// round stores src rounded to bf16 in dst (len(src)), as widen does.
func (b *Backend) round(dst []uint16, src []float32) {
	f := activeVec.Load().roundBF16
	if b.threads == 1 || len(src) <= bf16MinChunk {
		f(dst, src)
		return
	}
	b.parallelFor(len(src), bf16MinChunk, func(lo, hi int) { f(dst[lo:hi], src[lo:hi]) })
}

// bf16MinChunk is the smallest chunk of a conversion worth a worker of its
// own.
const bf16MinChunk = 4 * ewMinChunk

// roundBF16 stores src rounded to bf16 (gpu.BF16Bits) in dst.
func roundBF16(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = gpu.BF16Bits(x)
	}
}

// widenBF16 stores the bf16 values src, widened exactly, in dst.
func widenBF16(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	for i, x := range src {
		dst[i] = gpu.BF16Float(x)
	}
}
