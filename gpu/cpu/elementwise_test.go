package cpu

import (
	"testing"
)

// Sizes used across these tests: an odd length spanning several parallel
// chunks with a ragged tail, and a small one that stays on one worker.
const (
	ewBig   = 3*ewMinChunk + 1237
	ewSmall = 37
)

// checkCloseLog is assertClose that also logs the relative error, so
// `go test -v` shows the accuracy actually reached.
func checkCloseLog(t testing.TB, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) == len(want) {
		t.Logf("%s: relative error %.3g", what, relErr(got, want))
	}
	assertClose(t, what, got, want, tol)
}

func TestFillCopyScale(t *testing.T) {
	r := testRNG(1)
	for _, n := range []int{ewSmall, ewBig} {
		b := New(3)
		src := randn(r, n, 1)
		x := tensorOf(t, b, src, n)
		y := tensorOf(t, b, randn(r, n, 1), n)
		b.Copy(y, x)
		assertNoErr(t, b)
		checkCloseLog(t, "copy", F32(y), to64(src), 0)

		alpha := float32(-1.7)
		b.Scale(y, alpha)
		want := make([]float64, n)
		for i, v := range src {
			want[i] = float64(v) * float64(alpha)
		}
		checkCloseLog(t, "scale", F32(y), want, 1e-7)

		b.Fill(y, 0.375)
		for i := range want {
			want[i] = 0.375
		}
		assertNoErr(t, b)
		checkCloseLog(t, "fill", F32(y), want, 0)
	}
}

func TestAxpyAddLerp(t *testing.T) {
	r := testRNG(2)
	for _, n := range []int{ewSmall, ewBig} {
		b := New(3)
		xs, ys, zs := randn(r, n, 1), randn(r, n, 1), randn(r, n, 1)
		x := tensorOf(t, b, xs, n)
		y := tensorOf(t, b, ys, n)
		z := tensorOf(t, b, zs, n)
		out := tensorOf(t, b, randn(r, n, 1), n)

		alpha := float32(0.3)
		b.Axpy(y, alpha, x)
		want := make([]float64, n)
		for i := range want {
			want[i] = float64(ys[i]) + float64(alpha)*float64(xs[i])
		}
		checkCloseLog(t, "axpy", F32(y), want, 1e-7)

		b.Add(out, x, z)
		for i := range want {
			want[i] = float64(xs[i]) + float64(zs[i])
		}
		checkCloseLog(t, "add", F32(out), want, 1e-7)
		// Residual in place: out aliases a.
		b.Add(z, z, x)
		checkCloseLog(t, "add in place", F32(z), want, 1e-7)

		avg := tensorOf(t, b, ys, n)
		tt := float32(0.01)
		b.Lerp(avg, x, tt)
		for i := range want {
			want[i] = float64(ys[i]) + float64(tt)*(float64(xs[i])-float64(ys[i]))
		}
		checkCloseLog(t, "lerp", F32(avg), want, 1e-7)
		assertNoErr(t, b)
	}
}

func TestSumSquaresDot(t *testing.T) {
	r := testRNG(3)
	for _, n := range []int{1, ewSmall, ewBig, 4*ewMinReduce + 3} {
		for _, threads := range []int{1, 3} {
			b := New(threads)
			xs, ys := randn(r, n, 2), randn(r, n, 1)
			// A large offset makes float32 accumulation visibly wrong.
			for i := range xs {
				xs[i] += 10
			}
			x, y := tensorOf(t, b, xs, n), tensorOf(t, b, ys, n)
			out := tensorOf(t, b, []float32{5}, 1)
			var ss, d float64
			for i := range xs {
				ss += float64(xs[i]) * float64(xs[i])
				d += float64(xs[i]) * float64(ys[i])
			}
			b.SumSquares(out, x)
			checkCloseLog(t, "sum squares", F32(out), []float64{ss}, 1e-7)
			b.Dot(out, x, y)
			checkCloseLog(t, "dot", F32(out), []float64{d}, 1e-6)
			b.Dot(out, x, x) // x·x is allowed: only the output must not alias.
			checkCloseLog(t, "dot x x", F32(out), []float64{ss}, 1e-7)
			assertNoErr(t, b)
		}
	}
}

func TestAddBiasBiasBackward(t *testing.T) {
	r := testRNG(4)
	for _, sz := range [][3]int{{2, 3, 5}, {8, 300, 64}, {3, 7, 131}} {
		bt, nt, c := sz[0], sz[1], sz[2]
		n := bt * nt
		b := New(3)
		outs, biases := randn(r, n*c, 1), randn(r, c, 1)
		out := tensorOf(t, b, outs, bt, nt, c)
		bias := tensorOf(t, b, biases, c)
		b.AddBias(out, bias)
		want := make([]float64, n*c)
		for i := range want {
			want[i] = float64(outs[i]) + float64(biases[i%c])
		}
		checkCloseLog(t, "add bias", F32(out), want, 1e-7)
		// The vector path (addRow) gives the float32 sums bit for bit.
		for i, v := range F32(out) {
			if w := outs[i] + biases[i%c]; v != w {
				t.Fatalf("add bias [%d] (width %d): %v, want the float32 sum %v", i, c, v, w)
			}
		}

		douts, pre := randn(r, n*c, 1), randn(r, c, 1)
		dout := tensorOf(t, b, douts, n, c)
		dbias := tensorOf(t, b, pre, c)
		b.BiasBackward(dbias, dout)
		wantB := to64(pre)
		for i, v := range douts {
			wantB[i%c] += float64(v)
		}
		checkCloseLog(t, "bias backward", F32(dbias), wantB, 1e-6)
		assertNoErr(t, b)

		// Finite differences of L = Σ g·(out + bias) with respect to bias.
		g := to64(douts)
		bias64 := to64(biases)
		fd := numGrad(bias64, func() float64 {
			var l float64
			for i := range g {
				l += g[i] * (float64(outs[i]) + bias64[i%c])
			}
			return l
		})
		for j := range fd {
			fd[j] += float64(pre[j])
		}
		checkCloseLog(t, "bias backward vs finite differences", F32(dbias), fd, 1e-6)
	}
}
