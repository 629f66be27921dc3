package gpu

import (
	"fmt"
	"math"
)

// Argument validation of the Llama family's ops (RMSNorm, rotary position
// embeddings, SwiGLU), shared by the backends like the Checker methods of
// shapes.go.

// RMSNormForward checks Backend.RMSNormForward (rstd may be nil) and
// returns the rows N and width C.
func (k Checker) RMSNormForward(out, rstd, inp, weight *Tensor, eps float32) (n, c int, err error) {
	const op = "rmsnorm forward"
	if _, err := k.Act(op, "out inp weight", out, inp, weight); err != nil {
		return 0, 0, err
	}
	if !(eps > 0) || math.IsInf(float64(eps), 0) {
		return 0, 0, fmt.Errorf("%s: eps %g, want finite > 0", op, eps)
	}
	c = weight.Len()
	if n, err = RowsOf(op, "inp", inp, c); err != nil {
		return 0, 0, err
	}
	if err := CheckLen(op, inp.Len(), "out", out); err != nil {
		return 0, 0, err
	}
	if rstd != nil {
		if err := first(k.F32(op, "rstd", rstd), CheckLen(op, n, "rstd", rstd)); err != nil {
			return 0, 0, err
		}
	}
	return n, c, first(
		CheckDisjoint(op, "out", out, "inp weight rstd", inp, weight, rstd),
		CheckDisjoint(op, "rstd", rstd, "inp weight", inp, weight))
}

// RMSNormBackward checks Backend.RMSNormBackward (every tensor required)
// and returns the rows N and width C.
func (k Checker) RMSNormBackward(dinp, dweight, dout, inp, weight, rstd *Tensor) (n, c int, err error) {
	const op = "rmsnorm backward"
	if _, err := k.Act(op, "dinp dout inp weight", dinp, dout, inp, weight); err != nil {
		return 0, 0, err
	}
	if err := k.F32(op, "dweight rstd", dweight, rstd); err != nil {
		return 0, 0, err
	}
	c = weight.Len()
	if n, err = RowsOf(op, "inp", inp, c); err != nil {
		return 0, 0, err
	}
	if err := first(CheckLen(op, c, "dweight", dweight), CheckLen(op, inp.Len(), "dinp dout", dinp, dout),
		CheckLen(op, n, "rstd", rstd)); err != nil {
		return 0, 0, err
	}
	const ins = "dout inp weight rstd"
	return n, c, first(
		CheckDisjoint(op, "dinp", dinp, ins+" dweight", dout, inp, weight, rstd, dweight),
		CheckDisjoint(op, "dweight", dweight, ins, dout, inp, weight, rstd))
}

// RoPEDims are the dimensions of a rotary embedding call: B sequences of T
// positions of a packed qkv with H query heads and KVH key/value heads of
// HS (even), and the activation dtype.
type RoPEDims struct {
	B, T, H, KVH, HS int
	Act              DType
}

// QKVWidth is the row width of the packed qkv: (H+2·KVH)·HS.
func (d RoPEDims) QKVWidth() int { return (d.H + 2*d.KVH) * d.HS }

// RoPE checks Backend.RoPEForward and RoPEBackward (backward: the op name
// in messages; qkv is then the gradient dqkv): qkv [B,T,(H+2·KVH)·hs] of
// the activation class, invFreq float32 [hs/2], start nil or Int32 [B].
func (k Checker) RoPE(backward bool, qkv, invFreq, start *Tensor, nHead, kvHeads int) (d RoPEDims, err error) {
	op, name := "rope forward", "qkv"
	if backward {
		op, name = "rope backward", "dqkv"
	}
	if d.Act, err = k.Act(op, name, qkv); err != nil {
		return d, err
	}
	if qkv.Rank() != 3 {
		return d, fmt.Errorf("%s: %s is %v, want [B,T,(H+2·KVH)·hs]", op, name, qkv)
	}
	if d.HS, err = qkvHeadSize(op, name, qkv, qkv.Dim(2), nHead, kvHeads); err != nil {
		return d, err
	}
	d.B, d.T, d.H, d.KVH = qkv.Dim(0), qkv.Dim(1), nHead, kvHeads
	if err := k.F32(op, "invFreq", invFreq); err != nil {
		return d, err
	}
	if d.HS%2 != 0 || !HasShape(invFreq, d.HS/2) {
		return d, fmt.Errorf("%s: invFreq is %v, want [hs/2] for an even head size hs = %d", op, invFreq, d.HS)
	}
	if start != nil {
		if err := k.Tensor(op, "start", start, Int32); err != nil {
			return d, err
		}
		if !HasShape(start, d.B) {
			return d, fmt.Errorf("%s: start is %v, want [%d]", op, start, d.B)
		}
	}
	return d, CheckDisjoint(op, name, qkv, "invFreq start", invFreq, start)
}

// SwiGLUForward checks Backend.SwiGLUForward and returns the rows N and the
// width F of out (inp's rows are 2F wide).
func (k Checker) SwiGLUForward(out, inp *Tensor) (n, f int, err error) {
	const op = "swiglu forward"
	if _, err := k.Act(op, "out inp", out, inp); err != nil {
		return 0, 0, err
	}
	if n, f, err = swigluRows(op, "out", "inp", out, inp); err != nil {
		return 0, 0, err
	}
	return n, f, CheckDisjoint(op, "out", out, "inp", inp)
}

// SwiGLUBackward checks Backend.SwiGLUBackward and returns the rows N and
// the width F of dout.
func (k Checker) SwiGLUBackward(dinp, inp, dout *Tensor) (n, f int, err error) {
	const op = "swiglu backward"
	if _, err := k.Act(op, "dinp inp dout", dinp, inp, dout); err != nil {
		return 0, 0, err
	}
	if n, f, err = swigluRows(op, "dout", "inp", dout, inp); err != nil {
		return 0, 0, err
	}
	return n, f, first(CheckLen(op, inp.Len(), "dinp", dinp), CheckDisjoint(op, "dinp", dinp, "inp dout", inp, dout))
}

// swigluRows checks that half [N,F] and whole [N,2F] (read as rows by
// their last dimensions) pair up, and returns N and F.
func swigluRows(op, halfName, wholeName string, half, whole *Tensor) (n, f int, err error) {
	if half.Rank() == 0 || whole.Rank() == 0 || half.Dim(-1) == 0 {
		return 0, 0, fmt.Errorf("%s: %s is %v and %s %v, want [N,F] and [N,2F] with F > 0", op, halfName, half, wholeName, whole)
	}
	f = half.Dim(-1)
	if n, err = RowsOf(op, wholeName, whole, 2*f); err != nil {
		return 0, 0, err
	}
	return n, f, CheckLen(op, n*f, halfName, half)
}
