#include "textflag.h"

// Packing of 16-wide GEMM B panels (matmul.go's packB, attention.go's key
// and value panels) with AVX2: a panel holds k steps of 16 floats.

// func packRows16AVX2(dst, src *float32, ld, k int)
// dst[16·p + x] = src[ld·p + x] for p < k, x < 16: k rows of 16 floats,
// ld elements apart, copied one after the other.
TEXT ·packRows16AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	SHLQ $2, DX
	MOVQ k+24(FP), CX
	TESTQ CX, CX
	JEQ  rowsdone

rowsloop:
	VMOVUPS (SI), Y0
	VMOVUPS 32(SI), Y1
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    DX, SI
	ADDQ    $64, DI
	DECQ    CX
	JNE     rowsloop
	VZEROUPPER

rowsdone:
	RET

// TRANSPOSE8 transposes the 8×8 block in Y0..Y7 (row r in Yr) into
// Y8..Y15 (column c in Y(8+c)).
#define TRANSPOSE8 \
	VUNPCKLPS  Y1, Y0, Y8         \
	VUNPCKHPS  Y1, Y0, Y9         \
	VUNPCKLPS  Y3, Y2, Y10        \
	VUNPCKHPS  Y3, Y2, Y11        \
	VUNPCKLPS  Y5, Y4, Y12        \
	VUNPCKHPS  Y5, Y4, Y13        \
	VUNPCKLPS  Y7, Y6, Y14        \
	VUNPCKHPS  Y7, Y6, Y15        \
	VSHUFPS    $0x44, Y10, Y8, Y0 \
	VSHUFPS    $0xee, Y10, Y8, Y1 \
	VSHUFPS    $0x44, Y11, Y9, Y2 \
	VSHUFPS    $0xee, Y11, Y9, Y3 \
	VSHUFPS    $0x44, Y14, Y12, Y4 \
	VSHUFPS    $0xee, Y14, Y12, Y5 \
	VSHUFPS    $0x44, Y15, Y13, Y6 \
	VSHUFPS    $0xee, Y15, Y13, Y7 \
	VPERM2F128 $0x20, Y4, Y0, Y8  \
	VPERM2F128 $0x20, Y5, Y1, Y9  \
	VPERM2F128 $0x20, Y6, Y2, Y10 \
	VPERM2F128 $0x20, Y7, Y3, Y11 \
	VPERM2F128 $0x31, Y4, Y0, Y12 \
	VPERM2F128 $0x31, Y5, Y1, Y13 \
	VPERM2F128 $0x31, Y6, Y2, Y14 \
	VPERM2F128 $0x31, Y7, Y3, Y15

// LOAD8 loads 8 floats at column offset R9 of the 8 rows starting at AX
// (row stride DX bytes, BX = 3·DX) into Y0..Y7.
#define LOAD8 \
	LEAQ    (AX)(R9*1), R10      \
	VMOVUPS (R10), Y0            \
	VMOVUPS (R10)(DX*1), Y1      \
	VMOVUPS (R10)(DX*2), Y2      \
	VMOVUPS (R10)(BX*1), Y3      \
	LEAQ    (R10)(DX*4), R10     \
	VMOVUPS (R10), Y4            \
	VMOVUPS (R10)(DX*1), Y5      \
	VMOVUPS (R10)(DX*2), Y6      \
	VMOVUPS (R10)(BX*1), Y7

// STORE8 writes column c of the transposed block (Y8+c) to step c of the
// panel at R11, 64 bytes a step, at byte offset off (0: rows 0-7 of the
// source, 32: rows 8-15).
#define STORE8(off) \
	VMOVUPS Y8, off(R11)      \
	VMOVUPS Y9, off+64(R11)   \
	VMOVUPS Y10, off+128(R11) \
	VMOVUPS Y11, off+192(R11) \
	VMOVUPS Y12, off+256(R11) \
	VMOVUPS Y13, off+320(R11) \
	VMOVUPS Y14, off+384(R11) \
	VMOVUPS Y15, off+448(R11)

// func packCols16AVX2(dst, src *float32, ld, k int)
// dst[16·p + x] = src[ld·x + p] for p < k, x < 16, k a multiple of 8: the
// transpose of a 16×k block with row stride ld, in 8×8 blocks.
TEXT ·packCols16AVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), R11
	MOVQ src+8(FP), SI
	MOVQ ld+16(FP), DX
	SHLQ $2, DX
	LEAQ (DX)(DX*2), BX
	LEAQ (SI)(DX*8), DI // row 8
	MOVQ k+24(FP), CX
	SHRQ $3, CX
	JEQ  colsdone
	XORQ R9, R9 // byte offset of the current 8 columns

colsloop:
	MOVQ SI, AX
	LOAD8
	TRANSPOSE8
	STORE8(0)
	MOVQ DI, AX
	LOAD8
	TRANSPOSE8
	STORE8(32)
	ADDQ $32, R9
	ADDQ $512, R11
	DECQ CX
	JNE  colsloop
	VZEROUPPER

colsdone:
	RET
