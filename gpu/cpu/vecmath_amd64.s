#include "textflag.h"

// Vectorised GELU (GPT-2's tanh approximation) with AVX2 + FMA, 8 floats per
// YMM register; see vecmath_amd64.go and gelu.go for the math.
//
// gelu(x) = x·σ(2u) = x/(1 + e),  e = exp(t), t = −2u = xc·(k + kc·xc²),
// with xc = clamp(x, −9, 9): beyond ±9, e < 2e−29 (or 1/e is), so the forward
// is x (x > 9) or about −1e−28 (x < −9) and the gradient 1 or about 0 in
// float32 either way; clamping keeps exp and every product finite. The
// forward's numerator is max(x, −9), so +Inf gives +Inf, −Inf a tiny
// negative number, and NaN propagates (VMAXPS/VMINPS return their second
// source operand, x here, when either is NaN).
//
// exp(t), |t| < 67: n = round(t/ln 2) (adding 1.5·2^23 + 127 rounds, and the
// sum's low bits, shifted into the exponent field, are 2^n), r = t − n·ln 2
// (two FMAs, ln 2 in two parts), e^r by a degree-6 minimax polynomial with
// c0 = c1 = 1 (relative error 4e−9 on |r| ≤ ln2/2), times 2^n.

// 0(negB): -9: lower clamp of x
DATA geluConst<>+0(SB)/8, $0xc1100000c1100000
DATA geluConst<>+8(SB)/8, $0xc1100000c1100000
DATA geluConst<>+16(SB)/8, $0xc1100000c1100000
DATA geluConst<>+24(SB)/8, $0xc1100000c1100000
// 32(posB): +9: upper clamp of x
DATA geluConst<>+32(SB)/8, $0x4110000041100000
DATA geluConst<>+40(SB)/8, $0x4110000041100000
DATA geluConst<>+48(SB)/8, $0x4110000041100000
DATA geluConst<>+56(SB)/8, $0x4110000041100000
// 64(k): -2·sqrt(2/π)
DATA geluConst<>+64(SB)/8, $0xbfcc422abfcc422a
DATA geluConst<>+72(SB)/8, $0xbfcc422abfcc422a
DATA geluConst<>+80(SB)/8, $0xbfcc422abfcc422a
DATA geluConst<>+88(SB)/8, $0xbfcc422abfcc422a
// 96(kc): -2·sqrt(2/π)·0.044715
DATA geluConst<>+96(SB)/8, $0xbd922279bd922279
DATA geluConst<>+104(SB)/8, $0xbd922279bd922279
DATA geluConst<>+112(SB)/8, $0xbd922279bd922279
DATA geluConst<>+120(SB)/8, $0xbd922279bd922279
// 128(log2e): 1/ln 2
DATA geluConst<>+128(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA geluConst<>+136(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA geluConst<>+144(SB)/8, $0x3fb8aa3b3fb8aa3b
DATA geluConst<>+152(SB)/8, $0x3fb8aa3b3fb8aa3b
// 160(magic): 1.5·2^23 + 127
DATA geluConst<>+160(SB)/8, $0x4b40007f4b40007f
DATA geluConst<>+168(SB)/8, $0x4b40007f4b40007f
DATA geluConst<>+176(SB)/8, $0x4b40007f4b40007f
DATA geluConst<>+184(SB)/8, $0x4b40007f4b40007f
// 192(ln2hi): ln 2 rounded to float32
DATA geluConst<>+192(SB)/8, $0x3f3172183f317218
DATA geluConst<>+200(SB)/8, $0x3f3172183f317218
DATA geluConst<>+208(SB)/8, $0x3f3172183f317218
DATA geluConst<>+216(SB)/8, $0x3f3172183f317218
// 224(ln2lo): ln 2 − ln2hi
DATA geluConst<>+224(SB)/8, $0xb102e308b102e308
DATA geluConst<>+232(SB)/8, $0xb102e308b102e308
DATA geluConst<>+240(SB)/8, $0xb102e308b102e308
DATA geluConst<>+248(SB)/8, $0xb102e308b102e308
// 256(one): 1
DATA geluConst<>+256(SB)/8, $0x3f8000003f800000
DATA geluConst<>+264(SB)/8, $0x3f8000003f800000
DATA geluConst<>+272(SB)/8, $0x3f8000003f800000
DATA geluConst<>+280(SB)/8, $0x3f8000003f800000
// 288(k2): 2·sqrt(2/π)
DATA geluConst<>+288(SB)/8, $0x3fcc422a3fcc422a
DATA geluConst<>+296(SB)/8, $0x3fcc422a3fcc422a
DATA geluConst<>+304(SB)/8, $0x3fcc422a3fcc422a
DATA geluConst<>+312(SB)/8, $0x3fcc422a3fcc422a
// 320(k2c3): 2·sqrt(2/π)·3·0.044715
DATA geluConst<>+320(SB)/8, $0x3e5b33b63e5b33b6
DATA geluConst<>+328(SB)/8, $0x3e5b33b63e5b33b6
DATA geluConst<>+336(SB)/8, $0x3e5b33b63e5b33b6
DATA geluConst<>+344(SB)/8, $0x3e5b33b63e5b33b6
// 352(c6): e^r ≈ 1 + r + c2·r² + … + c6·r⁶
DATA geluConst<>+352(SB)/8, $0x3ab5121c3ab5121c
DATA geluConst<>+360(SB)/8, $0x3ab5121c3ab5121c
DATA geluConst<>+368(SB)/8, $0x3ab5121c3ab5121c
DATA geluConst<>+376(SB)/8, $0x3ab5121c3ab5121c
// 384(c5): 
DATA geluConst<>+384(SB)/8, $0x3c091cf53c091cf5
DATA geluConst<>+392(SB)/8, $0x3c091cf53c091cf5
DATA geluConst<>+400(SB)/8, $0x3c091cf53c091cf5
DATA geluConst<>+408(SB)/8, $0x3c091cf53c091cf5
// 416(c4): 
DATA geluConst<>+416(SB)/8, $0x3d2aac793d2aac79
DATA geluConst<>+424(SB)/8, $0x3d2aac793d2aac79
DATA geluConst<>+432(SB)/8, $0x3d2aac793d2aac79
DATA geluConst<>+440(SB)/8, $0x3d2aac793d2aac79
// 448(c3): 
DATA geluConst<>+448(SB)/8, $0x3e2aaa493e2aaa49
DATA geluConst<>+456(SB)/8, $0x3e2aaa493e2aaa49
DATA geluConst<>+464(SB)/8, $0x3e2aaa493e2aaa49
DATA geluConst<>+472(SB)/8, $0x3e2aaa493e2aaa49
// 480(c2): 
DATA geluConst<>+480(SB)/8, $0x3efffffe3efffffe
DATA geluConst<>+488(SB)/8, $0x3efffffe3efffffe
DATA geluConst<>+496(SB)/8, $0x3efffffe3efffffe
DATA geluConst<>+504(SB)/8, $0x3efffffe3efffffe
// 512(neg80): −80, the floor of the log-softmax exponent
DATA geluConst<>+512(SB)/8, $0xc2a00000c2a00000
DATA geluConst<>+520(SB)/8, $0xc2a00000c2a00000
DATA geluConst<>+528(SB)/8, $0xc2a00000c2a00000
DATA geluConst<>+536(SB)/8, $0xc2a00000c2a00000
GLOBL geluConst<>(SB), RODATA|NOPTR, $544

#define GC_NEGB geluConst<>+0(SB)
#define GC_POSB geluConst<>+32(SB)
#define GC_K geluConst<>+64(SB)
#define GC_KC geluConst<>+96(SB)
#define GC_LOG2E geluConst<>+128(SB)
#define GC_MAGIC geluConst<>+160(SB)
#define GC_LN2HI geluConst<>+192(SB)
#define GC_LN2LO geluConst<>+224(SB)
#define GC_ONE geluConst<>+256(SB)
#define GC_K2 geluConst<>+288(SB)
#define GC_K2C3 geluConst<>+320(SB)
#define GC_C6 geluConst<>+352(SB)
#define GC_C5 geluConst<>+384(SB)
#define GC_C4 geluConst<>+416(SB)
#define GC_C3 geluConst<>+448(SB)
#define GC_C2 geluConst<>+480(SB)
#define GC_NEG80 geluConst<>+512(SB)

// Register constants in both kernels.
#define GELU_CONSTS \
	VMOVUPS GC_NEGB, Y15  \
	VMOVUPS GC_POSB, Y14  \
	VMOVUPS GC_KC, Y13    \
	VMOVUPS GC_K, Y12     \
	VMOVUPS GC_LOG2E, Y11 \
	VMOVUPS GC_MAGIC, Y10 \
	VMOVUPS GC_ONE, Y9

// GELU_EXP takes x in Y0 and leaves max(x, −9) in Y1, xc in Y2, xc² in Y3
// and e = exp(xc·(k + kc·xc²)) in Y6. It clobbers Y4 and Y5.
#define GELU_EXP \
	VMAXPS       Y0, Y15, Y1 /* max(x, −9), NaN kept */ \
	VMINPS       Y1, Y14, Y2 /* xc = min(·, 9), NaN kept */ \
	VMULPS       Y2, Y2, Y3 /* xc² */ \
	VMOVAPS      Y3, Y4       \
	VFMADD213PS  Y12, Y13, Y4 /* k + kc·xc² */ \
	VMULPS       Y2, Y4, Y4 /* t */ \
	VMOVAPS      Y10, Y5      \
	VFMADD231PS  Y11, Y4, Y5 /* t/ln2 + magic: n+127 in the low bits */ \
	VSUBPS       Y10, Y5, Y6 /* n */ \
	VFNMADD231PS GC_LN2HI, Y6, Y4 \
	VFNMADD231PS GC_LN2LO, Y6, Y4 /* r = t − n·ln 2 */ \
	VMOVUPS      GC_C6, Y6    \
	VFMADD213PS  GC_C5, Y4, Y6 \
	VFMADD213PS  GC_C4, Y4, Y6 \
	VFMADD213PS  GC_C3, Y4, Y6 \
	VFMADD213PS  GC_C2, Y4, Y6 \
	VFMADD213PS  Y9, Y4, Y6   \
	VFMADD213PS  Y9, Y4, Y6 /* e^r */ \
	VPSLLD       $23, Y5, Y5 /* 2^n */ \
	VMULPS       Y5, Y6, Y6

// func geluFwdAVX2(dst, src *float32, n int)
// dst[i] = gelu(src[i]) for i < n, n a multiple of 8. dst may be src.
TEXT ·geluFwdAVX2(SB), NOSPLIT, $0-24
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   fwddone
	GELU_CONSTS

fwdloop:
	VMOVUPS (SI), Y0
	GELU_EXP
	VADDPS  Y9, Y6, Y6 // 1 + e
	VDIVPS  Y6, Y1, Y7 // max(x, −9)/(1 + e)
	VMOVUPS Y7, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     fwdloop
	VZEROUPPER

fwddone:
	RET

// func geluBwdAVX2(dx, x, dy *float32, n int)
// dx[i] = gelu'(x[i])·dy[i] for i < n, n a multiple of 8. dx may be dy.
// With σ = 1/(1 + e) and e·σ = 1 − σ:
// gelu' = σ + x·σ·(1 − σ)·2u' = σ + q·(e·σ)·σ,  q = xc·(k2 + k2c3·xc²).
TEXT ·geluBwdAVX2(SB), NOSPLIT, $0-32
	MOVQ dx+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ dy+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ   bwddone
	GELU_CONSTS

bwdloop:
	VMOVUPS     (SI), Y0
	GELU_EXP
	VADDPS      Y9, Y6, Y7   // 1 + e
	VDIVPS      Y7, Y9, Y8   // σ
	VMULPS      Y8, Y6, Y6   // e·σ
	VMOVUPS     GC_K2C3, Y1
	VFMADD213PS GC_K2, Y1, Y3 // k2 + k2c3·xc²
	VMULPS      Y2, Y3, Y3   // q
	VMULPS      Y6, Y3, Y3   // q·e·σ
	VFMADD213PS Y8, Y8, Y3   // σ + q·e·σ·σ
	VMULPS      (DX), Y3, Y3
	VMOVUPS     Y3, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DX
	ADDQ        $32, DI
	DECQ        CX
	JNZ         bwdloop
	VZEROUPPER

bwddone:
	RET

// VEXP sets E = exp(X) for X in [−87, 88], with T as scratch; X is
// clobbered (left holding the reduced argument). Constants come from memory.
#define VEXP(X, E, T) \
	VMOVUPS      GC_MAGIC, T        \
	VFMADD231PS  GC_LOG2E, X, T     \
	VSUBPS       GC_MAGIC, T, E     \
	VFNMADD231PS GC_LN2HI, E, X     \
	VFNMADD231PS GC_LN2LO, E, X     \
	VMOVUPS      GC_C6, E           \
	VFMADD213PS  GC_C5, X, E        \
	VFMADD213PS  GC_C4, X, E        \
	VFMADD213PS  GC_C3, X, E        \
	VFMADD213PS  GC_C2, X, E        \
	VFMADD213PS  GC_ONE, X, E       \
	VFMADD213PS  GC_ONE, X, E       \
	VPSLLD       $23, T, T          \
	VMULPS       T, E, E

// func lsmExpSumsAVX2(z *float32, n int, m float32) (s, w float64)
// With x = max(z[i] − m, −80) and e = exp(x) over i < n (a multiple of 16):
// s = Σ e and w = Σ e·x. Pairs of terms are added in float32, the pair sums
// in float64 (four lanes each, added at the end).
TEXT ·lsmExpSumsAVX2(SB), NOSPLIT, $0-40
	MOVQ         z+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), Y15
	VMOVUPS      GC_NEG80, Y14
	VXORPD       Y12, Y12, Y12
	VXORPD       Y13, Y13, Y13
	SHRQ         $4, CX
	JZ           sumsdone

sumsloop:
	VMOVUPS      (SI), Y0
	VSUBPS       Y15, Y0, Y0
	VMAXPS       Y0, Y14, Y0   // x0, NaN kept
	VMOVAPS      Y0, Y1
	VEXP(Y1, Y2, Y3)           // e0
	VMOVUPS      32(SI), Y4
	VSUBPS       Y15, Y4, Y4
	VMAXPS       Y4, Y14, Y4   // x1
	VMOVAPS      Y4, Y5
	VEXP(Y5, Y6, Y7)           // e1
	VADDPS       Y6, Y2, Y8    // e0 + e1
	VMULPS       Y0, Y2, Y9
	VFMADD231PS  Y4, Y6, Y9    // e0·x0 + e1·x1
	VCVTPS2PD    X8, Y10
	VADDPD       Y10, Y12, Y12
	VEXTRACTF128 $1, Y8, X8
	VCVTPS2PD    X8, Y10
	VADDPD       Y10, Y12, Y12
	VCVTPS2PD    X9, Y10
	VADDPD       Y10, Y13, Y13
	VEXTRACTF128 $1, Y9, X9
	VCVTPS2PD    X9, Y10
	VADDPD       Y10, Y13, Y13
	ADDQ         $64, SI
	DECQ         CX
	JNZ          sumsloop

sumsdone:
	VEXTRACTF128 $1, Y12, X0
	VADDPD       X0, X12, X0
	VHADDPD      X0, X0, X0
	VMOVSD       X0, s+24(FP)
	VEXTRACTF128 $1, Y13, X1
	VADDPD       X1, X13, X1
	VHADDPD      X1, X1, X1
	VMOVSD       X1, w+32(FP)
	VZEROUPPER
	RET

// func lsmGradAVX2(z *float32, n int, lse, nc, nde float32)
// z[i] = e·(nc + nde·x) with x = max(z[i] − lse, −80), e = exp(x), for
// i < n (a multiple of 8).
TEXT ·lsmGradAVX2(SB), NOSPLIT, $0-28
	MOVQ         z+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS lse+16(FP), Y15
	VBROADCASTSS nc+20(FP), Y13
	VBROADCASTSS nde+24(FP), Y12
	VMOVUPS      GC_NEG80, Y14
	SHRQ         $3, CX
	JZ           graddone

gradloop:
	VMOVUPS     (SI), Y0
	VSUBPS      Y15, Y0, Y0
	VMAXPS      Y0, Y14, Y0   // x, NaN kept
	VMOVAPS     Y13, Y4
	VFMADD231PS Y12, Y0, Y4   // nc + nde·x
	VEXP(Y0, Y2, Y3)
	VMULPS      Y4, Y2, Y2
	VMOVUPS     Y2, (SI)
	ADDQ        $32, SI
	DECQ        CX
	JNZ         gradloop
	VZEROUPPER

graddone:
	RET

// func rowMaxAVX2(z *float32, n int, m float32) float32
// The largest of m and z[i] for i < n (a multiple of 8), NaNs skipped.
TEXT ·rowMaxAVX2(SB), NOSPLIT, $0-28
	MOVQ         z+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), Y0
	SHRQ         $3, CX
	JZ           maxdone

maxloop:
	VMOVUPS (SI), Y1
	VMAXPS  Y0, Y1, Y0 // z > acc ? z : acc: a NaN z leaves acc
	ADDQ    $32, SI
	DECQ    CX
	JNZ     maxloop

maxdone:
	VEXTRACTF128 $1, Y0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0x4e, X0, X1
	VMAXPS       X1, X0, X0
	VPERMILPS    $0xb1, X0, X1
	VMAXPS       X1, X0, X0
	VMOVSS       X0, ret+24(FP)
	VZEROUPPER
	RET

// func attnExpAVX2(s *float32, n int, m float32) float64
// s[i] = exp(x), x = max(s[i] − m, −80), for i < n (a multiple of 8), and
// returns Σ s[i]: each vector of terms is widened and added in float64
// (four lanes per half, added at the end).
TEXT ·attnExpAVX2(SB), NOSPLIT, $0-32
	MOVQ         s+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSS m+16(FP), Y15
	VMOVUPS      GC_NEG80, Y14
	VXORPD       Y12, Y12, Y12
	VXORPD       Y13, Y13, Y13
	SHRQ         $3, CX
	JZ           aexpdone

aexploop:
	VMOVUPS      (SI), Y0
	VSUBPS       Y15, Y0, Y0
	VMAXPS       Y0, Y14, Y0 // x, NaN kept
	VEXP(Y0, Y2, Y3)
	VMOVUPS      Y2, (SI)
	VCVTPS2PD    X2, Y4
	VADDPD       Y4, Y12, Y12
	VEXTRACTF128 $1, Y2, X2
	VCVTPS2PD    X2, Y4
	VADDPD       Y4, Y13, Y13
	ADDQ         $32, SI
	DECQ         CX
	JNZ          aexploop

aexpdone:
	VADDPD       Y13, Y12, Y12
	VEXTRACTF128 $1, Y12, X0
	VADDPD       X0, X12, X0
	VHADDPD      X0, X0, X0
	VMOVSD       X0, ret+24(FP)
	VZEROUPPER
	RET

// func attnGradAVX2(p, ds *float32, n int, lse, d, scale float32)
// For i < n (a multiple of 8): p[i] = exp(max(p[i] − lse, −80)) and
// ds[i] = (p[i]·(ds[i] − d))·scale.
TEXT ·attnGradAVX2(SB), NOSPLIT, $0-36
	MOVQ         p+0(FP), SI
	MOVQ         ds+8(FP), DI
	MOVQ         n+16(FP), CX
	VBROADCASTSS lse+24(FP), Y15
	VBROADCASTSS d+28(FP), Y13
	VBROADCASTSS scale+32(FP), Y12
	VMOVUPS      GC_NEG80, Y14
	SHRQ         $3, CX
	JZ           agraddone

agradloop:
	VMOVUPS (SI), Y0
	VSUBPS  Y15, Y0, Y0
	VMAXPS  Y0, Y14, Y0 // x, NaN kept
	VEXP(Y0, Y2, Y3)
	VMOVUPS Y2, (SI)
	VMOVUPS (DI), Y4
	VSUBPS  Y13, Y4, Y4
	VMULPS  Y2, Y4, Y4
	VMULPS  Y12, Y4, Y4
	VMOVUPS Y4, (DI)
	ADDQ    $32, SI
	ADDQ    $32, DI
	DECQ    CX
	JNZ     agradloop
	VZEROUPPER

agraddone:
	RET

// func colSum64AVX2(acc *float64, x *float32, n int)
// acc[i] += float64(x[i]) for i < n, n a multiple of 8: the float64 sums
// of Go's loop, lane by lane.
TEXT ·colSum64AVX2(SB), NOSPLIT, $0-24
	MOVQ acc+0(FP), DI
	MOVQ x+8(FP), SI
	MOVQ n+16(FP), CX
	SHRQ $3, CX
	JZ   colsumdone

colsumloop:
	VCVTPS2PD (SI), Y0
	VCVTPS2PD 16(SI), Y1
	VADDPD    (DI), Y0, Y0
	VADDPD    32(DI), Y1, Y1
	VMOVUPD   Y0, (DI)
	VMOVUPD   Y1, 32(DI)
	ADDQ      $32, SI
	ADDQ      $64, DI
	DECQ      CX
	JNZ       colsumloop
	VZEROUPPER

colsumdone:
	RET

// func axpyAVX2(y, x *float32, a float32, n int)
// y[i] += a·x[i] for i < n, n a multiple of 8.
TEXT ·axpyAVX2(SB), NOSPLIT, $0-32
	MOVQ         y+0(FP), DI
	MOVQ         x+8(FP), SI
	VBROADCASTSS a+16(FP), Y0
	MOVQ         n+24(FP), CX

axpy32:
	CMPQ        CX, $32
	JL          axpy8
	VMOVUPS     (SI), Y1
	VMOVUPS     32(SI), Y2
	VMOVUPS     64(SI), Y3
	VMOVUPS     96(SI), Y4
	VFMADD213PS (DI), Y0, Y1 // a·x + y
	VFMADD213PS 32(DI), Y0, Y2
	VFMADD213PS 64(DI), Y0, Y3
	VFMADD213PS 96(DI), Y0, Y4
	VMOVUPS     Y1, (DI)
	VMOVUPS     Y2, 32(DI)
	VMOVUPS     Y3, 64(DI)
	VMOVUPS     Y4, 96(DI)
	ADDQ        $128, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JMP         axpy32

axpy8:
	CMPQ        CX, $8
	JL          axpydone
	VMOVUPS     (SI), Y1
	VFMADD213PS (DI), Y0, Y1
	VMOVUPS     Y1, (DI)
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         axpy8

axpydone:
	VZEROUPPER
	RET

// func dotAVX2(x, y *float32, n int) float32
// Σ x[i]·y[i] for i < n, n a multiple of 8, in four lanes of 8 partial sums.
TEXT ·dotAVX2(SB), NOSPLIT, $0-28
	MOVQ   x+0(FP), SI
	MOVQ   y+8(FP), DI
	MOVQ   n+16(FP), CX
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3

dot32:
	CMPQ        CX, $32
	JL          dot8
	VMOVUPS     (SI), Y4
	VMOVUPS     32(SI), Y5
	VMOVUPS     64(SI), Y6
	VMOVUPS     96(SI), Y7
	VFMADD231PS (DI), Y4, Y0 // acc += x·y
	VFMADD231PS 32(DI), Y5, Y1
	VFMADD231PS 64(DI), Y6, Y2
	VFMADD231PS 96(DI), Y7, Y3
	ADDQ        $128, SI
	ADDQ        $128, DI
	SUBQ        $32, CX
	JMP         dot32

dot8:
	CMPQ        CX, $8
	JL          dotsum
	VMOVUPS     (SI), Y4
	VFMADD231PS (DI), Y4, Y0
	ADDQ        $32, SI
	ADDQ        $32, DI
	SUBQ        $8, CX
	JMP         dot8

dotsum:
	VADDPS       Y1, Y0, Y0
	VADDPS       Y3, Y2, Y2
	VADDPS       Y2, Y0, Y0
	VEXTRACTF128 $1, Y0, X1
	VADDPS       X1, X0, X0
	VHADDPS      X0, X0, X0
	VHADDPS      X0, X0, X0
	VZEROUPPER
	MOVSS        X0, ret+24(FP)
	RET

// MUL64(X) sets X = X·c mod 2⁶⁴ in each 64-bit lane, c given as its low
// (CL) and high (CH) 32-bit halves, each in the low half of every lane:
// x·c = xl·cl + ((xh·cl + xl·ch) << 32) mod 2⁶⁴. Clobbers Y12–Y14.
#define MUL64(X, CL, CH) \
	VPMULUDQ CL, X, Y12 \
	VPSRLQ   $32, X, Y13 \
	VPMULUDQ CL, Y13, Y13 \
	VPMULUDQ CH, X, Y14 \
	VPADDQ   Y13, Y14, Y14 \
	VPSLLQ   $32, Y14, Y14 \
	VPADDQ   Y14, Y12, X

// SPLITMIX(Z, O) sets O to the top 24 bits of gpu.Mix64's finaliser of
// the lanes of Z (which hold seed + counter·φ). Clobbers Y12–Y14.
#define SPLITMIX(Z, O) \
	VPSRLQ $30, Z, O \
	VPXOR  Z, O, O \
	MUL64(O, Y5, Y6) \
	VPSRLQ $27, O, Y12 \
	VPXOR  Y12, O, O \
	MUL64(O, Y7, Y8) \
	VPSRLQ $31, O, Y12 \
	VPXOR  Y12, O, O \
	VPSRLQ $40, O, O

// func dropoutAVX2(dst, src *float32, n int, lanes *[8]uint64, step uint64, threshold int64, scale float32)
// dst[i] = 0 when the top 24 bits of Mix64 of lane i (lanes holds the
// first eight z = seed + (counter+1)·φ, step is 8·φ) are below threshold,
// else src[i]·scale; n a multiple of 8. dst may be src.
TEXT ·dropoutAVX2(SB), NOSPLIT, $0-52
	MOVQ         dst+0(FP), DI
	MOVQ         src+8(FP), SI
	MOVQ         n+16(FP), CX
	MOVQ         lanes+24(FP), AX
	VMOVDQU      (AX), Y0
	VMOVDQU      32(AX), Y1
	VPBROADCASTQ step+32(FP), Y2
	VPBROADCASTQ threshold+40(FP), Y3
	VBROADCASTSS scale+48(FP), Y4
	MOVQ         $0x1CE4E5B9, AX
	VMOVQ        AX, X5
	VPBROADCASTQ X5, Y5
	MOVQ         $0xBF58476D, AX
	VMOVQ        AX, X6
	VPBROADCASTQ X6, Y6
	MOVQ         $0x133111EB, AX
	VMOVQ        AX, X7
	VPBROADCASTQ X7, Y7
	MOVQ         $0x94D049BB, AX
	VMOVQ        AX, X8
	VPBROADCASTQ X8, Y8
	SHRQ         $3, CX
	JZ           dropdone

droploop:
	SPLITMIX(Y0, Y9)
	SPLITMIX(Y1, Y10)
	VPCMPGTQ Y9, Y3, Y9          // dropped: threshold > bits, lanes 0-3
	VPCMPGTQ Y10, Y3, Y10        // lanes 4-7
	VSHUFPS  $0x88, Y10, Y9, Y9  // low dwords: 0 1 4 5 | 2 3 6 7
	VPERMPD  $0xD8, Y9, Y9       // 0 1 2 3 4 5 6 7
	VMULPS   (SI), Y4, Y11
	VANDNPS  Y11, Y9, Y11        // keep where not dropped
	VMOVUPS  Y11, (DI)
	VPADDQ   Y2, Y0, Y0
	VPADDQ   Y2, Y1, Y1
	ADDQ     $32, SI
	ADDQ     $32, DI
	DECQ     CX
	JNZ      droploop
	VZEROUPPER

dropdone:
	RET

// func adamWAVX2(pp, gg, mm, vv *float32, n int, k *adamWConsts)
// One AdamW update of 8 elements per step, the operations of adamWGeneric
// in its order, each rounded (no FMA):
//   gi = g·scale; m = b1·m + c1·gi; v = b2·v + (c2·gi)·gi
//   p = w − lr·((m·ibc1)/(sqrt(v·ibc2) + eps) + wd·w)
TEXT ·adamWAVX2(SB), NOSPLIT, $0-48
	MOVQ         pp+0(FP), DI
	MOVQ         gg+8(FP), SI
	MOVQ         mm+16(FP), R8
	MOVQ         vv+24(FP), R9
	MOVQ         n+32(FP), CX
	MOVQ         k+40(FP), AX
	VBROADCASTSS 0(AX), Y0       // scale
	VBROADCASTSS 4(AX), Y1       // b1
	VBROADCASTSS 8(AX), Y2       // c1
	VBROADCASTSS 12(AX), Y3      // b2
	VBROADCASTSS 16(AX), Y4      // c2
	VBROADCASTSS 20(AX), Y5      // ibc1
	VBROADCASTSS 24(AX), Y6      // ibc2
	VBROADCASTSS 28(AX), Y7      // eps
	VBROADCASTSS 32(AX), Y8      // lr
	VBROADCASTSS 36(AX), Y9      // wd
	SHRQ         $3, CX
	JZ           adamwdone

adamwloop:
	VMULPS  (SI), Y0, Y10        // gi
	VMULPS  (R8), Y1, Y11        // b1·m
	VMULPS  Y10, Y2, Y12         // c1·gi
	VADDPS  Y12, Y11, Y11        // m
	VMOVUPS Y11, (R8)
	VMULPS  (R9), Y3, Y12        // b2·v
	VMULPS  Y10, Y4, Y13         // c2·gi
	VMULPS  Y10, Y13, Y13        // ·gi
	VADDPS  Y13, Y12, Y12        // v
	VMOVUPS Y12, (R9)
	VMULPS  Y6, Y12, Y13         // v·ibc2
	VSQRTPS Y13, Y13
	VADDPS  Y7, Y13, Y13         // den
	VMULPS  Y5, Y11, Y11         // m·ibc1
	VDIVPS  Y13, Y11, Y11        // /den
	VMOVUPS (DI), Y14            // w
	VMULPS  Y14, Y9, Y15         // wd·w
	VADDPS  Y15, Y11, Y11
	VMULPS  Y11, Y8, Y11         // lr·(…)
	VSUBPS  Y11, Y14, Y14        // w − lr·(…)
	VMOVUPS Y14, (DI)
	ADDQ    $32, DI
	ADDQ    $32, SI
	ADDQ    $32, R8
	ADDQ    $32, R9
	DECQ    CX
	JNZ     adamwloop

adamwdone:
	VZEROUPPER
	RET

// func lnSumsAVX2(x *float32, n int, m float64, sq bool, acc *[4]float64)
// acc[i mod 4] += x[i] (sq false) or (x[i] − m)² (sq true) for i < n, a
// multiple of 4, in float64, in order: 4 floats widened per step, one
// accumulator per lane.
TEXT ·lnSumsAVX2(SB), NOSPLIT, $0-40
	MOVQ         x+0(FP), SI
	MOVQ         n+8(FP), CX
	VBROADCASTSD m+16(FP), Y2
	MOVBLZX      sq+24(FP), DX
	MOVQ         acc+32(FP), AX
	VMOVUPD      (AX), Y0
	SHRQ         $2, CX
	JZ           lnsumsdone
	TESTQ        DX, DX
	JNZ          lnsqloop

lnsumloop:
	VCVTPS2PD (SI), Y1
	VADDPD    Y1, Y0, Y0
	ADDQ      $16, SI
	DECQ      CX
	JNZ       lnsumloop
	JMP       lnsumsdone

lnsqloop:
	VCVTPS2PD (SI), Y1
	VSUBPD    Y2, Y1, Y1         // x − m
	VMULPD    Y1, Y1, Y1         // (x − m)²
	VADDPD    Y1, Y0, Y0
	ADDQ      $16, SI
	DECQ      CX
	JNZ       lnsqloop

lnsumsdone:
	VMOVUPD Y0, (AX)
	VZEROUPPER
	RET

// func lnNormAVX2(o, x, w, b *float32, n int, m, rstd float64)
// o[i] = float32(((x[i] − m)·rstd)·w[i] + b[i]) in float64 for i < n, a
// multiple of 4 (no FMA: the Go loop's operations and roundings).
TEXT ·lnNormAVX2(SB), NOSPLIT, $0-56
	MOVQ         o+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         w+16(FP), R8
	MOVQ         b+24(FP), R9
	MOVQ         n+32(FP), CX
	VBROADCASTSD m+40(FP), Y2
	VBROADCASTSD rstd+48(FP), Y3
	SHRQ         $2, CX
	JZ           lnnormdone

lnnormloop:
	VCVTPS2PD (SI), Y0
	VSUBPD    Y2, Y0, Y0         // x − m
	VMULPD    Y3, Y0, Y0         // ·rstd
	VCVTPS2PD (R8), Y1
	VMULPD    Y1, Y0, Y0         // ·w
	VCVTPS2PD (R9), Y1
	VADDPD    Y1, Y0, Y0         // + b
	VCVTPD2PSY Y0, X0
	VMOVUPS   X0, (DI)
	ADDQ      $16, SI
	ADDQ      $16, R8
	ADDQ      $16, R9
	ADDQ      $16, DI
	DECQ      CX
	JNZ       lnnormloop

lnnormdone:
	VZEROUPPER
	RET

// func lnBwdSumsAVX2(x, dy, w *float32, n int, m, rstd float64, acc *[4]float64)
// For pairs i, i+1 < n (n even), in float64 and in order, lane l = i mod 2:
//   a = w·dy;  acc[l] += a;  acc[2+l] += a·((x − m)·rstd)
TEXT ·lnBwdSumsAVX2(SB), NOSPLIT, $0-56
	MOVQ         x+0(FP), SI
	MOVQ         dy+8(FP), DX
	MOVQ         w+16(FP), R8
	MOVQ         n+24(FP), CX
	VMOVDDUP     m+32(FP), X4
	VMOVDDUP     rstd+40(FP), X5
	MOVQ         acc+48(FP), AX
	VMOVUPD      (AX), X6        // d0 d1
	VMOVUPD      16(AX), X7      // n0 n1
	SHRQ         $1, CX
	JZ           lnbsumsdone

lnbsumsloop:
	VCVTPS2PD (R8), X1           // w
	VCVTPS2PD (DX), X2           // dy
	VMULPD    X2, X1, X1         // a = w·dy
	VADDPD    X1, X6, X6
	VCVTPS2PD (SI), X3           // x
	VSUBPD    X4, X3, X3         // x − m
	VMULPD    X5, X3, X3         // ·rstd
	VMULPD    X3, X1, X3         // a·norm
	VADDPD    X3, X7, X7
	ADDQ      $8, SI
	ADDQ      $8, DX
	ADDQ      $8, R8
	DECQ      CX
	JNZ       lnbsumsloop

lnbsumsdone:
	VMOVUPD X6, (AX)
	VMOVUPD X7, 16(AX)
	RET

// func lnBwdRowAVX2(dx, x, dy, w *float32, pw, pb *float64, n int, m, rstd, meanD, meanDN float64)
// For i < n (a multiple of 4), 4 per step, in float64 and the Go loop's order:
//   norm = (x − m)·rstd;  pw += norm·dy;  pb += dy
//   dx = dx + float32(((w·dy − meanD) − norm·meanDN)·rstd)   (float32 add)
TEXT ·lnBwdRowAVX2(SB), NOSPLIT, $0-88
	MOVQ         dx+0(FP), DI
	MOVQ         x+8(FP), SI
	MOVQ         dy+16(FP), DX
	MOVQ         w+24(FP), R8
	MOVQ         pw+32(FP), R9
	MOVQ         pb+40(FP), R10
	MOVQ         n+48(FP), CX
	VBROADCASTSD m+56(FP), Y8
	VBROADCASTSD rstd+64(FP), Y9
	VBROADCASTSD meanD+72(FP), Y10
	VBROADCASTSD meanDN+80(FP), Y11
	SHRQ         $2, CX
	JZ           lnbrowdone

lnbrowloop:
	VCVTPS2PD (SI), Y0           // x
	VSUBPD    Y8, Y0, Y0         // x − m
	VMULPD    Y9, Y0, Y0         // norm
	VCVTPS2PD (DX), Y1           // g = dy
	VMULPD    Y1, Y0, Y2         // norm·g
	VADDPD    (R9), Y2, Y2       // pw + norm·g
	VMOVUPD   Y2, (R9)
	VADDPD    (R10), Y1, Y3      // pb + g
	VMOVUPD   Y3, (R10)
	VCVTPS2PD (R8), Y4           // w
	VMULPD    Y1, Y4, Y4         // w·g
	VSUBPD    Y10, Y4, Y4        // − meanD
	VMULPD    Y11, Y0, Y5        // norm·meanDN
	VSUBPD    Y5, Y4, Y4         // − norm·meanDN
	VMULPD    Y9, Y4, Y4         // ·rstd
	VCVTPD2PSY Y4, X4
	VADDPS    (DI), X4, X4       // dx + …
	VMOVUPS   X4, (DI)
	ADDQ      $16, SI
	ADDQ      $16, DX
	ADDQ      $16, R8
	ADDQ      $32, R9
	ADDQ      $32, R10
	ADDQ      $16, DI
	DECQ      CX
	JNZ       lnbrowloop

lnbrowdone:
	VZEROUPPER
	RET

// SwiGLU (swiglu.go for the math): with gm = max(g, −80), gc = min(gm, 80)
// (NaN kept, as for GELU) and e = exp(−|gc|) by VEXP, σ = 1/(1 + e) and
// 1 − σ = e/(1 + e) for gc ≥ 0, the two swapped below: silu = gm·σ,
// silu' = σ·(1 + gc·(1 − σ)).

// 0: −80, 32: +80, 64: the float32 sign bit
DATA swigluConst<>+0(SB)/8, $0xc2a00000c2a00000
DATA swigluConst<>+8(SB)/8, $0xc2a00000c2a00000
DATA swigluConst<>+16(SB)/8, $0xc2a00000c2a00000
DATA swigluConst<>+24(SB)/8, $0xc2a00000c2a00000
DATA swigluConst<>+32(SB)/8, $0x42a0000042a00000
DATA swigluConst<>+40(SB)/8, $0x42a0000042a00000
DATA swigluConst<>+48(SB)/8, $0x42a0000042a00000
DATA swigluConst<>+56(SB)/8, $0x42a0000042a00000
DATA swigluConst<>+64(SB)/8, $0x8000000080000000
DATA swigluConst<>+72(SB)/8, $0x8000000080000000
DATA swigluConst<>+80(SB)/8, $0x8000000080000000
DATA swigluConst<>+88(SB)/8, $0x8000000080000000
GLOBL swigluConst<>(SB), RODATA|NOPTR, $96

#define SWIGLU_CONSTS \
	VMOVUPS swigluConst<>+0(SB), Y15  \
	VMOVUPS swigluConst<>+32(SB), Y14 \
	VMOVUPS swigluConst<>+64(SB), Y13 \
	VMOVUPS GC_ONE, Y12

// SWIGLU_EXP takes g in Y0 and leaves gm in Y1, gc in Y2, e in Y4 and
// 1 + e in Y5, with −80 in Y15, +80 in Y14, the sign bit in Y13 and 1 in
// Y12. It clobbers Y3.
#define SWIGLU_EXP \
	VMAXPS Y0, Y15, Y1 /* gm = max(g, −80), NaN kept */ \
	VMINPS Y1, Y14, Y2 /* gc = min(gm, 80), NaN kept */ \
	VORPS  Y13, Y2, Y3 /* −|gc| */ \
	VEXP(Y3, Y4, Y5)   /* e */ \
	VADDPS Y12, Y4, Y5 /* 1 + e */

// func swigluFwdAVX2(o, gate, up *float32, n int)
// o[i] = gm·σ·up[i] for i < n, n a multiple of 8, σ = (gc < 0 ? e : 1)/(1 + e)
// as sigmoid32 computes it. o may be gate or up.
TEXT ·swigluFwdAVX2(SB), NOSPLIT, $0-32
	MOVQ o+0(FP), DI
	MOVQ gate+8(FP), SI
	MOVQ up+16(FP), DX
	MOVQ n+24(FP), CX
	SHRQ $3, CX
	JZ   swfdone
	SWIGLU_CONSTS

swfloop:
	VMOVUPS   (SI), Y0
	SWIGLU_EXP
	VBLENDVPS Y2, Y4, Y12, Y6 // gc < 0 ? e : 1
	VDIVPS    Y5, Y6, Y6      // σ
	VMULPS    Y1, Y6, Y6      // gm·σ
	VMULPS    (DX), Y6, Y6    // ·up
	VMOVUPS   Y6, (DI)
	ADDQ      $32, SI
	ADDQ      $32, DX
	ADDQ      $32, DI
	DECQ      CX
	JNZ       swfloop
	VZEROUPPER

swfdone:
	RET

// func swigluBwdAVX2(dgate, dup, gate, up, dy *float32, n int)
// dgate[i] = dy·up·(σ·(1 + gc·(1 − σ))), dup[i] = dy·(gm·σ) for i < n, n a
// multiple of 8, with σ and 1 − σ from r = 1/(1 + e) as sigmoids32
// computes them, and the products in swigluBwdGeneric's order. dgate and
// dup may be gate and up.
TEXT ·swigluBwdAVX2(SB), NOSPLIT, $0-48
	MOVQ dgate+0(FP), DI
	MOVQ dup+8(FP), R8
	MOVQ gate+16(FP), SI
	MOVQ up+24(FP), DX
	MOVQ dy+32(FP), BX
	MOVQ n+40(FP), CX
	SHRQ $3, CX
	JZ   swbdone
	SWIGLU_CONSTS

swbloop:
	VMOVUPS   (SI), Y0
	SWIGLU_EXP
	VDIVPS    Y5, Y12, Y5     // r = 1/(1 + e)
	VMULPS    Y5, Y4, Y4      // e·r
	VBLENDVPS Y2, Y4, Y5, Y6  // σ = gc < 0 ? e·r : r
	VBLENDVPS Y2, Y5, Y4, Y7  // 1 − σ = gc < 0 ? r : e·r
	VMULPS    Y2, Y7, Y7      // gc·(1 − σ)
	VADDPS    Y12, Y7, Y7     // 1 + ·
	VMULPS    Y6, Y7, Y7      // σ·(1 + gc·(1 − σ))
	VMOVUPS   (BX), Y8        // dy
	VMULPS    (DX), Y8, Y9    // dy·up
	VMULPS    Y7, Y9, Y9
	VMULPS    Y1, Y6, Y6      // gm·σ
	VMULPS    Y6, Y8, Y8      // dy·(gm·σ)
	VMOVUPS   Y9, (DI)
	VMOVUPS   Y8, (R8)
	ADDQ      $32, SI
	ADDQ      $32, DX
	ADDQ      $32, BX
	ADDQ      $32, DI
	ADDQ      $32, R8
	DECQ      CX
	JNZ       swbloop
	VZEROUPPER

swbdone:
	RET
