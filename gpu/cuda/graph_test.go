//go:build cuda

package cuda

import (
	"testing"
)

// TestGraphRecordsAndReplays captures two ops, checks that capturing runs
// nothing, that each Launch runs them again on the memory's current
// contents, and that a transfer while capturing is an error.
func TestGraphRecordsAndReplays(t *testing.T) {
	b := openTestBackend(t)
	rng := newRNG(5)
	x0 := randVals(rng, 37)
	x := devView(t, b, 0, x0, 37)
	y := devView(t, b, 0, randVals(rng, 37), 37)
	if err := b.BeginCapture(); err != nil {
		t.Fatal(err)
	}
	b.Scale(x, 2)  // x = 2x
	b.Add(y, x, x) // y = 4x
	g, err := b.EndCapture()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if got := download(t, b, x); got[3] != x0[3] {
		t.Fatalf("capturing ran the ops: x[3] = %v, was %v", got[3], x0[3])
	}
	for round := 1; round <= 2; round++ {
		if err := g.Launch(); err != nil {
			t.Fatal(err)
		}
		scale := float32(int(1) << round)
		gx, gy := download(t, b, x), download(t, b, y)
		for i := range x0 {
			if gx[i] != scale*x0[i] || gy[i] != 2*scale*x0[i] {
				t.Fatalf("replay %d: x[%d] = %v, y = %v; want %v, %v", round, i, gx[i], gy[i], scale*x0[i], 2*scale*x0[i])
			}
		}
	}

	if err := b.BeginCapture(); err != nil {
		t.Fatal(err)
	}
	err = b.Upload(x, x0)
	if _, end := b.EndCapture(); err == nil || end == nil {
		t.Fatalf("an upload while capturing: %v, end capture: %v; want errors", err, end)
	}
}
