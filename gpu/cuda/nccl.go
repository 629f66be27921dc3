//go:build cuda && !cudaemu

package cuda

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// NCCL is loaded at run time like cuBLAS (one binary, no NCCL headers or
// library at build time). Only the entry points used are declared, with
// NCCL's C ABI: communicators and streams are pointers, enums ints,
// ncclResult_t an int (0 = ncclSuccess), ncclUniqueId 128 bytes passed by
// value.

#define IGO_NCCL_ID_BYTES 128
typedef struct { char internal[IGO_NCCL_ID_BYTES]; } igo_ncclUniqueId;

typedef int (*igo_ncclGetVersion_t)(int *version);
typedef int (*igo_ncclGetUniqueId_t)(igo_ncclUniqueId *id);
typedef int (*igo_ncclCommInitRank_t)(void **comm, int nranks, igo_ncclUniqueId id, int rank);
typedef int (*igo_ncclAllReduce_t)(const void *send, void *recv, size_t count, int dtype, int op, void *comm, void *stream);
typedef int (*igo_ncclBroadcast_t)(const void *send, void *recv, size_t count, int dtype, int root, void *comm, void *stream);
typedef int (*igo_ncclCommDestroy_t)(void *comm);
typedef const char *(*igo_ncclGetErrorString_t)(int result);

typedef struct {
	void *lib;
	void *comm;
	int version;
	igo_ncclGetUniqueId_t getUniqueId;
	igo_ncclCommInitRank_t initRank;
	igo_ncclAllReduce_t allReduce;
	igo_ncclBroadcast_t broadcast;
	igo_ncclCommDestroy_t destroy;
	igo_ncclGetErrorString_t errorString;
} igo_nccl;

// igo_nccl_load opens the library at path and resolves the entry points.
// It returns 0, or -1 with *err set.
static int igo_nccl_load(igo_nccl *n, const char *path, const char **err) {
	*err = NULL;
	n->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (n->lib == NULL) {
		*err = dlerror();
		return -1;
	}
	igo_ncclGetVersion_t getVersion = (igo_ncclGetVersion_t)dlsym(n->lib, "ncclGetVersion");
	n->getUniqueId = (igo_ncclGetUniqueId_t)dlsym(n->lib, "ncclGetUniqueId");
	n->initRank = (igo_ncclCommInitRank_t)dlsym(n->lib, "ncclCommInitRank");
	n->allReduce = (igo_ncclAllReduce_t)dlsym(n->lib, "ncclAllReduce");
	n->broadcast = (igo_ncclBroadcast_t)dlsym(n->lib, "ncclBroadcast");
	n->destroy = (igo_ncclCommDestroy_t)dlsym(n->lib, "ncclCommDestroy");
	n->errorString = (igo_ncclGetErrorString_t)dlsym(n->lib, "ncclGetErrorString");
	if (!getVersion || !n->getUniqueId || !n->initRank || !n->allReduce || !n->broadcast || !n->destroy || !n->errorString) {
		*err = "an NCCL entry point is missing (ncclGetVersion, ncclGetUniqueId, ncclCommInitRank, ncclAllReduce, ncclBroadcast, ncclCommDestroy, ncclGetErrorString)";
		dlclose(n->lib);
		n->lib = NULL;
		return -1;
	}
	if (getVersion(&n->version) != 0) n->version = 0;
	return 0;
}

static int igo_nccl_unique_id(igo_nccl *n, void *out) {
	igo_ncclUniqueId id;
	int st = n->getUniqueId(&id);
	if (st == 0) memcpy(out, id.internal, IGO_NCCL_ID_BYTES);
	return st;
}

static int igo_nccl_init(igo_nccl *n, int nranks, const void *idBytes, int rank) {
	igo_ncclUniqueId id;
	memcpy(id.internal, idBytes, IGO_NCCL_ID_BYTES);
	return n->initRank(&n->comm, nranks, id, rank);
}

// ncclFloat32 = 7, ncclSum = 0 (nccl.h).
static int igo_nccl_allreduce_sum_f32(igo_nccl *n, uintptr_t buf, size_t count, void *stream) {
	return n->allReduce((const void *)buf, (void *)buf, count, 7, 0, n->comm, stream);
}

static int igo_nccl_broadcast_f32(igo_nccl *n, uintptr_t buf, size_t count, int root, void *stream) {
	return n->broadcast((const void *)buf, (void *)buf, count, 7, root, n->comm, stream);
}

static const char *igo_nccl_error(igo_nccl *n, int st) { return n->errorString(st); }

static int igo_nccl_destroy(igo_nccl *n) {
	int st = 0;
	if (n->comm != NULL) st = n->destroy(n->comm);
	n->comm = NULL;
	return st;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cuda/internal/cudalib"
)

const ncclIDBytes = C.IGO_NCCL_ID_BYTES

// NCCL is the gpu.Comm of a data-parallel run on GPUs: one rank per
// process and GPU, float32 all-reduce and broadcast by NCCL on the
// backend's stream (queued like any op, so a step needs no extra
// synchronisation), and the host-side barrier and all-gather through the
// launch's TCP store, which also carried NCCL's unique id from rank 0.
type NCCL struct {
	b          *Backend
	n          *C.igo_nccl // C memory
	store      *gpu.Store
	rank, size int
	path       string
	side       commStream // the started all-reduces' stream (nccl_async.go)
}

var _ gpu.Comm = (*NCCL)(nil)

// OpenNCCL loads NCCL (the first of libnccl.so.2 by soname, in the CUDA
// toolkits and in Python's nvidia/nccl/lib that loads; $INSTRUCTGO_NCCL
// overrides) and joins rank of size ranks for tensors of b, exchanging
// the unique id through store. Call it from b's goroutine.
func OpenNCCL(b *Backend, store *gpu.Store, rank, size int) (*NCCL, error) {
	if !b.onOwnerThread("nccl") {
		return nil, b.err
	}
	candidates, err := cudalib.Search("nccl", cudalib.NcclEnv, []int{2}, cudalib.Host())
	if err != nil {
		return nil, fmt.Errorf("nccl: %w", err)
	}
	n := (*C.igo_nccl)(C.calloc(1, C.size_t(unsafe.Sizeof(C.igo_nccl{}))))
	var path string
	var errs []string
	for _, p := range candidates {
		cpath := C.CString(p)
		var msg *C.char
		st := C.igo_nccl_load(n, cpath, &msg)
		C.free(unsafe.Pointer(cpath))
		if st == 0 {
			path = p
			break
		}
		errs = append(errs, fmt.Sprintf("%s: %s", p, C.GoString(msg)))
	}
	if path == "" {
		C.free(unsafe.Pointer(n))
		return nil, fmt.Errorf("nccl: no library loads: %s", strings.Join(errs, "; "))
	}
	c := &NCCL{b: b, n: n, store: store, rank: rank, size: size, path: path}
	id := make([]byte, ncclIDBytes)
	if rank == 0 {
		if err := c.check("ncclGetUniqueId", C.igo_nccl_unique_id(n, unsafe.Pointer(&id[0]))); err != nil {
			c.free()
			return nil, err
		}
		if err := store.Set("nccl-unique-id", id); err != nil {
			c.free()
			return nil, err
		}
	}
	got, err := store.Get("nccl-unique-id")
	if err == nil && len(got) != ncclIDBytes {
		err = fmt.Errorf("nccl: a unique id of %d bytes, want %d", len(got), ncclIDBytes)
	}
	if err != nil {
		c.free()
		return nil, err
	}
	cid := C.CBytes(got)
	defer C.free(cid)
	if err := c.check("ncclCommInitRank", C.igo_nccl_init(n, C.int(size), cid, C.int(rank))); err != nil {
		c.free()
		return nil, err
	}
	return c, nil
}

func (c *NCCL) Rank() int { return c.rank }
func (c *NCCL) Size() int { return c.size }

// Version is NCCL's, e.g. "2.21.5 (libnccl.so.2)".
func (c *NCCL) Version() string {
	v := int(c.n.version)
	return fmt.Sprintf("%d.%d.%d (%s)", v/10000, v/100%100, v%100, c.path)
}

// AllReduceSum queues ncclAllReduce (in place, float32, sum) on the
// backend's stream.
func (c *NCCL) AllReduceSum(t *gpu.Tensor) error {
	if err := c.tensor(t); err != nil {
		return fmt.Errorf("nccl all-reduce: %w", err)
	}
	return c.allReduceOn(t, c.b.streamC)
}

// allReduceOn queues ncclAllReduce of t (checked) on stream.
func (c *NCCL) allReduceOn(t *gpu.Tensor, stream unsafe.Pointer) error {
	return c.check("ncclAllReduce", C.igo_nccl_allreduce_sum_f32(c.n, C.uintptr_t(c.b.ptr(t)), C.size_t(t.Len()), stream))
}

// Broadcast queues ncclBroadcast (in place, float32) from root.
func (c *NCCL) Broadcast(t *gpu.Tensor, root int) error {
	if err := gpu.CheckRoot(t, root, c.size); err != nil {
		return fmt.Errorf("nccl: %w", err)
	}
	if err := c.tensor(t); err != nil {
		return fmt.Errorf("nccl broadcast: %w", err)
	}
	return c.check("ncclBroadcast", C.igo_nccl_broadcast_f32(c.n, C.uintptr_t(c.b.ptr(t)), C.size_t(t.Len()), C.int(root), c.b.streamC))
}

// tensor refuses what NCCL must not be handed: another backend's tensor, a
// failed backend, a call off its thread.
func (c *NCCL) tensor(t *gpu.Tensor) error {
	if err := gpu.CheckCollective(t); err != nil {
		return err
	}
	if !c.b.owns(t.Storage()) {
		return fmt.Errorf("%v is not a tensor of %s", t, c.b.Name())
	}
	if !c.b.onOwnerThread("nccl") || c.b.err != nil {
		return c.b.err
	}
	return nil
}

// Barrier waits for the queued work, then for every rank at the store.
func (c *NCCL) Barrier() error {
	if err := c.b.Sync(); err != nil {
		return err
	}
	return c.store.Barrier()
}

// AllGather gathers host values through the store.
func (c *NCCL) AllGather(local []float64) ([]float64, error) { return c.store.AllGather(local) }

// Close waits for the stream, destroys the communicator and leaves the
// store.
func (c *NCCL) Close() error {
	if c.n == nil {
		return nil
	}
	errs := []error{c.b.Sync(), c.side.close(), c.check("ncclCommDestroy", C.igo_nccl_destroy(c.n))}
	c.free()
	errs = append(errs, c.store.Close())
	return errors.Join(errs...)
}

func (c *NCCL) free() {
	C.free(unsafe.Pointer(c.n))
	c.n = nil
}

// check turns an ncclResult_t into an error naming the call.
func (c *NCCL) check(call string, st C.int) error {
	if st == 0 {
		return nil
	}
	return fmt.Errorf("nccl: %s: %s (ncclResult %d)", call, C.GoString(C.igo_nccl_error(c.n, st)), int(st))
}
