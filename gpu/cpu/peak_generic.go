//go:build !amd64

package cpu

func fmaLoops() []fmaLoop { return []fmaLoop{fmaLoopPortable} }

// CPUFeatures lists the SIMD features MatMul uses on this CPU: none, the
// portable Go kernel runs here.
func CPUFeatures() []string { return []string{} }
