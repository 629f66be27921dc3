//go:build mpi

package mpi

/*
#cgo pkg-config: ompi-c
#include <mpi.h>
#include <stdlib.h>

static int ig_iallreduce_f32(float *buf, int n, MPI_Request *req) {
	return MPI_Iallreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, req);
}
static int ig_test(MPI_Request *req, int *done) { return MPI_Test(req, done, MPI_STATUS_IGNORE); }
static int ig_wait(MPI_Request *req) { return MPI_Wait(req, MPI_STATUS_IGNORE); }
*/
import "C"

import (
	"fmt"
	"runtime"
	"unsafe"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// StartAllReduceSum starts summing t over the ranks in place
// (MPI_Iallreduce) on the cpu backend; on another backend it is the
// blocking AllReduceSum through a host copy. Open MPI runs without a
// progress thread by default: the data moves inside MPI calls, so the
// caller drives it with Test while it computes.
func (c *Comm) StartAllReduceSum(t *gpu.Tensor) (gpu.Pending, error) {
	if err := gpu.CheckCollective(t); err != nil {
		return nil, fmt.Errorf("mpi all-reduce: %w", err)
	}
	if !c.host {
		if err := c.AllReduceSum(t); err != nil {
			return nil, err
		}
		return gpu.Completed{}, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("mpi MPI_Iallreduce: the communicator is closed")
	}
	buf := cpu.F32(t)
	p := &pending{c: c}
	if len(buf) == 0 {
		return p, nil
	}
	// MPI keeps the buffer's address until the request completes: the
	// Go memory is pinned for that long (cgo's rule for C that keeps a
	// Go pointer), and the request handles live in C memory.
	p.pin.Pin(&buf[0])
	n := (len(buf) + chunk - 1) / chunk
	p.reqs = (*C.MPI_Request)(C.malloc(C.size_t(n) * C.size_t(unsafe.Sizeof(C.MPI_Request(nil)))))
	reqs := unsafe.Slice(p.reqs, n)
	for i := range reqs {
		part := buf[i*chunk : min((i+1)*chunk, len(buf))]
		if err := check("MPI_Iallreduce", C.ig_iallreduce_f32((*C.float)(unsafe.Pointer(&part[0])), C.int(len(part)), &reqs[i])); err != nil {
			// The requests already started are waited for (MPI cannot
			// cancel a collective): the buffer stays pinned till then.
			for _, r := range reqs[:i] {
				C.ig_wait(&r)
			}
			p.release()
			return nil, err
		}
		p.n++
	}
	return p, nil
}

// pending is a started MPI_Iallreduce (one request per chunk).
type pending struct {
	c    *Comm
	pin  runtime.Pinner
	reqs *C.MPI_Request // C memory, n requests
	n    int            // requests; 0 once released
	done int            // requests complete
}

// Test is MPI_Test on the requests not yet complete, in order.
func (p *pending) Test() (bool, error) {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	reqs := unsafe.Slice(p.reqs, p.n)
	for p.done < p.n {
		var flag C.int
		if err := check("MPI_Test", C.ig_test(&reqs[p.done], &flag)); err != nil {
			p.release()
			return false, err
		}
		if flag == 0 {
			return false, nil
		}
		p.done++
	}
	p.release()
	return true, nil
}

// Wait is MPI_Wait on the requests not yet complete.
func (p *pending) Wait() error {
	p.c.mu.Lock()
	defer p.c.mu.Unlock()
	reqs := unsafe.Slice(p.reqs, p.n)
	for ; p.done < p.n; p.done++ {
		if err := check("MPI_Wait", C.ig_wait(&reqs[p.done])); err != nil {
			p.release()
			return err
		}
	}
	p.release()
	return nil
}

// release frees the requests and unpins the buffer once.
func (p *pending) release() {
	if p.reqs != nil {
		C.free(unsafe.Pointer(p.reqs))
		p.reqs, p.n, p.done = nil, 0, 0
	}
	p.pin.Unpin()
}

var _ gpu.AsyncAllReducer = (*Comm)(nil)
