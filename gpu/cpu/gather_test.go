package cpu

import (
	"testing"
)

func TestGatherScatterRows(t *testing.T) {
	const B, T, C = 3, 5, 7
	r := testRNG(21)
	inp := randn(r, B*T*C, 1)
	idx := []int32{4, 0, 2}
	b := New(2)
	x := tensorOf(t, b, inp, B, T, C)
	ix := int32Of(t, b, idx, B)
	out := tensorOf(t, b, randn(r, B*C, 1), B, C)
	b.GatherRows(out, x, ix)
	assertNoErr(t, b)
	for i := 0; i < B; i++ {
		for c := 0; c < C; c++ {
			if got, want := F32(out)[i*C+c], inp[(i*T+int(idx[i]))*C+c]; got != want {
				t.Fatalf("out[%d,%d] = %v, want %v", i, c, got, want)
			}
		}
	}

	// Scatter-add accumulates into the picked rows only, twice over.
	dinp0 := randn(r, B*T*C, 1)
	dout := randn(r, B*C, 1)
	dinp := tensorOf(t, b, dinp0, B, T, C)
	d := tensorOf(t, b, dout, B, C)
	b.ScatterAddRows(dinp, d, ix)
	b.ScatterAddRows(dinp, d, ix)
	assertNoErr(t, b)
	for i := 0; i < B; i++ {
		for tt := 0; tt < T; tt++ {
			for c := 0; c < C; c++ {
				k := (i*T+tt)*C + c
				want := dinp0[k]
				if tt == int(idx[i]) {
					want = (dinp0[k] + dout[i*C+c]) + dout[i*C+c]
				}
				if got := F32(dinp)[k]; got != want {
					t.Fatalf("dinp[%d,%d,%d] = %v, want %v", i, tt, c, got, want)
				}
			}
		}
	}
}

func TestGatherRowsBadInput(t *testing.T) {
	const B, T, C = 2, 4, 3
	r := testRNG(22)
	cases := []struct {
		name string
		run  func(t *testing.T, b *Backend)
	}{
		{"gather idx = T", func(t *testing.T, b *Backend) {
			b.GatherRows(tensorOf(t, b, randn(r, B*C, 1), B, C), tensorOf(t, b, randn(r, B*T*C, 1), B, T, C), int32Of(t, b, []int32{0, T}, B))
		}},
		{"gather idx negative", func(t *testing.T, b *Backend) {
			b.GatherRows(tensorOf(t, b, randn(r, B*C, 1), B, C), tensorOf(t, b, randn(r, B*T*C, 1), B, T, C), int32Of(t, b, []int32{-1, 0}, B))
		}},
		{"gather out wrong shape", func(t *testing.T, b *Backend) {
			b.GatherRows(tensorOf(t, b, randn(r, B*C, 1), C, B), tensorOf(t, b, randn(r, B*T*C, 1), B, T, C), int32Of(t, b, []int32{1, 0}, B))
		}},
		{"gather inp rank 2", func(t *testing.T, b *Backend) {
			b.GatherRows(tensorOf(t, b, randn(r, B*C, 1), B, C), tensorOf(t, b, randn(r, B*T*C, 1), B*T, C), int32Of(t, b, []int32{1, 0}, B))
		}},
		{"gather idx float32", func(t *testing.T, b *Backend) {
			b.GatherRows(tensorOf(t, b, randn(r, B*C, 1), B, C), tensorOf(t, b, randn(r, B*T*C, 1), B, T, C), tensorOf(t, b, []float32{1, 0}, B))
		}},
		{"gather idx wrong length", func(t *testing.T, b *Backend) {
			b.GatherRows(tensorOf(t, b, randn(r, B*C, 1), B, C), tensorOf(t, b, randn(r, B*T*C, 1), B, T, C), int32Of(t, b, []int32{1, 0, 0}, 3))
		}},
		{"scatter idx = T", func(t *testing.T, b *Backend) {
			b.ScatterAddRows(tensorOf(t, b, randn(r, B*T*C, 1), B, T, C), tensorOf(t, b, randn(r, B*C, 1), B, C), int32Of(t, b, []int32{T, 0}, B))
		}},
		{"scatter dout wrong shape", func(t *testing.T, b *Backend) {
			b.ScatterAddRows(tensorOf(t, b, randn(r, B*T*C, 1), B, T, C), tensorOf(t, b, randn(r, B*C+C, 1), B+1, C), int32Of(t, b, []int32{1, 0}, B))
		}},
		{"scatter dinp nil", func(t *testing.T, b *Backend) {
			b.ScatterAddRows(nil, tensorOf(t, b, randn(r, B*C, 1), B, C), int32Of(t, b, []int32{1, 0}, B))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b := New(1)
			c.run(t, b)
			if b.Err() == nil {
				t.Fatal("no error recorded")
			}
			t.Logf("error: %v", b.Err())
			// Sticky: a valid call afterwards does nothing.
			out := tensorOf(t, b, []float32{1, 2, 3, 4, 5, 6}, B, C)
			b.GatherRows(out, tensorOf(t, b, randn(r, B*T*C, 1), B, T, C), int32Of(t, b, []int32{1, 0}, B))
			for i, v := range F32(out) {
				if v != float32(i+1) {
					t.Fatal("gather ran after an error")
				}
			}
		})
	}
}
