package model

import (
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// refNet is an independent float64 implementation of the same network,
// written as plainly as possible: explicit loops, no shared code with the
// backend ops. Its parameters are one flat slice in the model's layout, so
// finite differences over it are directly comparable with m.Grads.All.
type refNet struct {
	cfg    Config
	params []float64
	offset map[string]int
}

func newRefNet(cfg Config, params []float64) *refNet {
	r := &refNet{cfg: cfg, params: params, offset: map[string]int{}}
	off := 0
	for _, s := range cfg.layout() {
		r.offset[s.name] = off
		off += s.size()
	}
	return r
}

// p returns the named parameter as a slice of the flat buffer.
func (r *refNet) p(name string) []float64 {
	off := r.offset[name]
	for _, s := range r.cfg.layout() {
		if s.name == name {
			return r.params[off : off+s.size()]
		}
	}
	panic("no parameter " + name)
}

type refOut struct {
	logp, entropy, values []float64 // per token
}

func refLayerNorm(x, w, bias []float64, C int) []float64 {
	out := make([]float64, len(x))
	for i := 0; i < len(x)/C; i++ {
		row := x[i*C : (i+1)*C]
		var mean, v float64
		for _, a := range row {
			mean += a
		}
		mean /= float64(C)
		for _, a := range row {
			v += (a - mean) * (a - mean)
		}
		v /= float64(C)
		rstd := 1 / math.Sqrt(v+1e-5)
		for j, a := range row {
			out[i*C+j] = (a-mean)*rstd*w[j] + bias[j]
		}
	}
	return out
}

// refLinear computes x[N,in]·W[in,out] + b.
func refLinear(x, w, bias []float64, in, out int) []float64 {
	n := len(x) / in
	y := make([]float64, n*out)
	for i := 0; i < n; i++ {
		for o := 0; o < out; o++ {
			s := 0.0
			if bias != nil {
				s = bias[o]
			}
			for k := 0; k < in; k++ {
				s += x[i*in+k] * w[k*out+o]
			}
			y[i*out+o] = s
		}
	}
	return y
}

func refDropout(x []float64, p float32, seed uint64) {
	if p == 0 {
		return
	}
	for i := range x {
		if gpu.DropoutUniform(seed, i) < p {
			x[i] = 0
		} else {
			x[i] /= 1 - float64(p)
		}
	}
}

func refGelu(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

// forward runs the network on in; drop is the dropout probability in force.
func (r *refNet) forward(in *Batch, drop float32, seed uint64) refOut {
	if r.cfg.IsLlama() {
		return r.head(in, r.llamaBody(in, drop, seed), "embed_tokens.weight")
	}
	return r.head(in, r.gpt2Body(in, drop, seed), "wte.weight")
}

// gpt2Body runs GPT-2 up to the final LayerNorm's output.
func (r *refNet) gpt2Body(in *Batch, drop float32, seed uint64) []float64 {
	c := r.cfg
	B, T, C, H := in.B, in.T, c.NEmbd, c.NHead
	hs := C / H
	N := B * T
	x := make([]float64, N*C)
	wte, wpe := r.p("wte.weight"), r.p("wpe.weight")
	for bt := 0; bt < N; bt++ {
		tok, pos := int(in.Tokens[bt]), bt%T
		for j := 0; j < C; j++ {
			x[bt*C+j] = wte[tok*C+j] + wpe[pos*C+j]
		}
	}
	refDropout(x, drop, dropSeed(seed, 0))
	for l := 0; l < c.NLayer; l++ {
		pre := "h." + itoa(l) + "."
		ln1 := refLayerNorm(x, r.p(pre+"ln_1.weight"), r.p(pre+"ln_1.bias"), C)
		qkv := refLinear(ln1, r.p(pre+"attn.c_attn.weight"), r.p(pre+"attn.c_attn.bias"), C, 3*C)
		att := refAttention(qkv, in, H, H, hs)
		proj := refLinear(att, r.p(pre+"attn.c_proj.weight"), r.p(pre+"attn.c_proj.bias"), C, C)
		refDropout(proj, drop, dropSeed(seed, 2*l+1))
		for i := range x {
			x[i] += proj[i]
		}
		ln2 := refLayerNorm(x, r.p(pre+"ln_2.weight"), r.p(pre+"ln_2.bias"), C)
		fc := refLinear(ln2, r.p(pre+"mlp.c_fc.weight"), r.p(pre+"mlp.c_fc.bias"), C, 4*C)
		for i := range fc {
			fc[i] = refGelu(fc[i])
		}
		mlp := refLinear(fc, r.p(pre+"mlp.c_proj.weight"), r.p(pre+"mlp.c_proj.bias"), 4*C, C)
		refDropout(mlp, drop, dropSeed(seed, 2*l+2))
		for i := range x {
			x[i] += mlp[i]
		}
	}
	return refLayerNorm(x, r.p("ln_f.weight"), r.p("ln_f.bias"), C)
}

// head runs the LM head (unembedding lm_head.weight, or the tied embedding
// named tied) or the scalar head on the final hidden states lnf.
func (r *refNet) head(in *Batch, lnf []float64, tied string) refOut {
	c := r.cfg
	N, C := in.B*in.T, c.NEmbd
	var out refOut
	if c.ScalarHead {
		out.values = refLinear(lnf, r.p("score.weight"), nil, C, 1)
		return out
	}
	V := c.VocabSize
	wte := r.p(tied)
	if _, untied := r.offset["lm_head.weight"]; untied {
		wte = r.p("lm_head.weight")
	}
	out.logp, out.entropy = make([]float64, N), make([]float64, N)
	for i := 0; i < N; i++ {
		logits := make([]float64, V)
		maxZ := math.Inf(-1)
		for v := 0; v < V; v++ {
			for j := 0; j < C; j++ {
				logits[v] += lnf[i*C+j] * wte[v*C+j]
			}
			maxZ = math.Max(maxZ, logits[v])
		}
		sum := 0.0
		for _, z := range logits {
			sum += math.Exp(z - maxZ)
		}
		lse := maxZ + math.Log(sum)
		for _, z := range logits {
			lp := z - lse
			out.entropy[i] -= math.Exp(lp) * lp
		}
		if t := in.Targets[i]; t >= 0 {
			out.logp[i] = logits[t] - lse
		}
	}
	return out
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + itoa(i%10)
}
