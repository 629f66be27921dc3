package cpu

// Products with a few rows — decoding one token per sequence — spend most
// of their time in the packed GEMM packing the weight panel, which they
// then read once. The skinny path streams the weights once instead, row by
// row of op(B): an axpy into the rows of C when B is stored k×n, a dot
// product per element of C when it is stored n×k (transB).

// skinnyMaxRows is the most rows of C the skinny path takes. Measured on
// the 2-core AMD EPYC (BenchmarkMatMul/decode, 2 threads): against the
// packed GEMM it is 6× faster for one row (1×384×128: 3.4 against 20 µs),
// 2.6× for two, 1.7× for four (1.1× at GPT-2's 4×3072×768); level at
// eight rows for the tiny model and slower for GPT-2; slower beyond.
const skinnyMaxRows = 4

// skinnyKernel holds the vector loops of the skinny path.
type skinnyKernel struct {
	axpy func(y, x []float32, a float32) // y += a·x, len(x) ≥ len(y)
	dot  func(x, y []float32) float32    // Σ x·y over len(x), len(y) ≥ len(x)
}

// activeSkinny is the machine's skinny kernel, nil when it has none.
var activeSkinny = bestSkinny()

// useSkinny reports whether g goes to the skinny path.
func useSkinny(g *gemm) bool {
	return activeSkinny != nil && g.m <= skinnyMaxRows && !g.transA && g.n*g.k >= smallGemm
}

// gemmSkinny computes g (m ≤ skinnyMaxRows, A not transposed) by streaming
// op(B) once, the columns of C split among up to threads workers. Each
// element of C is summed by one worker in a fixed order, so the result does
// not depend on the number of workers.
func gemmSkinny(g *gemm, kern *skinnyKernel, threads int) {
	workers := 1
	if 2*g.m*g.n*g.k >= parallelFlops {
		workers = min(threads, g.n/256+1) // at least 256 columns each
	}
	splitRun(workers, g.n, func(lo, hi int) {
		for i := 0; i < g.m; i++ {
			scaleRow(g.c[i*g.ldc+lo:i*g.ldc+hi], g.beta)
		}
		if !g.transB {
			for p := 0; p < g.k; p++ {
				brow := g.b[p*g.ldb+lo : p*g.ldb+hi]
				for i := 0; i < g.m; i++ {
					kern.axpy(g.c[i*g.ldc+lo:i*g.ldc+hi], brow, g.alpha*g.a[i*g.lda+p])
				}
			}
			return
		}
		for j := lo; j < hi; j++ {
			brow := g.b[j*g.ldb : j*g.ldb+g.k]
			for i := 0; i < g.m; i++ {
				g.c[i*g.ldc+j] += g.alpha * kern.dot(g.a[i*g.lda:i*g.lda+g.k], brow)
			}
		}
	})
}
