package gpu

import "testing"

// Shard's pieces, in rank order, are 0..n-1 exactly once, and their sizes
// differ by at most one.
func TestShardCoversInOrder(t *testing.T) {
	for n := 0; n < 40; n++ {
		for size := 1; size <= 9; size++ {
			next, small, big := 0, n, 0
			for r := 0; r < size; r++ {
				lo, hi := Shard(n, r, size)
				if lo != next || hi < lo {
					t.Fatalf("Shard(%d, %d, %d) = [%d, %d), want to start at %d", n, r, size, lo, hi, next)
				}
				next = hi
				small, big = min(small, hi-lo), max(big, hi-lo)
			}
			if next != n || big-small > 1 {
				t.Fatalf("Shard(%d, ·, %d) ends at %d, pieces %d..%d", n, size, next, small, big)
			}
		}
	}
}

func TestSingleComm(t *testing.T) {
	var c Comm = Single{}
	sum, err := SumOverRanks(c, 1.25, -3)
	if err != nil || sum[0] != 1.25 || sum[1] != -3 {
		t.Fatalf("SumOverRanks = %v, %v", sum, err)
	}
	if err := c.Broadcast(&Tensor{}, 1); err == nil {
		t.Fatal("broadcast from root 1 of 1: no error")
	}
	if err := c.AllReduceSum(nil); err == nil {
		t.Fatal("all-reduce of nil: no error")
	}
}
