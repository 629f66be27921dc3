package cpu

import (
	"fmt"
	"math"
	"testing"
)

// TestPackPanels checks every micro-kernel's whole-panel packing against
// its definition, bit for bit, on random data: step counts around the
// vector width and the 8-step blocks of the transpose, row strides that are
// and are not multiples of the panel width, and a source that starts at an
// odd offset. The destination starts as NaN, so a step left unwritten
// shows.
func TestPackPanels(t *testing.T) {
	r := testRNG(11)
	for _, kern := range matmulKernels() {
		nr := kern.nr
		for _, k := range []int{0, 1, 7, 8, 9, 16, 31, 64, 129, 256} {
			for _, ld := range []int{nr, nr + 3, 2*nr + 1, 1024, 1031} {
				name := fmt.Sprintf("%s k%d ld%d", kern.name, k, ld)
				if kern.packRows != nil {
					// k rows of nr floats, ld apart, from offset 3.
					src := randn(r, 3+max(k, 1)*ld+nr, 1)[3:]
					dst := nanFilled(nr * k)
					kern.packRows(dst, src, ld, k)
					for p := 0; p < k; p++ {
						for x := 0; x < nr; x++ {
							if dst[p*nr+x] != src[p*ld+x] {
								t.Fatalf("%s packRows: dst[%d] = %v, want src[%d] = %v", name, p*nr+x, dst[p*nr+x], p*ld+x, src[p*ld+x])
							}
						}
					}
				}
				if kern.packCols != nil && ld >= k {
					// The transpose of nr rows of k floats, ld apart.
					src := randn(r, 3+nr*ld+k, 1)[3:]
					dst := nanFilled(nr * k)
					kern.packCols(dst, src, ld, k)
					for p := 0; p < k; p++ {
						for x := 0; x < nr; x++ {
							if dst[p*nr+x] != src[x*ld+p] {
								t.Fatalf("%s packCols: dst[%d] = %v, want src[%d] = %v", name, p*nr+x, dst[p*nr+x], x*ld+p, src[x*ld+p])
							}
						}
					}
				}
			}
		}
	}
}

func nanFilled(n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(math.NaN())
	}
	return s
}
