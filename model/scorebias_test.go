package model

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/instructgo/instructgo/gpu/cpu"
)

// TestScoreBiasIsAppliedSavedAndReloaded: a scalar head's ScoreBias shifts
// every value by exactly the bias, is written to config.json as
// instructgo_score_bias, and a reloaded model applies it.
func TestScoreBiasIsAppliedSavedAndReloaded(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	cfg := testConfig()
	cfg.ScalarHead = true
	b := cpu.New(2)
	m, err := New(b, cfg, Options{MaxBatch: 3, MaxSeq: 5})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(m.Params.All, randomParams(cfg, rng)); err != nil {
		t.Fatal(err)
	}
	in := randomBatch(cfg, rng, 3, 5, true)
	in.Targets = nil
	values := func(m *Model) []float32 {
		t.Helper()
		if err := m.Forward(in, false, 0); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, 15)
		mustDownload(t, b, y, m.Values())
		return y
	}
	raw := values(m)
	bias := float32(-0.75 + rng.Float64())
	m.Cfg.ScoreBias = bias
	shifted := values(m)
	for i := range raw {
		if want := raw[i] + bias; math.Abs(float64(shifted[i]-want)) > 1e-6 {
			t.Fatalf("value %d is %v with bias %v, want %v", i, shifted[i], bias, want)
		}
	}

	dir := t.TempDir()
	if err := Save(dir, m); err != nil {
		t.Fatal(err)
	}
	var hf map[string]any
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &hf); err != nil {
		t.Fatal(err)
	}
	if got, ok := hf["instructgo_score_bias"].(float64); !ok || float32(got) != bias {
		t.Fatalf("config.json instructgo_score_bias = %v, want %v", hf["instructgo_score_bias"], bias)
	}
	// transformers finds the last non-padding token by pad id: the byte
	// tokenizer's pad (257), not its EOS (256), so that it reads the score
	// at the EOS that ends a response, as instructgo does.
	if hf["pad_token_id"] != 257.0 {
		t.Errorf("pad_token_id %v, want the byte tokenizer's pad 257", hf["pad_token_id"])
	}
	m2, err := Load(b, dir, Options{MaxBatch: 3, MaxSeq: 5})
	if err != nil {
		t.Fatal(err)
	}
	if m2.Cfg.ScoreBias != bias {
		t.Fatalf("reloaded bias %v, want %v", m2.Cfg.ScoreBias, bias)
	}
	reloaded := values(m2)
	for i := range shifted {
		if reloaded[i] != shifted[i] {
			t.Fatalf("value %d is %v after reload, %v before", i, reloaded[i], shifted[i])
		}
	}
	// Back to 0: the raw values again.
	m2.Cfg.ScoreBias = 0
	for i, v := range values(m2) {
		if v != raw[i] {
			t.Fatalf("value %d is %v with the bias removed, want %v", i, v, raw[i])
		}
	}

	// An LM checkpoint carries no bias field.
	lm := testConfig()
	ml, err := New(b, lm, Options{MaxBatch: 1, MaxSeq: 4})
	if err != nil {
		t.Fatal(err)
	}
	ldir := t.TempDir()
	if err := Save(ldir, ml); err != nil {
		t.Fatal(err)
	}
	data, _ = os.ReadFile(filepath.Join(ldir, ConfigFile))
	hf = nil
	json.Unmarshal(data, &hf)
	if _, ok := hf["instructgo_score_bias"]; ok {
		t.Error("an LM config.json has instructgo_score_bias")
	}

	// A non-finite bias is refused.
	m2.Cfg.ScoreBias = float32(math.Inf(1))
	if err := m2.Forward(in, false, 0); err == nil {
		t.Error("forward with an infinite score bias succeeded")
	}
}
