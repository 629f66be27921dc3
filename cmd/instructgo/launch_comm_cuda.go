//go:build cuda

package main

import (
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cuda"
)

// storeTimeout is how long a rank waits for rank 0's store to answer.
const storeTimeout = 5 * time.Minute

// The cuda build opens NCCL for the ranks of a torchrun-style launch, with
// the TCP store at MASTER_ADDR:MASTER_PORT as the rendezvous.
func init() {
	ncclComm = func(b gpu.Backend, w world) (gpu.Comm, error) {
		cb, ok := b.(*cuda.Backend)
		if !ok {
			return nil, fmt.Errorf("WORLD_SIZE=%d on %s: NCCL needs --device cuda; on the cpu backend run the mpi build under mpirun", w.Size, b.Name())
		}
		addr := net.JoinHostPort(w.MasterAddr, strconv.Itoa(w.MasterPort))
		store, err := gpu.OpenStore(addr, w.Rank, w.Size, storeTimeout)
		if err != nil {
			return nil, err
		}
		c, err := cuda.OpenNCCL(cb, store, w.Rank, w.Size)
		if err != nil {
			store.Close()
			return nil, fmt.Errorf("rank %d of %d: %w", w.Rank, w.Size, err)
		}
		return c, nil
	}
}
