package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
	"github.com/instructgo/instructgo/train/tasks"
)

// rmTestConfig is a small reward model over the byte vocabulary.
func rmTestConfig() model.Config {
	return model.Config{VocabSize: 258, MaxSeqLen: 48, NLayer: 2, NHead: 2, NEmbd: 32, Tokenizer: "byte", ScalarHead: true}
}

// noisyParams are GPT-2's init plus N(0, 0.1²) everywhere, so the score
// head and every path of the body carry signal.
func noisyParams(cfg model.Config, seed uint64) []float32 {
	host := model.InitGPT2(cfg, seed)
	rng := rand.New(rand.NewPCG(seed, 99))
	for i := range host {
		host[i] += float32(0.1 * rng.NormFloat64())
	}
	return host
}

// randomComparisons draws n tokenised comparisons: a random prompt of 2..5
// tokens, K = 2..9 responses of 1..6 tokens each, a random ranking and,
// for some, a margin.
func randomComparisons(rng *rand.Rand, n, vocab int) []data.ComparisonTokens {
	out := make([]data.ComparisonTokens, n)
	for i := range out {
		prompt := make([]int32, 2+rng.IntN(4))
		for j := range prompt {
			prompt[j] = int32(rng.IntN(vocab))
		}
		k := 2 + rng.IntN(8)
		c := data.ComparisonTokens{PromptLen: len(prompt), Ranking: rng.Perm(k), Source: i}
		for range k {
			seq := slices.Clone(prompt)
			for range 1 + rng.IntN(6) {
				seq = append(seq, int32(rng.IntN(vocab)))
			}
			c.Responses = append(c.Responses, seq)
		}
		if rng.IntN(2) == 0 {
			c.Margin = rng.Float64()
		}
		out[i] = c
	}
	return out
}

// newTrainModel returns a training model of cfg with params uploaded.
func newTrainModel(t *testing.T, b gpu.Backend, cfg model.Config, params []float32, maxB, maxT int) *model.Model {
	t.Helper()
	m, err := model.New(b, cfg, model.Options{MaxBatch: maxB, MaxSeq: maxT, Train: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(m.Params.All, params); err != nil {
		t.Fatal(err)
	}
	return m
}

func download(t *testing.T, b gpu.Backend, x *gpu.Tensor) []float32 {
	t.Helper()
	out := make([]float32, x.Len())
	if err := b.Download(out, x); err != nil {
		t.Fatal(err)
	}
	return out
}

// pairByPair computes the loss and parameter gradients of the K-way loss
// explicitly: every (better, worse) pair of every prompt is its own batch
// element of two rows, so a response is forwarded once per pair it is in;
// the rewards are read on the host from the full [B·T] values and the loss
// is Σ_prompts 1/P · 1/C(K,2) · Σ_pairs −log σ(r_w − r_l − margin).
func pairByPair(t *testing.T, m *model.Model, cs []data.ComparisonTokens, pad int32) (float64, []float32, int) {
	t.Helper()
	type pair struct {
		w, l   []int32
		weight float64
		margin float64
	}
	var pairs []pair
	T := 0
	for _, c := range cs {
		k := len(c.Responses)
		for i := 0; i < k; i++ {
			for j := i + 1; j < k; j++ {
				w, l := c.Responses[c.Ranking[i]], c.Responses[c.Ranking[j]]
				pairs = append(pairs, pair{w, l, 1 / float64(len(cs)) / float64(k*(k-1)/2), c.Margin})
				T = max(T, len(w), len(l))
			}
		}
	}
	B := 2 * len(pairs)
	in := &model.Batch{B: B, T: T, Tokens: make([]int32, B*T), ValidLen: make([]int32, B)}
	for i, p := range pairs {
		for r, seq := range [][]int32{p.w, p.l} {
			row := in.Tokens[(2*i+r)*T : (2*i+r+1)*T]
			for x := range row {
				row[x] = pad
			}
			copy(row, seq)
			in.ValidLen[2*i+r] = int32(len(seq))
		}
	}
	b := m.Backend()
	b.Fill(m.Grads.All, 0)
	if err := m.Forward(in, true, 0); err != nil {
		t.Fatal(err)
	}
	values := download(t, b, m.Values())
	dvalues := make([]float32, B*T)
	loss := 0.0
	for i, p := range pairs {
		wAt, lAt := 2*i*T+len(p.w)-1, (2*i+1)*T+len(p.l)-1
		d := float64(values[wAt]) - float64(values[lAt]) - p.margin
		loss += p.weight * math.Log1p(math.Exp(-d))
		g := -p.weight / (1 + math.Exp(d)) // ∂/∂d of −log σ(d)
		dvalues[wAt] += float32(g)
		dvalues[lAt] -= float32(g)
	}
	dv, err := b.Alloc(gpu.Float32, B*T)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(dv, dvalues); err != nil {
		t.Fatal(err)
	}
	if err := m.Backward(dv, nil); err != nil {
		t.Fatal(err)
	}
	return loss, download(t, b, m.Grads.All), B
}

// TestKWayEqualsPairByPair: the K-way batch (each response forwarded once,
// all C(K,2) pairs of a prompt in one element) gives the loss and the
// parameter gradients of the explicit pair-by-pair computation, whether
// the prompts go in one micro-batch or several.
func TestKWayEqualsPairByPair(t *testing.T) {
	for trial := range 3 {
		rng := rand.New(rand.NewPCG(uint64(trial), 42))
		cfg := rmTestConfig()
		cs := randomComparisons(rng, 4+rng.IntN(4), cfg.VocabSize-2)
		params := noisyParams(cfg, uint64(trial))
		responses, pairCount, T := 0, 0, 0
		for _, c := range cs {
			k := len(c.Responses)
			responses += k
			pairCount += k * (k - 1) / 2
			T = max(T, c.MaxLen())
		}
		b := cpu.New(2)
		const pad = 257
		ref := newTrainModel(t, b, cfg, params, 2*pairCount, T)
		wantLoss, wantGrad, refRows := pairByPair(t, ref, cs, pad)

		idx := make([]int, len(cs))
		for i := range idx {
			idx[i] = i
		}
		for _, split := range []struct {
			name            string
			maxRows, budget int
		}{{"one micro-batch", responses, responses * T}, {"micro-batches of ≤ 12 rows", 12, 12 * T}} {
			m := newTrainModel(t, b, cfg, params, split.maxRows, T)
			rs, err := NewRMStep(m, DefaultOptim(), 1, split.maxRows, split.budget, pad, 0)
			if err != nil {
				t.Fatal(err)
			}
			// The step's update leaves the gradient it applied in m.Grads.
			loss, _, rows, err := rs.Run(1, cs, idx)
			if err != nil {
				t.Fatal(err)
			}
			// Each response is forwarded exactly once; the pair-by-pair
			// reference forwards 2·C(K,2) rows per prompt.
			if rows != responses || refRows != 2*pairCount {
				t.Fatalf("%s: %d rows forwarded for %d responses (pair-by-pair: %d for %d pairs)", split.name, rows, responses, refRows, pairCount)
			}
			if math.Abs(loss-wantLoss) > 1e-6*math.Max(1, wantLoss) {
				t.Errorf("trial %d, %s: loss %.9f, pair by pair %.9f", trial, split.name, loss, wantLoss)
			}
			got := download(t, b, m.Grads.All)
			var maxDiff, maxRef float64
			for i := range got {
				maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-wantGrad[i])))
				maxRef = math.Max(maxRef, math.Abs(float64(wantGrad[i])))
			}
			if maxRef == 0 || maxDiff > 1e-5*maxRef {
				t.Errorf("trial %d, %s: gradients differ by %.3g (largest %.3g)", trial, split.name, maxDiff, maxRef)
			}
			// The score head's gradient is part of it and not zero.
			off, n, _ := model.TensorRange(cfg, "score.weight")
			if slices.Equal(got[off:off+n], make([]float32, n)) {
				t.Errorf("%s: the score head has no gradient", split.name)
			}
		}
	}
}

// TestKWayLossGradient checks KWayLoss's ∂loss/∂r against central
// differences in float64 on random rewards, rankings and margins, and its
// value against the formula.
func TestKWayLossGradient(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	var groups []data.ComparisonGroup
	row := 0
	for range 5 {
		k := 2 + rng.IntN(8)
		groups = append(groups, data.ComparisonGroup{Start: row, K: k, Ranking: rng.Perm(k), Margin: rng.Float64() * float64(rng.IntN(2))})
		row += k
	}
	r := make([]float32, row)
	for i := range r {
		r[i] = float32(2 * rng.NormFloat64())
	}
	const weight = 0.2
	dr := make([]float32, row)
	loss, err := KWayLoss(groups, r, weight, dr)
	if err != nil {
		t.Fatal(err)
	}
	direct := 0.0
	for _, g := range groups {
		pairs := g.Pairs()
		for _, p := range pairs {
			d := float64(r[p[0]]) - float64(r[p[1]]) - g.Margin
			direct -= weight / float64(len(pairs)) * math.Log(1/(1+math.Exp(-d)))
		}
	}
	if math.Abs(loss-direct) > 1e-12 {
		t.Errorf("loss %v, formula %v", loss, direct)
	}
	lossAt := func(x []float32) float64 {
		l, err := KWayLoss(groups, x, weight, make([]float32, len(x)))
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for i := range r {
		const h = 1e-2
		x := slices.Clone(r)
		x[i] = r[i] + h
		up := lossAt(x)
		x[i] = r[i] - h
		down := lossAt(x)
		fd := (up - down) / (2 * h)
		if math.Abs(fd-float64(dr[i])) > 1e-4*math.Max(1e-2, math.Abs(fd)) {
			t.Errorf("∂loss/∂r[%d] = %v, finite difference %v", i, dr[i], fd)
		}
	}
	// A group that does not fit the rewards is an error, not a panic.
	if _, err := KWayLoss([]data.ComparisonGroup{{Start: row - 1, K: 2, Ranking: []int{0, 1}}}, r, 1, dr); err == nil {
		t.Error("group beyond the rewards accepted")
	}
}

func TestMicroBatchesRespectLimitsAndCoverAll(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 9))
	cs := randomComparisons(rng, 40, 100)
	idx := rng.Perm(40)[:33]
	const maxRows, budget = 20, 20 * 7
	seen := map[int]int{}
	for _, mb := range microBatches(cs, idx, maxRows, budget) {
		rows, T := 0, 0
		for _, i := range mb {
			seen[i]++
			rows += len(cs[i].Responses)
			T = max(T, cs[i].MaxLen())
		}
		if rows > maxRows || rows*T > budget {
			t.Errorf("micro-batch of %d rows × %d tokens over the limits", rows, T)
		}
	}
	if len(seen) != len(idx) {
		t.Fatalf("%d prompts in micro-batches, want %d", len(seen), len(idx))
	}
	for _, i := range idx {
		if seen[i] != 1 {
			t.Errorf("prompt %d appears %d times", i, seen[i])
		}
	}
}

func TestSplitComparisonsHoldsOutWholePrompts(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var cs []data.Comparison
	for i := range 300 {
		cs = append(cs, data.Comparison{Prompt: fmt.Sprintf("p%d", rng.IntN(120)), Responses: []string{"a", "b"}, Ranking: []int{0, 1}, Source: data.Source{File: "test", Line: i + 1}})
	}
	train, val := splitComparisons(cs, 0.1, 7)
	if len(train)+len(val) != len(cs) {
		t.Fatalf("%d + %d comparisons, want %d", len(train), len(val), len(cs))
	}
	inTrain := map[string]bool{}
	for _, c := range train {
		inTrain[c.Prompt] = true
	}
	held := map[string]bool{}
	for _, c := range val {
		if inTrain[c.Prompt] {
			t.Fatalf("prompt %q in both parts", c.Prompt)
		}
		held[c.Prompt] = true
	}
	if distinct := len(held) + len(inTrain); len(held) != int(math.Round(0.1*float64(distinct))) {
		t.Errorf("%d of %d distinct prompts held out, want 10%%", len(held), distinct)
	}
	for i := 1; i < len(val); i++ {
		if val[i].Line < val[i-1].Line {
			t.Fatal("held-out comparisons not in file order")
		}
	}
	train2, _ := splitComparisons(cs, 0.1, 7)
	if len(train2) != len(train) || train2[0].Line != train[0].Line {
		t.Error("split is not deterministic")
	}
}

// TestInitRewardModel: from an LM checkpoint the body is the checkpoint's
// and the new head is a seeded N(0, std²) draw; from a reward model the
// head is kept.
func TestInitRewardModel(t *testing.T) {
	lm := rmTestConfig()
	lm.ScalarHead = false
	lmHost := noisyParams(lm, 3)
	dir := t.TempDir()
	if err := model.SaveHost(dir, lm, lmHost); err != nil {
		t.Fatal(err)
	}
	cfg := rmTestConfig()
	host, err := InitRewardModel(dir, cfg, 0.5, 11, model.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	off, n, ok := model.TensorRange(cfg, "score.weight")
	if !ok || n != cfg.NEmbd {
		t.Fatalf("score.weight at %d, %d elements", off, n)
	}
	// Every other tensor is the LM's, by name.
	for _, name := range []string{"wte.weight", "h.1.mlp.c_proj.weight", "ln_f.bias"} {
		o1, n1, _ := model.TensorRange(lm, name)
		o2, n2, _ := model.TensorRange(cfg, name)
		if n1 != n2 || !slices.Equal(lmHost[o1:o1+n1], host[o2:o2+n2]) {
			t.Errorf("%s differs from the checkpoint's", name)
		}
	}
	head := host[off : off+n]
	var ss float64
	for _, v := range head {
		ss += float64(v) * float64(v)
	}
	if std := math.Sqrt(ss / float64(n)); std < 0.3 || std > 0.7 {
		t.Errorf("head std %.3f, want about 0.5", std)
	}
	again, _ := InitRewardModel(dir, cfg, 0.5, 11, model.LoadOptions{})
	other, _ := InitRewardModel(dir, cfg, 0.5, 12, model.LoadOptions{})
	if !slices.Equal(again, host) || slices.Equal(other[off:off+n], head) {
		t.Error("head init is not a function of the seed")
	}
	// A reward-model checkpoint keeps its head.
	rmDir := t.TempDir()
	if err := model.SaveHost(rmDir, cfg, host); err != nil {
		t.Fatal(err)
	}
	kept, err := InitRewardModel(rmDir, cfg, 0.5, 99, model.LoadOptions{})
	if err != nil || !slices.Equal(kept, host) {
		t.Errorf("reward model re-initialised: %v", err)
	}
	if _, err := InitRewardModel(t.TempDir(), cfg, 0.5, 1, model.LoadOptions{}); err == nil {
		t.Error("missing checkpoint accepted")
	}
}

// writeLengthRM writes ranked comparisons whose labels prefer longer
// responses (with 10% of adjacent pairs swapped), a preference a small
// reward model learns quickly, and an SFT file of demonstrations.
func writeLengthRM(t *testing.T, n int) (rm, sft string) {
	rng := rand.New(rand.NewPCG(21, 22))
	dir := t.TempDir()
	var sb, sd strings.Builder
	word := func(l int) string {
		b := make([]byte, l)
		for i := range b {
			b[i] = byte('a' + rng.IntN(26))
		}
		return string(b)
	}
	for i := 0; i < n; i++ {
		prompt := "say " + word(3) + "\n"
		k := 2 + rng.IntN(5)
		lens := rng.Perm(14)[:k]
		resp := make([]string, k)
		for j, l := range lens {
			resp[j] = word(l + 1)
		}
		ranking := make([]int, k)
		for j := range ranking {
			ranking[j] = j
		}
		slices.SortFunc(ranking, func(a, b int) int { return lens[b] - lens[a] })
		for j := 0; j+1 < k; j++ {
			if rng.IntN(10) == 0 {
				ranking[j], ranking[j+1] = ranking[j+1], ranking[j]
			}
		}
		rec, _ := json.Marshal(map[string]any{"prompt": prompt, "responses": resp, "ranking": ranking})
		sb.Write(append(rec, '\n'))
		if i < 60 {
			d, _ := json.Marshal(map[string]string{"prompt": prompt, "completion": word(1 + rng.IntN(14))})
			sd.Write(append(d, '\n'))
		}
	}
	rm, sft = filepath.Join(dir, "rm.jsonl"), filepath.Join(dir, "sft.jsonl")
	if err := os.WriteFile(rm, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(sft, []byte(sd.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return rm, sft
}

// writeInit saves a fresh LM checkpoint to start reward models from.
func writeInit(t *testing.T) string { return writeInitWith(t, rmTestConfig()) }

// writeInitWith saves a fresh LM checkpoint of cfg (without its head).
func writeInitWith(t *testing.T, cfg model.Config) string {
	cfg.ScalarHead, cfg.ScoreBias = false, 0
	dir := t.TempDir()
	if err := model.SaveHost(dir, cfg, model.InitGPT2(cfg, 5)); err != nil {
		t.Fatal(err)
	}
	return dir
}

// synthForTest writes a small built-in-task dataset with nRM ranked prompts.
func synthForTest(dir string, nRM int) (tasks.Summary, error) {
	return tasks.Synth(dir, tasks.SynthConfig{Seed: 3, NSFT: 20, NRM: nRM, NPPO: 10, NEval: 10, PretrainBytes: 1000})
}

func smallRM(rmData, init, out string) RMConfig {
	cfg := DefaultRM()
	cfg.Data, cfg.Init, cfg.Out = rmData, init, out
	cfg.Model = rmTestConfig()
	cfg.MaxLen, cfg.MaxRows, cfg.TokenBudget = 32, 48, 48*32
	cfg.Batch, cfg.Epochs, cfg.EvalEvery, cfg.LogEvery, cfg.SaveEvery = 16, 2, 20, 5, 0
	cfg.Optim.LR = 3e-3
	return cfg
}

// TestRMLearnsCentresAndReloads trains on a learnable preference and
// checks the held-out accuracy, that every response was forwarded once
// per epoch, the centring (the demonstrations' mean reward is 0 within
// 1e-3, also after reloading the saved model) and the run directory.
func TestRMLearnsCentresAndReloads(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	rmData, sftData := writeLengthRM(t, 400)
	cfg := smallRM(rmData, writeInit(t), t.TempDir())
	cfg.CenterData = sftData
	sum, err := RM(context.Background(), cpu.New(2), tok, cfg, RunOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Val != nil {
		t.Logf("held-out accuracy %.3f on %d pairs, mean margin %.3f", sum.Val.Accuracy, sum.Val.Pairs, sum.Val.MeanMargin)
	}
	if sum.Val == nil || sum.Val.Accuracy < 0.8 || sum.Val.MeanMargin <= 0 {
		t.Fatalf("held-out evaluation %+v, want accuracy ≥ 0.8 on a length preference", sum.Val)
	}
	if sum.Ceiling != nil || sum.Val.TruthAccuracy != nil {
		t.Error("ceilings reported for records without built-in tasks")
	}
	// Every training response forwarded exactly once per epoch.
	cs, _, _ := data.ReadComparisons(rmData, data.ReadOptions{})
	train, _ := splitComparisons(cs, cfg.ValFrac, cfg.Seed)
	responses := 0
	for _, c := range train {
		responses += len(c.Responses)
	}
	if sum.ResponsesForwarded != int64(cfg.Epochs)*int64(responses) || sum.TrainPrompts != len(train) {
		t.Errorf("%d responses forwarded in %g epochs of %d prompts with %d responses", sum.ResponsesForwarded, cfg.Epochs, sum.TrainPrompts, responses)
	}
	c := sum.Centering
	if c == nil || c.Source != sftData || c.N != 60 || math.Abs(c.MeanAfter) > 1e-3 || math.Abs(float64(c.Bias)+c.MeanBefore) > 1e-6 {
		t.Fatalf("centring %+v", c)
	}
	if c.Bias == 0 {
		t.Error("no bias fitted")
	}
	for _, f := range []string{model.ConfigFile, model.WeightsFile, RunConfigFile, MetricsFile, SummaryFile} {
		if _, err := os.Stat(filepath.Join(cfg.Out, f)); err != nil {
			t.Errorf("run directory lacks %s: %v", f, err)
		}
	}
	// The saved model applies the bias: the demonstrations score mean 0.
	m, err := model.Load(cpu.New(2), cfg.Out, model.Options{MaxBatch: 16, MaxSeq: cfg.MaxLen})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Cfg.ScalarHead || m.Cfg.ScoreBias != c.Bias {
		t.Fatalf("reloaded config %+v, want a scalar head with bias %v", m.Cfg, c.Bias)
	}
	ex, _, _ := data.ReadSFT(sftData, data.ReadOptions{})
	toks, _ := data.TokenizeSFT(ex, tok, cfg.MaxLen)
	var seqs [][]int32
	for _, x := range toks {
		seqs = append(seqs, x.Tokens)
	}
	scores, err := ScoreSequences(m, seqs, tok.Pad(), 256)
	if err != nil {
		t.Fatal(err)
	}
	if mu := mean(scores); math.Abs(mu) > 1e-3 {
		t.Errorf("reloaded model scores the demonstrations %v on average, want 0 ± 1e-3", mu)
	}
	// Reloaded evaluation on the held-out comparisons matches the summary.
	_, val := splitComparisons(cs, cfg.ValFrac, cfg.Seed)
	ev, _, err := EvalComparisons(m, tok, val, 256)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(ev.Accuracy-sum.Val.Accuracy) > 1e-9 || ev.Pairs != sum.Val.Pairs || math.Abs(ev.MeanMargin-sum.Val.MeanMargin) > 1e-5 {
		t.Errorf("reloaded evaluation %+v, summary %+v", ev, *sum.Val)
	}
	// metrics.jsonl records validation at the eval steps.
	raw, _ := os.ReadFile(filepath.Join(cfg.Out, MetricsFile))
	var last rmMetrics
	lines := strings.Split(strings.TrimSpace(string(raw)), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	if last.Step != sum.Steps || last.ValAccuracy == nil || last.ValRewardStd == nil || *last.ValRewardStd <= 0 {
		t.Errorf("last metrics record %+v", last)
	}
}

// TestRMCentresOnChosenWithoutCenterData: without an SFT file the bias
// centres the best-ranked training responses.
func TestRMCentresOnChosenWithoutCenterData(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	rmData, _ := writeLengthRM(t, 60)
	cfg := smallRM(rmData, writeInit(t), t.TempDir())
	cfg.Steps, cfg.EvalEvery = 3, 0
	sum, err := RM(context.Background(), cpu.New(2), tok, cfg, RunOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	if c := sum.Centering; c == nil || !strings.Contains(c.Source, "chosen") || c.N != sum.TrainPrompts || math.Abs(c.MeanAfter) > 1e-3 {
		t.Errorf("centring %+v", sum.Centering)
	}
}

// TestRMResumeIsExact: a run interrupted after step 7 (saved at 5) and
// resumed gives the per-step losses and final weights of an uninterrupted
// run, with dropout on.
func TestRMResumeIsExact(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	rmData, _ := writeLengthRM(t, 120)
	init := writeInit(t)
	cfg := func(out string) RMConfig {
		c := smallRM(rmData, init, out)
		c.Steps, c.Batch, c.EvalEvery, c.LogEvery, c.SaveEvery = 12, 8, 6, 1, 5
		c.Model.Dropout = 0.1
		return c
	}
	whole, split := t.TempDir(), t.TempDir()
	if _, err := RM(context.Background(), cpu.New(2), tok, cfg(whole), RunOptions{Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	_, err := RM(ctx, cpu.New(2), tok, cfg(split), RunOptions{Log: zerolog.Nop(), Progress: cancelAt{step: 7, cancel: cancel}})
	if err == nil || !strings.Contains(err.Error(), "interrupted after step 7") {
		t.Fatalf("interrupted run: %v", err)
	}
	if _, err := RM(context.Background(), cpu.New(2), tok, cfg(split), RunOptions{Log: zerolog.Nop(), Resume: true}); err != nil {
		t.Fatal(err)
	}
	a, b := readLosses(t, whole), readLosses(t, split)
	if len(a) != 12 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("resumed losses differ:\n%v\n%v", a, b)
	}
	for _, f := range []string{model.WeightsFile, model.ConfigFile} {
		wa, _ := os.ReadFile(filepath.Join(whole, f))
		wb, _ := os.ReadFile(filepath.Join(split, f))
		if len(wa) == 0 || string(wa) != string(wb) {
			t.Errorf("%s differs between the resumed and the uninterrupted run", f)
		}
	}
}

func TestRMConfigErrors(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	rmData, _ := writeLengthRM(t, 20)
	base := smallRM(rmData, writeInit(t), t.TempDir())
	cases := []struct {
		name string
		edit func(*RMConfig)
		want string
	}{
		{"no init", func(c *RMConfig) { c.Init = "" }, "initial checkpoint"},
		{"tiny budget", func(c *RMConfig) { c.TokenBudget = 100 }, "token budget"},
		{"few rows", func(c *RMConfig) { c.MaxRows = 4 }, "max rows"},
		{"bad frac", func(c *RMConfig) { c.ValFrac = 1 }, "validation fraction"},
		{"missing data", func(c *RMConfig) { c.Data = filepath.Join(t.TempDir(), "none.jsonl") }, "none.jsonl"},
		{"missing init", func(c *RMConfig) { c.Init = t.TempDir() }, "model.safetensors"},
	}
	for _, tc := range cases {
		cfg := base
		cfg.Out = t.TempDir()
		tc.edit(&cfg)
		_, err := RM(context.Background(), cpu.New(1), tok, cfg, RunOptions{Log: zerolog.Nop()})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
}

// TestRMCeilingOnBuiltinTasks: on records of the built-in tasks the run
// reports the labeler's ceilings and the accuracy against the noise-free
// order, and they are consistent with the rankings' construction.
func TestRMCeilingOnBuiltinTasks(t *testing.T) {
	tok, _ := tokenizer.New("byte")
	dir := t.TempDir()
	if _, err := synthForTest(dir, 200); err != nil {
		t.Fatal(err)
	}
	cfg := smallRM(filepath.Join(dir, "rm.jsonl"), writeInit(t), t.TempDir())
	cfg.Model.MaxSeqLen, cfg.MaxLen, cfg.TokenBudget = 128, 128, 48*128
	cfg.Steps, cfg.EvalEvery, cfg.ValFrac = 2, 0, 0.25
	w := writeInitWith(t, cfg.Model)
	cfg.Init = w
	sum, err := RM(context.Background(), cpu.New(2), tok, cfg, RunOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	c := sum.Ceiling
	if c == nil || sum.Val.TruthAccuracy == nil {
		t.Fatalf("no ceiling or truth accuracy: %+v", sum)
	}
	if c.Pairs != sum.Val.Pairs || c.TruthPairs != sum.Val.TruthPairs || c.TruthPairs > c.Pairs {
		t.Errorf("ceiling over %d/%d pairs, evaluation over %d/%d", c.Pairs, c.TruthPairs, sum.Val.Pairs, sum.Val.TruthPairs)
	}
	// Two noisy labelers agree less than one agrees with the truth, and
	// the noise-free order predicts the labels better than a second labeler.
	if !(c.LabelerVsLabeler < c.LabelerVsTruth && c.LabelerVsLabeler < c.OracleVsLabels && c.OracleVsLabels < 1 && c.LabelerVsLabeler > 0.6) {
		t.Errorf("ceilings %+v", c)
	}
}
