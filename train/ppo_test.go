package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/safetensors"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
)

// writePPOFixture saves a small random policy and a random reward model
// (a scalar head with a large initialisation, so responses differ in
// reward) and a prompt file. Any fixed reward model defines a reward
// function of the response: PPO must raise its mean.
func writePPOFixture(t *testing.T) (prompts, policy, reward string) {
	dir := t.TempDir()
	cfg := model.Config{VocabSize: 258, MaxSeqLen: 32, NLayer: 2, NHead: 2, NEmbd: 32, Tokenizer: "byte"}
	policy, reward = filepath.Join(dir, "policy"), filepath.Join(dir, "rm")
	if err := model.SaveHost(policy, cfg, model.InitGPT2(cfg, 11)); err != nil {
		t.Fatal(err)
	}
	rc := cfg
	rc.ScalarHead = true
	host := model.InitGPT2(rc, 12)
	rng := rand.New(rand.NewPCG(13, 13))
	p, err := model.NewParams(cpu.New(1), rc)
	if err != nil {
		t.Fatal(err)
	}
	off := p.Score.Offset()
	for i := 0; i < rc.NEmbd; i++ {
		host[off+i] = float32(rng.NormFloat64())
	}
	if err := model.SaveHost(reward, rc, host); err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for i := 0; i < 64; i++ {
		rec, _ := json.Marshal(map[string]string{"prompt": fmt.Sprintf("say %d:", i)})
		sb.Write(append(rec, '\n'))
	}
	prompts = filepath.Join(dir, "ppo.jsonl")
	if err := os.WriteFile(prompts, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return prompts, policy, reward
}

func TestPPORaisesRewardModelScore(t *testing.T) {
	prompts, policy, reward := writePPOFixture(t)
	cfg := DefaultPPO()
	cfg.Prompts, cfg.Policy, cfg.Reward, cfg.Out = prompts, policy, reward, t.TempDir()
	cfg.Iterations, cfg.Episodes, cfg.MiniBatch, cfg.MaxNew = 40, 32, 8, 8
	cfg.PolicyOptim.LR, cfg.ValueOptim.LR = 1e-3, 1e-3
	cfg.MissingEOSPenalty = 0
	cfg.Seed = 1
	tok, _ := tokenizer.New("byte")
	sum, err := PPO(context.Background(), cpu.New(2), tok, cfg, RunOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("mean RM score %.3f → %.3f, KL %.3f", sum.FirstScore, sum.LastScore, sum.LastKL)
	if !(sum.LastScore > sum.FirstScore+0.5) {
		t.Errorf("mean RM score %v at the start, %v over the last quarter: PPO did not raise it", sum.FirstScore, sum.LastScore)
	}
	if sum.LastKL <= 0 {
		t.Errorf("KL to the reference %v after training", sum.LastKL)
	}
	// The saved policy is the EMA, not the last iterate: it loads and
	// differs from both the initial and the trained weights.
	if _, err := model.Load(cpu.New(1), cfg.Out, model.Options{MaxBatch: 1, MaxSeq: 8}); err != nil {
		t.Fatal(err)
	}
}

func TestAdaptiveKLController(t *testing.T) {
	// KL above target raises β, below lowers it, by at most 20% of
	// episodes/horizon per iteration (Ziegler et al.).
	if b := adaptBeta(0.1, 12, 6, 100, 1000); b <= 0.1 || b > 0.1*(1+0.2*0.1)+1e-12 {
		t.Errorf("KL twice the target: β %v", b)
	}
	if b := adaptBeta(0.1, 3, 6, 100, 1000); !(b < 0.1 && b >= 0.1*(1-0.2*0.1)-1e-12) {
		t.Errorf("KL half the target: β %v", b)
	}
	if b := adaptBeta(0.1, 6, 6, 100, 1000); b != 0.1 {
		t.Errorf("KL on target: β %v", b)
	}
	if b := adaptBeta(0.1, 6, 0, 100, 1000); b != 0.1 {
		t.Errorf("no target: β %v, want it fixed", b)
	}
}

// TestPPOSavesTheEMA: with decay 0 the EMA is the trained policy, with
// decay near 1 it stays at the SFT weights.
func TestPPOSavesTheEMA(t *testing.T) {
	prompts, policy, reward := writePPOFixture(t)
	tok, _ := tokenizer.New("byte")
	init, _ := os.ReadFile(filepath.Join(policy, model.WeightsFile))
	run := func(decay float32) []byte {
		cfg := DefaultPPO()
		cfg.Prompts, cfg.Policy, cfg.Reward, cfg.Out = prompts, policy, reward, t.TempDir()
		cfg.Iterations, cfg.Episodes, cfg.MiniBatch, cfg.MaxNew, cfg.EMADecay = 2, 8, 8, 4, decay
		cfg.PolicyOptim.LR = 1e-3
		if _, err := PPO(context.Background(), cpu.New(1), tok, cfg, RunOptions{Log: zerolog.Nop()}); err != nil {
			t.Fatal(err)
		}
		out, _ := os.ReadFile(filepath.Join(cfg.Out, model.WeightsFile))
		return out
	}
	if string(run(0)) == string(init) {
		t.Error("with EMA decay 0 the saved policy is still the initial one")
	}
	slow := run(0.99999994)
	host0, host1 := readWeights(t, init), readWeights(t, slow)
	for i := range host0 {
		if d := host1[i] - host0[i]; d > 1e-5 || d < -1e-5 {
			t.Fatalf("with EMA decay ~1 weight %d moved from %v to %v", i, host0[i], host1[i])
		}
	}
}

func readWeights(t *testing.T, file []byte) []float32 {
	path := filepath.Join(t.TempDir(), "w.safetensors")
	os.WriteFile(path, file, 0o644)
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var all []float32
	for _, info := range f.Tensors() {
		v, _, err := f.Float32(info.Name)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, v...)
	}
	return all
}

// TestRolloutScores: the reward model's score of a response without EOS
// loses the missing-EOS penalty, then scores are clipped; responses decode
// the sampled tokens without EOS.
func TestRolloutScores(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	ro := &rollout{E: 3, rawScores: []float32{0.5, 0.5, -3}, scores: make([]float32, 3), eos: []bool{true, false, true},
		generated: [][]int32{tok.Encode("ab"), tok.Encode("abc"), nil}}
	cfg := DefaultPPO()
	cfg.MissingEOSPenalty, cfg.RewardClip = 1, 2
	ro.finishScores(cfg.MissingEOSPenalty, cfg.RewardClip)
	if want := []float32{0.5, -0.5, -2}; fmt.Sprint(ro.scores) != fmt.Sprint(want) {
		t.Errorf("scores %v, want %v", ro.scores, want)
	}
	if got := ro.responses(tok); fmt.Sprint(got) != fmt.Sprint([]string{"ab", "abc", ""}) {
		t.Errorf("responses %q", got)
	}
}

// TestRolloutTaskScore: the mean ground-truth score over the episodes whose
// prompt names a built-in task; others are left out, and none gives nil.
func TestRolloutTaskScore(t *testing.T) {
	recs := []data.Prompt{
		{Prompt: "reverse: cat\n", Task: "reverse", Answer: "tac"},
		{Prompt: "free text"},
		{Prompt: "x", Task: "not-a-task", Answer: "y"},
		{Prompt: "say cat 3 times\n", Task: "repeat", Answer: "cat cat cat"},
	}
	got := rolloutTaskScore(recs, []string{"tac", "anything", "y", "cat"})
	if want := (1 + 3.0/11) / 2; got == nil || math.Abs(*got-want) > 1e-12 {
		t.Errorf("rollout task score %v, want %v", got, want)
	}
	if got := rolloutTaskScore(recs[1:3], []string{"a", "b"}); got != nil {
		t.Errorf("no built-in task: %v, want nil", *got)
	}
}

// TestPPOIterationIsPPOsIteration: PPOIteration on the same checkpoints,
// prompts and seed reproduces the metrics of PPO's first two iterations
// exactly, so what the benchmarks time is what training runs. It does so
// also on the cpu backend posing as a device (cpu.Counting), whose
// generation polls rarely, and counts the iteration's reads back: one per
// generated batch (no poll within 8 tokens; all episodes in one batch with
// GenBatch), one for the reward model's scores and three for the metrics
// (statistics, returns, values), and none per minibatch, so that a GPU
// never idles between a forward and its backward.
func TestPPOIterationIsPPOsIteration(t *testing.T) {
	prompts, policy, reward := writePPOFixture(t)
	cfg := DefaultPPO()
	cfg.Prompts, cfg.Policy, cfg.Reward, cfg.Out = prompts, policy, reward, t.TempDir()
	cfg.Iterations, cfg.Episodes, cfg.MiniBatch, cfg.MaxNew = 2, 16, 8, 8
	tok, _ := tokenizer.New("byte")
	if _, err := PPO(context.Background(), cpu.New(2), tok, cfg, RunOptions{Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	want := readMetrics(t, cfg.Out, func(m PPOMetrics) int { return m.Step })
	for _, v := range []struct {
		device   bool
		genBatch int
	}{{false, 0}, {true, 0}, {true, cfg.Episodes}} {
		var b gpu.Backend = cpu.New(2)
		if v.device {
			b = cpu.NewCounting(2)
		}
		c := cfg
		c.GenBatch = v.genBatch
		checkPPOIteration(t, b, c, tok, policy, reward, prompts, want)
	}
}

// checkPPOIteration runs TestPPOIterationIsPPOsIteration's iterations on b.
func checkPPOIteration(t *testing.T, b gpu.Backend, cfg PPOConfig, tok tokenizer.Tokenizer, policy, reward, prompts string, want []PPOMetrics) {
	t.Helper()

	recs, _, err := data.ReadPrompts(prompts, data.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	maxPrompt := 0
	for _, r := range recs {
		maxPrompt = max(maxPrompt, len(tok.Encode(r.Prompt)))
	}
	T := maxPrompt + cfg.MaxNew + 1
	load := func(dir string, train bool) *model.Model {
		c, err := model.ReadConfig(dir)
		if err != nil {
			t.Fatal(err)
		}
		host, err := model.LoadHost(dir, c)
		if err != nil {
			t.Fatal(err)
		}
		c.Dropout = 0
		m, err := model.New(b, c, model.Options{MaxBatch: cfg.MiniBatch, MaxSeq: T, Train: train})
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Upload(m.Params.All, host); err != nil {
			t.Fatal(err)
		}
		return m
	}
	ms := PPOIterationModels{Policy: load(policy, true), Ref: load(policy, false), Value: load(reward, true), Reward: load(reward, false)}
	it, err := NewPPOIteration(b, ms, cfg, nil, tok.EOS(), tok.Pad())
	if err != nil {
		t.Fatal(err)
	}
	order := rand.New(rand.NewPCG(cfg.Seed, 0x990)).Perm(len(recs)) // PPO's prompt order
	for i := 1; i <= cfg.Iterations; i++ {
		batch := make([][]int32, cfg.Episodes)
		for k := range batch {
			batch[k] = tok.Encode(recs[order[((i-1)*cfg.Episodes+k)%len(recs)]].Prompt)
		}
		var before int64
		dev, isDev := b.(gpu.Device)
		if isDev {
			before = dev.HostSyncs()
		}
		ph, err := it.Run(batch, i)
		if err != nil {
			t.Fatal(err)
		}
		if isDev {
			batches := cfg.Episodes / cfg.MiniBatch
			if cfg.GenBatch > 0 {
				batches = (cfg.Episodes + cfg.GenBatch - 1) / cfg.GenBatch
			}
			if got, want := dev.HostSyncs()-before, int64(batches+1+3); got != want {
				t.Errorf("iteration %d: %d host syncs, want %d", i, got, want)
			}
		}
		g, w := ph.Metrics, want[i-1]
		if g.Score != w.Score || g.KL != w.KL || g.PolicyLoss != w.PolicyLoss || g.ValueLoss != w.ValueLoss ||
			g.ClipFrac != w.ClipFrac || g.ResponseLen != w.ResponseLen || g.Entropy != w.Entropy {
			t.Errorf("iteration %d: PPOIteration %+v\nPPO %+v", i, g, w)
		}
		if ph.Generate <= 0 || ph.Score <= 0 || ph.Update <= 0 || ph.GenTokens <= 0 || ph.T > T {
			t.Errorf("iteration %d: phases %+v", i, ph)
		}
	}
	if _, err := it.Run(make([][]int32, 3), 3); err == nil {
		t.Error("Run accepted 3 prompts for 16 episodes")
	}
}

// TestPPOReference: by default the policy's start is the KL reference, so
// the first rollout's KL is exactly 0; with Reference another model is,
// and the KL is not.
func TestPPOReference(t *testing.T) {
	prompts, policy, reward := writePPOFixture(t)
	other := filepath.Join(t.TempDir(), "other")
	oc, err := model.ReadConfig(policy)
	if err != nil {
		t.Fatal(err)
	}
	if err := model.SaveHost(other, oc, model.InitGPT2(oc, 99)); err != nil {
		t.Fatal(err)
	}
	tok, _ := tokenizer.New("byte")
	run := func(ref string) float64 {
		cfg := DefaultPPO()
		cfg.Prompts, cfg.Policy, cfg.Reward, cfg.Reference, cfg.Out = prompts, policy, reward, ref, t.TempDir()
		cfg.Iterations, cfg.Episodes, cfg.MiniBatch, cfg.MaxNew = 1, 8, 8, 4
		sum, err := PPO(context.Background(), cpu.New(2), tok, cfg, RunOptions{Log: zerolog.Nop()})
		if err != nil {
			t.Fatal(err)
		}
		return sum.LastKL
	}
	if kl := run(""); kl != 0 {
		t.Errorf("KL to the policy's own start at the first rollout: %v", kl)
	}
	if kl := run(other); kl == 0 || math.IsNaN(kl) {
		t.Errorf("KL to another reference at the first rollout: %v", kl)
	}
}
