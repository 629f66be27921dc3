package gpu

// An all-reduce that a rank starts and later waits for lets the gradients
// of the layers that the backward pass has finished travel while it
// computes the others. Engines that can do so (Open MPI's
// MPI_Iallreduce, NCCL on a stream of its own) implement AsyncAllReducer;
// StartAllReduceSum falls back to the blocking AllReduceSum for the rest.

// AsyncAllReducer is a Comm whose all-reduce can be started and waited for
// later. Every rank starts the same requests in the same order; t must not
// be read or written until the request's Wait returns.
type AsyncAllReducer interface {
	Comm
	// StartAllReduceSum starts replacing the float32 tensor t by the
	// element-wise sum of every rank's t (as AllReduceSum).
	StartAllReduceSum(t *Tensor) (Pending, error)
}

// Pending is a started all-reduce.
type Pending interface {
	// Test advances the request without blocking (an engine without a
	// progress thread moves data only inside its calls) and reports
	// whether it has completed; after true, Wait returns at once.
	Test() (bool, error)
	// Wait returns when the request has completed: on the host t holds
	// the sum; on a device the work queued after Wait sees it. Once.
	Wait() error
}

// StartAllReduceSum starts an all-reduce of t on c: asynchronously when c
// allows it, else the blocking AllReduceSum, whose request is complete.
func StartAllReduceSum(c Comm, t *Tensor) (Pending, error) {
	if a, ok := c.(AsyncAllReducer); ok {
		return a.StartAllReduceSum(t)
	}
	if err := c.AllReduceSum(t); err != nil {
		return nil, err
	}
	return Completed{}, nil
}

// Overlaps reports whether c's all-reduce can run while the caller
// computes (seen through a watchdog).
func Overlaps(c Comm) bool {
	if w, ok := c.(*Watchdog); ok {
		c = w.Comm
	}
	_, ok := c.(AsyncAllReducer)
	return ok
}

// Completed is a request that was complete when it was returned.
type Completed struct{}

func (Completed) Test() (bool, error) { return true, nil }
func (Completed) Wait() error         { return nil }
