//go:build mpi

package main

import (
	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/mpi"
)

// The mpi build opens MPI_COMM_WORLD for runs started by mpirun.
func init() {
	mpiComm = func(b gpu.Backend) (gpu.Comm, error) { return mpi.Open(b) }
}
