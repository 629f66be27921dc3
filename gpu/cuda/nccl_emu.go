//go:build cuda && cudaemu

package cuda

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
)

// NCCL has no emulation: the emulated build runs in one process.
type NCCL struct{ gpu.Single }

// OpenNCCL refuses: the emulated build has no NCCL.
func OpenNCCL(b *Backend, store *gpu.Store, rank, size int) (*NCCL, error) {
	return nil, fmt.Errorf("nccl: the emulated cuda build (cudaemu) runs in one process only")
}

// Version names the missing library.
func (c *NCCL) Version() string { return "none (emulated build)" }
