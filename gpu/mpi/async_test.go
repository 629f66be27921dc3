//go:build mpi

package mpi

import (
	"encoding/binary"
	"hash/fnv"
	"math"
	"testing"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/internal/mpitest"
)

// TestMPIStartAllReduce runs as 3 ranks: a buffer of random values is
// summed as several started all-reduces of its pieces (driven by Test,
// then waited for, through the watchdog) and, as a copy, by one blocking
// AllReduceSum; each piece must be a float32 sum within rounding of the
// float64 sum, and every rank must hold the same bits. How many elements
// differ from the blocking all-reduce (3 ranks: the order of the sums may
// differ between algorithms) is logged.
func TestMPIStartAllReduce(t *testing.T) {
	if !mpitest.Ranks(t, 3, time.Minute) {
		return
	}
	b := cpu.New(1)
	raw, err := Open(b)
	if err != nil {
		t.Fatal(err)
	}
	c, err := gpu.Watched(raw, gpu.WatchOptions{Timeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if !gpu.Overlaps(c) {
		t.Fatal("the MPI comm on the cpu backend does not overlap")
	}
	const n = 10000
	x, _ := b.Alloc(gpu.Float32, n)
	y, _ := b.Alloc(gpu.Float32, n)
	copy(cpu.F32(x), rankData(c.Rank(), n))
	copy(cpu.F32(y), cpu.F32(x))
	cuts := []int{0, 7, 3000, 3001, 9000, n}
	var ps []gpu.Pending
	for i := len(cuts) - 1; i > 0; i-- { // last piece first, as the backward pass
		p, err := gpu.StartAllReduceSum(c, x.MustView(cuts[i-1], cuts[i]-cuts[i-1]))
		if err != nil {
			t.Fatal(err)
		}
		for _, q := range ps {
			if _, err := q.Test(); err != nil {
				t.Fatal(err)
			}
		}
		ps = append(ps, p)
	}
	for _, p := range ps {
		if err := p.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.AllReduceSum(y); err != nil {
		t.Fatal(err)
	}
	for i, got := range cpu.F32(x) {
		want, mag := 0.0, 0.0
		for r := 0; r < c.Size(); r++ {
			v := float64(rankData(r, n)[i])
			want += v
			mag += math.Abs(v)
		}
		if math.Abs(float64(got)-want) > 2*mag*(1.0/(1<<24)) {
			t.Fatalf("rank %d: sum[%d] = %v, want %v", c.Rank(), i, got, want)
		}
	}
	// Every rank must hold the same bits (the replicas' update depends on
	// it): the ranks compare a hash of them.
	h := fnv.New32a()
	for _, v := range cpu.F32(x) {
		binary.Write(h, binary.LittleEndian, math.Float32bits(v))
	}
	all, err := c.AllGather([]float64{float64(h.Sum32())})
	if err != nil {
		t.Fatal(err)
	}
	for r, v := range all {
		if v != all[0] {
			t.Fatalf("rank %d's sums differ from rank 0's", r)
		}
	}
	diff := 0
	for i := range cpu.F32(x) {
		if cpu.F32(x)[i] != cpu.F32(y)[i] {
			diff++
		}
	}
	t.Logf("rank %d: %d of %d elements differ in their last bits between the started and the blocking all-reduce of 3 ranks", c.Rank(), diff, n)
}
