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
// the TCP store at MASTER_ADDR:MASTER_PORT as the rendezvous and the
// server of the watchdog's heartbeats.
func init() {
	ncclComm = func(b gpu.Backend, w world, heartbeats bool) (engine, error) {
		cb, ok := b.(*cuda.Backend)
		if !ok {
			return engine{}, fmt.Errorf("WORLD_SIZE=%d on %s: NCCL needs --device cuda; on the cpu backend run the mpi build under mpirun", w.Size, b.Name())
		}
		addr := net.JoinHostPort(w.MasterAddr, strconv.Itoa(w.MasterPort))
		store, err := gpu.OpenStore(addr, w.Rank, w.Size, storeTimeout)
		if err != nil {
			return engine{}, err
		}
		c, err := cuda.OpenNCCL(cb, store, w.Rank, w.Size)
		if err != nil {
			store.Close()
			return engine{}, fmt.Errorf("rank %d of %d: %w", w.Rank, w.Size, err)
		}
		e := engine{comm: c}
		if !heartbeats {
			return e, nil
		}
		// The heartbeats go to the same store server, on a connection of
		// their own (rank 0 dials the address it listens at).
		if w.Rank == 0 {
			addr = store.Addr()
		}
		e.pulse, e.pulseErr = gpu.DialPulse(addr, w.Rank, w.Size, storeTimeout)
		return e, nil
	}
}
