#include "textflag.h"

// Decoding attention's loops over one head's cached keys and values
// (decode.go), AVX2 + FMA, for head sizes hs that are multiples of 8. Key
// and value rows are contiguous, hs floats each.

// func decodeScoresAVX2(s, q, k *float32, n, hs int, scale float32)
// s[j] = scale·(q·k_j) for j < n, k_j = k[j·hs : (j+1)·hs]. Each dot
// product alternates two accumulators over 8-float chunks, then adds
// their lanes.
TEXT ·decodeScoresAVX2(SB), NOSPLIT, $0-44
	MOVQ   s+0(FP), DI
	MOVQ   q+8(FP), SI
	MOVQ   k+16(FP), DX
	MOVQ   n+24(FP), CX
	MOVQ   hs+32(FP), BX
	VMOVSS scale+40(FP), X15
	SHRQ   $3, BX
	TESTQ  CX, CX
	JEQ    scoresdone
	TESTQ  BX, BX
	JEQ    scoresdone

keyloop:
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	MOVQ   SI, R8
	MOVQ   BX, R9

chunkloop:
	VMOVUPS     (DX), Y2
	VFMADD231PS (R8), Y2, Y0
	ADDQ        $32, DX
	ADDQ        $32, R8
	DECQ        R9
	JEQ         reduce
	VMOVUPS     (DX), Y3
	VFMADD231PS (R8), Y3, Y1
	ADDQ        $32, DX
	ADDQ        $32, R8
	DECQ        R9
	JNE         chunkloop

reduce:
	VADDPS       Y1, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VADDPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VADDSS       X1, X0, X0
	VMULSS       X15, X0, X0
	VMOVSS       X0, (DI)
	ADDQ         $4, DI
	DECQ         CX
	JNE          keyloop
	VZEROUPPER

scoresdone:
	RET

// func decodeMixAVX2(o, w, v *float32, n, hs int)
// o[c] = Σ_j w[j]·v[j·hs + c] for c < hs, the FMAs in order j = 0, 1, …
// from zero (an axpy per key would give the same bits), n ≥ 1. Columns go
// 32 at a time in four accumulators, then 8 at a time.
TEXT ·decodeMixAVX2(SB), NOSPLIT, $0-40
	MOVQ o+0(FP), DI
	MOVQ hs+32(FP), R10
	MOVQ R10, BX
	SHLQ $2, BX      // row stride in bytes
	XORQ R11, R11    // column offset in bytes

mix32:
	CMPQ   R10, $32
	JLT    mix8
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	MOVQ   w+8(FP), R8
	MOVQ   v+16(FP), R9
	ADDQ   R11, R9
	MOVQ   n+24(FP), CX

loop32:
	VBROADCASTSS (R8), Y4
	VFMADD231PS  (R9), Y4, Y0
	VFMADD231PS  32(R9), Y4, Y1
	VFMADD231PS  64(R9), Y4, Y2
	VFMADD231PS  96(R9), Y4, Y3
	ADDQ         $4, R8
	ADDQ         BX, R9
	DECQ         CX
	JNE          loop32
	VMOVUPS      Y0, (DI)(R11*1)
	VMOVUPS      Y1, 32(DI)(R11*1)
	VMOVUPS      Y2, 64(DI)(R11*1)
	VMOVUPS      Y3, 96(DI)(R11*1)
	ADDQ         $128, R11
	SUBQ         $32, R10
	JMP          mix32

mix8:
	CMPQ   R10, $8
	JLT    mixdone
	VXORPS Y0, Y0, Y0
	MOVQ   w+8(FP), R8
	MOVQ   v+16(FP), R9
	ADDQ   R11, R9
	MOVQ   n+24(FP), CX

loop8:
	VBROADCASTSS (R8), Y4
	VFMADD231PS  (R9), Y4, Y0
	ADDQ         $4, R8
	ADDQ         BX, R9
	DECQ         CX
	JNE          loop8
	VMOVUPS      Y0, (DI)(R11*1)
	ADDQ         $32, R11
	SUBQ         $8, R10
	JMP          mix8

mixdone:
	VZEROUPPER
	RET
