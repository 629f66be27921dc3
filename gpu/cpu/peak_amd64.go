package cpu

import "golang.org/x/sys/cpu"

// fmaLoopAVX2 runs n iterations of 12 independent YMM FMAs (192 flops).
//
//go:noescape
func fmaLoopAVX2(n int)

// fmaLoopAVX512 runs n iterations of 16 independent ZMM FMAs (512 flops).
//
//go:noescape
func fmaLoopAVX512(n int)

var hasAVX512 = cpu.X86.HasAVX512F && hasAVX2FMA

func fmaLoops() []fmaLoop {
	var ls []fmaLoop
	if hasAVX2FMA {
		ls = append(ls, fmaLoop{name: "avx2 fma", flopsPerIter: 192, run: fmaLoopAVX2})
	}
	if hasAVX512 {
		ls = append(ls, fmaLoop{name: "avx512 fma", flopsPerIter: 512, run: fmaLoopAVX512})
	}
	if len(ls) == 0 {
		ls = append(ls, fmaLoopPortable)
	}
	return ls
}

// CPUFeatures lists the SIMD features this CPU offers (and the OS enables)
// that MatMul and PeakFMA detect, e.g. "avx2", "fma", "avx512f".
func CPUFeatures() []string {
	var fs []string
	for _, f := range []struct {
		name string
		has  bool
	}{
		{"sse4.1", cpu.X86.HasSSE41},
		{"avx", cpu.X86.HasAVX},
		{"avx2", cpu.X86.HasAVX2},
		{"fma", cpu.X86.HasFMA},
		{"avx512f", cpu.X86.HasAVX512F},
		{"avx512vl", cpu.X86.HasAVX512VL},
		{"avx512bw", cpu.X86.HasAVX512BW},
		{"avx512dq", cpu.X86.HasAVX512DQ},
	} {
		if f.has {
			fs = append(fs, f.name)
		}
	}
	return fs
}
