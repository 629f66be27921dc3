//go:build mpi

package mpi

import (
	"math"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/internal/mpitest"
)

// rankData is rank r's random input, which every rank can make.
func rankData(r, n int) []float32 {
	rng := rand.New(rand.NewPCG(42, uint64(r)))
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// TestMPICollectives runs as 3 ranks (an odd count, so no collective can lean
// on pairs): all-reduce against a float64 sum of every rank's random
// input, broadcast from a non-zero root, all-gather, barrier, a bad root.
func TestMPICollectives(t *testing.T) {
	if !mpitest.Ranks(t, 3, time.Minute) {
		return
	}
	b := cpu.New(1)
	c, err := Open(b)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Size() != 3 {
		t.Fatalf("size %d, want 3", c.Size())
	}
	const n = 1000
	x, err := b.Alloc(gpu.Float32, n)
	if err != nil {
		t.Fatal(err)
	}
	copy(cpu.F32(x), rankData(c.Rank(), n))
	if err := c.AllReduceSum(x); err != nil {
		t.Fatal(err)
	}
	for i, got := range cpu.F32(x) {
		want, mag := 0.0, 0.0
		for r := 0; r < c.Size(); r++ {
			v := float64(rankData(r, n)[i])
			want += v
			mag += math.Abs(v)
		}
		// Two float32 additions, each within half an ulp of the magnitude.
		if math.Abs(float64(got)-want) > 2*mag*(1.0/(1<<24)) {
			t.Fatalf("rank %d: sum[%d] = %v, want %v", c.Rank(), i, got, want)
		}
	}

	copy(cpu.F32(x), rankData(10+c.Rank(), n))
	if err := c.Broadcast(x, 2); err != nil {
		t.Fatal(err)
	}
	for i, v := range rankData(12, n) {
		if cpu.F32(x)[i] != v {
			t.Fatalf("rank %d: broadcast[%d] = %v, want root 2's %v", c.Rank(), i, cpu.F32(x)[i], v)
		}
	}
	if err := c.Broadcast(x, 3); err == nil {
		t.Fatal("broadcast from root 3 of 3 ranks: no error")
	}

	all, err := c.AllGather([]float64{float64(c.Rank()) + 0.5, -float64(c.Rank())})
	if err != nil {
		t.Fatal(err)
	}
	for r := 0; r < 3; r++ {
		if all[2*r] != float64(r)+0.5 || all[2*r+1] != -float64(r) {
			t.Fatalf("rank %d: all-gather %v", c.Rank(), all)
		}
	}
	sum, err := gpu.SumOverRanks(c, 1.5, float64(c.Rank()))
	if err != nil || sum[0] != 4.5 || sum[1] != 3 {
		t.Fatalf("sum over ranks %v, %v", sum, err)
	}
	if err := c.Barrier(); err != nil {
		t.Fatal(err)
	}
}

// TestMPIPulse runs as 3 ranks: rank 0 serves the heartbeats, every rank
// connects through OpenPulse, and each hears every rank's sequence number.
func TestMPIPulse(t *testing.T) {
	if !mpitest.Ranks(t, 3, time.Minute) {
		return
	}
	c, err := Open(cpu.New(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := c.OpenPulse()
	if err != nil {
		t.Fatal(err)
	}
	seq := int64(100 + c.Rank())
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		beats, err := p.Beat(seq, c.Rank() == 1)
		if err != nil {
			t.Fatal(err)
		}
		heard := 0
		for r, b := range beats {
			if b.Heard && b.Seq == int64(100+r) && b.Busy == (r == 1) && b.Rank == r {
				heard++
			}
		}
		if heard == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rank %d hears %+v", c.Rank(), beats)
		}
	}
	// Rank 0's server must outlive the others' last heartbeats.
	if err := c.Barrier(); err != nil {
		t.Fatal(err)
	}
	p.Close()
}

// stopEnv makes the ranks of TestMPIWatchdogStoppedRank run the scenario.
const stopEnv = "INSTRUCTGO_MPI_STOP_TEST"

// TestMPIWatchdogStoppedRank: 2 ranks with a watchdog of 2 s; after a few
// barriers rank 1 stops itself (SIGSTOP, as a paused machine). Rank 0's
// watchdog must end the job within the timeout and a few seconds, naming
// rank 1.
func TestMPIWatchdogStoppedRank(t *testing.T) {
	const timeout = 2 * time.Second
	if !mpitest.InRank() {
		start := time.Now()
		out, err := mpitest.Run(t, 2, time.Minute, stopEnv+"=1")
		took := time.Since(start)
		if err == nil {
			t.Fatalf("the job with a stopped rank succeeded:\n%s", out)
		}
		// Named by its silent heartbeat, or, if something continued it
		// for a moment (StopSelf), as the rank that has not arrived.
		if !strings.Contains(string(out), "rank 1 has sent no heartbeat") && !strings.Contains(string(out), "rank 1 is alive but has not reached") {
			t.Errorf("the job's output does not name rank 1:\n%s", out)
		}
		t.Logf("the job ended %.1fs after it started (%v): %v", took.Seconds(), timeout, err)
		if took > timeout+15*time.Second {
			t.Errorf("the job took %v, want about the timeout %v", took, timeout)
		}
		return
	}
	if os.Getenv(stopEnv) == "" {
		t.Skip("not this test's job")
	}
	c, err := Open(cpu.New(1))
	if err != nil {
		t.Fatal(err)
	}
	p, err := c.OpenPulse()
	if err != nil {
		t.Fatal(err)
	}
	w, err := gpu.Watched(c, gpu.WatchOptions{Timeout: timeout, Pulse: p})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if err := w.Barrier(); err != nil {
			t.Fatal(err)
		}
	}
	if c.Rank() == 1 {
		mpitest.StopSelf(3 * timeout)
	}
	w.Barrier()
	t.Fatalf("rank %d: the barrier after rank 1 stopped returned", c.Rank())
}
