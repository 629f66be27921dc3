package model

import (
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model/safetensors"
)

// hfReference is what each side of `make hf-check` writes for the other
// (model/hfcheck/check_hf.py): fixed ids and the logits (LM) or the reward
// at each sequence's last token (scalar head), and greedy tokens after a
// prompt.
type hfReference struct {
	IDs    [][]int32     `json:"ids"`
	Logits [][][]float64 `json:"logits,omitempty"`
	Values []float64     `json:"values,omitempty"`
	Prompt []int32       `json:"prompt,omitempty"`
	Greedy []int32       `json:"greedy,omitempty"`
}

// TestHFCheckLlama is instructgo's half of `make hf-check` for the Llama
// family; it runs only with INSTRUCTGO_HF_CHECK naming the check's folder.
// It loads the random Llama and Qwen2 models transformers saved there
// (hf-llama sharded with llama3 rope scaling, hf-qwen2 in bf16) and
// compares logits and greedy tokens with transformers' own; then it saves
// a random Llama (sharded) and a Qwen2 reward model (bf16) with
// instructgo's outputs, for check_hf.py check-llama.
func TestHFCheckLlama(t *testing.T) {
	dir := os.Getenv("INSTRUCTGO_HF_CHECK")
	if dir == "" {
		t.Skip("set INSTRUCTGO_HF_CHECK to the folder of make hf-check")
	}
	b := cpu.New(2)
	for _, name := range []string{"hf-llama", "hf-qwen2"} {
		path := filepath.Join(dir, name)
		var ref hfReference
		readJSON(t, filepath.Join(path, "reference.json"), &ref)
		cfg, err := ReadConfig(path)
		if err != nil {
			t.Fatal(err)
		}
		B, T := len(ref.IDs), len(ref.IDs[0])
		m, err := Load(b, path, Options{MaxBatch: B, MaxSeq: T})
		if err != nil {
			t.Fatal(err)
		}
		got := llamaCheckOutputs(t, m, &ref)
		var want []float64
		for _, seq := range ref.Logits {
			for _, row := range seq {
				want = append(want, row...)
			}
		}
		diff, scale := maxDiff(got.flatLogits(), want)
		t.Logf("%s (%s, %d parameters): logits differ by at most %.2e (largest %.2f)", name, cfg.Arch, cfg.NumParams(), diff, scale)
		if diff > 1e-4*math.Max(scale, 1) {
			t.Errorf("%s: logits differ by %.2e, more than 1e-4 of %.2f", name, diff, scale)
		}
		if !slices.Equal(got.Greedy, ref.Greedy) {
			t.Errorf("%s: greedy tokens %v, transformers %v", name, got.Greedy, ref.Greedy)
		} else {
			t.Logf("%s: greedy tokens identical: %v", name, got.Greedy)
		}
	}

	// The other way: instructgo saves, transformers loads.
	lm := Config{VocabSize: 258, MaxSeqLen: 128, NLayer: 2, NHead: 4, NEmbd: 64, Tokenizer: "byte",
		Arch: ArchLlama, KVHeads: 2, Intermediate: 172, RopeTheta: 500, RMSNormEps: 1e-5}
	rm := lm
	rm.Arch, rm.AttentionBias, rm.TieEmbeddings, rm.ScalarHead, rm.ScoreBias = ArchQwen2, true, true, true, 0.75
	for name, c := range map[string]struct {
		cfg Config
		opt SaveOptions
	}{
		"ig-llama":    {lm, SaveOptions{MaxShardBytes: 100 << 10}},
		"ig-qwen2-rm": {rm, SaveOptions{DType: safetensors.BF16}},
	} {
		path := filepath.Join(dir, name)
		ref := hfReference{
			IDs: [][]int32{{5, 77, 3, 250, 18, 120, 9, 64, 200, 33, 1, 98}, {140, 2, 2, 61, 257, 7, 190, 45, 12, 80, 150, 6}},
		}
		if !c.cfg.ScalarHead {
			ref.Prompt = []int32{17, 4, 230, 99}
		}
		host := randomParams(c.cfg, rand.New(rand.NewPCG(9, 9)))
		if c.opt.DType == safetensors.BF16 {
			for i, v := range host {
				host[i] = gpu.BF16Float(gpu.BF16Bits(v))
			}
		}
		m, err := New(b, c.cfg, Options{MaxBatch: 2, MaxSeq: 12})
		if err != nil {
			t.Fatal(err)
		}
		if err := m.SetParams(host); err != nil {
			t.Fatal(err)
		}
		out := llamaCheckOutputs(t, m, &ref)
		ref.Logits, ref.Values, ref.Greedy = out.Logits, out.Values, out.Greedy
		if err := SaveWith(path, m, c.opt); err != nil {
			t.Fatal(err)
		}
		data, err := json.Marshal(ref)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(path, "reference.json"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("saved %s (%s, %d parameters)", name, c.cfg.Arch, c.cfg.NumParams())
	}
}

// llamaCheckOutputs runs m on ref's ids: every position's logits (LM) or
// the value at each sequence's last token (scalar head), and with a prompt
// 16 greedy tokens.
func llamaCheckOutputs(t *testing.T, m *Model, ref *hfReference) hfReference {
	t.Helper()
	B, T, V := len(ref.IDs), len(ref.IDs[0]), m.Cfg.VocabSize
	in := &Batch{B: B, T: T}
	for _, seq := range ref.IDs {
		in.Tokens = append(in.Tokens, seq...)
	}
	if !m.Cfg.ScalarHead {
		in.Targets = make([]int32, B*T)
		for i := range in.Targets {
			in.Targets[i] = -1
		}
	}
	if err := m.Forward(in, false, 0); err != nil {
		t.Fatal(err)
	}
	var out hfReference
	if m.Cfg.ScalarHead {
		v := make([]float32, B*T)
		mustDownload(t, m.b, v, m.Values())
		for i := range B {
			out.Values = append(out.Values, float64(v[i*T+T-1]))
		}
		return out
	}
	logits := make([]float32, B*T*V)
	mustDownload(t, m.b, logits, m.cur.logits)
	for i := range B {
		var seq [][]float64
		for j := range T {
			row := make([]float64, V)
			for k := range row {
				row[k] = float64(logits[(i*T+j)*V+k])
			}
			seq = append(seq, row)
		}
		out.Logits = append(out.Logits, seq)
	}
	if len(ref.Prompt) > 0 {
		gens, err := Generate(m, [][]int32{ref.Prompt}, GenerateOptions{MaxNew: 16, EOS: -1})
		if err != nil {
			t.Fatal(err)
		}
		out.Greedy = gens[0].Tokens
	}
	return out
}

func (r hfReference) flatLogits() []float32 {
	var out []float32
	for _, seq := range r.Logits {
		for _, row := range seq {
			for _, x := range row {
				out = append(out, float32(x))
			}
		}
	}
	return out
}

func maxDiff(got []float32, want []float64) (diff, scale float64) {
	if len(got) != len(want) {
		return math.Inf(1), 0
	}
	for i := range want {
		diff = math.Max(diff, math.Abs(float64(got[i])-want[i]))
		scale = math.Max(scale, math.Abs(want[i]))
	}
	return diff, scale
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}
