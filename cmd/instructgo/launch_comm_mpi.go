//go:build mpi

package main

import (
	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/mpi"
)

// The mpi build opens MPI_COMM_WORLD for runs started by mpirun, and the
// heartbeats rank 0 serves for the watchdog.
func init() {
	mpiComm = func(b gpu.Backend, heartbeats bool) (engine, error) {
		c, err := mpi.Open(b)
		if err != nil {
			return engine{}, err
		}
		e := engine{comm: c}
		if heartbeats {
			e.pulse, e.pulseErr = c.OpenPulse()
		}
		return e, nil
	}
}
