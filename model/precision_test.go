package model

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// TestBF16TracksFP32: the same weights and batch through a model in the
// bf16 precision mode and in fp32 give log-probs, values and parameter
// gradients that agree to bf16 accuracy. Activations carry 8 bits of
// mantissa (a rounding error of 2⁻⁹ relative per stored value), so after a
// few layers the outputs differ by about 1%: the bounds are 3% of the
// spread for log-probs and 5% relative L2 error per gradient tensor. The
// bf16 model's weights are the master weights rounded (SyncWeights).
func TestBF16TracksFP32(t *testing.T) {
	gpt2 := Config{VocabSize: 50, MaxSeqLen: 24, NLayer: 2, NHead: 2, NEmbd: 32, Tokenizer: "byte"}
	qwen := gpt2
	qwen.Arch, qwen.NHead, qwen.KVHeads, qwen.Intermediate, qwen.RopeTheta, qwen.RMSNormEps, qwen.AttentionBias = ArchQwen2, 4, 2, 40, 1000, 1e-6, true
	for _, c := range []struct {
		base   Config
		scalar bool
	}{{gpt2, false}, {gpt2, true}, {qwen, false}, {qwen, true}} {
		scalar, cfg := c.scalar, c.base
		cfg.ScalarHead = scalar
		host := InitGPT2(cfg, 7)
		rng := rand.New(rand.NewPCG(9, uint64(len(host))))
		for i := range host {
			host[i] += float32(rng.NormFloat64() * 0.05) // biases and gains away from 0 and 1
		}
		const B, T = 3, 24
		in := &Batch{B: B, T: T, Tokens: make([]int32, B*T), ValidLen: []int32{24, 17, 5}}
		if !scalar {
			in.Targets = make([]int32, B*T)
		}
		for i := range in.Tokens {
			in.Tokens[i] = int32(rng.IntN(cfg.VocabSize))
			if !scalar {
				in.Targets[i] = int32(rng.IntN(cfg.VocabSize))
			}
		}
		dout := make([]float32, B*T)
		for i := range dout {
			dout[i] = float32(rng.NormFloat64())
		}
		run := func(p Precision) (out, grads []float32, m *Model) {
			b := cpu.New(2)
			m, err := New(b, cfg, Options{MaxBatch: B, MaxSeq: T, Train: true, Precision: p})
			if err != nil {
				t.Fatal(err)
			}
			if err := m.SetParams(host); err != nil {
				t.Fatal(err)
			}
			if err := m.Forward(in, true, 1); err != nil {
				t.Fatal(err)
			}
			src := m.LogProbs
			if scalar {
				src = m.Values
			}
			out = make([]float32, B*T)
			if err := b.Download(out, src()); err != nil {
				t.Fatal(err)
			}
			d, _ := b.Alloc(gpu.Float32, B*T)
			b.Upload(d, dout)
			b.Fill(m.Grads.All, 0)
			if err := m.Backward(d, nil); err != nil {
				t.Fatal(err)
			}
			grads = make([]float32, m.Grads.All.Len())
			b.Download(grads, m.Grads.All)
			return out, grads, m
		}
		fo, fg, _ := run(FP32)
		bo, bg, bm := run(BF16)
		if bm.LowP() == nil || bm.LowP().All.DType() != gpu.BF16 {
			t.Fatal("the bf16 model has no bf16 weights")
		}
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range fo {
			lo, hi = math.Min(lo, float64(v)), math.Max(hi, float64(v))
		}
		maxDiff := 0.0
		for i := range fo {
			maxDiff = math.Max(maxDiff, math.Abs(float64(fo[i]-bo[i])))
		}
		if maxDiff > 0.03*(hi-lo) || maxDiff == 0 {
			t.Errorf("scalar head %v: outputs differ by %.3g over a spread of %.3g", scalar, maxDiff, hi-lo)
		}
		off := 0
		worst, worstName := 0.0, ""
		for _, s := range cfg.layout() {
			var num, den float64
			for i := off; i < off+s.size(); i++ {
				d := float64(fg[i] - bg[i])
				num += d * d
				den += float64(fg[i]) * float64(fg[i])
			}
			off += s.size()
			if den == 0 {
				continue
			}
			if r := math.Sqrt(num / den); r > worst {
				worst, worstName = r, s.name
			}
		}
		t.Logf("%s, scalar head %v: outputs differ by %.3g (spread %.3g); worst gradient %s, relative error %.3g", cfg.Arch, scalar, maxDiff, hi-lo, worstName, worst)
		if worst > 0.05 || worst == 0 {
			t.Errorf("scalar head %v: gradient of %s differs by %.3g relative", scalar, worstName, worst)
		}
	}
}

// TestBF16DecodeTracksFullForward: generation in the bf16 mode (bf16
// weights, KV cache and step activations) gives, after Prefill and each
// DecodeStep, the logits the fp32 full forward pass gives at that position,
// to bf16 accuracy (4% of the largest logit: a few bf16 roundings of 2⁻⁹
// relative each per layer, and the Llama family's step rounds more often:
// biases, RoPE in place, SwiGLU).
func TestBF16DecodeTracksFullForward(t *testing.T) {
	forConfigs(t, checkBF16Decode)
}

func checkBF16Decode(t *testing.T, cfg Config) {
	rng := rand.New(rand.NewPCG(4, 5))
	b := cpu.New(2)
	m, err := New(b, cfg, Options{MaxBatch: 3, MaxSeq: 9, Precision: BF16})
	if err != nil {
		t.Fatal(err)
	}
	host := randomParams(cfg, rand.New(rand.NewPCG(3, 7)))
	if err := m.SetParams(host); err != nil {
		t.Fatal(err)
	}
	seqs := randomSeqs(rng, cfg.VocabSize, 16, 9, 12)
	ref := refLogits(t, cfg, host, seqs)
	kv, err := m.NewKVCache(3, cfg.MaxSeqLen)
	if err != nil {
		t.Fatal(err)
	}
	promptLens := []int{4, 9, 1}
	prompts := make([][]int32, len(seqs))
	for i, s := range seqs {
		prompts[i] = s[:promptLens[i]]
	}
	V := cfg.VocabSize
	check := func(what string, got []float32, want []float64) {
		t.Helper()
		scale := 0.0
		for _, w := range want {
			scale = math.Max(scale, math.Abs(w))
		}
		for j := range got {
			if d := math.Abs(float64(got[j]) - want[j]); d > 0.04*scale {
				t.Fatalf("%s: logit %d is %g, fp32 %g (scale %g)", what, j, got[j], want[j], scale)
			}
		}
	}
	if err := m.Prefill(kv, prompts); err != nil {
		t.Fatal(err)
	}
	got := downloadLogits(t, m)
	for i, n := range promptLens {
		check("prefill", got[i*V:(i+1)*V], ref[i][n-1])
	}
	feed := make([]int32, len(seqs))
	for step := 0; ; step++ {
		live := 0
		for i, s := range seqs {
			feed[i] = -1
			if pos := promptLens[i] + step; pos < len(s) {
				feed[i] = s[pos]
				live++
			}
		}
		if live == 0 {
			break
		}
		if err := m.DecodeStep(kv, feed); err != nil {
			t.Fatal(err)
		}
		got := downloadLogits(t, m)
		for i, tok := range feed {
			if tok >= 0 {
				check("decode", got[i*V:(i+1)*V], ref[i][promptLens[i]+step])
			}
		}
	}
}
