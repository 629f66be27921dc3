package gpu

import (
	"fmt"
)

// Comm is a communicator: the ranks (processes) of one data-parallel run
// and the few collectives training needs. Every rank calls the same
// collectives in the same order; a call blocks until all ranks have made
// it. Implementations: Single (one process, no engine), gpu/mpi (Open MPI,
// build tag mpi, any backend) and gpu/cuda's NCCL one (build tag cuda);
// Watched (comm_watchdog.go) puts any of them behind the watchdog that
// ends a rank whose collective waits on a rank that hangs.
type Comm interface {
	// Rank is this process's index in 0..Size()-1; rank 0 writes the
	// run's files.
	Rank() int
	// Size is the number of ranks (the world size).
	Size() int
	// AllReduceSum replaces the float32 tensor t (on the backend the
	// communicator was opened for) by the element-wise sum of every
	// rank's t. Every rank gets the same bits.
	AllReduceSum(t *Tensor) error
	// Broadcast replaces the float32 tensor t on every rank by root's.
	Broadcast(t *Tensor, root int) error
	// Barrier returns when every rank has called it.
	Barrier() error
	// AllGather returns every rank's local values, rank after rank
	// (len(local)·Size() values); every rank must pass as many.
	AllGather(local []float64) ([]float64, error)
	// Close ends this rank's part in the communicator.
	Close() error
}

// Single is the communicator of a run in one process: every collective
// is the identity, and it needs no engine.
type Single struct{}

func (Single) Rank() int                           { return 0 }
func (Single) Size() int                           { return 1 }
func (Single) AllReduceSum(t *Tensor) error        { return checkCommTensor(t) }
func (Single) Broadcast(t *Tensor, root int) error { return CheckRoot(t, root, 1) }
func (Single) Barrier() error                      { return nil }
func (Single) AllGather(local []float64) ([]float64, error) {
	return append([]float64(nil), local...), nil
}
func (Single) Close() error { return nil }

// CheckRoot is the rule every Broadcast applies: a float32 tensor and a
// root that is one of the size ranks.
func CheckRoot(t *Tensor, root, size int) error {
	if root < 0 || root >= size {
		return fmt.Errorf("broadcast: root %d is not a rank of %d", root, size)
	}
	return checkCommTensor(t)
}

// CheckCollective is the rule every tensor collective applies: a float32
// tensor.
func CheckCollective(t *Tensor) error { return checkCommTensor(t) }

func checkCommTensor(t *Tensor) error {
	if t == nil {
		return fmt.Errorf("collective on a nil tensor")
	}
	if t.DType() != Float32 {
		return fmt.Errorf("collective on a %s tensor; only float32 is reduced", t.DType())
	}
	return nil
}

// AllReduceMean replaces t by the mean over the ranks of t: the sum, then
// one Scale on b, t's backend.
func AllReduceMean(c Comm, b Backend, t *Tensor) error {
	if err := c.AllReduceSum(t); err != nil {
		return err
	}
	if c.Size() > 1 {
		b.Scale(t, 1/float32(c.Size()))
	}
	return nil
}

// SumOverRanks returns, on every rank, the sum of x over the ranks, added
// in rank order so that every rank gets the same float64.
func SumOverRanks(c Comm, x ...float64) ([]float64, error) {
	all, err := c.AllGather(x)
	if err != nil {
		return nil, err
	}
	sum := make([]float64, len(x))
	for r := 0; r < c.Size(); r++ {
		for i := range sum {
			sum[i] += all[r*len(x)+i]
		}
	}
	return sum, nil
}

// Shard is rank's share [lo, hi) of n items cut into size contiguous
// pieces as even as possible (the first pieces are the shorter ones when
// size does not divide n; a piece may be empty when n < size). The pieces
// in rank order are the items in order, so a rank's shard of a global
// batch does not depend on anything but n, rank and size.
func Shard(n, rank, size int) (lo, hi int) {
	return n * rank / size, n * (rank + 1) / size
}
