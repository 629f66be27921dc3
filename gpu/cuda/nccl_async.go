//go:build cuda && !cudaemu

package cuda

/*
#cgo linux CFLAGS: -I/usr/local/cuda/include
#include <cuda.h>
*/
import "C"

import (
	"fmt"
	"unsafe"

	"github.com/instructgo/instructgo/gpu"
)

// Started all-reduces run on a stream of their own, so that the backward
// pass's kernels, queued on the backend's stream after the start, run while
// NCCL moves the finished gradients. The order between the two streams is
// kept with events, never by the host: the comm stream waits for the work
// queued before the start (the gradients it reduces), and Wait makes the
// backend's stream wait for the all-reduce, so the optimizer queued after
// it reads the sums. Compiled by make cuda-check; never run (no GPU here).

// commStream is the comm stream and its reusable events.
type commStream struct {
	s    C.CUstream // nil until the first start
	free []C.CUevent
}

var _ gpu.AsyncAllReducer = (*NCCL)(nil)

// StartAllReduceSum queues ncclAllReduce of t (in place, float32, sum) on
// the comm stream after the work queued so far on the backend's stream.
// During a graph capture it is AllReduceSum on the backend's stream.
func (c *NCCL) StartAllReduceSum(t *gpu.Tensor) (gpu.Pending, error) {
	if err := c.tensor(t); err != nil {
		return nil, fmt.Errorf("nccl all-reduce: %w", err)
	}
	if c.b.capturing {
		if err := c.AllReduceSum(t); err != nil {
			return nil, err
		}
		return gpu.Completed{}, nil
	}
	if c.side.s == nil {
		if err := result(C.cuStreamCreate(&c.side.s, C.CU_STREAM_NON_BLOCKING)); err != nil {
			return nil, fmt.Errorf("nccl: create the comm stream: %w", err)
		}
	}
	ready, err := c.side.event()
	if err != nil {
		return nil, err
	}
	done, err := c.side.event()
	if err != nil {
		c.side.put(ready)
		return nil, err
	}
	p := &ncclPending{c: c, ready: ready, done: done}
	compute := C.CUstream(c.b.streamC)
	if err := result(C.cuEventRecord(ready, compute)); err != nil {
		p.release()
		return nil, fmt.Errorf("nccl all-reduce: record the gradients' event: %w", err)
	}
	if err := result(C.cuStreamWaitEvent(c.side.s, ready, 0)); err != nil {
		p.release()
		return nil, fmt.Errorf("nccl all-reduce: the comm stream waits: %w", err)
	}
	if err := c.allReduceOn(t, unsafe.Pointer(c.side.s)); err != nil {
		p.release()
		return nil, err
	}
	if err := result(C.cuEventRecord(done, c.side.s)); err != nil {
		p.release()
		return nil, fmt.Errorf("nccl all-reduce: record its end: %w", err)
	}
	return p, nil
}

// event returns an event without timing from the free list or a new one.
func (s *commStream) event() (C.CUevent, error) {
	if n := len(s.free); n > 0 {
		e := s.free[n-1]
		s.free = s.free[:n-1]
		return e, nil
	}
	var e C.CUevent
	if err := result(C.cuEventCreate(&e, C.CU_EVENT_DISABLE_TIMING)); err != nil {
		return nil, fmt.Errorf("nccl: create an event: %w", err)
	}
	return e, nil
}

// put returns an event to the free list: a later record does not change
// what an earlier cuStreamWaitEvent on it waits for.
func (s *commStream) put(e C.CUevent) { s.free = append(s.free, e) }

// close waits for the comm stream and destroys it and the events.
func (s *commStream) close() error {
	if s.s == nil {
		return nil
	}
	err := result(C.cuStreamSynchronize(s.s))
	for _, e := range s.free {
		C.cuEventDestroy(e)
	}
	C.cuStreamDestroy(s.s)
	s.s, s.free = nil, nil
	if err != nil {
		return fmt.Errorf("nccl: the comm stream: %w", err)
	}
	return nil
}

// ncclPending is a started all-reduce: done is recorded after it on the
// comm stream.
type ncclPending struct {
	c           *NCCL
	ready, done C.CUevent
	waited      bool
}

// Test asks whether the all-reduce has run (cuEventQuery); NCCL's kernels
// progress by themselves.
func (p *ncclPending) Test() (bool, error) {
	if p.waited {
		return true, nil
	}
	switch r := C.cuEventQuery(p.done); r {
	case C.CUDA_SUCCESS:
		return true, nil
	case C.CUDA_ERROR_NOT_READY:
		return false, nil
	default:
		return false, fmt.Errorf("nccl all-reduce: query its end: %w", result(r))
	}
}

// Wait makes the backend's stream wait for the all-reduce (no host
// synchronisation): the work queued after it reads the sums.
func (p *ncclPending) Wait() error {
	if p.waited {
		return nil
	}
	p.waited = true
	defer p.release()
	if !p.c.b.onOwnerThread("nccl wait") || p.c.b.err != nil {
		return p.c.b.err
	}
	if err := result(C.cuStreamWaitEvent(C.CUstream(p.c.b.streamC), p.done, 0)); err != nil {
		return fmt.Errorf("nccl all-reduce: the backend's stream waits: %w", err)
	}
	return nil
}

func (p *ncclPending) release() {
	p.c.side.put(p.ready)
	p.c.side.put(p.done)
}
