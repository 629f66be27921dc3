//go:build !amd64

package cpu

// bestDecode returns the decoding loops of this CPU: none on this
// architecture.
func bestDecode() *decodeKernel { return nil }
