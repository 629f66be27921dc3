//go:build mpi

package mpi

/*
#cgo pkg-config: ompi-c
#include <mpi.h>
#include <stdlib.h>

// Initialise once, asking for serialised calls from any thread (Go moves
// goroutines between threads; the Comm's mutex serialises the calls), and
// have errors returned rather than aborting the job.
static int ig_init(int *provided) {
	int done = 0;
	MPI_Initialized(&done);
	if (!done) {
		int rc = MPI_Init_thread(NULL, NULL, MPI_THREAD_SERIALIZED, provided);
		if (rc != MPI_SUCCESS) return rc;
	} else {
		MPI_Query_thread(provided);
	}
	return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}
static int ig_rank(int *r) { return MPI_Comm_rank(MPI_COMM_WORLD, r); }
static int ig_size(int *s) { return MPI_Comm_size(MPI_COMM_WORLD, s); }
static int ig_allreduce_f32(float *buf, int n) {
	return MPI_Allreduce(MPI_IN_PLACE, buf, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
static int ig_bcast_f32(float *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_FLOAT, root, MPI_COMM_WORLD);
}
static int ig_bcast_bytes(char *buf, int n, int root) {
	return MPI_Bcast(buf, n, MPI_BYTE, root, MPI_COMM_WORLD);
}
static int ig_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
static int ig_allgather_f64(double *in, int n, double *out) {
	return MPI_Allgather(in, n, MPI_DOUBLE, out, n, MPI_DOUBLE, MPI_COMM_WORLD);
}
static int ig_finalize(void) {
	int done = 0;
	MPI_Finalized(&done);
	return done ? MPI_SUCCESS : MPI_Finalize();
}
static void ig_error_string(int code, char *buf, int *len) { MPI_Error_string(code, buf, len); }
static int ig_max_error_string(void) { return MPI_MAX_ERROR_STRING; }
*/
import "C"

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// chunk is the most elements one MPI call moves (its counts are C ints).
const chunk = 1 << 30

// Comm is MPI_COMM_WORLD as a gpu.Comm for tensors of one backend. On the
// cpu backend the collectives work in place on the tensors' host memory;
// on another backend they go through a host copy.
type Comm struct {
	mu         sync.Mutex
	b          gpu.Backend
	host       bool // b is the cpu backend: tensors are host memory
	rank, size int
	stage      []float32
	closed     bool
}

var (
	initOnce sync.Once
	initErr  error
)

// Open joins MPI_COMM_WORLD (initialising MPI in this process the first
// time) for tensors of backend b.
func Open(b gpu.Backend) (*Comm, error) {
	initOnce.Do(func() {
		var provided C.int
		if err := check("MPI_Init_thread", C.ig_init(&provided)); err != nil {
			initErr = err
			return
		}
		if provided < C.MPI_THREAD_SERIALIZED {
			initErr = fmt.Errorf("mpi: the library gives thread level %d, below MPI_THREAD_SERIALIZED", int(provided))
		}
	})
	if initErr != nil {
		return nil, initErr
	}
	var r, s C.int
	if err := check("MPI_Comm_rank", C.ig_rank(&r)); err != nil {
		return nil, err
	}
	if err := check("MPI_Comm_size", C.ig_size(&s)); err != nil {
		return nil, err
	}
	_, host := b.(*cpu.Backend)
	return &Comm{b: b, host: host, rank: int(r), size: int(s)}, nil
}

func (c *Comm) Rank() int { return c.rank }
func (c *Comm) Size() int { return c.size }

// AllReduceSum sums t over the ranks in place (MPI_Allreduce, MPI_SUM).
func (c *Comm) AllReduceSum(t *gpu.Tensor) error {
	if err := gpu.CheckCollective(t); err != nil {
		return fmt.Errorf("mpi all-reduce: %w", err)
	}
	return c.onHost("MPI_Allreduce", t, true, func(p *C.float, n C.int) C.int { return C.ig_allreduce_f32(p, n) })
}

// Broadcast copies root's t to every rank (MPI_Bcast).
func (c *Comm) Broadcast(t *gpu.Tensor, root int) error {
	if err := gpu.CheckRoot(t, root, c.size); err != nil {
		return fmt.Errorf("mpi: %w", err)
	}
	return c.onHost("MPI_Bcast", t, c.rank == root, func(p *C.float, n C.int) C.int { return C.ig_bcast_f32(p, n, C.int(root)) })
}

// onHost runs op over t's elements in chunks, on t's host memory (cpu) or
// on a host copy (downloaded first when download is set, uploaded after).
func (c *Comm) onHost(name string, t *gpu.Tensor, download bool, op func(*C.float, C.int) C.int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("mpi %s: the communicator is closed", name)
	}
	var buf []float32
	if c.host {
		buf = cpu.F32(t)
	} else {
		if cap(c.stage) < t.Len() {
			c.stage = make([]float32, t.Len())
		}
		buf = c.stage[:t.Len()]
		if download {
			if err := c.b.Download(buf, t); err != nil {
				return fmt.Errorf("mpi %s: %w", name, err)
			}
		}
	}
	for lo := 0; lo < len(buf); lo += chunk {
		part := buf[lo:min(lo+chunk, len(buf))]
		if err := check(name, op((*C.float)(unsafe.Pointer(&part[0])), C.int(len(part)))); err != nil {
			return err
		}
	}
	if !c.host {
		if err := c.b.Upload(t, buf); err != nil {
			return fmt.Errorf("mpi %s: %w", name, err)
		}
	}
	return nil
}

// Barrier is MPI_Barrier.
func (c *Comm) Barrier() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return check("MPI_Barrier", C.ig_barrier())
}

// AllGather is MPI_Allgather of float64 values.
func (c *Comm) AllGather(local []float64) ([]float64, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]float64, len(local)*c.size)
	if len(local) == 0 {
		return out, nil
	}
	if len(out) > chunk {
		return nil, fmt.Errorf("mpi all-gather: %d values are more than one call moves", len(out))
	}
	// The values go through C memory: cgo may not hand Go memory that C
	// keeps beyond the call, and MPI does not, but the copy is tiny.
	in := (*C.double)(C.malloc(C.size_t(len(local)) * 8))
	res := (*C.double)(C.malloc(C.size_t(len(out)) * 8))
	defer C.free(unsafe.Pointer(in))
	defer C.free(unsafe.Pointer(res))
	copy(unsafe.Slice((*float64)(unsafe.Pointer(in)), len(local)), local)
	if err := check("MPI_Allgather", C.ig_allgather_f64(in, C.int(len(local)), res)); err != nil {
		return nil, err
	}
	copy(out, unsafe.Slice((*float64)(unsafe.Pointer(res)), len(out)))
	return out, nil
}

// BroadcastBytes replaces buf on every rank by root's (every rank passes
// as many bytes).
func (c *Comm) BroadcastBytes(buf []byte, root int) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(buf) == 0 {
		return nil
	}
	if len(buf) > chunk {
		return fmt.Errorf("mpi broadcast: %d bytes are more than one call moves", len(buf))
	}
	return check("MPI_Bcast", C.ig_bcast_bytes((*C.char)(unsafe.Pointer(&buf[0])), C.int(len(buf)), C.int(root)))
}

// Close finalises MPI in this process; it cannot be opened again.
func (c *Comm) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return check("MPI_Finalize", C.ig_finalize())
}

// check turns an MPI return code into an error naming the call.
func check(call string, rc C.int) error {
	if rc == C.MPI_SUCCESS {
		return nil
	}
	buf := make([]byte, int(C.ig_max_error_string()))
	var n C.int
	C.ig_error_string(rc, (*C.char)(unsafe.Pointer(&buf[0])), &n)
	return fmt.Errorf("mpi: %s: %s (code %d)", call, string(buf[:int(n)]), int(rc))
}

var _ gpu.Comm = (*Comm)(nil)
