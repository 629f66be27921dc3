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

// newModel allocates a model of cfg on the backend in the run's precision
// with GPT-2's initialisation.
func (e *env) newModel(cfg model.Config, B, T int, trainable bool) (*model.Model, error) {
	m, err := model.New(e.b, cfg, model.Options{MaxBatch: B, MaxSeq: T, Train: trainable, Precision: e.opt.Precision})
	if err != nil {
		return nil, err
	}
	if err := m.SetParams(e.initParams(cfg)); err != nil {
		return nil, err
	}
	return m, nil
}

// stepResult records a training-step figure: work items (tokens,
// comparisons) per second in unit, and the model FLOP rate of flops per
// call as the MFU, against the measured compute ceiling and against the
// published peak.
func (e *env) stepResult(group, name, shape, unit string, work, flops float64, m measured, extra ...Metric) {
	r := e.result(group, name, shape, unit, work, 1, CeilCompute, flops, m)
	r.Extra = append([]Metric{{Name: "model", Value: rate(flops, m.stats.Median) / 1e9, Unit: "GFLOP/s"}}, extra...)
	e.add(r)
}

// sftCase is one supervised fine-tuning step, run by train.LMStep (the
// step train.SFT and train.Pretrain take): zero the gradients, forward with
// dropout 0.2, the mean next-token loss, backward, global-norm clip and
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
			step, err := train.NewLMStep(m, train.DefaultOptim(), 1<<30, 1, e.opt.Seed)
			if err != nil {
				return nil, err
			}
			batches := []*model.Batch{e.randomBatch(cfg, B, T, true), e.randomBatch(cfg, B, T, true)}
			return func(i int) error {
				_, _, err := step.Run(i+1, func() (*model.Batch, error) { return batches[i%2], nil })
				return err
			}, nil
		},
	}
}

// rmCase is one reward-model step, run by train.RMStep (the step train.RM
// takes): rows responses (K = 4 per prompt, all C(4,2) = 6 comparisons of
// a prompt in the same batch) forwarded once each through a scalar-head
// model, the rewards read at the last token and sent to the host,
// InstructGPT's K-way loss, its gradient uploaded and scattered back,
// backward and AdamW. The figure is comparisons/s.
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
			step, err := train.NewRMStep(m, train.DefaultOptim(), 1<<30, rows, rows*T, 0, e.opt.Seed)
			if err != nil {
				return nil, err
			}
			// Two sets of G prompts, each with K responses of T tokens.
			var sets [2][]data.ComparisonTokens
			for s := range sets {
				for range G {
					c := data.ComparisonTokens{Ranking: e.rng.Perm(rmK), PromptLen: 1}
					for range rmK {
						c.Responses = append(c.Responses, e.randomInts(T, cfg.VocabSize))
					}
					sets[s] = append(sets[s], c)
				}
			}
			idx := make([]int, G)
			for g := range idx {
				idx[g] = g
			}
			return func(i int) error {
				_, _, _, err := step.Run(i+1, sets[i%2], idx)
				return err
			}, nil
		},
	}
}

// ppoBench is a PPO-ptx iteration of train.PPO's loop (train.PPOIteration,
// the training code itself) with its default hyper-parameters on random
// models, prompts and pretraining text. Responses run to the full length
// (no EOS), so every iteration does the same work.
type ppoBench struct {
	it          *train.PPOIteration
	E, MB       int
	P, G, T     int
	ptxB, ptxT  int
	prompts     [][]int32
	genBatch    int     // episodes decoded together
	hostPerStep float64 // seconds the host spent queueing a decoding step, in the last iteration
}

func (e *env) newPPOBench(nc namedConfig) (*ppoBench, error) {
	s := nc.shape
	p := &ppoBench{E: s.Episodes, MB: s.MiniBatch, P: s.Prompt, G: s.New, T: s.Prompt + s.New}
	p.ptxB, p.ptxT = min(4, p.MB), min(64, p.T)
	lm := nc.cfg
	lm.Dropout = 0
	sc := lm
	sc.ScalarHead = true
	var ms train.PPOIterationModels
	var err error
	maxT := max(p.T, p.ptxT)
	if ms.Policy, err = e.newModel(lm, p.MB, maxT, true); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if ms.Ref, err = e.newModel(lm, p.MB, maxT, false); err != nil {
		return nil, fmt.Errorf("reference: %w", err)
	}
	if ms.Value, err = e.newModel(sc, p.MB, maxT, true); err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	if ms.Reward, err = e.newModel(sc, p.MB, maxT, false); err != nil {
		return nil, fmt.Errorf("reward: %w", err)
	}
	cfg := train.DefaultPPO()
	cfg.Episodes, cfg.MiniBatch, cfg.MaxNew, cfg.PtxBatch, cfg.PtxSeq, cfg.Seed = p.E, p.MB, p.G, p.ptxB, p.ptxT, e.opt.Seed
	p.genBatch = p.MB
	if _, ok := e.b.(gpu.Device); ok {
		cfg.GenBatch, p.genBatch = p.E, p.E // every episode in one decoding batch, as a GPU run would
	}
	if p.it, err = train.NewPPOIteration(e.b, ms, cfg, e.randomInts(64*p.ptxT, lm.VocabSize), -1, 0); err != nil {
		return nil, err
	}
	p.prompts = make([][]int32, p.E)
	for i := range p.prompts {
		p.prompts[i] = e.randomInts(p.P, lm.VocabSize)
	}
	return p, e.b.Err()
}

// iteration runs one PPO-ptx iteration and returns the time of each
// phase: generation (the KV cache, temperature 1, G new tokens per
// episode), the rollout's scoring forwards (policy and reference
// log-probs, values, reward), and the update (KL-penalised rewards, GAE,
// whitening, then per minibatch the clipped surrogate plus ptx into one
// policy step with the EMA, and the clipped value loss step).
func (p *ppoBench) iteration(it int) ([numPhases]time.Duration, error) {
	var d [numPhases]time.Duration
	ph, err := p.it.Run(p.prompts, it)
	if err != nil {
		return d, err
	}
	if ph.T != p.T || ph.GenTokens != p.E*p.G {
		return d, fmt.Errorf("ppo iteration: rows of %d tokens with %d generated, want %d and %d", ph.T, ph.GenTokens, p.T, p.E*p.G)
	}
	d[phaseGenerate], d[phaseScore], d[phaseUpdate] = ph.Generate, ph.Score, ph.Update
	if ph.Decode.Steps > 0 {
		p.hostPerStep = ph.Decode.Host.Seconds() / float64(ph.Decode.Steps) // the last iteration's
	}
	return d, nil
}

// The phases of a PPO iteration, timed apart.
const (
	phaseGenerate = iota
	phaseScore
	phaseUpdate
	numPhases
)

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
		host := Metric{Name: "host per decoding step", Value: p.hostPerStep * 1e6, Unit: "µs"}
		e.stepResult("ppo", prefix+names[0], fmt.Sprintf("%d prompts of %d tokens + %d new, KV cache, batches of %d, T=1", p.E, p.P, p.G, p.genBatch),
			"tokens/s", E*float64(p.G), genFLOPs, phase(phaseGenerate), host)
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
