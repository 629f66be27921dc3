//go:build cuda

package main

import (
	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cuda"
)

// The cuda build registers the cuda backend for --device cuda[:N] and auto.
// Such a binary needs the NVIDIA driver and a GPU to start at all (see
// gpu/cuda's package doc): a machine without them gets a message and exit
// status 1 before any command runs, so auto's fallback to the cpu covers
// only a GPU that the driver lists but New cannot use (e.g. one older than
// Ampere), never a missing GPU.
func init() {
	cudaBackend = func(ordinal int) (gpu.Backend, error) {
		b, err := cuda.New(ordinal)
		if err != nil {
			return nil, err
		}
		return b, nil
	}
}
