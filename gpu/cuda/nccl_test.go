//go:build cuda && !cudaemu

package cuda

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
)

// TestNCCLWorldSizeOne runs NCCL as a data-parallel run of one rank opens
// it (our TCP store as the rendezvous, the unique id through it) and
// checks that every collective leaves a rank's values as they are, so a
// run through NCCL at world size 1 gives the results of a run without it:
// the gradient buffer of a real backward pass, all-reduced, is the same
// bit for bit, and so are broadcast, barrier and all-gather. It runs on a
// GPU only (the emulated build has no NCCL); a machine without an NCCL
// library skips it, saying which were tried.
func TestNCCLWorldSizeOne(t *testing.T) {
	b := openTestBackend(t)
	store, err := gpu.OpenStore("127.0.0.1:0", 0, 1, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	c, err := OpenNCCL(b, store, 0, 1)
	if err != nil {
		store.Close()
		if strings.Contains(err.Error(), "no library loads") {
			t.Skipf("no NCCL on this machine: %v", err)
		}
		t.Fatal(err)
	}
	defer c.Close()
	t.Logf("NCCL %s", c.Version())

	// A real gradient: one training backward pass of a small GPT-2.
	cfg := modelParityConfig()
	const B, T = 2, 24
	batch, init, _, _, dlogp, dent := modelStepInputs(newRNG(52), cfg, B, T, false)
	m, err := model.New(b, cfg, model.Options{MaxBatch: B, MaxSeq: T, Train: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(m.Params.All, init); err != nil {
		t.Fatal(err)
	}
	up := func(vals []float32) *gpu.Tensor {
		x, err := b.Alloc(gpu.Float32, len(vals))
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Upload(x, vals); err != nil {
			t.Fatal(err)
		}
		return x
	}
	b.Fill(m.Grads.All, 0)
	if err := m.Forward(batch, true, 12345); err != nil {
		t.Fatal(err)
	}
	if err := m.Backward(up(dlogp), up(dent)); err != nil {
		t.Fatal(err)
	}
	before := download(t, b, m.Grads.All)
	nonzero := 0
	for _, v := range before {
		if v != 0 {
			nonzero++
		}
	}
	if nonzero < len(before)/2 {
		t.Fatalf("the gradient has %d non-zero values of %d: not a test of the all-reduce", nonzero, len(before))
	}
	if err := c.AllReduceSum(m.Grads.All); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "all-reduced gradient", download(t, b, m.Grads.All), before)

	params := download(t, b, m.Params.All)
	if err := c.Broadcast(m.Params.All, 0); err != nil {
		t.Fatal(err)
	}
	sameBits(t, "broadcast weights", download(t, b, m.Params.All), params)
	if err := c.Barrier(); err != nil {
		t.Fatal(err)
	}
	local := []float64{1.5, -2.25, math.Pi}
	all, err := c.AllGather(local)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != len(local) || all[0] != local[0] || all[1] != local[1] || all[2] != local[2] {
		t.Errorf("all-gather of %v gave %v", local, all)
	}
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
}
