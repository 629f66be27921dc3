// Package mpi is the gpu.Comm of Open MPI, for data-parallel runs on the cpu
// backend (and any backend, through host copies): processes started by
// mpirun, one rank each, the collectives of MPI_COMM_WORLD.
//
// It is cgo against the distribution's Open MPI (libopenmpi-dev, found
// with pkg-config ompi-c) and builds only with the build tag mpi, so the
// default build stays pure Go. It imports gpu and gpu/cpu.
package mpi
