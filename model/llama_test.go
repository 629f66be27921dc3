package model

import (
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// llamaTestConfig is testConfig as a Llama: grouped-query attention (4
// query heads on 2 key/value heads of even size 4), a SwiGLU MLP of 12,
// untied embeddings.
func llamaTestConfig() Config {
	return Config{VocabSize: 11, MaxSeqLen: 7, NLayer: 2, NHead: 4, NEmbd: 16, Tokenizer: "byte",
		Arch: ArchLlama, KVHeads: 2, Intermediate: 12, RopeTheta: 10000, RMSNormEps: 1e-5}
}

func TestLlamaGradientsMatchFloat64Reference(t *testing.T) {
	base := llamaTestConfig()
	tied := base
	tied.TieEmbeddings = true
	qwen := base
	qwen.Arch, qwen.AttentionBias, qwen.RopeTheta = ArchQwen2, true, 100
	scaled := tied
	scaled.RopeScaling = gpu.RoPEScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 16}
	cases := []gradCase{
		{name: "lm-untied", cfg: base},
		{name: "lm-tied-padded-entropy", cfg: tied, padded: true, entropy: true},
		{name: "qwen2-bias-dropout", cfg: qwen, dropout: 0.2},
		{name: "scalar-padded", cfg: qwen, scalar: true, padded: true},
		{name: "lm-loss-padded-dropout-llama3-rope", cfg: scaled, padded: true, dropout: 0.2, lmLoss: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkGradients(t, tc, uint64(i+11)) })
	}
}

func TestLlamaConfigValidation(t *testing.T) {
	c, err := ConfigByName("llama-tiny")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("llama-tiny: %v", err)
	}
	tiny, _ := ConfigByName("tiny")
	// Embedding, per layer q/k/v (128+2·64 rows), o, gate+up and down
	// projections and two gains, the final gain; tied head.
	C, F := 128, 344
	want := 258*C + 4*((C+2*64)*C+C*C+2*F*C+F*C+2*C) + C
	if got := c.NumParams(); got != want {
		t.Errorf("llama-tiny has %d parameters, want %d", got, want)
	}
	t.Logf("llama-tiny %d parameters, tiny %d", c.NumParams(), tiny.NumParams())
	bad := []struct {
		field string
		edit  func(*Config)
	}{
		{"num_key_value_heads", func(c *Config) { c.KVHeads = 3 }},
		{"num_key_value_heads", func(c *Config) { c.KVHeads = 0 }},
		{"intermediate_size", func(c *Config) { c.Intermediate = 0 }},
		{"rms_norm_eps", func(c *Config) { c.RMSNormEps = 0 }},
		{"rope_theta", func(c *Config) { c.RopeTheta = 1 }},
		{"rope_scaling", func(c *Config) { c.RopeScaling = gpu.RoPEScaling{Type: "yarn", Factor: 2} }},
		{"attention_bias", func(c *Config) { c.AttentionBias = true }},
		{"attention_bias", func(c *Config) { c.Arch = ArchQwen2 }},
		{"head size", func(c *Config) { c.NEmbd, c.NHead, c.KVHeads = 12, 4, 2 }}, // head size 3
		{"arch", func(c *Config) { c.Arch = "falcon" }},
	}
	for _, b := range bad {
		cc := c
		b.edit(&cc)
		err := cc.Validate()
		if err == nil || !strings.Contains(err.Error(), b.field) {
			t.Errorf("want an error naming %s, got %v", b.field, err)
		}
	}
	// GPT-2 refuses the Llama family's fields.
	for _, edit := range []func(*Config){
		func(c *Config) { c.KVHeads = 2 }, func(c *Config) { c.Intermediate = 8 },
		func(c *Config) { c.RopeTheta = 10 }, func(c *Config) { c.RMSNormEps = 1e-6 },
		func(c *Config) { c.TieEmbeddings = true },
	} {
		cc := tiny
		edit(&cc)
		if err := cc.Validate(); err == nil || !strings.Contains(err.Error(), "Llama-family field") {
			t.Errorf("GPT-2 config with a Llama field: got %v", err)
		}
	}
}
