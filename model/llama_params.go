package model

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
)

// The Llama family's parameters. Names are Hugging Face's without the
// "model." prefix, except that the projections read by one matmul are
// stored concatenated along their output rows (nn.Linear weights are
// [out, in], so the forward pass is x·Wᵀ):
//
//	self_attn.qkv_proj  = q_proj, k_proj, v_proj  [(H+2·KVH)·hs, C]
//	                      (and their biases, Qwen2), the packed layout
//	                      the attention reads
//	mlp.gate_up_proj    = gate_proj, up_proj      [2F, C], the layout
//	                      SwiGLU reads
//
// checkpoint_llama.go splits and joins them.

// LlamaBlock holds one Llama-family block's tensors (parameters or
// gradients).
type LlamaBlock struct {
	AttnNorm   *gpu.Tensor // input_layernorm [C]
	QKVW, QKVB *gpu.Tensor // [(H+2·KVH)·hs, C], [(H+2·KVH)·hs] (nil without attention_bias)
	OW         *gpu.Tensor // o_proj [C, C]
	MLPNorm    *gpu.Tensor // post_attention_layernorm [C]
	GateUpW    *gpu.Tensor // [2F, C]
	DownW      *gpu.Tensor // down_proj [C, F]
}

// llamaLayout adds the Llama family's tensors.
func (c Config) llamaLayout(l *layoutBuilder) {
	C, V, F := c.NEmbd, c.VocabSize, c.Intermediate
	l.add("embed_tokens.weight", true, initNormal, V, C)
	for i := 0; i < c.NLayer; i++ {
		h := fmt.Sprintf("layers.%d.", i)
		l.add(h+"input_layernorm.weight", false, initOnes, C)
		l.add(h+"self_attn.qkv_proj.weight", true, initNormal, c.QKVWidth(), C)
		if c.AttentionBias {
			l.add(h+"self_attn.qkv_proj.bias", false, initZero, c.QKVWidth())
		}
		l.add(h+"self_attn.o_proj.weight", true, initResidual, C, C)
		l.add(h+"post_attention_layernorm.weight", false, initOnes, C)
		l.add(h+"mlp.gate_up_proj.weight", true, initNormal, 2*F, C)
		l.add(h+"mlp.down_proj.weight", true, initResidual, C, F)
	}
	l.add("norm.weight", false, initOnes, C)
	if !c.ScalarHead && !c.TieEmbeddings {
		l.add("lm_head.weight", true, initNormal, V, C)
	}
}

// bindLlama points p's named fields at the Llama family's tensors.
func (p *Params) bindLlama(cfg Config) {
	p.WTE, p.Norm = p.byName["embed_tokens.weight"], p.byName["norm.weight"]
	switch {
	case cfg.ScalarHead:
	case cfg.TieEmbeddings:
		p.LMHead = p.WTE
	default:
		p.LMHead = p.byName["lm_head.weight"]
	}
	p.Layers = make([]LlamaBlock, cfg.NLayer)
	for l := range p.Layers {
		h := fmt.Sprintf("layers.%d.", l)
		get := func(n string) *gpu.Tensor { return p.byName[h+n] }
		p.Layers[l] = LlamaBlock{
			AttnNorm: get("input_layernorm.weight"),
			QKVW:     get("self_attn.qkv_proj.weight"), QKVB: get("self_attn.qkv_proj.bias"),
			OW:      get("self_attn.o_proj.weight"),
			MLPNorm: get("post_attention_layernorm.weight"),
			GateUpW: get("mlp.gate_up_proj.weight"), DownW: get("mlp.down_proj.weight"),
		}
	}
}
