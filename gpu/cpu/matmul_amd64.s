#include "textflag.h"

// Micro-kernel for the blocked GEMM in matmul.go. It computes one register
// tile c[mr×nr] = alpha·(A·B) + beta·c over k steps, where A is an mr-row
// panel read through strides and B a panel of k steps of nr floats, rsb
// elements apart (nr for a packed panel, B's row stride read in place).
// beta == 0 (or -0) stores without reading c, so stale NaNs never leak in.
// ldc is the row stride of c in elements.

// ---------------------------------------------------------------------------
// AVX2 + FMA: 6×16 tile. Accumulators Y0..Y11 (row r in Y(2r), Y(2r+1)),
// B row in Y12/Y13, A broadcasts in Y14/Y15.
//
// A is read through strides, so the kernel takes a packed panel (rsa = 1,
// csa = 6) or A in place: row-major (rsa = lda, csa = 1) or transposed
// (rsa = 1, csa = lda). Element (r, p) is at a + 4·(r·rsa + p·csa).
// Rows 0-2 are addressed from SI, rows 3-5 from R12 = SI + 3·rsa, with R11
// = rsa in bytes as the index; R13 = csa in bytes advances both per step,
// R10 = rsb in bytes advances B (DI).

#define AVX2_STEP \
	VMOVUPS      (DI), Y12              \
	VMOVUPS      32(DI), Y13            \
	VBROADCASTSS (SI), Y14              \
	VBROADCASTSS (SI)(R11*1), Y15       \
	VFMADD231PS  Y12, Y14, Y0           \
	VFMADD231PS  Y13, Y14, Y1           \
	VFMADD231PS  Y12, Y15, Y2           \
	VFMADD231PS  Y13, Y15, Y3           \
	VBROADCASTSS (SI)(R11*2), Y14       \
	VBROADCASTSS (R12), Y15             \
	VFMADD231PS  Y12, Y14, Y4           \
	VFMADD231PS  Y13, Y14, Y5           \
	VFMADD231PS  Y12, Y15, Y6           \
	VFMADD231PS  Y13, Y15, Y7           \
	VBROADCASTSS (R12)(R11*1), Y14      \
	VBROADCASTSS (R12)(R11*2), Y15      \
	VFMADD231PS  Y12, Y14, Y8           \
	VFMADD231PS  Y13, Y14, Y9           \
	VFMADD231PS  Y12, Y15, Y10          \
	VFMADD231PS  Y13, Y15, Y11          \
	ADDQ         R13, SI                \
	ADDQ         R13, R12               \
	ADDQ         R10, DI

// Row r of the epilogue with beta != 0: c = beta·c + alpha·acc.
#define AVX2_ROW_BETA(lo, hi) \
	VMULPS      (DX), Y13, Y14   \
	VFMADD231PS lo, Y12, Y14     \
	VMOVUPS     Y14, (DX)        \
	VMULPS      32(DX), Y13, Y15 \
	VFMADD231PS hi, Y12, Y15     \
	VMOVUPS     Y15, 32(DX)      \
	ADDQ        R8, DX

// Row r of the epilogue with beta == 0: c = alpha·acc.
#define AVX2_ROW_STORE(lo, hi) \
	VMULPS  lo, Y12, lo \
	VMULPS  hi, Y12, hi \
	VMOVUPS lo, (DX)    \
	VMOVUPS hi, 32(DX)  \
	ADDQ    R8, DX

// func sgemm6x16AVX2(k int, a *float32, rsa, csa int, b *float32, rsb int, c *float32, ldc int, alpha, beta float32)
TEXT ·sgemm6x16AVX2(SB), NOSPLIT, $0-72
	MOVQ k+0(FP), CX
	MOVQ a+8(FP), SI
	MOVQ rsa+16(FP), R11
	SHLQ $2, R11
	MOVQ csa+24(FP), R13
	SHLQ $2, R13
	LEAQ (SI)(R11*2), R12
	ADDQ R11, R12
	MOVQ b+32(FP), DI
	MOVQ rsb+40(FP), R10
	SHLQ $2, R10
	MOVQ c+48(FP), DX
	MOVQ ldc+56(FP), R8
	SHLQ $2, R8

	// Warm the C tile while the k loop runs.
	MOVQ       DX, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)
	ADDQ       R8, R9
	PREFETCHT0 (R9)
	PREFETCHT0 60(R9)

	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11

	CMPQ CX, $4
	JLT  avx2tail

avx2loop4:
	AVX2_STEP
	AVX2_STEP
	AVX2_STEP
	AVX2_STEP
	SUBQ $4, CX
	CMPQ CX, $4
	JGE  avx2loop4

avx2tail:
	TESTQ CX, CX
	JEQ   avx2done

avx2loop1:
	AVX2_STEP
	DECQ CX
	JNE  avx2loop1

avx2done:
	VBROADCASTSS alpha+64(FP), Y12
	MOVL         beta+68(FP), AX
	ANDL         $0x7fffffff, AX
	JEQ          avx2store

	VBROADCASTSS beta+68(FP), Y13
	AVX2_ROW_BETA(Y0, Y1)
	AVX2_ROW_BETA(Y2, Y3)
	AVX2_ROW_BETA(Y4, Y5)
	AVX2_ROW_BETA(Y6, Y7)
	AVX2_ROW_BETA(Y8, Y9)
	AVX2_ROW_BETA(Y10, Y11)
	VZEROUPPER
	RET

avx2store:
	AVX2_ROW_STORE(Y0, Y1)
	AVX2_ROW_STORE(Y2, Y3)
	AVX2_ROW_STORE(Y4, Y5)
	AVX2_ROW_STORE(Y6, Y7)
	AVX2_ROW_STORE(Y8, Y9)
	AVX2_ROW_STORE(Y10, Y11)
	VZEROUPPER
	RET
