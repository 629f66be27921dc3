//go:build !amd64

package cpu

// bestSkinny returns nil: without vector kernels the packed GEMM serves few
// rows as well.
func bestSkinny() *skinnyKernel { return nil }
