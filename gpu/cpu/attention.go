package cpu

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// Fused causal multi-head attention.
//
// Work is split over (batch, head) pairs. A worker gathers the queries, keys
// and values of one head into contiguous [T,hs] buffers, so every inner loop
// (a dot product or an axpy over the head size) runs over contiguous memory,
// then walks the query rows two at a time (the pair shares every load of a
// key, value and, backward, of their gradient rows) with a row of T scores
// per query as scratch: no T×T matrix is ever formed, and the scratch is
// O(T·hs) per worker. The backward pass follows FlashAttention-2: it
// recomputes each probability from the saved log-sum-exp,
// P = exp(S − lse), and uses D_t = dO_t·O_t so that dS = P∘(dP − D) needs
// no row reduction over P. Scores, probabilities and sums are float32; the
// softmax denominator is summed in float64.

// attnDims are the validated dimensions of an attention call.
type attnDims struct {
	B, T, C, H, hs int
}

// attnHasShape reports whether t has exactly the given dimensions.
func attnHasShape(t *gpu.Tensor, dims ...int) bool {
	if t.Rank() != len(dims) {
		return false
	}
	for i, d := range dims {
		if t.Dim(i) != d {
			return false
		}
	}
	return true
}

// attnCheck validates qkv, validLen and nHead and returns the dimensions and
// the valid lengths (nil: all T). ok is false when the op must not run.
func (b *Backend) attnCheck(op string, qkv, validLen *gpu.Tensor, nHead int) (d attnDims, lens []int32, ok bool) {
	if b.err != nil {
		return d, nil, false
	}
	if b.fail(checkTensor(op, "qkv", qkv, gpu.Float32)) {
		return d, nil, false
	}
	if qkv.Rank() != 3 || qkv.Dim(2)%3 != 0 || qkv.Dim(2) == 0 {
		b.failf("%s: qkv is %v, want [B,T,3C] with C > 0", op, qkv)
		return d, nil, false
	}
	d.B, d.T, d.C = qkv.Dim(0), qkv.Dim(1), qkv.Dim(2)/3
	if nHead <= 0 || d.C%nHead != 0 {
		b.failf("%s: C=%d is not divisible into %d heads", op, d.C, nHead)
		return d, nil, false
	}
	d.H, d.hs = nHead, d.C/nHead
	if validLen != nil {
		if b.fail(checkTensor(op, "validLen", validLen, gpu.Int32)) {
			return d, nil, false
		}
		if !attnHasShape(validLen, d.B) {
			b.failf("%s: validLen is %v, want [%d]", op, validLen, d.B)
			return d, nil, false
		}
		lens = I32(validLen)
		for i, l := range lens {
			if l < 0 || int(l) > d.T {
				b.failf("%s: validLen[%d] = %d outside [0,%d]", op, i, l, d.T)
				return d, nil, false
			}
		}
	}
	return d, lens, true
}

// attnCheckOperand validates a float32 operand of an attention call.
func (b *Backend) attnCheckOperand(op, name string, t *gpu.Tensor, dims ...int) bool {
	if b.fail(checkTensor(op, name, t, gpu.Float32)) {
		return false
	}
	if !attnHasShape(t, dims...) {
		b.failf("%s: %s is %v, want %v", op, name, t, dims)
		return false
	}
	return true
}

// attnGather copies rows [0,n) of one head's slice (columns col..col+hs of a
// [T,stride] matrix) into dst [n,hs].
func attnGather(dst, src []float32, n, stride, col, hs int) {
	for t := 0; t < n; t++ {
		copy(dst[t*hs:(t+1)*hs], src[t*stride+col:t*stride+col+hs])
	}
}

// AttentionForward implements gpu.Backend.
func (b *Backend) AttentionForward(out, lse, qkv, validLen *gpu.Tensor, nHead int) {
	const op = "attention forward"
	d, lens, ok := b.attnCheck(op, qkv, validLen, nHead)
	if !ok ||
		!b.attnCheckOperand(op, "out", out, d.B, d.T, d.C) ||
		!b.attnCheckOperand(op, "lse", lse, d.B, d.H, d.T) {
		return
	}
	if d.B == 0 || d.T == 0 {
		return
	}
	x, o, l := F32(qkv), F32(out), F32(lse)
	T, C, H, hs := d.T, d.C, d.H, d.hs
	scale := float32(1 / math.Sqrt(float64(hs)))
	b.parallelFor(d.B*H, 1, func(lo, hi int) {
		q := make([]float32, T*hs)
		k := make([]float32, T*hs)
		v := make([]float32, T*hs)
		rowA := make([]float32, T)
		rowB := make([]float32, T)
		for bh := lo; bh < hi; bh++ {
			bi, h := bh/H, bh%H
			n := T
			if lens != nil {
				n = int(lens[bi])
			}
			xb := x[bi*T*3*C : (bi+1)*T*3*C]
			ob := o[bi*T*C : (bi+1)*T*C]
			lb := l[bi*H*T+h*T : bi*H*T+(h+1)*T]
			attnGather(q, xb, n, 3*C, h*hs, hs)
			attnGather(k, xb, n, 3*C, C+h*hs, hs)
			attnGather(v, xb, n, 3*C, 2*C+h*hs, hs)
			// Query rows go in pairs (t, t+1) that share the loads of
			// keys 0..t; key t+1 is seen by row t+1 alone.
			for t := 0; t < n; t += 2 {
				pa := rowA[:t+1]
				var ma float32
				if t+1 < n {
					pb := rowB[:t+2]
					var mb float32
					ma, mb = attnScores2(pa, pb[:t+1], q[t*hs:(t+1)*hs], q[(t+1)*hs:(t+2)*hs], k, scale)
					mb = max(mb, attnScores(pb[t+1:], q[(t+1)*hs:(t+2)*hs], k[(t+1)*hs:], scale))
					attnSoftmaxRow(ob[(t+1)*C+h*hs:(t+1)*C+h*hs+hs], &lb[t+1], pb, mb, v)
				} else {
					ma = attnScores(pa, q[t*hs:(t+1)*hs], k, scale)
				}
				attnSoftmaxRow(ob[t*C+h*hs:t*C+h*hs+hs], &lb[t], pa, ma, v)
			}
			for t := n; t < T; t++ {
				clear(ob[t*C+h*hs : t*C+h*hs+hs])
				lb[t] = 0
			}
		}
	})
}

// AttentionBackward implements gpu.Backend.
func (b *Backend) AttentionBackward(dqkv, dout, qkv, out, lse, validLen *gpu.Tensor, nHead int) {
	const op = "attention backward"
	d, lens, ok := b.attnCheck(op, qkv, validLen, nHead)
	if !ok ||
		!b.attnCheckOperand(op, "dqkv", dqkv, d.B, d.T, 3*d.C) ||
		!b.attnCheckOperand(op, "dout", dout, d.B, d.T, d.C) ||
		!b.attnCheckOperand(op, "out", out, d.B, d.T, d.C) ||
		!b.attnCheckOperand(op, "lse", lse, d.B, d.H, d.T) {
		return
	}
	if d.B == 0 || d.T == 0 {
		return
	}
	x, dx, do, o, l := F32(qkv), F32(dqkv), F32(dout), F32(out), F32(lse)
	T, C, H, hs := d.T, d.C, d.H, d.hs
	scale := float32(1 / math.Sqrt(float64(hs)))
	b.parallelFor(d.B*H, 1, func(lo, hi int) {
		q := make([]float32, T*hs)
		k := make([]float32, T*hs)
		v := make([]float32, T*hs)
		dk := make([]float32, T*hs)
		dv := make([]float32, T*hs)
		dsaBuf := make([]float32, T)
		dsbBuf := make([]float32, T)
		for bh := lo; bh < hi; bh++ {
			bi, h := bh/H, bh%H
			n := T
			if lens != nil {
				n = int(lens[bi])
			}
			xb := x[bi*T*3*C : (bi+1)*T*3*C]
			dxb := dx[bi*T*3*C : (bi+1)*T*3*C]
			dob := do[bi*T*C : (bi+1)*T*C]
			ob := o[bi*T*C : (bi+1)*T*C]
			lb := l[bi*H*T+h*T : bi*H*T+(h+1)*T]
			attnGather(q, xb, n, 3*C, h*hs, hs)
			attnGather(k, xb, n, 3*C, C+h*hs, hs)
			attnGather(v, xb, n, 3*C, 2*C+h*hs, hs)
			// Keys and values at or beyond n are seen by no valid query,
			// so their gradients stay zero.
			clear(dk[:n*hs])
			clear(dv[:n*hs])
			// Query rows go in pairs (ta, tb = ta+1) so that each key's
			// dK and dV rows are loaded and stored once for two queries.
			for ta := 0; ta < n; ta += 2 {
				qa := q[ta*hs : (ta+1)*hs]
				doa := dob[ta*C+h*hs : ta*C+h*hs+hs]
				da := attnDot(doa, ob[ta*C+h*hs:ta*C+h*hs+hs]) // D = dO·O
				dsa := dsaBuf[:ta+1]
				if ta+1 == n {
					attnBackwardKeys1(dsa, qa, doa, k, v, dk, dv, lb[ta], da, scale)
				} else {
					tb := ta + 1
					qb := q[tb*hs : (tb+1)*hs]
					dobb := dob[tb*C+h*hs : tb*C+h*hs+hs]
					db := attnDot(dobb, ob[tb*C+h*hs:tb*C+h*hs+hs])
					dsb := dsbBuf[:tb+1]
					attnBackwardKeys2(dsa, dsb[:ta+1], qa, qb, doa, dobb, k, v, dk, dv, lb[ta], lb[tb], da, db, scale)
					// Key tb is seen by query tb only.
					attnBackwardKeys1(dsb[tb:], qb, dobb, k[tb*hs:], v[tb*hs:], dk[tb*hs:], dv[tb*hs:], lb[tb], db, scale)
					attnWeightedSum(dxb[tb*3*C+h*hs:tb*3*C+h*hs+hs], dsb, k)
				}
				// dQ = Σ_j dS_j·K_j, written straight into dqkv.
				attnWeightedSum(dxb[ta*3*C+h*hs:ta*3*C+h*hs+hs], dsa, k)
			}
			for t := 0; t < T; t++ {
				r := dxb[t*3*C : (t+1)*3*C]
				if t >= n {
					clear(r[h*hs : h*hs+hs])
					clear(r[C+h*hs : C+h*hs+hs])
					clear(r[2*C+h*hs : 2*C+h*hs+hs])
					continue
				}
				copy(r[C+h*hs:C+h*hs+hs], dk[t*hs:(t+1)*hs])
				copy(r[2*C+h*hs:2*C+h*hs+hs], dv[t*hs:(t+1)*hs])
			}
		}
	})
}

// The kernels below work on one head's contiguous [T,hs] buffers; hs is
// len(q) and key j is the row k[j·hs:(j+1)·hs].

// attnScores sets s[j] = scale·(q·k_j) for j < len(s) and returns the
// largest score.
func attnScores(s, q, k []float32, scale float32) float32 {
	hs := len(q)
	m := float32(math.Inf(-1))
	for j := range s {
		kj := k[j*hs : (j+1)*hs]
		kj = kj[:len(q)]
		var s0, s1, s2, s3 float32
		i := 0
		for ; i+4 <= len(q); i += 4 {
			qq, kk := q[i:i+4:i+4], kj[i:i+4:i+4]
			s0 += qq[0] * kk[0]
			s1 += qq[1] * kk[1]
			s2 += qq[2] * kk[2]
			s3 += qq[3] * kk[3]
		}
		for ; i < len(q); i++ {
			s0 += q[i] * kj[i]
		}
		sj := ((s0 + s1) + (s2 + s3)) * scale
		s[j] = sj
		if sj > m {
			m = sj
		}
	}
	return m
}

// attnScores2 is attnScores for two query rows qa and qb over the same keys
// j < len(sa) (len(sb) = len(sa)), loading each key once for both.
func attnScores2(sa, sb, qa, qb, k []float32, scale float32) (ma, mb float32) {
	hs := len(qa)
	qb = qb[:hs]
	sb = sb[:len(sa)]
	ma, mb = float32(math.Inf(-1)), float32(math.Inf(-1))
	for j := range sa {
		kj := k[j*hs : (j+1)*hs]
		kj = kj[:hs]
		var a0, a1, b0, b1 float32
		i := 0
		for ; i+2 <= hs; i += 2 {
			k0, k1 := kj[i], kj[i+1]
			a0 += qa[i] * k0
			a1 += qa[i+1] * k1
			b0 += qb[i] * k0
			b1 += qb[i+1] * k1
		}
		if i < hs {
			a0 += qa[i] * kj[i]
			b0 += qb[i] * kj[i]
		}
		va, vb := (a0+a1)*scale, (b0+b1)*scale
		sa[j], sb[j] = va, vb
		if va > ma {
			ma = va
		}
		if vb > mb {
			mb = vb
		}
	}
	return ma, mb
}

// attnSoftmaxRow turns the scores s (maximum m) of one query row into
// probabilities and writes the row's output out = Σ_j p_j·v_j and its
// log-sum-exp.
func attnSoftmaxRow(out []float32, lse *float32, s []float32, m float32, v []float32) {
	sum := attnExpShift(s, m)
	attnWeightedSum(out, s, v)
	inv := float32(1 / sum)
	for i := range out {
		out[i] *= inv
	}
	*lse = float32(float64(m) + math.Log(sum))
}

// attnWeightedSum sets acc = Σ_j w[j]·x_j over j < len(w), four rows of x
// at a time so that acc is loaded and stored once per four.
func attnWeightedSum(acc, w, x []float32) {
	hs := len(acc)
	clear(acc)
	j := 0
	for ; j+4 <= len(w); j += 4 {
		w0, w1, w2, w3 := w[j], w[j+1], w[j+2], w[j+3]
		x0 := x[j*hs : (j+1)*hs]
		x1 := x[(j+1)*hs : (j+2)*hs]
		x2 := x[(j+2)*hs : (j+3)*hs]
		x3 := x[(j+3)*hs : (j+4)*hs]
		x0, x1, x2, x3 = x0[:len(acc)], x1[:len(acc)], x2[:len(acc)], x3[:len(acc)]
		for i := range acc {
			acc[i] += (w0*x0[i] + w1*x1[i]) + (w2*x2[i] + w3*x3[i])
		}
	}
	for ; j < len(w); j++ {
		wj := w[j]
		xj := x[j*hs : (j+1)*hs]
		xj = xj[:len(acc)]
		for i := range acc {
			acc[i] += wj * xj[i]
		}
	}
}

// attnBackwardKeys1 runs the backward pass of one query row q (output
// gradient do, log-sum-exp lse, D = do·o) over keys j < len(ds): it
// recomputes p_j = exp(scale·q·k_j − lse), adds p_j·do to dv_j and
// ds_j·q to dk_j with ds_j = p_j·(do·v_j − D)·scale, and leaves ds_j in ds
// for the caller to form dq = Σ ds_j·k_j.
func attnBackwardKeys1(ds, q, do, k, v, dk, dv []float32, lse, d, scale float32) {
	hs := len(q)
	do = do[:hs]
	for j := range ds {
		kj, vj := k[j*hs:(j+1)*hs], v[j*hs:(j+1)*hs]
		kj, vj = kj[:hs], vj[:hs]
		var s0, s1, r0, r1 float32
		i := 0
		for ; i+2 <= hs; i += 2 {
			qq, kk, dd, vv := q[i:i+2:i+2], kj[i:i+2:i+2], do[i:i+2:i+2], vj[i:i+2:i+2]
			s0 += qq[0] * kk[0]
			s1 += qq[1] * kk[1]
			r0 += dd[0] * vv[0]
			r1 += dd[1] * vv[1]
		}
		if i < hs {
			s0 += q[i] * kj[i]
			r0 += do[i] * vj[i]
		}
		p := exp32((s0+s1)*scale - lse)
		dsj := p * ((r0 + r1) - d) * scale
		ds[j] = dsj
		dkj, dvj := dk[j*hs:(j+1)*hs], dv[j*hs:(j+1)*hs]
		dkj, dvj = dkj[:hs], dvj[:hs]
		for i := range q {
			dvj[i] += p * do[i]
			dkj[i] += dsj * q[i]
		}
	}
}

// attnBackwardKeys2 is attnBackwardKeys1 for two query rows a and b over
// the same keys j < len(dsa) (len(dsb) = len(dsa)): each key's k, v, dk and
// dv rows are read and written once for both.
func attnBackwardKeys2(dsa, dsb, qa, qb, doa, dob, k, v, dk, dv []float32, lsea, lseb, da, db, scale float32) {
	hs := len(qa)
	qb, doa, dob = qb[:hs], doa[:hs], dob[:hs]
	dsb = dsb[:len(dsa)]
	for j := range dsa {
		kj, vj := k[j*hs:(j+1)*hs], v[j*hs:(j+1)*hs]
		kj, vj = kj[:hs], vj[:hs]
		var sa, sb, ra, rb float32
		for i := range qa {
			kk, vv := kj[i], vj[i]
			sa += qa[i] * kk
			sb += qb[i] * kk
			ra += doa[i] * vv
			rb += dob[i] * vv
		}
		pa := exp32(sa*scale - lsea)
		pb := exp32(sb*scale - lseb)
		ga := pa * (ra - da) * scale
		gb := pb * (rb - db) * scale
		dsa[j], dsb[j] = ga, gb
		dkj, dvj := dk[j*hs:(j+1)*hs], dv[j*hs:(j+1)*hs]
		dkj, dvj = dkj[:hs], dvj[:hs]
		for i := range qa {
			dvj[i] += pa*doa[i] + pb*dob[i]
			dkj[i] += ga*qa[i] + gb*qb[i]
		}
	}
}

// attnDot returns a·b (len(b) ≥ len(a)) with four partial sums.
func attnDot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	for len(a) >= 4 && len(b) >= 4 {
		s0 += a[0] * b[0]
		s1 += a[1] * b[1]
		s2 += a[2] * b[2]
		s3 += a[3] * b[3]
		a, b = a[4:], b[4:]
	}
	for i := range a {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// attnExpShift replaces s[j] by exp(s[j] − m) and returns the sum in
// float64 (m is the row maximum, so every term is at most 1).
func attnExpShift(s []float32, m float32) float64 {
	var sum float64
	for len(s) >= 4 {
		e0 := exp32(s[0] - m)
		e1 := exp32(s[1] - m)
		e2 := exp32(s[2] - m)
		e3 := exp32(s[3] - m)
		s[0], s[1], s[2], s[3] = e0, e1, e2, e3
		sum += float64((e0 + e1) + (e2 + e3))
		s = s[4:]
	}
	for i := range s {
		e := exp32(s[i] - m)
		s[i] = e
		sum += float64(e)
	}
	return sum
}
