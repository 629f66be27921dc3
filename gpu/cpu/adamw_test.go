package cpu

import (
	"math"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// adamW64 is the float64 reference update, written from the contract.
func adamW64(p, g, m, v []float64, normSq float64, useNorm bool, h gpu.AdamW) (clipped bool) {
	gs := float64(h.GradScale)
	if gs == 0 {
		gs = 1
	}
	s := gs
	if useNorm && h.MaxNorm > 0 {
		norm := math.Abs(gs) * math.Sqrt(normSq)
		s = gs * math.Min(1, float64(h.MaxNorm)/norm)
		clipped = norm > float64(h.MaxNorm)
	}
	b1, b2 := float64(h.Beta1), float64(h.Beta2)
	bc1 := 1 - math.Pow(b1, float64(h.Step))
	bc2 := 1 - math.Pow(b2, float64(h.Step))
	for i := range p {
		gi := g[i] * s
		m[i] = b1*m[i] + (1-b1)*gi
		v[i] = b2*v[i] + (1-b2)*gi*gi
		p[i] -= float64(h.LR) * (m[i]/bc1/(math.Sqrt(v[i]/bc2)+float64(h.Eps)) + float64(h.WeightDecay)*p[i])
	}
	return clipped
}

func TestAdamW(t *testing.T) {
	base := gpu.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8}
	for _, tc := range []struct {
		name     string
		n        int
		maxNorm  float32
		scale    float32
		wd       float32
		noNorm   bool
		wantClip bool
	}{
		{name: "clip inactive, weight decay", n: 1000, maxNorm: 1e6, scale: 1, wd: 0.1},
		{name: "clip active, grad scale", n: 1000, maxNorm: 0.5, scale: 0.25, wd: 0.1, wantClip: true},
		{name: "grad scale 0 means 1, no normSq", n: 517, scale: 0, maxNorm: 1, noNorm: true},
		{name: "max norm 0 disables clipping", n: 517, scale: 0.5, maxNorm: 0, wd: 0.01},
		{name: "large, clip active", n: ewBig, maxNorm: 1, scale: 0.5, wd: 0.1, wantClip: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := testRNG(uint64(90 + tc.n))
			b := New(3)
			ps := randn(r, tc.n, 1)
			p64 := to64(ps)
			m64, v64 := make([]float64, tc.n), make([]float64, tc.n)
			params := tensorOf(t, b, ps, tc.n)
			grads, _ := b.Alloc(gpu.Float32, tc.n)
			m, _ := b.Alloc(gpu.Float32, tc.n)
			v, _ := b.Alloc(gpu.Float32, tc.n)
			normSq, _ := b.Alloc(gpu.Float32, 1)
			h := base
			h.MaxNorm, h.GradScale, h.WeightDecay = tc.maxNorm, tc.scale, tc.wd
			for step := 1; step <= 6; step++ {
				h.Step = step
				gs := randn(r, tc.n, 1+float64(step))
				if err := b.Upload(grads, gs); err != nil {
					t.Fatal(err)
				}
				var ns float64
				for _, x := range gs {
					ns += float64(x) * float64(x)
				}
				b.SumSquares(normSq, grads)
				nsT := normSq
				if tc.noNorm {
					nsT = nil
				}
				b.AdamW(params, nil, grads, m, v, nsT, h)
				assertNoErr(t, b)
				clipped := adamW64(p64, to64(gs), m64, v64, ns, !tc.noNorm, h)
				if clipped != tc.wantClip {
					t.Fatalf("step %d: clipping active = %v, want %v", step, clipped, tc.wantClip)
				}
			}
			checkCloseLog(t, "params", F32(params), p64, 1e-6)
			checkCloseLog(t, "m", F32(m), m64, 1e-6)
			checkCloseLog(t, "v", F32(v), v64, 1e-6)
			// The update itself, relative to its own size.
			d32, d64 := make([]float32, tc.n), make([]float64, tc.n)
			for i := range ps {
				d32[i] = F32(params)[i] - ps[i]
				d64[i] = p64[i] - float64(ps[i])
			}
			checkCloseLog(t, "params − initial", d32, d64, 1e-4)
		})
	}
}

// TestAdamWKernels: every kernel set's AdamW gives the generic kernel's
// bits (the same float32 operations in the same order; the generic Go is
// compiled without fused multiply-adds, as at the default GOAMD64), on
// random moments and gradients of many sizes (whole groups of 8 and
// tails), including zero and tiny second moments.
func TestAdamWKernels(t *testing.T) {
	k := adamWConsts{scale: 0.7, b1: 0.9, c1: 1 - float32(0.9), b2: 0.95, c2: 1 - float32(0.95),
		ibc1: float32(1 / (1 - math.Pow(0.9, 3))), ibc2: float32(1 / (1 - math.Pow(0.95, 3))),
		eps: 1e-8, lr: 3e-4, wd: 0.1}
	for _, kern := range vecKernels() {
		for _, n := range []int{1, 7, 8, 9, 63, 64, 1001} {
			r := testRNG(uint64(300 + n))
			p, g, m := randn(r, n, 1), randn(r, n, 2), randn(r, n, 0.1)
			v := randn(r, n, 0.01)
			for i := range v {
				v[i] *= v[i]
				if i%5 == 0 {
					v[i], g[i] = 0, 0 // v̂ = 0: the update is m̂/ε
				}
			}
			want := [4][]float32{append([]float32(nil), p...), g, append([]float32(nil), m...), append([]float32(nil), v...)}
			adamWGeneric(want[0], want[1], want[2], want[3], &k)
			kern.adamw(p, g, m, v, &k)
			for i := range p {
				if math.Float32bits(p[i]) != math.Float32bits(want[0][i]) || math.Float32bits(m[i]) != math.Float32bits(want[2][i]) ||
					math.Float32bits(v[i]) != math.Float32bits(want[3][i]) {
					t.Fatalf("%s, n=%d, element %d: p %v m %v v %v, generic %v %v %v", kern.name, n, i, p[i], m[i], v[i], want[0][i], want[2][i], want[3][i])
				}
			}
		}
	}
}
