package cpu

// packRows16AVX2 copies k rows of 16 floats, ld elements apart in src,
// into dst one after the other (pack_amd64.s).
//
//go:noescape
func packRows16AVX2(dst, src *float32, ld, k int)

// packCols16AVX2 writes the transpose of the 16×k block of src (row stride
// ld) into dst as k steps of 16; k is a multiple of 8 (pack_amd64.s).
//
//go:noescape
func packCols16AVX2(dst, src *float32, ld, k int)

// packRows16Vec is packRows16AVX2 on slices: dst[16·p+x] = src[ld·p+x].
func packRows16Vec(dst, src []float32, ld, k int) {
	if k == 0 {
		return
	}
	_ = dst[16*k-1]
	_ = src[(k-1)*ld+15]
	packRows16AVX2(&dst[0], &src[0], ld, k)
}

// packCols16Vec is the 16×k transpose dst[16·p+x] = src[ld·x+p], the
// assembly for whole groups of 8 steps and packCols16 for the rest.
func packCols16Vec(dst, src []float32, ld, k int) {
	k8 := k &^ 7
	if k8 > 0 {
		_ = dst[16*k8-1]
		_ = src[15*ld+k8-1]
		packCols16AVX2(&dst[0], &src[0], ld, k8)
	}
	if k8 < k {
		packCols16(dst[16*k8:], src, k8, ld, k-k8)
	}
}

// packCols16 interleaves 16 rows of length kc (stride ld, from src[off])
// into dst as kc steps of 16: the transpose of a 16×kc block in Go, for
// the steps packCols16Vec leaves to it.
func packCols16(dst, src []float32, off, ld, kc int) {
	var s [16][]float32
	for x := range s {
		s[x] = src[off+x*ld:][:kc]
	}
	dst = dst[:16*kc]
	for p := 0; p < kc; p++ {
		d := (*[16]float32)(dst[16*p:])
		d[0], d[1], d[2], d[3] = s[0][p], s[1][p], s[2][p], s[3][p]
		d[4], d[5], d[6], d[7] = s[4][p], s[5][p], s[6][p], s[7][p]
		d[8], d[9], d[10], d[11] = s[8][p], s[9][p], s[10][p], s[11][p]
		d[12], d[13], d[14], d[15] = s[12][p], s[13][p], s[14][p], s[15][p]
	}
}
