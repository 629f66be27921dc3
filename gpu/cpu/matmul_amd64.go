package cpu

import "golang.org/x/sys/cpu"

// sgemm6x16AVX2 is the AVX2/FMA micro-kernel (matmul_amd64.s): a 6×16 tile
// held in 12 YMM accumulators, A read through strides (rsa, csa elements),
// B's k rows of 16 floats rsb elements apart.
//
//go:noescape
func sgemm6x16AVX2(k int, a *float32, rsa, csa int, b *float32, rsb int, c *float32, ldc int, alpha, beta float32)

// hasAVX2FMA reports whether the CPU and OS support the AVX2 kernel.
var hasAVX2FMA = cpu.X86.HasAVX2 && cpu.X86.HasFMA

var kernelAVX2 = &microKernel{
	name: "avx2+fma 6x16", mr: 6, nr: 16, kc: 256, mc: 144, nc: 4096,
	directMaxCols: 512, tile: tileAVX2, tileB: tileAVX2B,
	packRows: packRows16Vec, packCols: packCols16Vec,
}

// kernelAVX2Packed and kernelAVX2Direct are kernelAVX2 always packing A
// and B, and never packing whole A panels (nor B ones where C is short);
// tests use them to cover both paths on every shape.
var (
	kernelAVX2Packed = &microKernel{
		name: "avx2+fma 6x16 packed", mr: 6, nr: 16, kc: 256, mc: 144, nc: 4096,
		tile: tileAVX2, packRows: packRows16Vec, packCols: packCols16Vec,
	}
	kernelAVX2Direct = &microKernel{
		name: "avx2+fma 6x16 direct", mr: 6, nr: 16, kc: 256, mc: 144, nc: 4096,
		directMaxCols: 1 << 30, tile: tileAVX2, tileB: tileAVX2B,
		packRows: packRows16Vec, packCols: packCols16Vec,
	}
)

func tileAVX2(k int, a []float32, rsa, csa int, bp, c []float32, ldc int, alpha, beta float32) {
	// Bounds checks keep the assembly's accesses inside the slices.
	_ = a[5*rsa+(k-1)*csa]
	_ = bp[16*k-1]
	_ = c[5*ldc+15]
	sgemm6x16AVX2(k, &a[0], rsa, csa, &bp[0], 16, &c[0], ldc, alpha, beta)
}

func tileAVX2B(k int, a []float32, rsa, csa int, b []float32, ldb int, c []float32, ldc int, alpha, beta float32) {
	_ = a[5*rsa+(k-1)*csa]
	_ = b[(k-1)*ldb+15]
	_ = c[5*ldc+15]
	sgemm6x16AVX2(k, &a[0], rsa, csa, &b[0], ldb, &c[0], ldc, alpha, beta)
}

// bestKernel picks the fastest micro-kernel the CPU supports.
func bestKernel() *microKernel {
	if hasAVX2FMA {
		return kernelAVX2
	}
	return kernelGeneric
}

// matmulKernels lists every micro-kernel usable on this machine (tests
// check each).
func matmulKernels() []*microKernel {
	ks := []*microKernel{kernelGeneric}
	if hasAVX2FMA {
		ks = append(ks, kernelAVX2, kernelAVX2Packed, kernelAVX2Direct)
	}
	return ks
}
