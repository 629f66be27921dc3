package cpu

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// The op calls of the bf16 tests (bf16_ops_test.go) and their float64
// references. Sizes are small, but some tensors pass bf16MinChunk so that
// widening and rounding run in parallel; aliasing the contract allows
// (out = inp, out = a or b, A = B, in-place backward) has cases of its own.
// Tolerances (relative to the largest expected magnitude; see bfCase) are
// the float32 kernels' error bounds of their own tests: a sum of K float32
// products, K·2⁻²⁴ relative in the worst case; GELU's exp32 about 1e-7;
// softmax-based ops about 1e-5 (exp32 and float32 sums of probabilities).

// tolSum is the bound for sums of k float32 terms: each addition rounds
// once (2⁻²⁴ relative), four times that for terms of mixed signs.
func tolSum(k int) float64 { return 4 * float64(k) * 0x1p-24 }

// tolOne is the bound of one float32 rounding (an add or a product).
const tolOne = 0x1p-23

func bf16Cases() []bfCase {
	var cs []bfCase
	cs = append(cs, elementwiseCases()...)
	cs = append(cs, matmulCases()...)
	cs = append(cs, linearCases()...)
	cs = append(cs, embeddingCases()...)
	cs = append(cs, layerNormCases()...)
	cs = append(cs, attentionCases()...)
	cs = append(cs, logSoftmaxCases()...)
	cs = append(cs, llamaCases()...)
	return cs
}

// per64 returns f applied to each element of x, in float64.
func per64(x []float32, f func(i int, v float64) float64) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = f(i, float64(v))
	}
	return y
}

func elementwiseCases() []bfCase {
	r := testRNG(100)
	const n = 2*bf16MinChunk + 77 // parallel widening and rounding
	add := func(x [][]float32, a, c int) []float64 {
		return per64(x[a], func(i int, v float64) float64 { return v + float64(x[c][i]) })
	}
	const p, seed = 0.3, 77
	drop := func(x []float32, p float64) []float64 {
		return per64(x, func(i int, v float64) float64 {
			if float64(gpu.DropoutUniform(seed, i)) < p {
				return 0
			}
			return v / (1 - p)
		})
	}
	gelu := func(x []float32) []float64 { return per64(x, func(_ int, v float64) float64 { return gelu64(v) }) }
	geluGrad := func(x, dy []float32) []float64 {
		return per64(x, func(i int, v float64) float64 { return geluGrad64(v) * float64(dy[i]) })
	}
	const rows, cols = 300, 96
	biasSum := func(x [][]float32) []float64 {
		db := to64(x[0])
		for i, v := range x[1] {
			db[i%cols] += float64(v)
		}
		return db
	}
	return []bfCase{
		{op: "Add", variant: "out a b",
			args: []bfArg{act(randn(r, n, 1), n).within(tolOne), act(randn(r, n, 1), n), act(randn(r, n, 1), n)},
			call: func(b *Backend, t []*gpu.Tensor) { b.Add(t[0], t[1], t[2]) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{add(x, 1, 2), nil, nil} }},
		{op: "Add", variant: "out=a",
			args: []bfArg{act(randn(r, 999, 1), 999).within(tolOne), act(randn(r, 999, 3), 999)},
			call: func(b *Backend, t []*gpu.Tensor) { b.Add(t[0], t[0], t[1]) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{add(x, 0, 1), nil} }},
		{op: "Add", variant: "out=b",
			args: []bfArg{act(randn(r, 999, 1), 999), act(randn(r, 999, 3), 999).within(tolOne)},
			call: func(b *Backend, t []*gpu.Tensor) { b.Add(t[1], t[0], t[1]) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{nil, add(x, 0, 1)} }},
		{op: "AddBias", variant: "rows",
			args: []bfArg{act(randn(r, rows*cols, 1), rows, cols).within(tolOne), act(randn(r, cols, 1), cols)},
			call: func(b *Backend, t []*gpu.Tensor) { b.AddBias(t[0], t[1]) },
			ref: func(x [][]float32) [][]float64 {
				return [][]float64{per64(x[0], func(i int, v float64) float64 { return v + float64(x[1][i%cols]) }), nil}
			}},
		{op: "BiasBackward", variant: "into float32",
			args: []bfArg{f32(randn(r, cols, 1), cols).within(1e-6), act(randn(r, rows*cols, 1), rows, cols)},
			call: func(b *Backend, t []*gpu.Tensor) { b.BiasBackward(t[0], t[1]) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{biasSum(x), nil} }},
		{op: "GeluForward", variant: "out inp",
			args: []bfArg{act(randn(r, n, 1), n).within(1e-6), act(randn(r, n, 3), n)},
			call: func(b *Backend, t []*gpu.Tensor) { b.GeluForward(t[0], t[1]) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{gelu(x[1]), nil} }},
		{op: "GeluForward", variant: "in place",
			args: []bfArg{act(randn(r, 1001, 3), 1001).within(1e-6)},
			call: func(b *Backend, t []*gpu.Tensor) { b.GeluForward(t[0], t[0]) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{gelu(x[0])} }},
		{op: "GeluBackward", variant: "dinp inp dout",
			args: []bfArg{act(randn(r, n, 1), n).within(1e-6), act(randn(r, n, 3), n), act(randn(r, n, 1), n)},
			call: func(b *Backend, t []*gpu.Tensor) { b.GeluBackward(t[0], t[1], t[2]) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{geluGrad(x[1], x[2]), nil, nil} }},
		{op: "GeluBackward", variant: "dinp=dout",
			args: []bfArg{act(randn(r, 1001, 3), 1001), act(randn(r, 1001, 1), 1001).within(1e-6)},
			call: func(b *Backend, t []*gpu.Tensor) { b.GeluBackward(t[1], t[0], t[1]) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{nil, geluGrad(x[0], x[1])} }},
		{op: "Dropout", variant: "out inp",
			args: []bfArg{act(randn(r, n, 1), n).within(tolOne), act(randn(r, n, 1), n)},
			call: func(b *Backend, t []*gpu.Tensor) { b.Dropout(t[0], t[1], p, seed) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{drop(x[1], p), nil} }},
		{op: "Dropout", variant: "in place",
			args: []bfArg{act(randn(r, 1001, 1), 1001).within(tolOne)},
			call: func(b *Backend, t []*gpu.Tensor) { b.Dropout(t[0], t[0], p, seed) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{drop(x[0], p)} }},
		{op: "Dropout", variant: "p=0 copies",
			args: []bfArg{act(randn(r, 1001, 1), 1001).within(tolOne), act(randn(r, 1001, 1), 1001)},
			call: func(b *Backend, t []*gpu.Tensor) { b.Dropout(t[0], t[1], 0, seed) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{drop(x[1], 0), nil} }},
		{op: "DropoutBackward", variant: "dinp=dout",
			args: []bfArg{act(randn(r, n, 1), n).within(tolOne)},
			call: func(b *Backend, t []*gpu.Tensor) { b.DropoutBackward(t[0], t[0], p, seed) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{drop(x[0], p)} }},
	}
}

// linearCases are the fused linear layers. Their float32 results carry the
// product's sum error (tolSum(k)) through the bias add (one rounding) and
// through GELU or its derivative (slope below 1.2, exp32 about 1e-7).
func linearCases() []bfCase {
	r := testRNG(119)
	const m, k, n = 67, 48, 40 // m·k·n above the triple loop's size
	gelu, dgelu := tolSum(k)*1.2+1e-6, tolSum(k)*1.2+1e-6
	lin := func(x [][]float32, a, w, bias int) []float64 {
		y := refGemm(m, n, k, x[a], false, x[w], false, nil, 1, 0)
		for i := range y {
			y[i] += float64(x[bias][i%n])
		}
		return y
	}
	return []bfCase{
		{op: "MatMulBias", variant: "rank 3",
			args: []bfArg{act(randn(r, m*n, 1), 1, m, n).within(tolSum(k) + tolOne), act(randn(r, m*k, 1), 1, m, k),
				act(randn(r, k*n, 1), k, n), act(randn(r, n, 1), n)},
			call: func(b *Backend, t []*gpu.Tensor) { b.MatMulBias(t[0], t[1], t[2], t[3]) },
			ref: func(x [][]float32) [][]float64 {
				return [][]float64{lin(x, 1, 2, 3), nil, nil, nil}
			}},
		{op: "MatMulBiasGELU", variant: "out pre",
			args: []bfArg{act(randn(r, m*n, 1), m, n).within(gelu), act(randn(r, m*n, 1), m, n).within(tolSum(k) + tolOne),
				act(randn(r, m*k, 1), m, k), act(randn(r, k*n, 0.5), k, n), act(randn(r, n, 1), n)},
			call: func(b *Backend, t []*gpu.Tensor) { b.MatMulBiasGELU(t[0], t[1], t[2], t[3], t[4]) },
			ref: func(x [][]float32) [][]float64 {
				pre := lin(x, 2, 3, 4)
				out := make([]float64, len(pre))
				for i, v := range pre {
					out[i] = gelu64(v) // of the pre-activation before it is rounded
				}
				return [][]float64{out, pre, nil, nil, nil}
			}},
		{op: "MatMulDGELU", variant: "dpre",
			args: []bfArg{act(randn(r, m*n, 1), m, n).within(dgelu), act(randn(r, m*k, 1), m, k),
				act(randn(r, n*k, 1), n, k), act(randn(r, m*n, 2), m, n)},
			call: func(b *Backend, t []*gpu.Tensor) { b.MatMulDGELU(t[0], t[1], t[2], t[3]) },
			ref: func(x [][]float32) [][]float64 {
				d := refGemm(m, n, k, x[1], false, x[2], true, nil, 1, 0)
				for i := range d {
					d[i] *= geluGrad64(float64(x[3][i]))
				}
				return [][]float64{d, nil, nil, nil}
			}},
	}
}

// mmCaseBF16 is MatMul C = alpha·op(A)·op(B) + beta·C with A and B bf16
// (the activation dtype) and C of kind cKind; batch > 0 makes C and A
// rank 3 with B shared.
func mmCaseBF16(variant string, seed uint64, batch, m, n, k int, transA, transB bool, alpha, beta float32, cKind argKind) bfCase {
	r := testRNG(seed)
	nb := max(batch, 1)
	aShape, bShape, cShape := []int{m, k}, []int{k, n}, []int{m, n}
	if transA {
		aShape = []int{k, m}
	}
	if transB {
		bShape = []int{n, k}
	}
	if batch > 0 {
		aShape, cShape = append([]int{batch}, aShape...), append([]int{batch}, cShape...)
	}
	c := bfArg{kind: cKind, shape: cShape, vals: randn(r, nb*m*n, 1), tol: tolSum(k)}
	return bfCase{op: "MatMul", variant: variant,
		args: []bfArg{c, act(randn(r, nb*m*k, 1), aShape...), act(randn(r, k*n, 1), bShape...)},
		call: func(b *Backend, t []*gpu.Tensor) { b.MatMul(t[0], t[1], t[2], transA, transB, alpha, beta) },
		ref: func(x [][]float32) [][]float64 {
			var want []float64
			for i := 0; i < nb; i++ {
				want = append(want, refGemm(m, n, k, x[1][i*m*k:(i+1)*m*k], transA, x[2], transB,
					x[0][i*m*n:(i+1)*m*n], float64(alpha), float64(beta))...)
			}
			return [][]float64{want, nil, nil}
		}}
}

func matmulCases() []bfCase {
	r := testRNG(110)
	const m, k = 45, 70
	aa := act(randn(r, m*k, 1), m, k)
	return []bfCase{
		mmCaseBF16("bf16 C, beta=0", 111, 0, 37, 29, 64, false, false, 1, 0, actArg),
		mmCaseBF16("bf16 C += (beta=1), transB", 112, 0, 40, 33, 50, false, true, 1, 1, actArg),
		mmCaseBF16("bf16 C, beta=0.5 alpha=-2, transA transB", 113, 0, 19, 64, 24, true, true, -2, 0.5, actArg),
		mmCaseBF16("float32 C += (a parameter gradient), transA", 114, 0, 48, 40, 300, true, false, 1, 1, f32Arg),
		mmCaseBF16("float32 C, beta=0", 115, 0, 33, 20, 16, false, false, 1, 0, f32Arg),
		mmCaseBF16("batched, B shared", 116, 3, 21, 30, 40, false, false, 0.5, 0, actArg),
		mmCaseBF16("tiny triple loop", 117, 0, 3, 4, 5, false, false, 1, 1, actArg),
		mmCaseBF16("large: parallel widening", 118, 0, 1100, 64, 128, false, false, 1, 0, actArg),
		{op: "MatMul", variant: "A = B: C = A·Aᵀ",
			args: []bfArg{act(randn(r, m*m, 1), m, m).within(tolSum(k)), aa},
			call: func(b *Backend, t []*gpu.Tensor) { b.MatMul(t[0], t[1], t[1], false, true, 1, 0) },
			ref: func(x [][]float32) [][]float64 {
				return [][]float64{refGemm(m, m, k, x[1], false, x[1], true, nil, 1, 0), nil}
			}},
	}
}

func embeddingCases() []bfCase {
	var cs []bfCase
	for i, withPos := range []bool{false, true} {
		e := newEmbedCase(uint64(120+i), 3, 40, 48, 50, 64, withPos)
		n := e.bsz * e.t
		dwte, dwpe := randn(testRNG(uint64(130+i)), e.v*e.c, 1), randn(testRNG(uint64(140+i)), e.maxT*e.c, 1)
		pos := ids(e.positions, e.bsz, e.t)
		variant := "positions 0..T-1"
		if withPos {
			variant = "positions given"
		}
		tensor := func(t *gpu.Tensor) *gpu.Tensor { return t }
		if !withPos {
			pos = ids([]int32{0}, 1) // a placeholder the call passes as nil
			tensor = func(*gpu.Tensor) *gpu.Tensor { return nil }
		}
		c := e.c
		cs = append(cs,
			bfCase{op: "EmbeddingForward", variant: variant,
				args: []bfArg{act(randn(testRNG(150), n*c, 1), e.bsz, e.t, c).within(tolOne),
					ids(e.tokens, e.bsz, e.t), pos, act(e.wte, e.v, c), act(e.wpe, e.maxT, c)},
				call: func(b *Backend, t []*gpu.Tensor) { b.EmbeddingForward(t[0], t[1], tensor(t[2]), t[3], t[4]) },
				ref: func(x [][]float32) [][]float64 {
					out := make([]float64, n*c)
					for i := range out {
						row, j := i/c, i%c
						out[i] = float64(x[3][int(e.tokens[row])*c+j]) + float64(x[4][e.pos(row)*c+j])
					}
					return [][]float64{out, nil, nil, nil, nil}
				}},
			bfCase{op: "EmbeddingBackward", variant: variant,
				args: []bfArg{f32(dwte, e.v, c).within(1e-6), f32(dwpe, e.maxT, c).within(1e-6),
					act(randn(testRNG(160), n*c, 1), e.bsz, e.t, c), ids(e.tokens, e.bsz, e.t), pos},
				call: func(b *Backend, t []*gpu.Tensor) { b.EmbeddingBackward(t[0], t[1], t[2], t[3], tensor(t[4])) },
				ref: func(x [][]float32) [][]float64 {
					gw, gp := to64(x[0]), to64(x[1])
					for i, v := range x[2] {
						row, j := i/c, i%c
						gw[int(e.tokens[row])*c+j] += float64(v)
						gp[e.pos(row)*c+j] += float64(v)
					}
					return [][]float64{gw, gp, nil, nil, nil}
				}})
	}
	return cs
}

func layerNormCases() []bfCase {
	const n, c = 70, 96
	xs, ws, bs := lnInputs(170, n, c, 3)
	r := testRNG(171)
	_, m64, rs64 := layerNorm64(to64(roundAll(xs)), to64(roundAll(ws)), to64(roundAll(bs)), n, c)
	mean, rstd := make([]float32, n), make([]float32, n)
	for i := range mean {
		mean[i], rstd[i] = float32(m64[i]), float32(rs64[i])
	}
	return []bfCase{
		{op: "LayerNormForward", variant: "with statistics",
			args: []bfArg{act(randn(r, n*c, 1), n, c).within(1e-6), f32(randn(r, n, 1), n).within(1e-6),
				f32(randn(r, n, 1), n).within(1e-6), act(xs, n, c), act(ws, c), act(bs, c)},
			call: func(b *Backend, t []*gpu.Tensor) { b.LayerNormForward(t[0], t[1], t[2], t[3], t[4], t[5]) },
			ref: func(x [][]float32) [][]float64 {
				out, m, rs := layerNorm64(to64(x[3]), to64(x[4]), to64(x[5]), n, c)
				return [][]float64{out, m, rs, nil, nil, nil}
			}},
		{op: "AddLayerNormForward", variant: "with statistics",
			args: []bfArg{act(randn(r, n*c, 1), n, c).within(0), act(randn(r, n*c, 1), n, c).within(1e-6),
				f32(randn(r, n, 1), n).within(1e-6), f32(randn(r, n, 1), n).within(1e-6),
				act(xs, n, c), act(randn(r, n*c, 0.5), n, c), act(ws, c), act(bs, c)},
			call: func(b *Backend, t []*gpu.Tensor) {
				b.AddLayerNormForward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7])
			},
			// The normalisation reads the sum as stored: rounded to bf16.
			def: func(b *Backend, t []*gpu.Tensor) {
				b.Add(t[0], t[4], t[5])
				sum := F32(t[0])
				for i, v := range sum {
					sum[i] = gpu.RoundBF16(v)
				}
				b.LayerNormForward(t[1], t[2], t[3], t[0], t[6], t[7])
			},
			ref: func(x [][]float32) [][]float64 {
				// a + b of bf16 values is exact in float64; the op's
				// float32 sum is it rounded once, and then to bf16.
				sum := per64(x[4], func(i int, v float64) float64 {
					return float64(gpu.RoundBF16(float32(v + float64(x[5][i]))))
				})
				out, m, rs := layerNorm64(sum, to64(x[6]), to64(x[7]), n, c)
				return [][]float64{sum, out, m, rs, nil, nil, nil, nil}
			}},
		{op: "LayerNormBackward", variant: "dinp +=",
			args: []bfArg{act(randn(r, n*c, 1), n, c).within(1e-5), f32(randn(r, c, 1), c).within(1e-5),
				f32(randn(r, c, 1), c).within(1e-6), act(randn(r, n*c, 1), n, c), act(xs, n, c), act(ws, c),
				f32(mean, n), f32(rstd, n)},
			call: func(b *Backend, t []*gpu.Tensor) {
				b.LayerNormBackward(t[0], t[1], t[2], t[3], t[4], t[5], t[6], t[7])
			},
			ref: func(x [][]float32) [][]float64 {
				dx, dw, db := to64(x[0]), to64(x[1]), to64(x[2])
				layerNormBackward64(dx, dw, db, to64(x[3]), to64(x[4]), to64(x[5]), to64(x[6]), to64(x[7]), n, c)
				return [][]float64{dx, dw, db, nil, nil, nil, nil, nil}
			}},
	}
}

func attentionCases() []bfCase {
	const B, T, C, H = 2, 19, 32, 2
	lens := []int32{T, 11}
	r := testRNG(180)
	qkv := randn(r, B*T*3*C, 1.5)
	out64, lse64 := refAttnForward(to64(roundAll(qkv)), lens, B, T, C, H)
	out, lse := make([]float32, len(out64)), make([]float32, len(lse64))
	for i, v := range out64 {
		out[i] = float32(v) // a bf16 argument: rounded as the op reads it
	}
	for i, v := range lse64 {
		lse[i] = float32(v)
	}

	// Decoding: caches of S positions, one new query per sequence.
	const S, hs = 13, C / H
	start := []int32{4, -1} // sequence 1 inactive
	dlens := []int32{9, 0}
	dqkv := randn(r, B*T*3*C, 1)
	kc, vc := randn(r, B*H*S*hs, 1), randn(r, B*H*S*hs, 1)
	return []bfCase{
		{op: "AttentionForward", variant: "padded",
			args: []bfArg{act(randn(r, B*T*C, 1), B, T, C).within(1e-5), f32(randn(r, B*H*T, 1), B, H, T).within(1e-5),
				act(qkv, B, T, 3*C), ids(lens, B)},
			call: func(b *Backend, t []*gpu.Tensor) { b.AttentionForward(t[0], t[1], t[2], t[3], H, H) },
			ref: func(x [][]float32) [][]float64 {
				o, l := refAttnForward(to64(x[2]), lens, B, T, C, H)
				return [][]float64{o, l, nil, nil}
			}},
		{op: "AttentionBackward", variant: "padded",
			args: []bfArg{act(randn(r, B*T*3*C, 1), B, T, 3*C).within(2e-5), act(randn(r, B*T*C, 1), B, T, C),
				act(qkv, B, T, 3*C), act(out, B, T, C), f32(lse, B, H, T), ids(lens, B)},
			call: func(b *Backend, t []*gpu.Tensor) { b.AttentionBackward(t[0], t[1], t[2], t[3], t[4], t[5], H, H) },
			ref: func(x [][]float32) [][]float64 {
				return [][]float64{refAttnBackward(to64(x[2]), to64(x[1]), to64(x[3]), lens, B, T, C, H), nil, nil, nil, nil, nil}
			}},
		{op: "KVCacheWrite", variant: "two positions, one sequence inactive",
			args: []bfArg{act(kc, B, H, S, hs), act(vc, B, H, S, hs), act(dqkv[:B*2*3*C], B, 2, 3*C), ids(start, B)},
			call: func(b *Backend, t []*gpu.Tensor) { b.KVCacheWrite(t[0], t[1], t[2], t[3], H, H) },
			ref: func(x [][]float32) [][]float64 {
				k, v := to64(x[0]), to64(x[1])
				for bi := range B {
					for h := range H {
						for p := 0; p < 2 && start[bi] >= 0; p++ {
							for i := range hs {
								row := x[2][(bi*2+p)*3*C:]
								at := ((bi*H+h)*S+int(start[bi])+p)*hs + i
								k[at], v[at] = float64(row[C+h*hs+i]), float64(row[2*C+h*hs+i])
							}
						}
					}
				}
				return [][]float64{k, v, nil, nil}
			}},
		{op: "AttentionDecode", variant: "one sequence inactive",
			args: []bfArg{act(randn(r, B*C, 1), B, C).within(2e-6), act(dqkv[:B*3*C], B, 3*C),
				act(kc, B, H, S, hs), act(vc, B, H, S, hs), ids(dlens, B)},
			call: func(b *Backend, t []*gpu.Tensor) { b.AttentionDecode(t[0], t[1], t[2], t[3], t[4], H, H) },
			ref: func(x [][]float32) [][]float64 {
				return [][]float64{attnDecodeRef(x[1], x[2], x[3], dlens, B, H, S, hs), nil, nil, nil, nil}
			}},
	}
}

func logSoftmaxCases() []bfCase {
	const n, v = 130, 1031 // n·v passes bf16MinChunk
	r := testRNG(190)
	z, tg := lsmInputs(r, n, v, 2, 3)
	_, lse64, ent64 := refLogSoftmax(to64(roundAll(z)), tg, v)
	lse, ent := make([]float32, n), make([]float32, n)
	for i := range lse {
		lse[i], ent[i] = float32(lse64[i]), float32(ent64[i])
	}
	dlogp, dent := randn(r, n, 1), randn(r, n, 1)
	const ns, vs = 16, 300
	zs := randn(r, ns*vs, 2)
	const temp, seed = 0.8, 191
	// sample draws row i of z at temperature temp as Backend.Sample defines.
	sample := func(z []float32, temp float64) []float64 {
		tok := make([]float64, ns)
		for i := range tok {
			row := to64(z[i*vs : (i+1)*vs])
			best := 0
			for j, x := range row {
				if x > row[best] {
					best = j
				}
			}
			if temp == 0 {
				tok[i] = float64(best)
				continue
			}
			w := make([]float64, vs)
			var total float64
			for j, x := range row {
				w[j] = math.Exp(x/temp - row[best]/temp)
				total += w[j]
			}
			u := float64(gpu.Mix64(seed, uint64(i))>>11) * 0x1p-53 * total
			var cum float64
			for j := range w {
				if cum += w[j]; cum > u {
					tok[i] = float64(j)
					break
				}
			}
		}
		return tok
	}
	return []bfCase{
		{op: "LogSoftmaxForward", variant: "with entropy, a row ignored",
			args: []bfArg{f32(randn(r, n, 1), n).within(1e-5), f32(randn(r, n, 1), n).within(1e-5),
				f32(randn(r, n, 1), n).within(1e-5), act(z, n, v), ids(tg, n)},
			call: func(b *Backend, t []*gpu.Tensor) { b.LogSoftmaxForward(t[0], t[1], t[2], t[3], t[4]) },
			ref: func(x [][]float32) [][]float64 {
				logp, l, h := refLogSoftmax(to64(x[3]), tg, v)
				return [][]float64{logp, h, l, nil, nil}
			}},
		{op: "LogSoftmaxBackward", variant: "in place, with entropy",
			args: []bfArg{act(z, n, v).within(1e-5), f32(lse, n), f32(ent, n), ids(tg, n), f32(dlogp, n), f32(dent, n)},
			call: func(b *Backend, t []*gpu.Tensor) { b.LogSoftmaxBackward(t[0], t[1], t[2], t[3], t[4], t[5]) },
			ref: func(x [][]float32) [][]float64 {
				return [][]float64{refLogSoftmaxGrad(to64(x[0]), tg, v, to64(x[4]), to64(x[5])), nil, nil, nil, nil, nil}
			}},
		{op: "LogSoftmaxBackward", variant: "in place, no entropy",
			args: []bfArg{act(z, n, v).within(1e-5), f32(lse, n), ids(tg, n), f32(dlogp, n)},
			call: func(b *Backend, t []*gpu.Tensor) { b.LogSoftmaxBackward(t[0], t[1], nil, t[2], t[3], nil) },
			ref: func(x [][]float32) [][]float64 {
				return [][]float64{refLogSoftmaxGrad(to64(x[0]), tg, v, to64(x[3]), nil), nil, nil, nil}
			}},
		{op: "CrossEntropy", variant: "in place, a row ignored",
			args: []bfArg{f32(randn(r, n, 1), n).within(1e-5), f32(randn(r, n, 1), n).within(1e-5),
				act(z, n, v).within(1e-5), ids(tg, n), f32(dlogp, n)},
			call: func(b *Backend, t []*gpu.Tensor) { b.CrossEntropy(t[0], nil, t[1], t[2], t[3], t[4]) },
			ref: func(x [][]float32) [][]float64 {
				logp, l, _ := refLogSoftmax(to64(x[2]), tg, v)
				return [][]float64{logp, l, refLogSoftmaxGrad(to64(x[2]), tg, v, to64(x[4]), nil), nil, nil}
			}},
		{op: "CrossEntropy", variant: "in place, with entropy",
			args: []bfArg{f32(randn(r, n, 1), n).within(1e-5), f32(randn(r, n, 1), n).within(1e-5),
				f32(randn(r, n, 1), n).within(1e-5), act(z, n, v).within(1e-5), ids(tg, n), f32(dlogp, n)},
			call: func(b *Backend, t []*gpu.Tensor) { b.CrossEntropy(t[0], t[1], t[2], t[3], t[4], t[5]) },
			ref: func(x [][]float32) [][]float64 {
				logp, l, h := refLogSoftmax(to64(x[3]), tg, v)
				return [][]float64{logp, h, l, refLogSoftmaxGrad(to64(x[3]), tg, v, to64(x[5]), nil), nil, nil}
			}},
		{op: "Sample", variant: "greedy",
			args: []bfArg{ids(make([]int32, ns), ns), act(zs, ns, vs)},
			call: func(b *Backend, t []*gpu.Tensor) { b.Sample(t[0], t[1], gpu.Sampling{}, seed) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{sample(x[1], 0), nil} }},
		{op: "Sample", variant: "temperature",
			args: []bfArg{ids(make([]int32, ns), ns), act(zs, ns, vs)},
			call: func(b *Backend, t []*gpu.Tensor) { b.Sample(t[0], t[1], gpu.Sampling{Temperature: temp}, seed) },
			ref: func(x [][]float32) [][]float64 {
				return [][]float64{sample(x[1], float64(float32(temp))), nil} // T as Sample reads it
			}},
	}
}

// llamaCases are the Llama family's ops: RMSNorm, RoPE, SwiGLU, and
// attention, KV cache and decode with grouped key/value heads.
func llamaCases() []bfCase {
	r := testRNG(190)
	const n, c, eps = 30, 72, 1e-5
	xs, ws, _ := lnInputs(191, n, c, 2)
	_, rs64 := rmsNorm64(to64(roundAll(xs)), to64(roundAll(ws)), n, c, eps)
	rstd := make([]float32, n)
	for i, v := range rs64 {
		rstd[i] = float32(v)
	}

	rc := ropeCase{B: 2, T: 7, H: 4, KVH: 2, hs: 16, start: []int32{3, 500}, theta: 500000, scaling: llama32Scaling}
	inv, _ := gpu.RoPEInvFreq(rc.hs, rc.theta, rc.scaling)
	angle := func(sign float64) func(p, i int) float64 {
		return func(p, i int) float64 { return sign * float64(float32(p)*inv[i]) }
	}

	const rows, f = 40, 50
	swi := swigluInputs(192, rows, f, 3)

	const B, T, H, KVH, hs, S = 2, 19, 4, 2, 8, 13
	const C, W = H * hs, (H + 2*KVH) * hs
	lens := []int32{T, 11}
	qkv := randn(r, B*T*W, 1.5)
	out64, lse64 := refGQAForward(to64(roundAll(qkv)), lens, B, T, H, KVH, hs)
	out, lse := make([]float32, len(out64)), make([]float32, len(lse64))
	for i, v := range out64 {
		out[i] = float32(v)
	}
	for i, v := range lse64 {
		lse[i] = float32(v)
	}
	start, dlens := []int32{4, -1}, []int32{9, 0}
	dqkv := randn(r, B*2*W, 1)
	kc, vc := randn(r, B*KVH*S*hs, 1), randn(r, B*KVH*S*hs, 1)

	return []bfCase{
		{op: "RMSNormForward", variant: "with rstd",
			args: []bfArg{act(randn(r, n*c, 1), n, c).within(1e-6), f32(randn(r, n, 1), n).within(1e-6),
				act(xs, n, c), act(ws, c)},
			call: func(b *Backend, t []*gpu.Tensor) { b.RMSNormForward(t[0], t[1], t[2], t[3], eps) },
			ref: func(x [][]float32) [][]float64 {
				o, rs := rmsNorm64(to64(x[2]), to64(x[3]), n, c, eps)
				return [][]float64{o, rs, nil, nil}
			}},
		{op: "RMSNormBackward", variant: "dinp +=",
			args: []bfArg{act(randn(r, n*c, 1), n, c).within(1e-5), f32(randn(r, c, 1), c).within(1e-5),
				act(randn(r, n*c, 1), n, c), act(xs, n, c), act(ws, c), f32(rstd, n)},
			call: func(b *Backend, t []*gpu.Tensor) { b.RMSNormBackward(t[0], t[1], t[2], t[3], t[4], t[5]) },
			ref: func(x [][]float32) [][]float64 {
				dx, dw := to64(x[0]), to64(x[1])
				rmsNormBackward64(dx, dw, to64(x[2]), to64(x[3]), to64(x[4]), to64(x[5]), n, c)
				return [][]float64{dx, dw, nil, nil, nil, nil}
			}},
		{op: "RoPEForward", variant: "grouped, offsets",
			args: []bfArg{act(randn(r, rc.B*rc.T*rc.width(), 1), rc.B, rc.T, rc.width()).within(2e-7),
				f32(inv, rc.hs/2), ids(rc.start, rc.B)},
			call: func(b *Backend, t []*gpu.Tensor) { b.RoPEForward(t[0], t[1], t[2], rc.H, rc.KVH) },
			ref: func(x [][]float32) [][]float64 {
				return [][]float64{refRoPE64(x[0], rc, angle(1)), nil, nil}
			}},
		{op: "RoPEBackward", variant: "grouped, offsets",
			args: []bfArg{act(randn(r, rc.B*rc.T*rc.width(), 1), rc.B, rc.T, rc.width()).within(2e-7),
				f32(inv, rc.hs/2), ids(rc.start, rc.B)},
			call: func(b *Backend, t []*gpu.Tensor) { b.RoPEBackward(t[0], t[1], t[2], rc.H, rc.KVH) },
			ref: func(x [][]float32) [][]float64 {
				return [][]float64{refRoPE64(x[0], rc, angle(-1)), nil, nil}
			}},
		{op: "SwiGLUForward", variant: "rows",
			args: []bfArg{act(randn(r, rows*f, 1), rows, f).within(1e-6), act(swi, rows, 2*f)},
			call: func(b *Backend, t []*gpu.Tensor) { b.SwiGLUForward(t[0], t[1]) },
			ref:  func(x [][]float32) [][]float64 { return [][]float64{swiglu64(x[1], rows, f), nil} }},
		{op: "SwiGLUBackward", variant: "rows",
			args: []bfArg{act(randn(r, rows*2*f, 1), rows, 2*f).within(1e-6), act(swi, rows, 2*f),
				act(randn(r, rows*f, 1), rows, f)},
			call: func(b *Backend, t []*gpu.Tensor) { b.SwiGLUBackward(t[0], t[1], t[2]) },
			ref: func(x [][]float32) [][]float64 {
				d := make([]float64, rows*2*f)
				for i := 0; i < rows; i++ {
					for j := 0; j < f; j++ {
						g, u, dy := float64(x[1][i*2*f+j]), float64(x[1][i*2*f+f+j]), float64(x[2][i*f+j])
						s := 1 / (1 + math.Exp(-g))
						d[i*2*f+j], d[i*2*f+f+j] = dy*u*s*(1+g*(1-s)), dy*g*s
					}
				}
				return [][]float64{d, nil, nil}
			}},
		{op: "AttentionForward", variant: "grouped, padded",
			args: []bfArg{act(randn(r, B*T*C, 1), B, T, C).within(1e-5), f32(randn(r, B*H*T, 1), B, H, T).within(1e-5),
				act(qkv, B, T, W), ids(lens, B)},
			call: func(b *Backend, t []*gpu.Tensor) { b.AttentionForward(t[0], t[1], t[2], t[3], H, KVH) },
			ref: func(x [][]float32) [][]float64 {
				o, l := refGQAForward(to64(x[2]), lens, B, T, H, KVH, hs)
				return [][]float64{o, l, nil, nil}
			}},
		{op: "AttentionBackward", variant: "grouped, padded",
			args: []bfArg{act(randn(r, B*T*W, 1), B, T, W).within(2e-5), act(randn(r, B*T*C, 1), B, T, C),
				act(qkv, B, T, W), act(out, B, T, C), f32(lse, B, H, T), ids(lens, B)},
			call: func(b *Backend, t []*gpu.Tensor) { b.AttentionBackward(t[0], t[1], t[2], t[3], t[4], t[5], H, KVH) },
			ref: func(x [][]float32) [][]float64 {
				return [][]float64{refGQABackward(to64(x[2]), to64(x[1]), to64(x[3]), lens, B, T, H, KVH, hs), nil, nil, nil, nil, nil}
			}},
		{op: "KVCacheWrite", variant: "grouped, one sequence inactive",
			args: []bfArg{act(kc, B, KVH, S, hs), act(vc, B, KVH, S, hs), act(dqkv, B, 2, W), ids(start, B)},
			call: func(b *Backend, t []*gpu.Tensor) { b.KVCacheWrite(t[0], t[1], t[2], t[3], H, KVH) },
			ref: func(x [][]float32) [][]float64 {
				k, v := to64(x[0]), to64(x[1])
				for bi := range B {
					for g := range KVH {
						for p := 0; p < 2 && start[bi] >= 0; p++ {
							for i := range hs {
								row := x[2][(bi*2+p)*W:]
								at := ((bi*KVH+g)*S+int(start[bi])+p)*hs + i
								k[at], v[at] = float64(row[(H+g)*hs+i]), float64(row[(H+KVH+g)*hs+i])
							}
						}
					}
				}
				return [][]float64{k, v, nil, nil}
			}},
		{op: "AttentionDecode", variant: "grouped, one sequence inactive",
			args: []bfArg{act(randn(r, B*C, 1), B, C).within(2e-6), act(dqkv[:B*W], B, W),
				act(kc, B, KVH, S, hs), act(vc, B, KVH, S, hs), ids(dlens, B)},
			call: func(b *Backend, t []*gpu.Tensor) { b.AttentionDecode(t[0], t[1], t[2], t[3], t[4], H, KVH) },
			ref: func(x [][]float32) [][]float64 {
				return [][]float64{gqaDecodeRef(x[1], x[2], x[3], dlens, B, H, KVH, S, hs), nil, nil, nil, nil}
			}},
	}
}
