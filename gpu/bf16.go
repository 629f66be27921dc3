package gpu

import "math"

// BF16Bits rounds x to bfloat16 (round to nearest, ties to even) and
// returns its bits: the conversion of every bf16 store, the same as the
// kernels' (kernels/bf16.cuh, cvt.rn.bf16.f32). Overflow gives ±infinity,
// subnormals are kept, and every NaN becomes the quiet NaN 0x7FFF.
func BF16Bits(x float32) uint16 {
	u := math.Float32bits(x)
	if u&0x7fffffff > 0x7f800000 {
		return 0x7fff
	}
	// Add half an ulp of the result, less one unless the kept low bit is
	// odd (ties to even), and truncate.
	u += 0x7fff + (u>>16)&1
	return uint16(u >> 16)
}

// BF16Float widens bfloat16 bits to float32, exactly.
func BF16Float(b uint16) float32 { return math.Float32frombits(uint32(b) << 16) }

// RoundBF16 is x rounded to the nearest bfloat16, as float32: what a bf16
// store and load of x give.
func RoundBF16(x float32) float32 { return BF16Float(BF16Bits(x)) }
