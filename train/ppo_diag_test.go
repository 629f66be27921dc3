//go:build diag

// The diagnostic tests of this file inspect the artefacts of a real
// pipeline run; they need one (IG_DIAG_FLOW) and are built only with
// -tags diag: go test -tags diag -run Diagnose ./train/
package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
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

// TestPPODiagnoseRollout inspects one PPO rollout of real artefacts
// (IG_DIAG_FLOW=dir with data/, sft/ or sft16/, rm/; IG_DIAG_POLICY and
// IG_DIAG_REWARD override the checkpoints): it logs episodes with their
// per-token rewards, values, advantages and returns, checks the rewards and
// GAE against a host computation and the first minibatch's ratio against
// 1, and measures how the reward model's scores of the policy's own
// samples agree with the true task scores. Skipped without IG_DIAG_FLOW.
func TestPPODiagnoseRollout(t *testing.T) {
	flow := os.Getenv("IG_DIAG_FLOW")
	if flow == "" {
		t.Skip("set IG_DIAG_FLOW to a directory with data/, sft/ and rm/")
	}
	policy, reward := diagDir(t, flow, "IG_DIAG_POLICY", "sft16", "sft"), diagDir(t, flow, "IG_DIAG_REWARD", "rm")
	tok, _ := tokenizer.New("byte")
	b := cpu.New(2)
	recs, _, err := data.ReadPrompts(filepath.Join(flow, "data", "eval.jsonl"), data.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const nPrompts, K = 64, 8 // K samples of each prompt: within-prompt comparisons
	cfg := DefaultPPO()
	cfg.Prompts, cfg.Policy, cfg.Reward, cfg.Out = "x", policy, reward, t.TempDir()
	cfg.Episodes, cfg.MiniBatch = nPrompts*K, 16
	var batch [][]int32
	var which []int
	for i := 0; i < nPrompts; i++ {
		for k := 0; k < K; k++ {
			batch = append(batch, tok.Encode(recs[i].Prompt))
			which = append(which, i)
		}
	}
	T := 0
	for _, p := range batch {
		T = max(T, len(p))
	}
	T += cfg.MaxNew + 1
	ms, err := loadPPOModels(b, cfg, T, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := newPPODevice(b, len(batch), T, 1, 1)
	if err != nil {
		t.Fatal(err)
	}
	ro, _, err := collect(ms, dev, tok, batch, cfg, 7)
	if err != nil {
		t.Fatal(err)
	}
	ro.finishScores(cfg.MissingEOSPenalty, cfg.RewardClip)
	beta := cfg.KLCoef
	if err := dev.advantages(ro, cfg, beta); err != nil {
		t.Fatal(err)
	}
	if err := dev.readBack(ro, 0, nil); err != nil {
		t.Fatal(err)
	}
	n := ro.E * ro.T
	rewards, adv := make([]float32, n), make([]float32, n)
	b.Download(rewards, dev.rewards.MustView(0, n))
	b.Download(adv, dev.adv.MustView(0, n))

	// Host reference: rewards, GAE (γ, λ), returns.
	Tn := ro.T
	var maxRewErr, maxRetErr float64
	rawAdv := make([]float64, n)
	for i := 0; i < ro.E; i++ {
		var next, nextV float64
		for p := Tn - 1; p >= 0; p-- {
			j := i*Tn + p
			if ro.mask[j] == 0 {
				next, nextV = 0, 0
				continue
			}
			r := -float64(beta) * float64(ro.oldLogp[j]-ro.ref[j])
			if p == int(ro.lastIdx[i]) {
				r += float64(ro.scores[i])
			}
			maxRewErr = math.Max(maxRewErr, math.Abs(r-float64(rewards[j])))
			delta := r + float64(cfg.Gamma)*nextV - float64(ro.values[j])
			a := delta + float64(cfg.Gamma*cfg.Lambda)*next
			rawAdv[j] = a
			maxRetErr = math.Max(maxRetErr, math.Abs(a+float64(ro.values[j])-float64(ro.returns[j])))
			next, nextV = a, float64(ro.values[j])
		}
	}
	t.Logf("host check: max |reward error| %.2g, max |return error| %.2g", maxRewErr, maxRetErr)
	if maxRewErr > 1e-5 || maxRetErr > 1e-4 {
		t.Errorf("rewards or returns differ from the host computation")
	}
	// Every episode's last action is masked and the one the score lands on.
	for i := 0; i < ro.E; i++ {
		li := int(ro.lastIdx[i])
		if ro.mask[i*Tn+li] == 0 || (li+1 < Tn && ro.mask[i*Tn+li+1] != 0) {
			t.Fatalf("episode %d: lastIdx %d is not the last masked position", i, li)
		}
	}

	// Ratio 1 on the first minibatch: the policy's training forward equals
	// the rollout's log-probs.
	MB := cfg.MiniBatch
	in := &model.Batch{B: MB, T: Tn, Tokens: ro.tokens[:MB*Tn], Targets: ro.targets[:MB*Tn], ValidLen: ro.validLen[:MB]}
	if err := ms.policy.Forward(in, true, 1); err != nil {
		t.Fatal(err)
	}
	newLogp := make([]float32, MB*Tn)
	b.Download(newLogp, ms.policy.LogProbs().MustReshape(MB*Tn))
	var maxRatio float64
	for j := range newLogp {
		if ro.mask[j] != 0 {
			maxRatio = math.Max(maxRatio, math.Abs(float64(newLogp[j]-ro.oldLogp[j])))
		}
	}
	t.Logf("first minibatch: max |log ratio| %.2g", maxRatio)
	if maxRatio > 1e-4 {
		t.Errorf("old and new log-probs differ by %g before any update", maxRatio)
	}

	// Log a few episodes in full.
	resp := func(i int) string {
		pl := int(ro.validLen[i]) - ro.responseLen[i]
		end := int(ro.validLen[i])
		if ro.eos[i] {
			end--
		}
		return tok.Decode(ro.tokens[i*Tn+pl : i*Tn+end])
	}
	for _, i := range []int{0, 1, 8, 16} {
		var sb strings.Builder
		fmt.Fprintf(&sb, "episode %d: prompt %q response %q eos %v score %.3f lastIdx %d validLen %d\n", i, recs[which[i]].Prompt, resp(i), ro.eos[i], ro.scores[i], ro.lastIdx[i], ro.validLen[i])
		fmt.Fprintf(&sb, "   pos tok     mask   logp    ref      reward   value    rawAdv   adv(wh)  return\n")
		for p := 0; p < Tn; p++ {
			j := i*Tn + p
			if ro.mask[j] == 0 {
				continue
			}
			fmt.Fprintf(&sb, "   %3d %-7q %.0f %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f %8.3f\n", p, tok.Decode([]int32{ro.targets[j]}), ro.mask[j],
				ro.oldLogp[j], ro.ref[j], rewards[j], ro.values[j], rawAdv[j], adv[j], ro.returns[j])
		}
		t.Log(sb.String())
	}

	// RM score against the true task score and the labeler's utility on
	// the policy's own samples.
	lab := tasks.DefaultLabeler()
	task := make([]float64, ro.E)
	util := make([]float64, ro.E)
	rm := make([]float64, ro.E)
	perTask := map[string][2][]float64{}
	for i := 0; i < ro.E; i++ {
		r := recs[which[i]]
		tk, _ := tasks.ByName(r.Task)
		task[i] = tk.Score(r.Answer, resp(i))
		util[i] = lab.Utility(tk, r.Answer, resp(i))
		rm[i] = float64(ro.scores[i])
		pt := perTask[r.Task]
		pt[0], pt[1] = append(pt[0], rm[i]), append(pt[1], util[i])
		perTask[r.Task] = pt
	}
	t.Logf("sampled (T=1) task score %.3f, mean RM score %.3f, EOS %.2f, mean length %.1f", mean(task), mean(rm), frac(ro.eos), meanInt(ro.responseLen))
	t.Logf("corr(RM, task score) %.3f, corr(RM, utility) %.3f over %d samples", pearson(rm, task), pearson(rm, util), ro.E)
	// Within prompt: centre each prompt's K samples.
	cr, cu := make([]float64, ro.E), make([]float64, ro.E)
	var agree, pairs, distinct float64
	for p := 0; p < nPrompts; p++ {
		mr, mu := mean(rm[p*K:(p+1)*K]), mean(util[p*K:(p+1)*K])
		for k := 0; k < K; k++ {
			cr[p*K+k], cu[p*K+k] = rm[p*K+k]-mr, util[p*K+k]-mu
		}
		for a := p * K; a < (p+1)*K; a++ {
			for c := a + 1; c < (p+1)*K; c++ {
				pairs++
				if util[a] == util[c] {
					continue
				}
				distinct++
				if (util[a] > util[c]) == (rm[a] > rm[c]) {
					agree++
				}
			}
		}
	}
	// Best of K: the sample the RM prefers against a random one and the
	// best by the true utility.
	var bestRM, bestTrue, randTask float64
	for p := 0; p < nPrompts; p++ {
		bi, bt := p*K, task[p*K]
		for k := p * K; k < (p+1)*K; k++ {
			if rm[k] > rm[bi] {
				bi = k
			}
			bt = math.Max(bt, task[k])
		}
		bestRM += task[bi] / nPrompts
		bestTrue += bt / nPrompts
		randTask += mean(task[p*K:(p+1)*K]) / nPrompts
	}
	t.Logf("best of %d by RM: task score %.3f (random sample %.3f, best by task score %.3f)", K, bestRM, randTask, bestTrue)
	t.Logf("within prompt: corr(RM, utility) %.3f; RM orders %.3f of %.0f pairs with different utility like the utility (%.0f pairs in all)",
		pearson(cr, cu), agree/distinct, distinct, pairs)
	names := make([]string, 0, len(perTask))
	for k := range perTask {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		t.Logf("  %-8s n=%3d corr(RM, utility) %.3f mean utility %.3f", k, len(perTask[k][0]), pearson(perTask[k][0], perTask[k][1]), mean(perTask[k][1]))
	}

	// Greedy and lower-temperature task scores of the same policy on the
	// same prompts.
	m, err := model.Load(b, policy, model.Options{MaxBatch: 64, MaxSeq: 256})
	if err != nil {
		t.Fatal(err)
	}
	tp := make([]TaskPrompt, nPrompts*4)
	for i := range tp {
		r := recs[i%len(recs)]
		tp[i] = TaskPrompt{Prompt: r.Prompt, Task: r.Task, Answer: r.Answer}
	}
	for _, temp := range []float32{0, 0.5, 0.7, 1} {
		ev, err := EvalTasks(m, tok, tp, EvalOptions{MaxNew: 32, Sampling: gpu.Sampling{Temperature: temp}, Seed: 3})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("temperature %.1f: task score %.3f on %d prompts", temp, ev.Score, len(tp))
	}
	// The policy's loss on held-out pretraining text (what ptx pulls on).
	corpus, err := data.LoadText([]string{filepath.Join(flow, "data", "pretrain.txt")}, tok, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	tk, tg := data.SequentialWindows(corpus.Val, 64, 128)
	for _, dir := range []string{policy, filepath.Join(flow, "pre")} {
		lm, err := model.Load(b, dir, model.Options{MaxBatch: 64, MaxSeq: 64})
		if err != nil {
			continue
		}
		loss, err := HeldOutLoss(lm, tk, tg, 64, 64)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: held-out pretraining loss %.3f (64-token windows)", dir, loss)
	}
}

// diagDir is the checkpoint named by the environment variable env, or the
// first of names under flow that holds a finished run.
func diagDir(t *testing.T, flow, env string, names ...string) string {
	if v := os.Getenv(env); v != "" {
		return v
	}
	for _, n := range names {
		if _, err := os.Stat(filepath.Join(flow, n, SummaryFile)); err == nil {
			return filepath.Join(flow, n)
		}
	}
	t.Fatalf("no %v in %s", names, flow)
	return ""
}

func pearson(x, y []float64) float64 {
	mx, my := mean(x), mean(y)
	var sxy, sxx, syy float64
	for i := range x {
		sxy += (x[i] - mx) * (y[i] - my)
		sxx += (x[i] - mx) * (x[i] - mx)
		syy += (y[i] - my) * (y[i] - my)
	}
	return sxy / math.Sqrt(sxx*syy)
}

func frac(b []bool) float64 {
	n := 0
	for _, v := range b {
		if v {
			n++
		}
	}
	return float64(n) / float64(len(b))
}

func meanInt(x []int) float64 {
	s := 0
	for _, v := range x {
		s += v
	}
	return float64(s) / float64(len(x))
}

// TestPPODiagnoseRun runs PPO on real artefacts (IG_DIAG_FLOW as above)
// with the defaults overridden by the JSON in IG_DIAG_RUN, and evaluates
// the saved EMA policy and the last iterate greedily on data/eval.jsonl
// against the SFT model: task score and the labeler's win rate.
// IG_DIAG_ORACLE=1 replaces the reward model by the ideal one for the
// simulated labeler, utility/noise (centred on the SFT demonstrations'
// utility, 1 + style weight): the ceiling of PPO with a perfect RM.
func TestPPODiagnoseRun(t *testing.T) {
	flow := os.Getenv("IG_DIAG_FLOW")
	if flow == "" {
		t.Skip("set IG_DIAG_FLOW to a directory with data/, sft/ and rm/")
	}
	tok, _ := tokenizer.New("byte")
	b := cpu.New(2)
	cfg := DefaultPPO()
	cfg.Prompts, cfg.Ptx = filepath.Join(flow, "data", "ppo.jsonl"), []string{filepath.Join(flow, "data", "pretrain.txt")}
	cfg.Policy, cfg.Reward = diagDir(t, flow, "IG_DIAG_POLICY", "sft16", "sft"), diagDir(t, flow, "IG_DIAG_REWARD", "rm")
	cfg.Out = os.Getenv("IG_DIAG_OUT")
	if cfg.Out == "" {
		cfg.Out = t.TempDir()
	}
	if js := os.Getenv("IG_DIAG_RUN"); js != "" {
		if err := json.Unmarshal([]byte(js), &cfg); err != nil {
			t.Fatal(err)
		}
	}
	// The scorer logs the rollouts' true task score (the "gold" reward)
	// and, with IG_DIAG_ORACLE=1, trains on the ideal reward.
	oracle := os.Getenv("IG_DIAG_ORACLE") == "1"
	lab := tasks.DefaultLabeler()
	iter := 0
	scorer := func(prompts []data.Prompt, responses []string, rm []float32) ([]float32, error) {
		out := make([]float32, len(prompts))
		var gold float64
		for i, p := range prompts {
			tk, err := tasks.ByName(p.Task)
			if err != nil {
				return nil, err
			}
			gold += tk.Score(p.Answer, responses[i]) / float64(len(prompts))
			out[i] = rm[i]
			if oracle {
				out[i] = float32((lab.Utility(tk, p.Answer, responses[i]) - 1 - lab.StyleWeight) / lab.Noise)
			}
		}
		iter++
		fmt.Fprintf(os.Stderr, "gold iter %d task score of rollouts %.4f\n", iter, gold)
		return out, nil
	}
	log := zerolog.New(zerolog.ConsoleWriter{Out: os.Stderr, NoColor: true}).With().Timestamp().Logger()
	last := filepath.Join(t.TempDir(), "last")
	if o := os.Getenv("IG_DIAG_OUT"); o != "" {
		last = o + "_last"
	}
	sum, err := runPPO(context.Background(), b, tok, cfg, RunOptions{Log: log}, ppoHooks{scorer: scorer, saveLast: last})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("PPO %.0f s: RM score %.3f → %.3f, KL %.3f, ptx %.3f", sum.Seconds, sum.FirstScore, sum.LastScore, sum.LastKL, sum.PtxLoss)
	recs, _, err := data.ReadPrompts(filepath.Join(flow, "data", "eval.jsonl"), data.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	tp := make([]TaskPrompt, len(recs))
	for i, r := range recs {
		tp[i] = TaskPrompt{Prompt: r.Prompt, Task: r.Task, Answer: r.Answer}
	}
	evalT := func(d string, temp float32, seed uint64) TaskEval {
		m, err := model.Load(b, d, model.Options{MaxBatch: 64, MaxSeq: 256})
		if err != nil {
			t.Fatal(err)
		}
		ev, err := EvalTasks(m, tok, tp, EvalOptions{MaxNew: 32, Sampling: gpu.Sampling{Temperature: temp}, Seed: seed})
		if err != nil {
			t.Fatal(err)
		}
		return ev
	}
	eval := func(d string) TaskEval { return evalT(d, 0, 0) }
	sft := eval(cfg.Policy)
	// Sampled at temperature 1 (what PPO optimises), three draws each.
	var sftS []TaskEval
	for k := 0; k < 3; k++ {
		sftS = append(sftS, evalT(cfg.Policy, 1, uint64(11+k)))
	}
	for _, d := range []string{cfg.Out, last} {
		var score, win float64
		for k := 0; k < 3; k++ {
			ev := evalT(d, 1, uint64(11+k))
			w, _ := WinRate(ev, sftS[k], tasks.DefaultLabeler())
			score += ev.Score / 3
			win += w / 3
		}
		t.Logf("%s sampled at T=1: task score %.3f (SFT %.3f), win rate vs SFT sampled %.3f", filepath.Base(d), score, (sftS[0].Score+sftS[1].Score+sftS[2].Score)/3, win)
	}
	for _, d := range []string{cfg.Out, last} {
		ev := eval(d)
		win, _ := WinRate(ev, sft, tasks.DefaultLabeler())
		var changed int
		for i := range ev.Samples {
			if ev.Samples[i].Response != sft.Samples[i].Response {
				changed++
			}
		}
		t.Logf("%s: task score %.3f (SFT %.3f), win rate vs SFT %.3f, %d of %d responses differ", filepath.Base(d), ev.Score, sft.Score, win, changed, len(ev.Samples))
		for _, n := range ev.TaskNames() {
			t.Logf("   %-8s %.3f (SFT %.3f)", n, ev.PerTask[n], sft.PerTask[n])
		}
	}
}

// TestPPODiagnoseOverfit takes one rollout of the real SFT policy scored by
// the ideal reward and runs many PPO epochs on it: the surrogate
// Σ A·(log π_new − log π_old) must rise and the log-probs of the episodes
// with positive advantage must rise against those with negative.
func TestPPODiagnoseOverfit(t *testing.T) {
	flow := os.Getenv("IG_DIAG_FLOW")
	if flow == "" {
		t.Skip("set IG_DIAG_FLOW")
	}
	tok, _ := tokenizer.New("byte")
	b := cpu.New(2)
	cfg := DefaultPPO()
	cfg.Policy, cfg.Reward = diagDir(t, flow, "IG_DIAG_POLICY", "sft16", "sft"), diagDir(t, flow, "IG_DIAG_REWARD", "rm")
	cfg.Episodes, cfg.MiniBatch, cfg.Epochs, cfg.ClipEps = 64, 16, 1, 100
	cfg.PolicyOptim.LR, cfg.PolicyOptim.Warmup = 1e-4, 0
	recs, _, _ := data.ReadPrompts(filepath.Join(flow, "data", "ppo.jsonl"), data.ReadOptions{})
	recs = recs[:cfg.Episodes]
	batch := make([][]int32, len(recs))
	for i, r := range recs {
		batch[i] = tok.Encode(r.Prompt)
	}
	ms, err := loadPPOModels(b, cfg, 128, RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dev, err := newPPODevice(b, cfg.Episodes, 128, 1, cfg.Epochs*(cfg.Episodes/cfg.MiniBatch))
	if err != nil {
		t.Fatal(err)
	}
	ro, _, err := collect(ms, dev, tok, batch, cfg, 5)
	if err != nil {
		t.Fatal(err)
	}
	lab := tasks.DefaultLabeler()
	resp := ro.responses(tok)
	for i, r := range recs {
		tk, _ := tasks.ByName(r.Task)
		ro.rawScores[i] = float32((lab.Utility(tk, r.Answer, resp[i]) - 1.1) / lab.Noise)
	}
	ro.finishScores(cfg.MissingEOSPenalty, cfg.RewardClip)
	if err := dev.advantages(ro, cfg, 0); err != nil {
		t.Fatal(err)
	}
	adv := make([]float32, ro.E*ro.T)
	b.Download(adv, dev.adv.MustView(0, ro.E*ro.T))
	var first float64
	for it := 1; it <= 10; it++ {
		var rec PPOMetrics
		if err := dev.update(ms, ro, nil, cfg, it, &rec); err != nil {
			t.Fatal(err)
		}
		newLogp, err := forwardRows(ms.policy, ro.tokens, ro.targets, ro.validLen, ro.E, ro.T, false)
		if err != nil {
			t.Fatal(err)
		}
		var surr, pos, neg float64
		var np, nn int
		for i := 0; i < ro.E; i++ {
			var d, a float64
			for p := 0; p < ro.T; p++ {
				j := i*ro.T + p
				if ro.mask[j] == 0 {
					continue
				}
				surr += float64(adv[j]) * float64(newLogp[j]-ro.oldLogp[j]) / float64(ro.E)
				d += float64(newLogp[j] - ro.oldLogp[j])
				a += float64(adv[j])
			}
			if a > 0 {
				pos += d
				np++
			} else {
				neg += d
				nn++
			}
		}
		if it == 1 {
			first = surr
			if surr <= 0 {
				t.Errorf("one PPO pass lowered the surrogate: %v", surr)
			}
		} else if it == 10 && surr <= first {
			t.Errorf("ten PPO passes: surrogate %v, after one %v", surr, first)
		}
		t.Logf("epoch %2d: Σ A·Δlogp per episode %.4f; Δ log π(response): positive-advantage episodes %+.3f, negative %+.3f; policy loss %.4f", it, surr, pos/float64(np), neg/float64(nn), rec.PolicyLoss)
	}
}

// collect samples responses to the prompts and scores them on dev: the
// policy's and the reference's log-probs of each response token (also read
// back into ro for the diagnostics), the value of each state, and the
// reward model's score of each whole response.
func collect(ms *ppoModels, dev *ppoDevice, tok tokenizer.Tokenizer, prompts [][]int32, cfg PPOConfig, seed uint64) (*rollout, int, error) {
	ro, genTokens, err := generateRollout(ms.policy, prompts, rolloutSampling{maxNew: cfg.MaxNew, temperature: cfg.Temperature, seed: seed, eos: tok.EOS(), pad: tok.Pad()})
	if err != nil {
		return nil, 0, err
	}
	if err := dev.scoreRollout(ms, ro); err != nil {
		return nil, 0, err
	}
	return ro, genTokens, dev.readLogProbs(ro)
}

// forwardRows runs m without dropout over E right-padded rows of T tokens
// (validLen[i] of row i real) in chunks of its MaxBatch and returns the
// per-position outputs [E·T]: the log-prob of each position's target for a
// language model (targets −1 where there is none), the value for a scalar
// head (targets unused): forwardInto's outputs, read back for the
// diagnostics.
func forwardRows(m *model.Model, tokens, targets, validLen []int32, E, T int, scalar bool) ([]float32, error) {
	out := make([]float32, E*T)
	err := forwardChunks(m, tokens, targets, validLen, E, T, scalar, func(lo, hi int, o *gpu.Tensor) error {
		return m.Backend().Download(out[lo*T:hi*T], o)
	})
	return out, err
}
