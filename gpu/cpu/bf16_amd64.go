package cpu

// widenBF16AVX2 widens n bf16 values (n a multiple of 16) exactly
// (bf16_amd64.s).
//
//go:noescape
func widenBF16AVX2(dst *float32, src *uint16, n int)

// roundBF16AVX2 rounds n floats (n a multiple of 16) to bf16 as
// gpu.BF16Bits does.
//
//go:noescape
func roundBF16AVX2(dst *uint16, src *float32, n int)

// widenBF16VecAVX2 is widenBF16 with AVX2: the assembly takes whole groups
// of 16, Go the tail.
func widenBF16VecAVX2(dst []float32, src []uint16) {
	dst = dst[:len(src)]
	n16 := len(src) &^ 15
	if n16 > 0 {
		widenBF16AVX2(&dst[0], &src[0], n16)
	}
	widenBF16(dst[n16:], src[n16:])
}

// roundBF16VecAVX2 is roundBF16 with AVX2.
func roundBF16VecAVX2(dst []uint16, src []float32) {
	dst = dst[:len(src)]
	n16 := len(src) &^ 15
	if n16 > 0 {
		roundBF16AVX2(&dst[0], &src[0], n16)
	}
	roundBF16(dst[n16:], src[n16:])
}
