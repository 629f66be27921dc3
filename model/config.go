package model

import (
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/instructgo/instructgo/gpu"
)

// Config describes a network: GPT-2, or with Arch set a member of the
// Llama family (Llama, Qwen2, Mistral; llama_config.go). The fields below
// Arch are zero for GPT-2.
type Config struct {
	VocabSize int `json:"vocab_size"`
	MaxSeqLen int `json:"n_positions"`
	NLayer    int `json:"n_layer"`
	NHead     int `json:"n_head"`
	NEmbd     int `json:"n_embd"`
	// Dropout is the residual and embedding dropout probability used in
	// training (GPT-2's resid_pdrop and embd_pdrop). Attention-probability
	// dropout is not supported: the fused attention never materialises the
	// probabilities.
	Dropout float32 `json:"resid_pdrop"`
	// Tokenizer names the tokenizer the vocabulary belongs to ("byte", "gpt2").
	Tokenizer string `json:"instructgo_tokenizer"`
	// ScalarHead replaces the LM head with one scalar per position (a reward
	// model or value function), stored as HF GPT2ForSequenceClassification's
	// score.weight.
	ScalarHead bool `json:"-"`
	// ScoreBias is added to every output of the scalar head: the reward
	// model's centring (InstructGPT adds a bias after training so that the
	// demonstrations score 0 on average). Forward applies it, so Values
	// always include it; it carries no gradient. config.json records it as
	// instructgo_score_bias. An LM model ignores it.
	ScoreBias float32 `json:"score_bias,omitempty"`

	// Arch is the network family, named as Hugging Face's model_type:
	// "" or "gpt2", or "llama", "qwen2", "mistral" (one network, see
	// llama.go; the name decides the checkpoint format).
	Arch string `json:"arch,omitempty"`
	// KVHeads is the number of key/value heads of grouped-query attention
	// (num_key_value_heads; divides n_head).
	KVHeads int `json:"num_key_value_heads,omitempty"`
	// Intermediate is the width of the SwiGLU MLP (intermediate_size).
	Intermediate int `json:"intermediate_size,omitempty"`
	// RopeTheta is the base of the rotary frequencies (rope_theta) and
	// RopeScaling their rescaling (rope_scaling; the zero value is none).
	// A value, not a pointer, so that configs compare with ==.
	RopeTheta   float64         `json:"rope_theta,omitempty"`
	RopeScaling gpu.RoPEScaling `json:"rope_scaling,omitzero"`
	// RMSNormEps is the epsilon of every RMSNorm (rms_norm_eps).
	RMSNormEps float64 `json:"rms_norm_eps,omitempty"`
	// AttentionBias gives the q, k and v projections biases (Qwen2).
	AttentionBias bool `json:"attention_bias,omitempty"`
	// TieEmbeddings reads the LM head from the token embedding
	// (tie_word_embeddings); otherwise it is its own lm_head.weight.
	// GPT-2 always ties.
	TieEmbeddings bool `json:"tie_word_embeddings,omitempty"`
	// SlidingWindow is Mistral's sliding_window when it is shorter than
	// the checkpoint's max_position_embeddings (HFMaxPositions): attention
	// over a window is not implemented, so MaxSeqLen is cut to the window,
	// where full attention is exact. Saving writes both back unchanged.
	SlidingWindow  int `json:"sliding_window,omitempty"`
	HFMaxPositions int `json:"hf_max_position_embeddings,omitempty"`
}

// Context describes the model's context for error messages: its length,
// and where a sliding window cut it, why.
func (c Config) Context() string {
	if c.SlidingWindow > 0 {
		return fmt.Sprintf("the model's context of %d (Mistral's sliding_window; attention over a sliding window is not supported, so sequences must fit in it)", c.MaxSeqLen)
	}
	return fmt.Sprintf("the model's context of %d", c.MaxSeqLen)
}

// Named configurations. tiny is for tests and the CPU demo; small (10.8M
// parameters, the same byte vocabulary and context) is the next step up
// for the built-in tasks on a GPU; the others are the published GPT-2
// sizes.
var configs = map[string]Config{
	"tiny":        {VocabSize: 258, MaxSeqLen: 256, NLayer: 4, NHead: 4, NEmbd: 128, Tokenizer: "byte"},
	"small":       {VocabSize: 258, MaxSeqLen: 256, NLayer: 6, NHead: 6, NEmbd: 384, Tokenizer: "byte"},
	"gpt2":        {VocabSize: 50257, MaxSeqLen: 1024, NLayer: 12, NHead: 12, NEmbd: 768, Tokenizer: "gpt2"},
	"gpt2-medium": {VocabSize: 50257, MaxSeqLen: 1024, NLayer: 24, NHead: 16, NEmbd: 1024, Tokenizer: "gpt2"},
	"gpt2-large":  {VocabSize: 50257, MaxSeqLen: 1024, NLayer: 36, NHead: 20, NEmbd: 1280, Tokenizer: "gpt2"},
	// llama-tiny is tiny as a Llama: the same vocabulary, width, depth,
	// heads and context, two key/value heads, a SwiGLU MLP 2.7× wide
	// (344 = 128·8/3 rounded up to a multiple of 8), tied embeddings.
	"llama-tiny": {VocabSize: 258, MaxSeqLen: 256, NLayer: 4, NHead: 4, NEmbd: 128, Tokenizer: "byte",
		Arch: ArchLlama, KVHeads: 2, Intermediate: 344, RopeTheta: 10000, RMSNormEps: 1e-5, TieEmbeddings: true},
}

// ConfigNames lists the named configurations, sorted.
func ConfigNames() []string {
	names := make([]string, 0, len(configs))
	for n := range configs {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ConfigByName returns a named configuration.
func ConfigByName(name string) (Config, error) {
	c, ok := configs[name]
	if !ok {
		return Config{}, fmt.Errorf("unknown model config %q (known: %s)", name, strings.Join(ConfigNames(), ", "))
	}
	return c, nil
}

// Validate reports an inconsistent configuration, naming the field.
func (c Config) Validate() error {
	switch {
	case c.VocabSize <= 0 || c.VocabSize > MaxVocab:
		return fmt.Errorf("model config: vocab_size %d must be in 1..%d", c.VocabSize, MaxVocab)
	case c.MaxSeqLen <= 0 || c.MaxSeqLen > MaxPositions:
		return fmt.Errorf("model config: n_positions %d must be in 1..%d", c.MaxSeqLen, MaxPositions)
	case c.NLayer <= 0 || c.NLayer > MaxLayers:
		return fmt.Errorf("model config: n_layer %d must be in 1..%d", c.NLayer, MaxLayers)
	case c.NEmbd <= 0 || c.NEmbd > MaxEmbd:
		return fmt.Errorf("model config: n_embd %d must be in 1..%d", c.NEmbd, MaxEmbd)
	case c.NHead <= 0 || c.NEmbd%c.NHead != 0:
		return fmt.Errorf("model config: n_embd %d must be a positive multiple of n_head %d", c.NEmbd, c.NHead)
	case c.Dropout < 0 || c.Dropout >= 1:
		return fmt.Errorf("model config: dropout %g must be in [0, 1)", c.Dropout)
	case math.IsNaN(float64(c.ScoreBias)) || math.IsInf(float64(c.ScoreBias), 0):
		return fmt.Errorf("model config: score bias %g must be finite", c.ScoreBias)
	}
	var err error
	if c.IsLlama() {
		err = c.validateLlama()
	} else {
		err = c.validateGPT2()
	}
	if err != nil {
		return fmt.Errorf("model config: %w", err)
	}
	if c.NumParams() > MaxParams {
		return fmt.Errorf("model config: %d parameters exceed the limit of %d", c.NumParams(), MaxParams)
	}
	return nil
}

// Bounds on a configuration, far above any model this project trains, so
// that a damaged or hostile config.json is refused before anything is
// sized from it (every product of them fits an int64).
const (
	MaxVocab     = 1 << 22
	MaxPositions = 1 << 20
	MaxLayers    = 1 << 10
	MaxEmbd      = 1 << 16
	MaxParams    = 1 << 36
)

// HeadSize is the width of one attention head.
func (c Config) HeadSize() int { return c.NEmbd / c.NHead }

// KVHeadCount is the number of key/value heads: KVHeads in the Llama
// family, n_head in GPT-2.
func (c Config) KVHeadCount() int {
	if c.IsLlama() {
		return c.KVHeads
	}
	return c.NHead
}

// QKVWidth is the row width of the packed queries, keys and values the
// attention reads: (n_head + 2·kv_heads)·head size.
func (c Config) QKVWidth() int { return (c.NHead + 2*c.KVHeadCount()) * c.HeadSize() }

// MLPWidth is the width of the MLP's hidden layer after its activation:
// 4·n_embd in GPT-2, intermediate_size in the Llama family.
func (c Config) MLPWidth() int {
	if c.IsLlama() {
		return c.Intermediate
	}
	return 4 * c.NEmbd
}

// NumParams is the number of trainable parameters (tied LM head counted once).
func (c Config) NumParams() int {
	n := 0
	for _, p := range c.layout() {
		n += p.size()
	}
	return n
}

// FLOPsPerToken is the training cost of one token with llm.c's count:
// 6·N for the matmuls over parameters and 6·L·C·T for attention, at
// sequence length t (forward and backward).
func (c Config) FLOPsPerToken(t int) float64 {
	return 6*float64(c.NumParams()) + 6*float64(c.NLayer*c.NEmbd*t)
}
