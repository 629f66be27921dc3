package cpu

import (
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// embedCase is one embedding problem with random tables, tokens drawn from a
// small subset of the vocabulary (so ids repeat) and optional positions.
type embedCase struct {
	bsz, t, c, v, maxT int
	tokens, positions  []int32 // positions nil: 0..T−1
	wte, wpe           []float32
}

func newEmbedCase(seed uint64, bsz, t, c, v, maxT int, withPos bool) embedCase {
	r := testRNG(seed)
	e := embedCase{bsz: bsz, t: t, c: c, v: v, maxT: maxT,
		wte: randn(r, v*c, 1), wpe: randn(r, maxT*c, 1)}
	e.tokens = make([]int32, bsz*t)
	for i := range e.tokens {
		e.tokens[i] = int32(r.IntN(min(v, 4))) * int32(v/min(v, 4)) // few distinct ids, repeated
	}
	e.tokens[len(e.tokens)-1] = int32(v - 1)
	if withPos {
		e.positions = make([]int32, bsz*t)
		for i := range e.positions {
			e.positions[i] = int32(r.IntN(maxT))
		}
	}
	return e
}

func (e embedCase) pos(i int) int {
	if e.positions == nil {
		return i % e.t
	}
	return int(e.positions[i])
}

func (e embedCase) tensors(tb testing.TB, b *Backend) (tokens, positions *gpu.Tensor) {
	tokens = int32Of(tb, b, e.tokens, e.bsz, e.t)
	if e.positions != nil {
		positions = int32Of(tb, b, e.positions, e.bsz, e.t)
	}
	return tokens, positions
}

func TestEmbeddingForward(t *testing.T) {
	for i, withPos := range []bool{false, true} {
		for _, sz := range [][5]int{{3, 5, 7, 11, 8}, {4, 300, 96, 50, 512}} {
			e := newEmbedCase(uint64(10+i), sz[0], sz[1], sz[2], sz[3], sz[4], withPos)
			b := New(3)
			tokens, positions := e.tensors(t, b)
			wte := tensorOf(t, b, e.wte, e.v, e.c)
			wpe := tensorOf(t, b, e.wpe, e.maxT, e.c)
			out := tensorOf(t, b, randn(testRNG(1), e.bsz*e.t*e.c, 1), e.bsz, e.t, e.c)
			b.EmbeddingForward(out, tokens, positions, wte, wpe)
			assertNoErr(t, b)
			got := F32(out)
			for n := 0; n < e.bsz*e.t; n++ {
				tok, p := int(e.tokens[n]), e.pos(n)
				for j := 0; j < e.c; j++ {
					if want := e.wte[tok*e.c+j] + e.wpe[p*e.c+j]; got[n*e.c+j] != want {
						t.Fatalf("positions %v: out[%d,%d] = %v, want %v", withPos, n, j, got[n*e.c+j], want)
					}
				}
			}
		}
	}
}

func TestEmbeddingBackward(t *testing.T) {
	for i, withPos := range []bool{false, true} {
		for _, sz := range [][5]int{{2, 3, 5, 6, 4}, {4, 600, 100, 50, 700}} {
			e := newEmbedCase(uint64(20+i), sz[0], sz[1], sz[2], sz[3], sz[4], withPos)
			r := testRNG(uint64(30 + i))
			n := e.bsz * e.t
			douts := randn(r, n*e.c, 1)
			preE, preP := randn(r, e.v*e.c, 1), randn(r, e.maxT*e.c, 1)
			wantE, wantP := to64(preE), to64(preP)
			for k := 0; k < n; k++ {
				tok, p := int(e.tokens[k]), e.pos(k)
				for j := 0; j < e.c; j++ {
					wantE[tok*e.c+j] += float64(douts[k*e.c+j])
					wantP[p*e.c+j] += float64(douts[k*e.c+j])
				}
			}
			b := New(3)
			tokens, positions := e.tensors(t, b)
			dout := tensorOf(t, b, douts, e.bsz, e.t, e.c)
			dwte := tensorOf(t, b, preE, e.v, e.c)
			dwpe := tensorOf(t, b, preP, e.maxT, e.c)
			b.EmbeddingBackward(dwte, dwpe, dout, tokens, positions)
			assertNoErr(t, b)
			checkCloseLog(t, "dwte", F32(dwte), wantE, 1e-6)
			checkCloseLog(t, "dwpe", F32(dwpe), wantP, 1e-6)

			// Either gradient may be nil; the other still accumulates.
			dwte2 := tensorOf(t, b, preE, e.v, e.c)
			b.EmbeddingBackward(dwte2, nil, dout, tokens, positions)
			checkCloseLog(t, "dwte alone", F32(dwte2), wantE, 1e-6)
			dwpe2 := tensorOf(t, b, preP, e.maxT, e.c)
			b.EmbeddingBackward(nil, dwpe2, dout, tokens, positions)
			checkCloseLog(t, "dwpe alone", F32(dwpe2), wantP, 1e-6)
			assertNoErr(t, b)
		}
	}
}

// TestEmbeddingBackwardFiniteDiff checks the scatter against central finite
// differences of L = Σ dout·out in float64.
func TestEmbeddingBackwardFiniteDiff(t *testing.T) {
	for i, withPos := range []bool{false, true} {
		e := newEmbedCase(uint64(40+i), 2, 4, 3, 5, 6, withPos)
		n := e.bsz * e.t
		douts := randn(testRNG(41), n*e.c, 1)
		wte64, wpe64 := to64(e.wte), to64(e.wpe)
		loss := func() float64 {
			var l float64
			for k := 0; k < n; k++ {
				tok, p := int(e.tokens[k]), e.pos(k)
				for j := 0; j < e.c; j++ {
					l += float64(douts[k*e.c+j]) * (wte64[tok*e.c+j] + wpe64[p*e.c+j])
				}
			}
			return l
		}
		gE, gP := numGrad(wte64, loss), numGrad(wpe64, loss)
		b := New(2)
		tokens, positions := e.tensors(t, b)
		dout := tensorOf(t, b, douts, e.bsz, e.t, e.c)
		dwte, _ := b.Alloc(gpu.Float32, e.v, e.c)
		dwpe, _ := b.Alloc(gpu.Float32, e.maxT, e.c)
		b.EmbeddingBackward(dwte, dwpe, dout, tokens, positions)
		assertNoErr(t, b)
		checkCloseLog(t, "dwte vs finite differences", F32(dwte), gE, 1e-6)
		checkCloseLog(t, "dwpe vs finite differences", F32(dwpe), gP, 1e-6)
	}
}
