package safetensors

import (
	"encoding/binary"
	"math"
)

// Dtype names as they appear in the header.
const (
	BOOL   = "BOOL"
	U8     = "U8"
	I8     = "I8"
	U16    = "U16"
	I16    = "I16"
	U32    = "U32"
	I32    = "I32"
	U64    = "U64"
	I64    = "I64"
	F8E4M3 = "F8_E4M3"
	F8E5M2 = "F8_E5M2"
	F16    = "F16"
	BF16   = "BF16"
	F32    = "F32"
	F64    = "F64"
)

// dtypeSizes maps each supported dtype to its element size in bytes.
var dtypeSizes = map[string]int64{
	BOOL: 1, U8: 1, I8: 1, F8E4M3: 1, F8E5M2: 1,
	U16: 2, I16: 2, F16: 2, BF16: 2,
	U32: 4, I32: 4, F32: 4,
	U64: 8, I64: 8, F64: 8,
}

// dtypeSize reports the element size in bytes of a dtype, and whether the
// dtype is one this package knows.
func dtypeSize(dtype string) (int, bool) {
	n, ok := dtypeSizes[dtype]
	return int(n), ok
}

// decodeFloat32 converts little-endian elements of a float dtype in src to
// float32 in dst; len(src) must be len(dst) times the element size. It
// reports false for a dtype that is not convertible.
func decodeFloat32(dtype string, dst []float32, src []byte) bool {
	le := binary.LittleEndian
	switch dtype {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(le.Uint32(src[4*i:]))
		}
	case F16:
		for i := range dst {
			dst[i] = f16ToF32(le.Uint16(src[2*i:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(le.Uint16(src[2*i:])) << 16)
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(le.Uint64(src[8*i:])))
		}
	default:
		return false
	}
	return true
}

// IsFloat reports whether a tensor of dtype can be read as float32 (by
// Float32, ReadFloat32 and Dense): F32, F16, BF16 and F64.
func IsFloat(dtype string) bool {
	switch dtype {
	case F32, F16, BF16, F64:
		return true
	}
	return false
}

// f16ToF32 converts an IEEE 754 binary16 value to float32 exactly,
// including subnormals, infinities and NaN payloads.
func f16ToF32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	mant := uint32(h) & 0x3ff
	switch exp {
	case 0x1f: // Inf or NaN
		return math.Float32frombits(sign | 0x7f800000 | mant<<13)
	case 0: // zero or subnormal: mant × 2^-24, exact in float32
		f := float32(mant) / (1 << 24)
		if sign != 0 {
			f = -f
		}
		return f
	default: // rebias exponent from 15 to 127
		return math.Float32frombits(sign | (exp+127-15)<<23 | mant<<13)
	}
}
