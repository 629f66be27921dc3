#include "textflag.h"

// bf16 conversions with AVX2, 16 elements per iteration; see bf16.go and
// gpu.BF16Bits for the rounding.

// func widenBF16AVX2(dst *float32, src *uint16, n int)
// dst[i] = src[i] << 16 as float32 bits, for i < n, n a multiple of 16.
TEXT ·widenBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	JZ   widendone

widenloop:
	VPMOVZXWD (SI), Y0
	VPMOVZXWD 16(SI), Y1
	VPSLLD    $16, Y0, Y0
	VPSLLD    $16, Y1, Y1
	VMOVDQU   Y0, (DI)
	VMOVDQU   Y1, 32(DI)
	ADDQ      $32, SI
	ADDQ      $64, DI
	DECQ      CX
	JNZ       widenloop
	VZEROUPPER

widendone:
	RET

// ROUND8 leaves in Y the bf16 bits of the 8 floats at OFF(SI), in the low
// half of each dword: (u + 0x7fff + (u>>16 & 1)) >> 16, or 0x7fff where u
// is a NaN (u & 0x7fffffff > 0x7f800000). Clobbers Y2..Y4.
#define ROUND8(OFF, Y) \
	VMOVDQU  OFF(SI), Y2 \
	VPSRLD   $16, Y2, Y3 \
	VPAND    Y8, Y3, Y3 /* lsb of the kept bits */ \
	VPADDD   Y9, Y2, Y4 \
	VPADDD   Y3, Y4, Y4 \
	VPSRLD   $16, Y4, Y \
	VPAND    Y10, Y2, Y2 /* |u| */ \
	VPCMPGTD Y11, Y2, Y2 /* NaN */ \
	VPBLENDVB Y2, Y9, Y, Y

// func roundBF16AVX2(dst *uint16, src *float32, n int)
// dst[i] = gpu.BF16Bits(src[i]) for i < n, n a multiple of 16.
TEXT ·roundBF16AVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $4, CX
	JZ   rounddone
	MOVL         $1, AX
	VMOVD        AX, X8
	VPBROADCASTD X8, Y8 // 1
	MOVL         $0x7fff, AX
	VMOVD        AX, X9
	VPBROADCASTD X9, Y9 // 0x7fff: half an ulp less one, and the NaN
	MOVL         $0x7fffffff, AX
	VMOVD        AX, X10
	VPBROADCASTD X10, Y10 // |·| mask
	MOVL         $0x7f800000, AX
	VMOVD        AX, X11
	VPBROADCASTD X11, Y11 // +Inf

roundloop:
	ROUND8(0, Y0)
	ROUND8(32, Y1)
	VPACKUSDW Y1, Y0, Y0 // words of Y0 and Y1 per 128-bit lane: qwords 0 2 1 3
	VPERMQ    $0xd8, Y0, Y0
	VMOVDQU   Y0, (DI)
	ADDQ      $64, SI
	ADDQ      $32, DI
	DECQ      CX
	JNZ       roundloop
	VZEROUPPER

rounddone:
	RET
