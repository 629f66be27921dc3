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
