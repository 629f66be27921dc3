package model

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/internal/readfile"
	"github.com/instructgo/instructgo/model/safetensors"
	"github.com/instructgo/instructgo/model/tokenizer"
)

// MaxJSONFileSize bounds the JSON files of a checkpoint directory read
// whole (config.json, model.safetensors.index.json).
const MaxJSONFileSize = readfile.JSONLimit

// Files of a checkpoint directory, in Hugging Face layout.
const (
	ConfigFile  = "config.json"
	WeightsFile = "model.safetensors"
)

// hfConfig is the subset of transformers' GPT2Config a checkpoint carries,
// plus instructgo's own fields (prefixed instructgo_).
type hfConfig struct {
	Architectures      []string          `json:"architectures,omitempty"`
	ModelType          string            `json:"model_type"`
	VocabSize          int               `json:"vocab_size"`
	NPositions         int               `json:"n_positions"`
	NCtx               int               `json:"n_ctx,omitempty"`
	NEmbd              int               `json:"n_embd"`
	NLayer             int               `json:"n_layer"`
	NHead              int               `json:"n_head"`
	NInner             *int              `json:"n_inner"`
	ActivationFunction string            `json:"activation_function"`
	ResidPdrop         float32           `json:"resid_pdrop"`
	EmbdPdrop          float32           `json:"embd_pdrop"`
	AttnPdrop          float32           `json:"attn_pdrop"`
	LayerNormEpsilon   float64           `json:"layer_norm_epsilon"`
	InitializerRange   float64           `json:"initializer_range"`
	BosTokenID         int               `json:"bos_token_id"`
	EosTokenID         int               `json:"eos_token_id"`
	PadTokenID         *int              `json:"pad_token_id,omitempty"`
	TieWordEmbeddings  *bool             `json:"tie_word_embeddings,omitempty"`
	ScaleAttnWeights   *bool             `json:"scale_attn_weights,omitempty"`
	ScaleAttnByLayer   bool              `json:"scale_attn_by_inverse_layer_idx"`
	ReorderUpcastAttn  bool              `json:"reorder_and_upcast_attn"`
	ID2Label           map[string]string `json:"id2label,omitempty"`
	Label2ID           map[string]int    `json:"label2id,omitempty"`
	TorchDtype         string            `json:"torch_dtype,omitempty"`
	Tokenizer          string            `json:"instructgo_tokenizer,omitempty"`
	// ScoreBias is Config.ScoreBias, written for scalar-head models only.
	// transformers ignores it: a GPT2ForSequenceClassification loaded there
	// returns the score without it (add it to the logits).
	ScoreBias *float32 `json:"instructgo_score_bias,omitempty"`
}

// hfEOS is the end-of-text id of the tokenizers a vocabulary size implies:
// byte (256 bytes, then EOS) and gpt2 (50256).
func hfEOS(c Config) int {
	if c.Tokenizer == "byte" {
		return 256
	}
	return c.VocabSize - 1
}

// hfPad is the pad id a scalar-head checkpoint declares: the
// *ForSequenceClassification models read the score at the last token that
// is not padding, which they find by this id; instructgo reads it at the
// last token of the sequence, EOS included. The byte tokenizer pads with
// its own id (257), so transformers reads at the same token; gpt2 pads with
// EOS, so on a sequence ending in EOS transformers reads one token earlier
// unless given one unpadded sequence with pad_token_id unset.
func hfPad(c Config) int {
	if c.Tokenizer == "byte" {
		return hfEOS(c) + 1
	}
	return hfEOS(c)
}

func toHF(c Config) hfConfig {
	tie := true
	h := hfConfig{
		Architectures: []string{"GPT2LMHeadModel"}, ModelType: "gpt2",
		VocabSize: c.VocabSize, NPositions: c.MaxSeqLen, NEmbd: c.NEmbd, NLayer: c.NLayer, NHead: c.NHead,
		ActivationFunction: "gelu_new", ResidPdrop: c.Dropout, EmbdPdrop: c.Dropout,
		LayerNormEpsilon: 1e-5, InitializerRange: 0.02,
		BosTokenID: hfEOS(c), EosTokenID: hfEOS(c), TieWordEmbeddings: &tie,
		TorchDtype: "float32", Tokenizer: c.Tokenizer,
	}
	if c.ScalarHead {
		pad := hfPad(c)
		h.Architectures = []string{"GPT2ForSequenceClassification"}
		h.PadTokenID = &pad
		h.ID2Label = map[string]string{"0": "LABEL_0"}
		h.Label2ID = map[string]int{"LABEL_0": 0}
		bias := c.ScoreBias
		h.ScoreBias = &bias
	}
	return h
}

func fromHF(h hfConfig) (Config, error) {
	if h.ModelType != "" && h.ModelType != "gpt2" {
		return Config{}, fmt.Errorf("model_type %q is not supported (gpt2, llama, qwen2, mistral)", h.ModelType)
	}
	switch h.ActivationFunction {
	case "", "gelu_new", "gelu_pytorch_tanh":
	default:
		return Config{}, fmt.Errorf("activation_function %q is not supported (want gelu_new)", h.ActivationFunction)
	}
	if h.NInner != nil && *h.NInner != 4*h.NEmbd {
		return Config{}, fmt.Errorf("n_inner %d is not supported (want 4·n_embd)", *h.NInner)
	}
	if h.LayerNormEpsilon != 0 && math.Abs(h.LayerNormEpsilon-1e-5) > 1e-9 {
		return Config{}, fmt.Errorf("layer_norm_epsilon %g is not supported (want 1e-5)", h.LayerNormEpsilon)
	}
	if h.ScaleAttnWeights != nil && !*h.ScaleAttnWeights {
		return Config{}, fmt.Errorf("scale_attn_weights false is not supported (attention scores are always scaled by 1/sqrt(head size))")
	}
	if h.ScaleAttnByLayer || h.ReorderUpcastAttn {
		return Config{}, fmt.Errorf("scale_attn_by_inverse_layer_idx and reorder_and_upcast_attn are not supported")
	}
	if h.TieWordEmbeddings != nil && !*h.TieWordEmbeddings {
		return Config{}, fmt.Errorf("untied word embeddings are not supported")
	}
	c := Config{
		VocabSize: h.VocabSize, MaxSeqLen: h.NPositions, NLayer: h.NLayer, NHead: h.NHead, NEmbd: h.NEmbd,
		Dropout: h.ResidPdrop, Tokenizer: h.Tokenizer,
	}
	if c.MaxSeqLen == 0 {
		c.MaxSeqLen = h.NCtx
	}
	if c.Tokenizer == "" {
		c.Tokenizer = "gpt2" // a checkpoint from the Hugging Face hub
	}
	if !slices.Contains(tokenizer.Names(), c.Tokenizer) {
		return Config{}, fmt.Errorf("instructgo_tokenizer %q is not a tokenizer instructgo has (%s)", c.Tokenizer, strings.Join(tokenizer.Names(), ", "))
	}
	for _, a := range h.Architectures {
		if a == "GPT2ForSequenceClassification" {
			c.ScalarHead = true
		}
	}
	if h.ScoreBias != nil && c.ScalarHead {
		c.ScoreBias = *h.ScoreBias
	}
	return c, c.Validate()
}

// ReadConfig reads a checkpoint directory's config.json.
func ReadConfig(dir string) (Config, error) {
	path := filepath.Join(dir, ConfigFile)
	data, err := readfile.Bounded(path, MaxJSONFileSize)
	if err != nil {
		return Config{}, fmt.Errorf("read checkpoint config: %w", err)
	}
	var kind struct {
		ModelType string `json:"model_type"`
	}
	if err := json.Unmarshal(data, &kind); err != nil {
		return Config{}, fmt.Errorf("read checkpoint config %s: %w", path, err)
	}
	var c Config
	switch kind.ModelType {
	case ArchLlama, ArchQwen2, ArchMistral:
		var h hfLlamaConfig
		if err = json.Unmarshal(data, &h); err == nil {
			c, err = fromHFLlama(h)
		}
	default:
		var h hfConfig
		if err = json.Unmarshal(data, &h); err == nil {
			c, err = fromHF(h)
		}
	}
	if err != nil {
		return Config{}, fmt.Errorf("checkpoint config %s: %w", path, err)
	}
	return c, nil
}

// Save writes m's configuration and parameters to dir (created if needed)
// the way transformers' save_pretrained does: config.json and
// model.safetensors, without the tied lm_head.weight. Each file is replaced
// atomically.
func Save(dir string, m *Model) error { return SaveAs(dir, m, "") }

// SaveAs is Save with the weights stored as dtype: float32 ("" or
// safetensors.F32), or rounded to bf16 (safetensors.BF16, with
// torch_dtype bfloat16 in config.json). The master weights are float32
// whatever the precision, so only SaveAs rounds.
func SaveAs(dir string, m *Model, dtype string) error {
	host := make([]float32, m.Params.All.Len())
	if err := m.b.Download(host, m.Params.All); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return SaveHostAs(dir, m.Cfg, host, dtype)
}

// SaveHost is Save for parameters already on the host, in layout order.
func SaveHost(dir string, cfg Config, host []float32) error { return SaveHostAs(dir, cfg, host, "") }

// SaveHostAs is SaveAs for parameters already on the host.
func SaveHostAs(dir string, cfg Config, host []float32, dtype string) error {
	return SaveHostWith(dir, cfg, host, SaveOptions{DType: dtype})
}

// SaveOptions say how a checkpoint is written.
type SaveOptions struct {
	// DType stores the weights as float32 ("" or safetensors.F32) or
	// rounded to bf16 (safetensors.BF16, with torch_dtype bfloat16).
	DType string
	// MaxShardBytes > 0 splits the weights into shards of at most this
	// many bytes (a larger tensor gets a shard of its own) listed by
	// model.safetensors.index.json, as save_pretrained's max_shard_size
	// does; 0 writes one model.safetensors.
	MaxShardBytes int64
}

// SaveWith is Save with options.
func SaveWith(dir string, m *Model, opt SaveOptions) error {
	host := make([]float32, m.Params.All.Len())
	if err := m.b.Download(host, m.Params.All); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return SaveHostWith(dir, m.Cfg, host, opt)
}

// SaveHostWith is SaveWith for parameters already on the host, in layout
// order.
func SaveHostWith(dir string, cfg Config, host []float32, opt SaveOptions) error {
	torchDtype := "float32"
	switch opt.DType {
	case "", safetensors.F32:
	case safetensors.BF16:
		torchDtype = "bfloat16"
	default:
		return fmt.Errorf("save checkpoint: unsupported dtype %q (F32 or BF16)", opt.DType)
	}
	if opt.MaxShardBytes < 0 {
		return fmt.Errorf("save checkpoint: shard size %d must not be negative", opt.MaxShardBytes)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("save checkpoint %s: %w", dir, err)
	}
	if n := cfg.NumParams(); n != len(host) {
		return fmt.Errorf("save checkpoint: %d parameters for a layout of %d", len(host), n)
	}
	if err := checkFinite(host, cfg); err != nil {
		return fmt.Errorf("save checkpoint %s: refusing to write %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	var tensors []safetensors.Tensor
	for _, t := range checkpointTensors(cfg) {
		tensors = append(tensors, safetensors.Tensor{Name: cfg.fileName(t.name), Shape: t.shape, Data: host[t.off : t.off+t.n], DType: opt.DType})
	}
	if err := writeWeights(dir, tensors, opt.MaxShardBytes); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	var hf any
	if cfg.IsLlama() {
		h := toHFLlama(cfg)
		h.TorchDtype = torchDtype
		hf = h
	} else {
		h := toHF(cfg)
		h.TorchDtype = torchDtype
		hf = h
	}
	if err := atomicfile.WriteJSON(filepath.Join(dir, ConfigFile), hf); err != nil {
		return fmt.Errorf("save checkpoint: %w", err)
	}
	return nil
}

// ckptTensor is one tensor of a checkpoint file: its name without the
// architecture's prefix (see Config.fileName), its shape in the file, and
// the contiguous range of the parameter buffer it holds.
type ckptTensor struct {
	name   string
	shape  []int
	off, n int
}

// checkpointTensors lists cfg's checkpoint tensors in buffer order. GPT-2's
// are its parameters one to one (score.weight stored as HF's [1, C]); the
// Llama family's split the concatenated projections (llama_params.go).
func checkpointTensors(cfg Config) []ckptTensor {
	var out []ckptTensor
	off := 0
	for _, s := range cfg.layout() {
		switch {
		case s.name == "score.weight":
			out = append(out, ckptTensor{name: s.name, shape: []int{1, cfg.NEmbd}, off: off, n: s.size()})
		case cfg.IsLlama():
			out = append(out, llamaCheckpointTensors(cfg, s, off)...)
		default:
			out = append(out, ckptTensor{name: s.name, shape: s.shape, off: off, n: s.size()})
		}
		off += s.size()
	}
	return out
}

// fileName is the name save_pretrained gives a tensor: the body is under
// "transformer." (GPT-2) or "model." (the Llama family); the heads
// (lm_head, score) are not.
func (c Config) fileName(name string) string {
	if name == "score.weight" || name == "lm_head.weight" {
		return name
	}
	return c.filePrefix() + name
}

func (c Config) filePrefix() string {
	if c.IsLlama() {
		return "model."
	}
	return "transformer."
}

// ignoredTensor reports a tensor a checkpoint may hold that cfg does not
// read: a head the config does not have (an LM starting from a reward
// model's body, a reward model from an LM), a tied lm_head.weight, and the
// buffers older transformers saved (GPT-2's attention masks, Llama's
// rotary frequencies).
func ignoredTensor(cfg Config, name string, info safetensors.Info) bool {
	switch {
	case name == "score.weight":
		return !cfg.ScalarHead
	case name == "lm_head.weight":
		return !cfg.IsLlama() || cfg.ScalarHead || cfg.TieEmbeddings
	case cfg.IsLlama():
		return strings.HasSuffix(name, ".rotary_emb.inv_freq")
	}
	return strings.HasSuffix(name, ".attn.bias") && len(info.Shape) == 4 || strings.HasSuffix(name, ".attn.masked_bias")
}

// ErrNoScoreHead reports a scalar-head model loaded from a checkpoint that
// has no score.weight (an LM checkpoint); the caller initialises the head.
var ErrNoScoreHead = errors.New("checkpoint has no score.weight")

// LoadHost reads dir's model.safetensors into host parameters in cfg's
// layout. Names are accepted with or without the "transformer." prefix;
// GPT-2's attention-mask buffers and the tied lm_head.weight are skipped;
// any other unknown tensor is an error. When cfg has a scalar head and the
// file has none, the head is left zero and the error wraps ErrNoScoreHead.
func LoadHost(dir string, cfg Config) ([]float32, error) {
	return LoadHostWith(dir, cfg, LoadOptions{})
}

// LoadOptions say what a load accepts beyond a sound checkpoint.
type LoadOptions struct {
	// AllowNonFinite loads weights that hold NaN or infinities (to
	// inspect or repair a diverged run); refused otherwise.
	AllowNonFinite bool
}

// ErrNonFinite marks a checkpoint refused for NaN or infinite weights.
var ErrNonFinite = errors.New("non-finite weights")

// LoadHostWith is LoadHost with options. Every tensor's presence and shape
// is checked against cfg from the files' headers before the parameters are
// allocated, and the allocation against the memory the machine has.
func LoadHostWith(dir string, cfg Config, opt LoadOptions) ([]float32, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("load checkpoint %s: %w", dir, err)
	}
	ws, err := openCheckpointWeights(dir)
	if err != nil {
		return nil, fmt.Errorf("load checkpoint: %w", err)
	}
	defer ws.Close()
	prefix := cfg.filePrefix()
	byName := map[string]weightRef{}
	for _, ref := range ws.tensors {
		name := strings.TrimPrefix(ref.info.Name, prefix)
		if ignoredTensor(cfg, name, ref.info) {
			continue
		}
		if _, dup := byName[name]; dup {
			return nil, fmt.Errorf("load checkpoint %s: tensor %q appears with and without the %s prefix", dir, name, prefix)
		}
		byName[name] = ref
	}
	want := checkpointTensors(cfg)
	missingHead := false
	known := make(map[string]bool, len(want))
	for _, t := range want {
		known[t.name] = true
		ref, ok := byName[t.name]
		switch {
		case !ok && t.name == "score.weight":
			missingHead = true
		case !ok:
			return nil, fmt.Errorf("load checkpoint %s: missing tensor %q", dir, cfg.fileName(t.name))
		case !slices.Equal(ref.info.Shape, t.shape):
			return nil, fmt.Errorf("load checkpoint %s: tensor %q has shape %v, want %v", ref.path, ref.info.Name, ref.info.Shape, t.shape)
		}
	}
	for name, ref := range byName {
		if !known[name] {
			return nil, fmt.Errorf("load checkpoint %s: unexpected tensor %q for this config", ref.path, ref.info.Name)
		}
	}
	total := cfg.NumParams()
	if err := fitsMemory("load checkpoint "+dir, 4*int64(total)); err != nil {
		return nil, err
	}
	host := make([]float32, total)
	for _, t := range want {
		if ref, ok := byName[t.name]; ok {
			if err := ref.f.ReadFloat32(ref.info.Name, host[t.off:t.off+t.n]); err != nil {
				return nil, fmt.Errorf("load checkpoint: %w", err)
			}
		}
	}
	if !opt.AllowNonFinite {
		if err := checkFinite(host, cfg); err != nil {
			return nil, fmt.Errorf("load checkpoint %s: %w (pass --allow-nonfinite to load it anyway)", dir, err)
		}
	}
	if missingHead {
		return host, fmt.Errorf("load checkpoint %s: %w", dir, ErrNoScoreHead)
	}
	return host, nil
}

// Load reads a checkpoint directory into a new model on b.
func Load(b gpu.Backend, dir string, opt Options) (*Model, error) {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	host, err := LoadHostWith(dir, cfg, LoadOptions{AllowNonFinite: opt.AllowNonFinite})
	if err != nil {
		return nil, err
	}
	m, err := New(b, cfg, opt)
	if err != nil {
		return nil, err
	}
	if err := m.SetParams(host); err != nil {
		return nil, fmt.Errorf("load checkpoint: %w", err)
	}
	return m, nil
}
