package model

import (
	"fmt"
	"slices"
	"strings"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model/tokenizer"
)

// The Llama family's checkpoints: transformers' LlamaConfig, Qwen2Config
// and MistralConfig (config.json) and the tensor names of
// {Llama,Qwen2,Mistral}ForCausalLM and *ForSequenceClassification.

// hfLlamaConfig is the subset of those configs instructgo reads and
// writes, plus its own fields (prefixed instructgo_).
type hfLlamaConfig struct {
	Architectures         []string `json:"architectures,omitempty"`
	ModelType             string   `json:"model_type"`
	VocabSize             int      `json:"vocab_size"`
	HiddenSize            int      `json:"hidden_size"`
	IntermediateSize      int      `json:"intermediate_size"`
	NumHiddenLayers       int      `json:"num_hidden_layers"`
	NumAttentionHeads     int      `json:"num_attention_heads"`
	NumKeyValueHeads      *int     `json:"num_key_value_heads,omitempty"`
	HeadDim               *int     `json:"head_dim,omitempty"`
	MaxPositionEmbeddings int      `json:"max_position_embeddings"`
	RMSNormEps            float64  `json:"rms_norm_eps"`
	HiddenAct             string   `json:"hidden_act"`
	// RopeTheta and RopeScaling are transformers 4's fields;
	// RopeParameters is transformers 5's (rope_theta inside). Either is
	// read; the first pair is written, which both versions read.
	RopeTheta         *float64       `json:"rope_theta,omitempty"`
	RopeScaling       *hfRopeScaling `json:"rope_scaling,omitempty"`
	RopeParameters    *hfRopeScaling `json:"rope_parameters,omitempty"`
	AttentionBias     *bool          `json:"attention_bias,omitempty"`
	MLPBias           *bool          `json:"mlp_bias,omitempty"`
	AttentionDropout  float64        `json:"attention_dropout"`
	TieWordEmbeddings *bool          `json:"tie_word_embeddings,omitempty"`
	SlidingWindow     *int           `json:"sliding_window,omitempty"`
	UseSlidingWindow  *bool          `json:"use_sliding_window,omitempty"`
	LayerTypes        []string       `json:"layer_types,omitempty"`
	// Token ids are written for instructgo's tokenizers; what a hub
	// checkpoint holds (Llama 3 lists several EOS ids) is not read.
	BosTokenID       any               `json:"bos_token_id,omitempty"`
	EosTokenID       any               `json:"eos_token_id,omitempty"`
	PadTokenID       any               `json:"pad_token_id,omitempty"`
	ID2Label         map[string]string `json:"id2label,omitempty"`
	Label2ID         map[string]int    `json:"label2id,omitempty"`
	TorchDtype       string            `json:"torch_dtype,omitempty"`
	Tokenizer        string            `json:"instructgo_tokenizer,omitempty"`
	ResidPdrop       float32           `json:"instructgo_resid_pdrop,omitempty"`
	ScoreBias        *float32          `json:"instructgo_score_bias,omitempty"`
	InitializerRange float64           `json:"initializer_range,omitempty"`
}

// hfRopeScaling is rope_scaling (transformers 4: "type" or "rope_type") or
// rope_parameters (transformers 5, with rope_theta).
type hfRopeScaling struct {
	Type                          string   `json:"type,omitempty"`
	RopeType                      string   `json:"rope_type,omitempty"`
	RopeTheta                     *float64 `json:"rope_theta,omitempty"`
	Factor                        float64  `json:"factor,omitempty"`
	LowFreqFactor                 float64  `json:"low_freq_factor,omitempty"`
	HighFreqFactor                float64  `json:"high_freq_factor,omitempty"`
	OriginalMaxPositionEmbeddings int      `json:"original_max_position_embeddings,omitempty"`
}

func (r *hfRopeScaling) scaling() gpu.RoPEScaling {
	t := r.RopeType
	if t == "" {
		t = r.Type
	}
	if t == "default" {
		return gpu.RoPEScaling{}
	}
	return gpu.RoPEScaling{Type: t, Factor: r.Factor, LowFreqFactor: r.LowFreqFactor,
		HighFreqFactor: r.HighFreqFactor, OriginalMaxPositions: r.OriginalMaxPositionEmbeddings}
}

// hfClassPrefix is the class name transformers gives each architecture.
var hfClassPrefix = map[string]string{ArchLlama: "Llama", ArchQwen2: "Qwen2", ArchMistral: "Mistral"}

func toHFLlama(c Config) hfLlamaConfig {
	kv, hd, theta := c.KVHeads, c.HeadSize(), c.RopeTheta
	tie, f := c.TieEmbeddings, false
	h := hfLlamaConfig{
		Architectures: []string{hfClassPrefix[c.Arch] + "ForCausalLM"}, ModelType: c.Arch,
		VocabSize: c.VocabSize, HiddenSize: c.NEmbd, IntermediateSize: c.Intermediate,
		NumHiddenLayers: c.NLayer, NumAttentionHeads: c.NHead, NumKeyValueHeads: &kv, HeadDim: &hd,
		MaxPositionEmbeddings: c.MaxSeqLen, RMSNormEps: c.RMSNormEps, HiddenAct: "silu",
		RopeTheta: &theta, TieWordEmbeddings: &tie, InitializerRange: 0.02,
		BosTokenID: hfEOS(c), EosTokenID: hfEOS(c), TorchDtype: "float32",
		Tokenizer: c.Tokenizer, ResidPdrop: c.Dropout,
	}
	if s := c.RopeScaling; s.Type != "" {
		h.RopeScaling = &hfRopeScaling{RopeType: s.Type, Factor: s.Factor, LowFreqFactor: s.LowFreqFactor,
			HighFreqFactor: s.HighFreqFactor, OriginalMaxPositionEmbeddings: s.OriginalMaxPositions}
	}
	switch c.Arch {
	case ArchLlama:
		h.AttentionBias, h.MLPBias = &f, &f
	case ArchQwen2:
		h.UseSlidingWindow = &f
	}
	if c.SlidingWindow > 0 && c.HFMaxPositions > 0 {
		w := c.SlidingWindow
		h.SlidingWindow, h.MaxPositionEmbeddings = &w, c.HFMaxPositions
	}
	if c.ScalarHead {
		h.Architectures = []string{hfClassPrefix[c.Arch] + "ForSequenceClassification"}
		h.PadTokenID = hfPad(c)
		h.ID2Label = map[string]string{"0": "LABEL_0"}
		h.Label2ID = map[string]int{"LABEL_0": 0}
		bias := c.ScoreBias
		h.ScoreBias = &bias
	}
	return h
}

func fromHFLlama(h hfLlamaConfig) (Config, error) {
	c := Config{
		Arch: h.ModelType, VocabSize: h.VocabSize, MaxSeqLen: h.MaxPositionEmbeddings, NLayer: h.NumHiddenLayers,
		NHead: h.NumAttentionHeads, NEmbd: h.HiddenSize, KVHeads: h.NumAttentionHeads,
		Intermediate: h.IntermediateSize, RopeTheta: 10000, RMSNormEps: h.RMSNormEps,
		Dropout: h.ResidPdrop, Tokenizer: h.Tokenizer,
	}
	if h.NumKeyValueHeads != nil {
		c.KVHeads = *h.NumKeyValueHeads
	}
	switch {
	case h.HiddenAct != "" && h.HiddenAct != "silu":
		return Config{}, fmt.Errorf("hidden_act %q is not supported (silu)", h.HiddenAct)
	case h.MLPBias != nil && *h.MLPBias:
		return Config{}, fmt.Errorf("mlp_bias true is not supported")
	case h.HeadDim != nil && h.NumAttentionHeads > 0 && *h.HeadDim != h.HiddenSize/h.NumAttentionHeads:
		return Config{}, fmt.Errorf("head_dim %d is not supported (want hidden_size/num_attention_heads)", *h.HeadDim)
	case h.UseSlidingWindow != nil && *h.UseSlidingWindow:
		return Config{}, fmt.Errorf("use_sliding_window true is not supported (attention is over the whole context)")
	}
	for _, t := range h.LayerTypes {
		if t != "full_attention" && h.ModelType != ArchMistral {
			return Config{}, fmt.Errorf("layer_types %q is not supported (full_attention)", t)
		}
	}
	if h.ModelType == ArchQwen2 {
		c.AttentionBias = true // Qwen2's q, k and v projections always have biases
	} else if h.AttentionBias != nil {
		c.AttentionBias = *h.AttentionBias
	}
	// Mistral's sliding window changes nothing for sequences that fit in
	// it: the context is cut to the window.
	if w := h.SlidingWindow; h.ModelType == ArchMistral && w != nil && *w > 0 && *w < c.MaxSeqLen {
		c.SlidingWindow, c.HFMaxPositions, c.MaxSeqLen = *w, c.MaxSeqLen, *w
	}
	if h.RopeTheta != nil {
		c.RopeTheta = *h.RopeTheta
	}
	if r := h.RopeScaling; r != nil {
		c.RopeScaling = r.scaling()
	}
	if r := h.RopeParameters; r != nil {
		if r.RopeTheta != nil {
			c.RopeTheta = *r.RopeTheta
		}
		c.RopeScaling = r.scaling()
	}
	if h.TieWordEmbeddings != nil {
		c.TieEmbeddings = *h.TieWordEmbeddings
	}
	if c.Tokenizer != "" && !slices.Contains(tokenizer.Names(), c.Tokenizer) {
		return Config{}, fmt.Errorf("instructgo_tokenizer %q is not a tokenizer instructgo has (%s)", c.Tokenizer, strings.Join(tokenizer.Names(), ", "))
	}
	for _, a := range h.Architectures {
		if strings.HasSuffix(a, "ForSequenceClassification") {
			c.ScalarHead = true
			if len(h.ID2Label) > 1 {
				return Config{}, fmt.Errorf("%s with %d labels is not supported (one: a reward model)", a, len(h.ID2Label))
			}
		}
	}
	if h.ScoreBias != nil && c.ScalarHead {
		c.ScoreBias = *h.ScoreBias
	}
	return c, c.Validate()
}

// llamaCheckpointTensors are the checkpoint tensors of one Llama-family
// parameter at offset off: the concatenated projections split into
// Hugging Face's q/k/v and gate/up tensors, the rest as they are.
func llamaCheckpointTensors(cfg Config, s paramSpec, off int) []ckptTensor {
	C, hs := cfg.NEmbd, cfg.HeadSize()
	q, kv, F := cfg.NHead*hs, cfg.KVHeads*hs, cfg.Intermediate
	// split cuts the rows of s into named parts of cols columns each
	// (cols 0: a vector).
	split := func(cols int, names []string, rows ...int) []ckptTensor {
		out := make([]ckptTensor, len(names))
		for i, name := range names {
			n, shape := rows[i], []int{rows[i]}
			if cols > 0 {
				n, shape = rows[i]*cols, []int{rows[i], cols}
			}
			out[i] = ckptTensor{name: name, shape: shape, off: off, n: n}
			off += n
		}
		return out
	}
	parts := func(base string, suffix string, names ...string) []string {
		for i, n := range names {
			names[i] = base + n + suffix
		}
		return names
	}
	switch {
	case strings.HasSuffix(s.name, "self_attn.qkv_proj.weight"):
		base := strings.TrimSuffix(s.name, "qkv_proj.weight")
		return split(C, parts(base, "_proj.weight", "q", "k", "v"), q, kv, kv)
	case strings.HasSuffix(s.name, "self_attn.qkv_proj.bias"):
		base := strings.TrimSuffix(s.name, "qkv_proj.bias")
		return split(0, parts(base, "_proj.bias", "q", "k", "v"), q, kv, kv)
	case strings.HasSuffix(s.name, "mlp.gate_up_proj.weight"):
		base := strings.TrimSuffix(s.name, "gate_up_proj.weight")
		return split(C, parts(base, "_proj.weight", "gate", "up"), F, F)
	}
	return []ckptTensor{{name: s.name, shape: s.shape, off: off, n: s.size()}}
}
