package bench

import (
	"fmt"
	"runtime"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train"
	"github.com/instructgo/instructgo/train/data"
)

// runSteps runs the step benchmarks of one config: SFT, RM, PPO.
func (e *env) runSteps(name string) error {
	for _, nc := range e.configs() {
		if nc.name != name {
			continue
		}
		for _, sc := range []stepCase{e.sftCase(nc), e.rmCase(nc)} {
			if err := e.runStep(sc); err != nil {
				return err
			}
		}
		if err := e.ctx.Err(); err != nil {
			return fmt.Errorf("bench: interrupted: %w", err)
		}
		if err := e.ppoIteration(nc); err != nil {
			return err
		}
		runtime.GC()
	}
	return nil
}

// stepCase is a training-step benchmark: work items (tokens, comparisons)
// and model FLOPs per call, and how to set it up.
type stepCase struct {
	group, name, shape, unit string
	work, flops              float64
	// extra are secondary rates: Value is the count per call.
	extra []Metric
	setup func() (run func(i int) error, err error)
}

// runStep sets up, times and records one step benchmark.
func (e *env) runStep(c stepCase) error {
	if !e.selected(c.group, c.name) {
		return nil
	}
	if err := e.ctx.Err(); err != nil {
		return fmt.Errorf("bench: interrupted: %w", err)
	}
	fail := func(err error) error { return fmt.Errorf("bench %s/%s (%s): %w", c.group, c.name, c.shape, err) }
	run, err := c.setup()
	if err != nil {
		return fail(err)
	}
	runtime.GC()
	m, err := measure(e.ctx, e.b, e.opt.StepTiming, run)
	if err != nil {
		return fail(err)
	}
	var extra []Metric
	for _, x := range c.extra {
		extra = append(extra, Metric{Name: x.Name, Value: rate(x.Value, m.stats.Median), Unit: x.Unit})
	}
	e.stepResult(c.group, c.name, c.shape, c.unit, c.work, c.flops, m, extra...)
	return nil
}

// randomBatch is B random sequences of T tokens with random next-token
// targets (the cost of a step does not depend on the ids).
func (e *env) randomBatch(cfg model.Config, B, T int, targets bool) *model.Batch {
	in := &model.Batch{B: B, T: T, Tokens: e.randomInts(B*T, cfg.VocabSize)}
	if targets {
		in.Targets = e.randomInts(B*T, cfg.VocabSize)
	}
	return in
}

// newModel allocates a model of cfg on the backend with GPT-2's
// initialisation.
func (e *env) newModel(cfg model.Config, B, T int, trainable bool) (*model.Model, error) {
	m, err := model.New(e.b, cfg, model.Options{MaxBatch: B, MaxSeq: T, Train: trainable})
	if err != nil {
		return nil, err
	}
	if err := e.b.Upload(m.Params.All, e.initParams(cfg)); err != nil {
		return nil, err
	}
	return m, nil
}

// stepResult records a training-step figure: work items (tokens,
// comparisons) per second in unit, and the model FLOP rate of flops per
// call as the MFU.
func (e *env) stepResult(group, name, shape, unit string, work, flops float64, m measured, extra ...Metric) {
	r := e.result(group, name, shape, unit, work, 1, CeilCompute, flops, m)
	r.Extra = append([]Metric{{Name: "model", Value: rate(flops, m.stats.Median) / 1e9, Unit: "GFLOP/s"}}, extra...)
	e.add(r)
}

// sftCase is one supervised fine-tuning step as train.SFT takes it: zero
// the gradients, forward with dropout 0.2, the mean next-token loss (Dot
// of the log-probs with −1/(B·T) weights), backward, global-norm clip and
// AdamW, and the loss read back. Tokens/s counts B·T; the MFU uses
// TrainFLOPsPerToken.
func (e *env) sftCase(nc namedConfig) stepCase {
	B, T := nc.shape.Batch, nc.shape.Seq
	cfg := nc.cfg
	cfg.Dropout = 0.2
	tokens := float64(B * T)
	return stepCase{
		group: "step", name: nc.name + " sft", shape: fmt.Sprintf("B%d×T%d, dropout 0.2, AdamW", B, T), unit: "tokens/s",
		work: tokens, flops: TrainFLOPsPerToken(cfg, T) * tokens,
		setup: func() (func(int) error, error) {
			m, err := e.newModel(cfg, B, T, true)
			if err != nil {
				return nil, err
			}
			opt, err := train.NewOptimizer(e.b, cfg, train.DefaultOptim())
			if err != nil {
				return nil, err
			}
			weights, err := e.b.Alloc(gpu.Float32, B*T)
			if err != nil {
				return nil, err
			}
			loss, err := e.b.Alloc(gpu.Float32, 1)
			if err != nil {
				return nil, err
			}
			e.b.Fill(weights, -1/float32(B*T))
			batches := []*model.Batch{e.randomBatch(cfg, B, T, true), e.randomBatch(cfg, B, T, true)}
			var lossHost [1]float32
			return func(i int) error {
				e.b.Fill(m.Grads.All, 0)
				if err := m.Forward(batches[i%2], true, uint64(i)); err != nil {
					return err
				}
				e.b.Dot(loss, m.LogProbs(), weights)
				if err := m.Backward(weights, nil); err != nil {
					return err
				}
				opt.Update(m.Params, m.Grads, 1e-4, 1)
				return e.b.Download(lossHost[:], loss)
			}, nil
		},
	}
}

// rmCase is one reward-model step as train.RM takes it: rows responses
// (K = 4 per prompt, all C(4,2) = 6 comparisons of a prompt in the same
// batch) forwarded once each through a scalar-head model, the rewards
// read at the last token and sent to the host, InstructGPT's K-way loss
// (train.KWayLoss), its gradient uploaded and scattered back, backward and
// AdamW. The figure is comparisons/s.
func (e *env) rmCase(nc namedConfig) stepCase {
	rows, T := max(rmK, nc.shape.Batch/rmK*rmK), nc.shape.Seq
	G := rows / rmK
	cfg := nc.cfg
	cfg.ScalarHead, cfg.Dropout = true, 0
	tokens := float64(rows * T)
	return stepCase{
		group: "step", name: nc.name + " rm", shape: fmt.Sprintf("%d prompts × K=%d responses × T%d", G, rmK, T), unit: "comparisons/s",
		work: float64(G * rmK * (rmK - 1) / 2), flops: TrainFLOPsPerToken(cfg, T) * tokens,
		extra: []Metric{{Name: "tokens", Value: tokens, Unit: "tokens/s"}},
		setup: func() (func(int) error, error) {
			m, err := e.newModel(cfg, rows, T, true)
			if err != nil {
				return nil, err
			}
			opt, err := train.NewOptimizer(e.b, cfg, train.DefaultOptim())
			if err != nil {
				return nil, err
			}
			groups := make([]data.ComparisonGroup, G)
			for g := range groups {
				groups[g] = data.ComparisonGroup{Start: g * rmK, K: rmK, Ranking: e.rng.Perm(rmK)}
			}
			validLen, last := make([]int32, rows), make([]int32, rows)
			for i := range validLen {
				validLen[i], last[i] = int32(T), int32(T-1)
			}
			idx, err := e.intTensor(last, rows)
			if err != nil {
				return nil, err
			}
			r, err := e.b.Alloc(gpu.Float32, rows, 1)
			if err != nil {
				return nil, err
			}
			dr, err := e.b.Alloc(gpu.Float32, rows, 1)
			if err != nil {
				return nil, err
			}
			dv, err := e.b.Alloc(gpu.Float32, rows, T, 1)
			if err != nil {
				return nil, err
			}
			batches := []*model.Batch{e.randomBatch(cfg, rows, T, false), e.randomBatch(cfg, rows, T, false)}
			for _, in := range batches {
				in.ValidLen = validLen
			}
			rHost, drHost := make([]float32, rows), make([]float32, rows)
			return func(i int) error {
				e.b.Fill(m.Grads.All, 0)
				if err := m.Forward(batches[i%2], true, uint64(i)); err != nil {
					return err
				}
				values, err := m.Values().Reshape(rows, T, 1)
				if err != nil {
					return err
				}
				e.b.GatherRows(r, values, idx)
				if err := e.b.Download(rHost, r); err != nil {
					return err
				}
				clear(drHost)
				if _, err := train.KWayLoss(groups, rHost, 1/float64(G), drHost); err != nil {
					return err
				}
				if err := e.b.Upload(dr, drHost); err != nil {
					return err
				}
				e.b.Fill(dv, 0)
				e.b.ScatterAddRows(dv, dr, idx)
				if err := m.Backward(dv.MustReshape(rows*T), nil); err != nil {
					return err
				}
				opt.Update(m.Params, m.Grads, 1e-4, 1)
				return e.b.Err()
			}, nil
		},
	}
}

// ppoBench holds the four models and the device buffers of a PPO-ptx
// iteration (train.PPO's loop, train/ppo.go and train/ppo_update.go, with
// its default hyper-parameters and random prompts and pretraining text).
type ppoBench struct {
	e                          *env
	policy, ref, value, reward *model.Model
	ema                        *model.Params
	polOpt, valOpt             *train.Optimizer
	E, MB, P, G, T             int
	ptxB, ptxT                 int
	prompts                    [][]int32
	ptx                        *model.Batch
	seed                       uint64

	oldLogp, refLogp, mask, values   *gpu.Tensor // [E·T]
	kl, rewards, adv, returns        *gpu.Tensor
	score, lastIdx                   *gpu.Tensor // [E]
	dlogp, dvalues                   *gpu.Tensor // [MB·T]
	pstats, vstats, scalar           *gpu.Tensor
	ptxW, ptxGradW, ptxLoss          *gpu.Tensor
	tokens, targets, validLen, lastH []int32
	maskH                            []float32
}

// PPO's default hyper-parameters (train.DefaultPPO) used by the iteration.
const (
	ppoKLCoef   = 0.02
	ppoClip     = 0.2
	ppoGamma    = 1
	ppoLambda   = 0.95
	ppoEMADecay = 0.992
	ppoPtxCoef  = 0.1
	ppoLR       = 1e-4
)

func (e *env) newPPOBench(nc namedConfig) (*ppoBench, error) {
	s := nc.shape
	p := &ppoBench{e: e, E: s.Episodes, MB: s.MiniBatch, P: s.Prompt, G: s.New, T: s.Prompt + s.New, seed: e.opt.Seed}
	p.ptxB, p.ptxT = min(4, p.MB), min(64, p.T)
	lm := nc.cfg
	lm.Dropout = 0
	sc := lm
	sc.ScalarHead = true
	var err error
	maxT := max(p.T, p.ptxT)
	if p.policy, err = e.newModel(lm, p.MB, maxT, true); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if p.ref, err = e.newModel(lm, p.MB, maxT, false); err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	if p.value, err = e.newModel(sc, p.MB, maxT, true); err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	if p.reward, err = e.newModel(sc, p.MB, maxT, false); err != nil {
		return nil, fmt.Errorf("reward: %w", err)
	}
	if p.ema, err = model.NewParams(e.b, lm); err != nil {
		return nil, fmt.Errorf("EMA: %w", err)
	}
	e.b.Copy(p.ema.All, p.policy.Params.All)
	oc := train.DefaultOptim()
	oc.LR, oc.WeightDecay = ppoLR, 0
	if p.polOpt, err = train.NewOptimizer(e.b, lm, oc); err != nil {
		return nil, err
	}
	if p.valOpt, err = train.NewOptimizer(e.b, sc, oc); err != nil {
		return nil, err
	}
	n := p.E * p.T
	for _, t := range []**gpu.Tensor{&p.oldLogp, &p.refLogp, &p.mask, &p.values, &p.kl, &p.rewards, &p.adv, &p.returns} {
		if *t, err = e.b.Alloc(gpu.Float32, n); err != nil {
			return nil, err
		}
	}
	for _, a := range []struct {
		t    **gpu.Tensor
		dt   gpu.DType
		size int
	}{
		{&p.score, gpu.Float32, p.E}, {&p.lastIdx, gpu.Int32, p.E},
		{&p.dlogp, gpu.Float32, p.MB * p.T}, {&p.dvalues, gpu.Float32, p.MB * p.T},
		{&p.pstats, gpu.Float32, 4}, {&p.vstats, gpu.Float32, 3}, {&p.scalar, gpu.Float32, 1},
		{&p.ptxW, gpu.Float32, p.ptxB * p.ptxT}, {&p.ptxGradW, gpu.Float32, p.ptxB * p.ptxT}, {&p.ptxLoss, gpu.Float32, 1},
	} {
		if *a.t, err = e.b.Alloc(a.dt, a.size); err != nil {
			return nil, err
		}
	}
	nPtx := p.ptxB * p.ptxT
	e.b.Fill(p.ptxW, -1/float32(nPtx))
	e.b.Fill(p.ptxGradW, -ppoPtxCoef/float32(nPtx))
	p.prompts = make([][]int32, p.E)
	for i := range p.prompts {
		p.prompts[i] = e.randomInts(p.P, lm.VocabSize)
	}
	p.ptx = e.randomBatch(lm, p.ptxB, p.ptxT, true)
	p.tokens, p.targets = make([]int32, n), make([]int32, n)
	p.maskH = make([]float32, n)
	p.validLen, p.lastH = make([]int32, p.E), make([]int32, p.E)
	return p, e.b.Err()
}

// The phases of a PPO iteration, timed apart.
const (
	phaseGenerate = iota
	phaseScore
	phaseUpdate
	numPhases
)

// iteration runs one PPO-ptx iteration and returns the time of each
// phase: generation (model.Generate with the KV cache, temperature 1, no
// EOS so every episode has G new tokens), the rollout's scoring forwards
// (policy and reference log-probs, values, reward), and the update
// (KL-penalised rewards, GAE, whitening, then per minibatch the clipped
// surrogate plus ptx into one policy step with the EMA, and the clipped
// value loss step).
func (p *ppoBench) iteration(it int) ([numPhases]time.Duration, error) {
	var d [numPhases]time.Duration
	b := p.e.b
	E, T := p.E, p.T
	t0 := time.Now()
	gens, err := model.Generate(p.policy, p.prompts, model.GenerateOptions{
		MaxNew: p.G, Sampling: gpu.Sampling{Temperature: 1}, Seed: gpu.Mix64(p.seed, uint64(it)), EOS: -1,
	})
	if err != nil {
		return d, fmt.Errorf("generate: %w", err)
	}
	t1 := time.Now()
	for i, g := range gens {
		seq := append(append([]int32(nil), p.prompts[i]...), g.Tokens...)
		if len(seq) != T {
			return d, fmt.Errorf("generate: episode %d has %d tokens, want %d", i, len(seq), T)
		}
		copy(p.tokens[i*T:], seq)
		for j := range T {
			p.targets[i*T+j], p.maskH[i*T+j] = -1, 0
		}
		for j := p.P - 1; j < T-1; j++ {
			p.targets[i*T+j], p.maskH[i*T+j] = seq[j+1], 1
		}
		p.validLen[i], p.lastH[i] = int32(T), int32(T-2)
	}
	oldLogp, err := p.forwardAll(p.policy, false)
	if err != nil {
		return d, err
	}
	refLogp, err := p.forwardAll(p.ref, false)
	if err != nil {
		return d, err
	}
	values, err := p.forwardAll(p.value, true)
	if err != nil {
		return d, err
	}
	rewards, err := p.forwardAll(p.reward, true)
	if err != nil {
		return d, err
	}
	score := make([]float32, E)
	for i := range score {
		score[i] = rewards[i*T+T-1]
	}
	t2 := time.Now()
	if err := p.update(oldLogp, refLogp, values, score, it); err != nil {
		return d, err
	}
	if err := b.Sync(); err != nil {
		return d, err
	}
	t3 := time.Now()
	d[phaseGenerate], d[phaseScore], d[phaseUpdate] = t1.Sub(t0), t2.Sub(t1), t3.Sub(t2)
	return d, nil
}

// forwardAll scores the rollout with m as train.PPO does.
func (p *ppoBench) forwardAll(m *model.Model, scalar bool) ([]float32, error) {
	out, err := train.ForwardRows(m, p.tokens, p.targets, p.validLen, p.E, p.T, scalar)
	if err != nil {
		return nil, fmt.Errorf("rollout forward: %w", err)
	}
	return out, nil
}

// update is the advantages and the PPO-ptx update of train's ppoDevice.
func (p *ppoBench) update(oldLogp, refLogp, values, score []float32, it int) error {
	b := p.e.b
	E, T, MB := p.E, p.T, p.MB
	n := E * T
	for _, u := range []struct {
		t    *gpu.Tensor
		host []float32
	}{{p.oldLogp, oldLogp}, {p.refLogp, refLogp}, {p.mask, p.maskH}, {p.values, values}, {p.score, score}} {
		if err := b.Upload(u.t, u.host); err != nil {
			return err
		}
	}
	if err := b.UploadInt32(p.lastIdx, p.lastH); err != nil {
		return err
	}
	shape := func(t *gpu.Tensor) *gpu.Tensor { return t.MustReshape(E, T) }
	b.KLPenalizedRewards(shape(p.rewards), shape(p.kl), shape(p.oldLogp), shape(p.refLogp), shape(p.mask),
		p.score, p.lastIdx, ppoKLCoef, gpu.KLK1)
	b.GAE(shape(p.adv), shape(p.returns), shape(p.rewards), shape(p.values), shape(p.mask), ppoGamma, ppoLambda)
	b.Dot(p.scalar, p.kl, p.mask)
	var one [1]float32
	if err := b.Download(one[:], p.scalar); err != nil {
		return err
	}
	returns := make([]float32, n)
	if err := b.Download(returns, p.returns); err != nil {
		return err
	}
	b.MaskedWhiten(p.adv, p.mask, true)

	nMB := E / MB
	var stats [4]float32
	for mb := 0; mb < nMB; mb++ {
		lo, hi := mb*MB*T, (mb+1)*MB*T
		in := &model.Batch{B: MB, T: T, Tokens: p.tokens[lo:hi], Targets: p.targets[lo:hi], ValidLen: p.validLen[mb*MB : (mb+1)*MB]}
		count := 0.0
		for _, m := range p.maskH[lo:hi] {
			count += float64(m)
		}
		mask := p.mask.MustView(lo, hi-lo)
		step := uint64(it*nMB + mb)

		pol := p.policy
		b.Fill(pol.Grads.All, 0)
		if err := pol.Forward(in, true, gpu.Mix64(p.seed, step)); err != nil {
			return err
		}
		b.PPOPolicyLoss(p.dlogp, p.pstats, pol.LogProbs(), p.oldLogp.MustView(lo, hi-lo), p.adv.MustView(lo, hi-lo), mask, ppoClip, 1/float32(MB))
		b.Dot(p.scalar, pol.Entropy(), mask)
		if err := b.Download(one[:], p.scalar); err != nil {
			return err
		}
		if err := pol.Backward(p.dlogp, nil); err != nil {
			return err
		}
		if err := b.Download(stats[:4], p.pstats); err != nil {
			return err
		}
		if err := pol.Forward(p.ptx, true, gpu.Mix64(p.seed^0x97, step)); err != nil {
			return err
		}
		b.Dot(p.ptxLoss, pol.LogProbs(), p.ptxW)
		if err := pol.Backward(p.ptxGradW, nil); err != nil {
			return err
		}
		if err := b.Download(one[:], p.ptxLoss); err != nil {
			return err
		}
		p.polOpt.Update(pol.Params, pol.Grads, ppoLR, 1)
		b.Lerp(p.ema.All, pol.Params.All, 1-ppoEMADecay)

		val := p.value
		b.Fill(val.Grads.All, 0)
		vin := &model.Batch{B: MB, T: T, Tokens: in.Tokens, ValidLen: in.ValidLen}
		if err := val.Forward(vin, true, 0); err != nil {
			return err
		}
		b.PPOValueLoss(p.dvalues, p.vstats, val.Values().MustReshape(hi-lo), p.values.MustView(lo, hi-lo), p.returns.MustView(lo, hi-lo), mask, ppoClip, float32(1/count))
		if err := val.Backward(p.dvalues, nil); err != nil {
			return err
		}
		p.valOpt.Update(val.Params, val.Grads, ppoLR, 1)
		if err := b.Download(stats[:3], p.vstats); err != nil {
			return err
		}
	}
	return b.Err()
}

// ppoIteration times PPO-ptx iterations and reports each phase and the
// whole: generation in generated tokens/s, the scoring forwards and the
// update in tokens/s (every token each model processes), the iteration in
// episodes/s; each with its MFU.
func (e *env) ppoIteration(nc namedConfig) error {
	prefix := nc.name + " "
	names := [...]string{"generate", "score", "update", "iteration"}
	selectedAny := false
	for _, n := range names {
		selectedAny = selectedAny || e.selected("ppo", prefix+n)
	}
	if !selectedAny {
		return nil
	}
	s := nc.shape
	fail := func(err error) error {
		return fmt.Errorf("bench ppo/%s (%d episodes, minibatch %d, %d+%d tokens): %w", nc.name, s.Episodes, s.MiniBatch, s.Prompt, s.New, err)
	}
	p, err := e.newPPOBench(nc)
	if err != nil {
		return fail(err)
	}
	var phases [numPhases][]float64
	run := func(i int) error {
		d, err := p.iteration(i)
		for k := range d {
			phases[k] = append(phases[k], d[k].Seconds())
		}
		return err
	}
	runtime.GC()
	meas, err := measure(e.ctx, e.b, e.opt.StepTiming, run)
	if err != nil {
		return fail(err)
	}
	untimed := meas.calls - meas.stats.N
	phase := func(k int) measured {
		return measured{stats: Summarize(phases[k][untimed:]), calls: meas.stats.N, perSample: 1, clock: meas.clock}
	}
	lm := nc.cfg
	sc := lm
	sc.ScalarHead = true
	E, T, MB := float64(p.E), p.T, p.MB
	nMB := float64(p.E / MB)
	genFLOPs := E * GenerateFLOPs(lm, p.P, p.G)
	scoreFLOPs := E * float64(T) * (2*ForwardFLOPsPerToken(lm, T) + 2*ForwardFLOPsPerToken(sc, T))
	ptxTokens := float64(p.ptxB * p.ptxT)
	updFLOPs := nMB * (float64(MB*T)*(TrainFLOPsPerToken(lm, T)+TrainFLOPsPerToken(sc, T)) + ptxTokens*TrainFLOPsPerToken(lm, p.ptxT))
	shape := fmt.Sprintf("%d episodes of %d+%d tokens, minibatch %d", p.E, p.P, p.G, MB)
	if e.selected("ppo", prefix+names[0]) {
		e.stepResult("ppo", prefix+names[0], fmt.Sprintf("%d prompts of %d tokens + %d new, KV cache, batches of %d, T=1", p.E, p.P, p.G, MB),
			"tokens/s", E*float64(p.G), genFLOPs, phase(phaseGenerate))
	}
	if e.selected("ppo", prefix+names[1]) {
		e.stepResult("ppo", prefix+names[1], fmt.Sprintf("policy, reference, value, reward forwards of %d×%d", p.E, T),
			"tokens/s", 4*E*float64(T), scoreFLOPs, phase(phaseScore))
	}
	if e.selected("ppo", prefix+names[2]) {
		e.stepResult("ppo", prefix+names[2], fmt.Sprintf("%d minibatches: policy + ptx %d×%d, value; AdamW, EMA", int(nMB), p.ptxB, p.ptxT),
			"tokens/s", nMB*(2*float64(MB*T)+ptxTokens), updFLOPs, phase(phaseUpdate))
	}
	if e.selected("ppo", prefix+names[3]) {
		e.stepResult("ppo", prefix+names[3], shape, "episodes/s", E, genFLOPs+scoreFLOPs+updFLOPs, meas)
	}
	return nil
}
