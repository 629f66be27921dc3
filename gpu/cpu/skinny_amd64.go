package cpu

// axpyAVX2 adds a·x to y over n elements, n a multiple of 8
// (vecmath_amd64.s).
//
//go:noescape
func axpyAVX2(y, x *float32, a float32, n int)

// dotAVX2 returns Σ x[i]·y[i] over n elements, n a multiple of 8.
//
//go:noescape
func dotAVX2(x, y *float32, n int) float32

// skinnyAVX2 is the few-row product on AVX2+FMA.
var skinnyAVX2 = &skinnyKernel{axpy: axpyVecAVX2, dot: dotVecAVX2}

// bestSkinny returns the few-row kernels of this CPU, or nil where the
// packed GEMM is as good (no AVX2).
func bestSkinny() *skinnyKernel {
	if hasAVX2FMA {
		return skinnyAVX2
	}
	return nil
}

func axpyVecAVX2(y, x []float32, a float32) {
	x = x[:len(y)]
	n8 := len(y) &^ 7
	if n8 > 0 {
		axpyAVX2(&y[0], &x[0], a, n8)
	}
	for i := n8; i < len(y); i++ {
		y[i] += a * x[i]
	}
}

func dotVecAVX2(x, y []float32) float32 {
	y = y[:len(x)]
	n8 := len(x) &^ 7
	var s float32
	if n8 > 0 {
		s = dotAVX2(&x[0], &y[0], n8)
	}
	for i := n8; i < len(x); i++ {
		s += x[i] * y[i]
	}
	return s
}
