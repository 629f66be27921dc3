package model

import (
	"fmt"
	"math"

	"github.com/instructgo/instructgo/gpu"
)

// The architectures a Config names (Arch). The Llama family is one network
// (llama.go): RMSNorm, rotary positions, grouped-query attention, a SwiGLU
// MLP; Qwen2 adds q/k/v biases, Mistral is Llama's network under another
// name. The name decides only the checkpoint format.
const (
	ArchGPT2    = "gpt2"
	ArchLlama   = "llama"
	ArchQwen2   = "qwen2"
	ArchMistral = "mistral"
)

// IsLlama reports whether c is of the Llama family.
func (c Config) IsLlama() bool {
	return c.Arch == ArchLlama || c.Arch == ArchQwen2 || c.Arch == ArchMistral
}

// MaxIntermediate bounds intermediate_size as MaxEmbd bounds n_embd.
const MaxIntermediate = 1 << 18

// validateGPT2 refuses the Llama family's fields on a GPT-2 config.
func (c Config) validateGPT2() error {
	switch {
	case c.Arch != "" && c.Arch != ArchGPT2:
		return fmt.Errorf("arch %q is not supported (gpt2, llama, qwen2, mistral)", c.Arch)
	case c.KVHeads != 0:
		return fmt.Errorf("num_key_value_heads %d is a Llama-family field; GPT-2 has none", c.KVHeads)
	case c.Intermediate != 0:
		return fmt.Errorf("intermediate_size %d is a Llama-family field; GPT-2's MLP is 4·n_embd", c.Intermediate)
	case c.RopeTheta != 0 || c.RopeScaling != (gpu.RoPEScaling{}):
		return fmt.Errorf("rope_theta and rope_scaling are Llama-family fields; GPT-2 has learned positions")
	case c.RMSNormEps != 0:
		return fmt.Errorf("rms_norm_eps is a Llama-family field; GPT-2 uses LayerNorm")
	case c.AttentionBias:
		return fmt.Errorf("attention_bias is a Llama-family field; GPT-2 always has biases")
	case c.TieEmbeddings:
		return fmt.Errorf("tie_word_embeddings is a Llama-family field; GPT-2 always ties")
	case c.SlidingWindow != 0 || c.HFMaxPositions != 0:
		return fmt.Errorf("sliding_window is a Mistral field; GPT-2 attends over its whole context")
	}
	return nil
}

// validateLlama checks the Llama family's fields.
func (c Config) validateLlama() error {
	hs := c.HeadSize()
	switch {
	case (c.SlidingWindow != 0 || c.HFMaxPositions != 0) && (c.Arch != ArchMistral || c.SlidingWindow != c.MaxSeqLen || c.HFMaxPositions <= c.SlidingWindow):
		return fmt.Errorf("sliding_window %d with max_position_embeddings %d: only Mistral's, shorter than the positions, and then the context (%d) is the window", c.SlidingWindow, c.HFMaxPositions, c.MaxSeqLen)
	case c.KVHeads <= 0 || c.NHead%c.KVHeads != 0:
		return fmt.Errorf("num_key_value_heads %d must be positive and divide n_head %d", c.KVHeads, c.NHead)
	case hs%2 != 0:
		return fmt.Errorf("head size %d (n_embd/n_head) must be even for rotary embeddings", hs)
	case c.Intermediate <= 0 || c.Intermediate > MaxIntermediate:
		return fmt.Errorf("intermediate_size %d must be in 1..%d", c.Intermediate, MaxIntermediate)
	case !(c.RMSNormEps > 0) || math.IsInf(c.RMSNormEps, 0) || float32(c.RMSNormEps) == 0:
		return fmt.Errorf("rms_norm_eps %g must be finite and > 0 in float32", c.RMSNormEps)
	case c.Arch == ArchQwen2 && !c.AttentionBias:
		return fmt.Errorf("attention_bias false: qwen2 always has q/k/v biases")
	case c.Arch != ArchQwen2 && c.AttentionBias:
		return fmt.Errorf("attention_bias true is supported for qwen2 only (Llama's would bias o_proj too)")
	}
	if _, err := c.ropeInvFreq(); err != nil {
		return fmt.Errorf("rope_theta %g, rope_scaling: %w", c.RopeTheta, err)
	}
	return nil
}

// ropeInvFreq is the rotary inverse frequencies of c's heads.
func (c Config) ropeInvFreq() ([]float32, error) {
	return gpu.RoPEInvFreq(c.HeadSize(), c.RopeTheta, &c.RopeScaling)
}
