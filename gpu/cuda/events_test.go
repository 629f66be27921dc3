//go:build cuda && !cudaemu

package cuda

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestTimeOps checks the device-event timer on matrix products: ten take
// longer than one, the device time fits inside the host time around the
// same work, and a failing op inside is reported, not timed.
func TestTimeOps(t *testing.T) {
	b := openTestBackend(t)
	rng := rand.New(rand.NewPCG(5, 5))
	const n = 1024
	x := devView(t, b, 3, randVals(rng, n*n), n, n)
	y := devView(t, b, 1, randVals(rng, n*n), n, n)
	z := devView(t, b, 0, randVals(rng, n*n), n, n)
	run := func(k int) func() {
		return func() {
			for range k {
				b.MatMul(z, x, y, false, false, 1, 0)
			}
		}
	}
	run(2)() // warm-up: cuBLAS handles, the first launch
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	one, err := b.TimeOps(run(1))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	ten, err := b.TimeOps(run(10))
	host := time.Since(t0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("1024³ matmul: one %v, ten %v (host %v): %.1f TFLOP/s", one, ten, host, 10*2*n*n*n/ten.Seconds()/1e12)
	if !(one > 0 && ten > 5*one && ten <= host) {
		t.Errorf("one product %v, ten %v, host time around the ten %v", one, ten, host)
	}
	bad := devView(t, b, 0, randVals(rng, 6), 2, 3)
	if _, err := b.TimeOps(func() { b.MatMul(z, bad, y, false, false, 1, 0) }); err == nil {
		t.Error("a product of mismatched shapes was timed without an error")
	}
}
