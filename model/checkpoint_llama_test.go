package model

import (
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model/safetensors"
)

// llamaCheckpointConfigs are the Llama family's variants a checkpoint must
// carry: untied Llama with llama3 rope scaling, tied Qwen2 with biases,
// Mistral, and a scalar head.
func llamaCheckpointConfigs() map[string]Config {
	llama := llamaTestConfig()
	llama.RopeTheta, llama.Dropout = 500, 0.1
	llama.RopeScaling = gpu.RoPEScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 4}
	qwen := llamaTestConfig()
	qwen.Arch, qwen.AttentionBias, qwen.TieEmbeddings, qwen.RMSNormEps = ArchQwen2, true, true, 1e-6
	mistral := llamaTestConfig()
	mistral.Arch = ArchMistral
	rm := qwen
	rm.ScalarHead, rm.ScoreBias = true, -0.25
	return map[string]Config{"llama": llama, "qwen2": qwen, "mistral": mistral, "qwen2-rm": rm}
}

func TestLlamaCheckpointRoundTrip(t *testing.T) {
	for name, cfg := range llamaCheckpointConfigs() {
		t.Run(name, func(t *testing.T) {
			host := randomParams(cfg, rand.New(rand.NewPCG(5, 6)))
			for _, opt := range []SaveOptions{{}, {MaxShardBytes: 4096}, {DType: safetensors.BF16}, {DType: safetensors.BF16, MaxShardBytes: 3000}} {
				dir := t.TempDir()
				if err := SaveHostWith(dir, cfg, host, opt); err != nil {
					t.Fatal(err)
				}
				_, errSingle := os.Stat(filepath.Join(dir, WeightsFile))
				_, errIndex := os.Stat(filepath.Join(dir, WeightsIndexFile))
				if sharded := opt.MaxShardBytes > 0; (errSingle == nil) == sharded || (errIndex == nil) != sharded {
					t.Fatalf("%+v: single file %v, index %v", opt, errSingle, errIndex)
				}
				got, err := ReadConfig(dir)
				if err != nil {
					t.Fatal(err)
				}
				if got != cfg {
					t.Fatalf("%+v: config %+v after round trip, want %+v", opt, got, cfg)
				}
				loaded, err := LoadHost(dir, cfg)
				if err != nil {
					t.Fatal(err)
				}
				for i, v := range host {
					want := v
					if opt.DType == safetensors.BF16 {
						want = gpu.BF16Float(gpu.BF16Bits(v))
					}
					if loaded[i] != want {
						t.Fatalf("%+v: parameter %d is %v after round trip, want %v", opt, i, loaded[i], want)
					}
				}
			}
		})
	}
}

// TestLlamaCheckpointNames checks the Hugging Face names, shapes and
// contents of a saved Llama: q, k and v and gate and up are the row blocks
// of the concatenated projections, the heads sit outside "model.".
func TestLlamaCheckpointNames(t *testing.T) {
	cfg := llamaCheckpointConfigs()["qwen2-rm"]
	cfg.NLayer = 1
	host := randomParams(cfg, rand.New(rand.NewPCG(1, 1)))
	dir := t.TempDir()
	if err := SaveHost(dir, cfg, host); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	C, hs, F := cfg.NEmbd, cfg.HeadSize(), cfg.Intermediate
	q, kv := cfg.NHead*hs, cfg.KVHeads*hs
	want := map[string][]int{
		"model.embed_tokens.weight":                      {cfg.VocabSize, C},
		"model.layers.0.input_layernorm.weight":          {C},
		"model.layers.0.self_attn.q_proj.weight":         {q, C},
		"model.layers.0.self_attn.k_proj.weight":         {kv, C},
		"model.layers.0.self_attn.v_proj.weight":         {kv, C},
		"model.layers.0.self_attn.q_proj.bias":           {q},
		"model.layers.0.self_attn.k_proj.bias":           {kv},
		"model.layers.0.self_attn.v_proj.bias":           {kv},
		"model.layers.0.self_attn.o_proj.weight":         {C, C},
		"model.layers.0.post_attention_layernorm.weight": {C},
		"model.layers.0.mlp.gate_proj.weight":            {F, C},
		"model.layers.0.mlp.up_proj.weight":              {F, C},
		"model.layers.0.mlp.down_proj.weight":            {C, F},
		"model.norm.weight":                              {C},
		"score.weight":                                   {1, C},
	}
	var names []string
	for _, info := range f.Tensors() {
		names = append(names, info.Name)
		if w, ok := want[info.Name]; !ok || !slices.Equal(w, info.Shape) {
			t.Errorf("tensor %s %v, want %v", info.Name, info.Shape, w)
		}
	}
	if len(names) != len(want) {
		t.Errorf("%d tensors %v, want %d", len(names), names, len(want))
	}
	off, _, _ := TensorRange(cfg, "layers.0.self_attn.qkv_proj.weight")
	for part, start := range map[string]int{"q": 0, "k": q * C, "v": (q + kv) * C} {
		data, _, err := f.Float32("model.layers.0.self_attn." + part + "_proj.weight")
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(data, host[off+start:off+start+len(data)]) {
			t.Errorf("%s_proj is not its rows of qkv_proj", part)
		}
	}
	off, _, _ = TensorRange(cfg, "layers.0.mlp.gate_up_proj.weight")
	up, _, err := f.Float32("model.layers.0.mlp.up_proj.weight")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(up, host[off+F*C:off+2*F*C]) {
		t.Error("up_proj is not the second half of gate_up_proj")
	}
	var h map[string]any
	data, _ := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	if h["model_type"] != "qwen2" || h["architectures"].([]any)[0] != "Qwen2ForSequenceClassification" || h["num_key_value_heads"] != 2.0 {
		t.Errorf("config.json %v", h)
	}
}

// TestLlamaCheckpointHeads covers starting one head from another's
// checkpoint: a reward model from an untied LM (lm_head ignored, the score
// head missing), an LM from a reward model with an untied head (refused:
// no lm_head).
func TestLlamaCheckpointHeads(t *testing.T) {
	lm := llamaTestConfig()
	dir := t.TempDir()
	if err := SaveHost(dir, lm, randomParams(lm, rand.New(rand.NewPCG(2, 2)))); err != nil {
		t.Fatal(err)
	}
	rm := lm
	rm.ScalarHead = true
	if _, err := LoadHost(dir, rm); !errors.Is(err, ErrNoScoreHead) {
		t.Fatalf("reward model from an LM: %v, want ErrNoScoreHead", err)
	}
	rmDir := t.TempDir()
	if err := SaveHost(rmDir, rm, randomParams(rm, rand.New(rand.NewPCG(3, 3)))); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadHost(rmDir, lm); err == nil || !strings.Contains(err.Error(), "lm_head.weight") {
		t.Fatalf("untied LM from a reward model: %v, want a missing lm_head.weight", err)
	}
}

// TestLlamaConfigFromTransformers reads config.json files as transformers
// 4 and 5 write them, and refuses what instructgo does not support with an
// error naming the field.
func TestLlamaConfigFromTransformers(t *testing.T) {
	v5 := `{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 100, "hidden_size": 32,
		"intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8,
		"max_position_embeddings": 2048, "rms_norm_eps": 1e-06, "hidden_act": "silu", "attention_bias": false, "mlp_bias": false,
		"pretraining_tp": 1, "tie_word_embeddings": false, "bos_token_id": 1, "eos_token_id": [2, 3], "pad_token_id": null,
		"rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
		"high_freq_factor": 4.0, "original_max_position_embeddings": 1024}}`
	want := Config{Arch: ArchLlama, VocabSize: 100, NEmbd: 32, Intermediate: 64, NLayer: 2, NHead: 4, KVHeads: 2,
		MaxSeqLen: 2048, RMSNormEps: 1e-6, RopeTheta: 500000,
		RopeScaling: gpu.RoPEScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 1024}}
	if got := readConfigJSON(t, v5); got.err != nil || got.cfg != want {
		t.Fatalf("transformers 5 config: %+v, %v; want %+v", got.cfg, got.err, want)
	}
	v4 := `{"model_type": "mistral", "vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
		"num_attention_heads": 4, "num_key_value_heads": 1, "max_position_embeddings": 32768, "sliding_window": 4096,
		"rms_norm_eps": 1e-05, "rope_theta": 1000000.0, "hidden_act": "silu", "tie_word_embeddings": true}`
	want = Config{Arch: ArchMistral, VocabSize: 100, NEmbd: 32, Intermediate: 64, NLayer: 2, NHead: 4, KVHeads: 1,
		MaxSeqLen: 4096, RMSNormEps: 1e-5, RopeTheta: 1e6, TieEmbeddings: true, SlidingWindow: 4096, HFMaxPositions: 32768}
	if got := readConfigJSON(t, v4); got.err != nil || got.cfg != want {
		t.Fatalf("transformers 4 Mistral config: %+v, %v; want %+v", got.cfg, got.err, want)
	}
	// Saving writes the window and the checkpoint's positions back, not the
	// window as the positions.
	h := toHFLlama(want)
	if h.MaxPositionEmbeddings != 32768 || h.SlidingWindow == nil || *h.SlidingWindow != 4096 {
		t.Errorf("saved Mistral config: max_position_embeddings %d, sliding_window %v; want 32768 and 4096", h.MaxPositionEmbeddings, h.SlidingWindow)
	}
	if back, err := fromHFLlama(h); err != nil || back != want {
		t.Errorf("Mistral config round trip: %+v, %v; want %+v", back, err, want)
	}
	if ctx := want.Context(); !strings.Contains(ctx, "sliding_window") {
		t.Errorf("the context of a windowed model: %q does not name sliding_window", ctx)
	}
	base := `"vocab_size": 100, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 64, "rms_norm_eps": 1e-05`
	for field, cfgJSON := range map[string]string{
		"hidden_act":          `{"model_type": "llama", ` + base + `, "hidden_act": "gelu"}`,
		"mlp_bias":            `{"model_type": "llama", ` + base + `, "mlp_bias": true}`,
		"head_dim":            `{"model_type": "llama", ` + base + `, "head_dim": 16}`,
		"attention_bias":      `{"model_type": "llama", ` + base + `, "attention_bias": true}`,
		"use_sliding_window":  `{"model_type": "qwen2", ` + base + `, "use_sliding_window": true}`,
		"rope_scaling":        `{"model_type": "llama", ` + base + `, "rope_scaling": {"type": "yarn", "factor": 4}}`,
		"num_key_value_heads": `{"model_type": "llama", ` + base + `, "num_key_value_heads": 3}`,
		"model_type":          `{"model_type": "falcon", ` + base + `}`,
	} {
		if got := readConfigJSON(t, cfgJSON); got.err == nil || !strings.Contains(got.err.Error(), field) {
			t.Errorf("%s: got %v, want an error naming it", field, got.err)
		}
	}
}

type configResult struct {
	cfg Config
	err error
}

func readConfigJSON(t *testing.T, s string) configResult {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := ReadConfig(dir)
	return configResult{c, err}
}
