package model

import (
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model/safetensors"
)

func TestCheckpointRoundTripGivesIdenticalLogProbs(t *testing.T) {
	for _, scalar := range []bool{false, true} {
		rng := rand.New(rand.NewPCG(7, 8))
		cfg := testConfig()
		cfg.ScalarHead = scalar
		b := cpu.New(2)
		m, err := New(b, cfg, Options{MaxBatch: 2, MaxSeq: 6})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Upload(m.Params.All, randomParams(cfg, rng)); err != nil {
			t.Fatal(err)
		}
		in := randomBatch(cfg, rng, 2, 6, true)
		if scalar {
			in.Targets = nil
		}
		dir := t.TempDir()
		if err := Save(dir, m); err != nil {
			t.Fatal(err)
		}
		m2, err := Load(b, dir, Options{MaxBatch: 2, MaxSeq: 6})
		if err != nil {
			t.Fatal(err)
		}
		if m2.Cfg != cfg {
			t.Fatalf("config %+v after round trip, want %+v", m2.Cfg, cfg)
		}
		out := func(m *Model) []float32 {
			if err := m.Forward(in, false, 0); err != nil {
				t.Fatal(err)
			}
			y := make([]float32, 12)
			src := m.LogProbs()
			if scalar {
				src = m.Values()
			}
			mustDownload(t, b, y, src)
			return y
		}
		a, c := out(m), out(m2)
		for i := range a {
			if a[i] != c[i] {
				t.Fatalf("scalar=%v: output %d is %v after reload, %v before", scalar, i, c[i], a[i])
			}
		}
	}
}

// TestCheckpointHasHFNames checks the names and shapes save_pretrained of
// GPT2LMHeadModel would write, and that the hub's unprefixed names load.
func TestCheckpointHasHFNames(t *testing.T) {
	cfg := testConfig()
	host := InitGPT2(cfg, 1)
	dir := t.TempDir()
	if err := SaveHost(dir, cfg, host); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dir, WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]int{
		"transformer.wte.weight":             {11, 8},
		"transformer.h.1.attn.c_attn.weight": {8, 24},
		"transformer.h.0.mlp.c_proj.weight":  {32, 8},
		"transformer.ln_f.bias":              {8},
	}
	got := map[string][]int{}
	for _, info := range f.Tensors() {
		got[info.Name] = info.Shape
		if strings.HasPrefix(info.Name, "lm_head") {
			t.Errorf("tied lm_head written as %s", info.Name)
		}
	}
	f.Close()
	for name, shape := range want {
		if g, ok := got[name]; !ok || len(g) != len(shape) || g[0] != shape[0] {
			t.Errorf("tensor %s has shape %v, want %v", name, g, shape)
		}
	}
	if f.Metadata()["format"] != "pt" {
		t.Errorf("metadata %v lacks format=pt", f.Metadata())
	}

	// The hub's layout: no prefix, attention-mask buffers, lm_head.weight.
	var tensors []safetensors.Tensor
	off := 0
	for _, s := range cfg.layout() {
		tensors = append(tensors, safetensors.Tensor{Name: s.name, Shape: s.shape, Data: host[off : off+s.size()]})
		off += s.size()
	}
	tensors = append(tensors,
		safetensors.Tensor{Name: "h.0.attn.bias", Shape: []int{1, 1, 7, 7}, Data: make([]float32, 49)},
		safetensors.Tensor{Name: "lm_head.weight", Shape: []int{11, 8}, Data: host[:88]})
	hub := t.TempDir()
	if err := safetensors.Write(filepath.Join(hub, WeightsFile), tensors, nil); err != nil {
		t.Fatal(err)
	}
	loaded, err := LoadHost(hub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for i := range host {
		if loaded[i] != host[i] {
			t.Fatalf("parameter %d: %v, want %v", i, loaded[i], host[i])
		}
	}
}

func TestCheckpointErrors(t *testing.T) {
	cfg := testConfig()
	dir := t.TempDir()
	if err := SaveHost(dir, cfg, InitGPT2(cfg, 1)); err != nil {
		t.Fatal(err)
	}
	// A scalar-head model from an LM checkpoint: loads, head flagged.
	sc := cfg
	sc.ScalarHead = true
	if _, err := LoadHost(dir, sc); !errors.Is(err, ErrNoScoreHead) {
		t.Errorf("scalar head from LM checkpoint: %v, want ErrNoScoreHead", err)
	}
	// A config of another size is refused with the tensor named.
	big := cfg
	big.NEmbd, big.NHead = 16, 2
	if _, err := LoadHost(dir, big); err == nil || !strings.Contains(err.Error(), "wte.weight") {
		t.Errorf("mismatched shapes: %v", err)
	}
	// Missing files and unsupported configs are clear errors.
	if _, err := ReadConfig(t.TempDir()); err == nil {
		t.Error("missing config.json accepted")
	}
	bad := filepath.Join(t.TempDir())
	os.WriteFile(filepath.Join(bad, ConfigFile), []byte(`{"model_type":"gpt2","vocab_size":11,"n_positions":7,"n_embd":8,"n_layer":1,"n_head":2,"activation_function":"relu"}`), 0o644)
	if _, err := ReadConfig(bad); err == nil || !strings.Contains(err.Error(), "relu") {
		t.Errorf("unsupported activation: %v", err)
	}
	c, err := ReadConfig(dir)
	if err != nil || c != cfg {
		t.Errorf("ReadConfig = %+v, %v; want %+v", c, err, cfg)
	}
}

// TestNonFiniteWeightsRefused: a checkpoint is never written with NaN or
// infinite weights, and one that has them (written by another tool) loads
// only with AllowNonFinite, the error naming the first bad tensor.
func TestNonFiniteWeightsRefused(t *testing.T) {
	cfg := Config{VocabSize: 20, MaxSeqLen: 8, NLayer: 1, NHead: 2, NEmbd: 8, Tokenizer: "byte"}
	host := InitGPT2(cfg, 1)
	off, _, _ := TensorRange(cfg, "h.0.mlp.c_fc.weight")
	host[off+3] = float32(math.NaN())
	host[off+5] = float32(math.Inf(-1))
	dir := t.TempDir()
	if err := SaveHost(dir, cfg, host); err == nil || !errors.Is(err, ErrNonFinite) {
		t.Fatalf("saving NaN weights: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, WeightsFile)); err == nil {
		t.Fatal("a refused save wrote the weights")
	}
	// Write them as another tool would.
	var tensors []safetensors.Tensor
	o := 0
	for _, s := range cfg.layout() {
		tensors = append(tensors, safetensors.Tensor{Name: cfg.fileName(s.name), Shape: s.shape, Data: host[o : o+s.size()]})
		o += s.size()
	}
	if err := safetensors.Write(filepath.Join(dir, WeightsFile), tensors, nil); err != nil {
		t.Fatal(err)
	}
	_, err := LoadHost(dir, cfg)
	if err == nil || !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "2 of") ||
		!strings.Contains(err.Error(), "h.0.mlp.c_fc.weight[3] = NaN") || !strings.Contains(err.Error(), "--allow-nonfinite") {
		t.Errorf("loading NaN weights: %v", err)
	}
	got, err := LoadHostWith(dir, cfg, LoadOptions{AllowNonFinite: true})
	if err != nil || !math.IsNaN(float64(got[off+3])) {
		t.Errorf("AllowNonFinite: %v", err)
	}
}
