//go:build cuda

package cuda

// The ops below have no cuda implementation yet: each records an error
// naming itself, so a model that reaches one fails at its next Err, Sync or
// Download instead of computing garbage. Whoever writes an op's kernel and
// wrapper (gpu/cuda/ops_*.go) deletes its stub here in the same change.

func (b *Backend) notYet(op string) { b.failf("cuda %s: not implemented yet", op) }
