package model

import "math"

// The float64 reference of the Llama family's network (refNet, see
// reference_test.go): plain loops, no code shared with the backend ops.

func refRMSNorm(x, w []float64, C int, eps float64) []float64 {
	out := make([]float64, len(x))
	for i := 0; i < len(x)/C; i++ {
		row := x[i*C : (i+1)*C]
		ms := 0.0
		for _, a := range row {
			ms += a * a
		}
		rstd := 1 / math.Sqrt(ms/float64(C)+eps)
		for j, a := range row {
			out[i*C+j] = a * rstd * w[j]
		}
	}
	return out
}

// refLinearT computes x[N,in]·Wᵀ + b for an nn.Linear weight W[out,in].
func refLinearT(x, w, bias []float64, in, out int) []float64 {
	n := len(x) / in
	y := make([]float64, n*out)
	for i := 0; i < n; i++ {
		for o := 0; o < out; o++ {
			s := 0.0
			if bias != nil {
				s = bias[o]
			}
			for k := 0; k < in; k++ {
				s += x[i*in+k] * w[o*in+k]
			}
			y[i*out+o] = s
		}
	}
	return y
}

// refRoPE rotates the query and key heads of qkv [B,T,(H+2·KVH)·hs] in
// place, Hugging Face's rotate_half: element i pairs with i+hs/2.
func refRoPE(qkv []float64, B, T, H, KVH, hs int, invFreq []float32) {
	W := (H + 2*KVH) * hs
	for bt := 0; bt < B*T; bt++ {
		pos := float64(bt % T)
		for h := 0; h < H+KVH; h++ {
			x := qkv[bt*W+h*hs : bt*W+(h+1)*hs]
			for i := 0; i < hs/2; i++ {
				th := pos * float64(invFreq[i])
				a, b := x[i], x[i+hs/2]
				x[i] = a*math.Cos(th) - b*math.Sin(th)
				x[i+hs/2] = b*math.Cos(th) + a*math.Sin(th)
			}
		}
	}
}

// refAttention is causal grouped-query attention over qkv
// [B,T,(H+2·KVH)·hs]: query head h reads key/value head h/(H/KVH). Rows at
// or beyond a sequence's valid length stay 0.
func refAttention(qkv []float64, in *Batch, H, KVH, hs int) []float64 {
	B, T := in.B, in.T
	W, C := (H+2*KVH)*hs, H*hs
	att := make([]float64, B*T*C)
	for b := 0; b < B; b++ {
		L := T
		if in.ValidLen != nil {
			L = int(in.ValidLen[b])
		}
		for h := 0; h < H; h++ {
			g := h / (H / KVH)
			for t := 0; t < L; t++ {
				q := qkv[(b*T+t)*W+h*hs:]
				scores := make([]float64, t+1)
				maxS := math.Inf(-1)
				for j := 0; j <= t; j++ {
					k := qkv[(b*T+j)*W+C+g*hs:]
					s := 0.0
					for d := 0; d < hs; d++ {
						s += q[d] * k[d]
					}
					scores[j] = s / math.Sqrt(float64(hs))
					maxS = math.Max(maxS, scores[j])
				}
				sum := 0.0
				for j := range scores {
					scores[j] = math.Exp(scores[j] - maxS)
					sum += scores[j]
				}
				for j := 0; j <= t; j++ {
					v := qkv[(b*T+j)*W+C+KVH*hs+g*hs:]
					for d := 0; d < hs; d++ {
						att[(b*T+t)*C+h*hs+d] += scores[j] / sum * v[d]
					}
				}
			}
		}
	}
	return att
}

// llamaBody runs the Llama family's network up to the final RMSNorm's
// output.
func (r *refNet) llamaBody(in *Batch, drop float32, seed uint64) []float64 {
	c := r.cfg
	B, T, C, H, KVH, F := in.B, in.T, c.NEmbd, c.NHead, c.KVHeads, c.Intermediate
	hs, W, N := c.HeadSize(), c.QKVWidth(), in.B*in.T
	eps := float64(float32(c.RMSNormEps))
	invFreq, err := c.ropeInvFreq()
	if err != nil {
		panic(err)
	}
	x := make([]float64, N*C)
	wte := r.p("embed_tokens.weight")
	for bt := 0; bt < N; bt++ {
		copy(x[bt*C:(bt+1)*C], wte[int(in.Tokens[bt])*C:])
	}
	refDropout(x, drop, dropSeed(seed, 0))
	for l := 0; l < c.NLayer; l++ {
		pre := "layers." + itoa(l) + "."
		ln1 := refRMSNorm(x, r.p(pre+"input_layernorm.weight"), C, eps)
		var bias []float64
		if c.AttentionBias {
			bias = r.p(pre + "self_attn.qkv_proj.bias")
		}
		qkv := refLinearT(ln1, r.p(pre+"self_attn.qkv_proj.weight"), bias, C, W)
		refRoPE(qkv, B, T, H, KVH, hs, invFreq)
		att := refAttention(qkv, in, H, KVH, hs)
		proj := refLinearT(att, r.p(pre+"self_attn.o_proj.weight"), nil, C, C)
		refDropout(proj, drop, dropSeed(seed, 2*l+1))
		for i := range x {
			x[i] += proj[i]
		}
		ln2 := refRMSNorm(x, r.p(pre+"post_attention_layernorm.weight"), C, eps)
		gu := refLinearT(ln2, r.p(pre+"mlp.gate_up_proj.weight"), nil, C, 2*F)
		act := make([]float64, N*F)
		for i := 0; i < N; i++ {
			for j := 0; j < F; j++ {
				g, u := gu[i*2*F+j], gu[i*2*F+F+j]
				act[i*F+j] = g / (1 + math.Exp(-g)) * u
			}
		}
		mlp := refLinearT(act, r.p(pre+"mlp.down_proj.weight"), nil, F, C)
		refDropout(mlp, drop, dropSeed(seed, 2*l+2))
		for i := range x {
			x[i] += mlp[i]
		}
	}
	return refRMSNorm(x, r.p("norm.weight"), C, eps)
}
