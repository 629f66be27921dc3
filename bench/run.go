package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"regexp"
	"slices"
	"time"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
)

// Options choose what Run measures and how long it takes.
type Options struct {
	// Configs are the model configurations of the step benchmarks and of
	// the model-shaped ops ("tiny", "gpt2", ...); empty: tiny.
	Configs []string
	// Batch and Seq override every config's default batch (sequences per
	// step; the PPO minibatch, with twice as many episodes per iteration)
	// and sequence length (tokens per sequence; a PPO episode is half
	// prompt, half generated). 0 keeps the defaults (DefaultShape).
	Batch, Seq int
	// Full adds larger shapes: bigger square products, longer attention
	// sequences and decode caches. (instructgo bench --full also runs the
	// gpt2 config and samples longer.)
	Full bool
	// Precision is the precision mode of the run: the step benchmarks
	// build their models with it, the op benchmarks run in its activation
	// dtype (bf16 tensors for BF16), and the compute ceiling of a GPU is
	// the GEMM rate in it. TF32 products are the backend's switch, set by
	// the caller (the command line does, with --precision tf32).
	Precision model.Precision
	// Only restricts the run to "ops" or "steps"; "" runs both.
	Only string
	// Match, when set, keeps only the benchmarks whose key (group/name, as
	// in the table) it matches. The ceilings are always measured.
	Match *regexp.Regexp
	// Timing is the timing of the op benchmarks; StepTiming that of the
	// steps (its MinSample is ignored: every step is timed on its own).
	// Zero values take DefaultTiming and DefaultStepTiming.
	Timing     Timing
	StepTiming Timing
	// CeilingTime is spent on each ceiling measurement (0: 1 s).
	CeilingTime time.Duration
	// RotateBytes is the footprint the memory-bound ops rotate their
	// inputs through (0: twice the last-level cache, at least 64 MiB, on
	// the cpu backend; 256 MiB on others). MemBytes is the size of each
	// buffer of the CPU bandwidth measurement (0: four times the
	// last-level cache, at least 128 MiB).
	RotateBytes int64
	MemBytes    int64
	// Machine describes the machine and build; Run fills Backend,
	// Threads, CacheBytes, the GPU name where the backend tells, and the
	// load averages.
	Machine Machine
	// Seed makes the random inputs reproducible.
	Seed uint64
	// Log receives one line per figure; the zero Logger discards them.
	Log zerolog.Logger
}

// DefaultStepTiming is the timing of the step benchmarks: a warm-up step,
// then at least 5 timed steps over at least a second (at most 20).
func DefaultStepTiming() Timing {
	return Timing{Warmup: 1, MinReps: 5, MaxReps: 20, MinTime: time.Second}
}

// Shape is the batch shape of one config's step benchmarks.
type Shape struct {
	Batch int // SFT sequences per step; RM responses per step (K = 4 per prompt)
	Seq   int // tokens per sequence
	// PPO: MiniBatch episodes per update, Episodes per iteration, and each
	// episode's Prompt and New (generated) tokens.
	MiniBatch, Episodes, Prompt, New int
}

// DefaultShape is a config's default step shape: the tiny model's SFT
// batch (16 × 128) and PPO at half the paper's minibatch with 32 prompt
// and 32 generated tokens; GPT-2 small at one sequence of 256 tokens (a
// CPU takes about two seconds per step) and a PPO minibatch of 4.
// batch and seq, when positive, override it.
func DefaultShape(cfg string, batch, seq int) Shape {
	s := Shape{Batch: 16, Seq: 128, MiniBatch: 32, Prompt: 32, New: 32}
	if cfg != "tiny" {
		s = Shape{Batch: 1, Seq: 256, MiniBatch: 4, Prompt: 32, New: 32}
	}
	if batch > 0 {
		s.Batch, s.MiniBatch = batch, batch
	}
	if seq > 0 {
		s.Seq = seq
		s.Prompt = seq / 2
		s.New = seq - s.Prompt
	}
	s.Episodes = 2 * s.MiniBatch
	return s
}

// rmK is the number of ranked responses per prompt of the RM step.
const rmK = 4

// check reports a shape the config cannot run.
func (s Shape) check(name string, cfg model.Config) error {
	switch {
	case s.Batch < 1 || s.MiniBatch < 1:
		return fmt.Errorf("config %s: batch %d must be at least 1", name, s.Batch)
	case s.Seq < 4:
		return fmt.Errorf("config %s: sequence length %d must be at least 4", name, s.Seq)
	case s.Seq > cfg.MaxSeqLen:
		return fmt.Errorf("config %s: sequence length %d exceeds the model's context of %d", name, s.Seq, cfg.MaxSeqLen)
	}
	return nil
}

// env is one run's state: the backend, options, ceilings and results.
type env struct {
	ctx   context.Context
	b     gpu.Backend
	opt   Options
	rng   *rand.Rand
	ceil  Ceilings
	isCPU bool
	// act is the activation dtype of the run's precision, actSize its
	// bytes per element.
	act     gpu.DType
	actSize int
	rep     *Report
	inits   map[string][]float32 // InitGPT2 per config, drawn once
	rotate  int64
}

// Run measures the ceilings, then the op and step benchmarks Options
// select, on b, and returns the report. It stops at the first failure (a
// backend error is sticky, so nothing after it could be measured) or when
// ctx is cancelled. It uses b from the calling goroutine only.
func Run(ctx context.Context, b gpu.Backend, opt Options) (*Report, error) {
	start := time.Now()
	if len(opt.Configs) == 0 {
		opt.Configs = []string{"tiny"}
	}
	switch opt.Only {
	case "", "ops", "steps":
	default:
		return nil, fmt.Errorf("bench: only %q: want ops or steps", opt.Only)
	}
	if opt.Batch < 0 || opt.Seq < 0 {
		return nil, fmt.Errorf("bench: batch %d and sequence length %d must not be negative", opt.Batch, opt.Seq)
	}
	if opt.Precision > model.BF16 {
		return nil, fmt.Errorf("bench: unknown precision %v", opt.Precision)
	}
	for _, name := range opt.Configs {
		cfg, err := model.ConfigByName(name)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		if err := DefaultShape(name, opt.Batch, opt.Seq).check(name, cfg); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
	}
	if opt.Timing == (Timing{}) {
		opt.Timing = DefaultTiming()
	}
	if opt.StepTiming == (Timing{}) {
		opt.StepTiming = DefaultStepTiming()
	}
	opt.StepTiming.MinSample = 0
	if opt.CeilingTime <= 0 {
		opt.CeilingTime = time.Second
	}
	e := newEnv(ctx, b, opt)

	m := opt.Machine
	m.Backend = b.Name()
	m.CacheBytes = LastLevelCache()
	m.LoadStart = loadAverage()
	if cb, ok := b.(*cpu.Backend); ok {
		m.Threads = cb.Threads()
	}
	if d, ok := b.(interface{ Device() string }); ok && m.GPUName == "" {
		m.GPUName = d.Device()
	}
	if cc, ok := b.(interface{ ComputeCapability() (int, int) }); ok && m.GPUComputeCapability == "" {
		major, minor := cc.ComputeCapability()
		m.GPUComputeCapability = fmt.Sprintf("%d.%d", major, minor)
	}
	e.ceil.PublishedGFLOPs, e.ceil.PublishedSource = publishedCeiling(m.GPUName, opt.Precision)
	clock := "host clock"
	if _, ok := b.(EventTimer); ok {
		clock = "device events"
	}
	match := ""
	if opt.Match != nil {
		match = opt.Match.String()
	}
	e.rep = &Report{
		Schema: SchemaVersion,
		Date:   start.UTC().Truncate(time.Second),
		Settings: Settings{
			Configs: slices.Clone(opt.Configs), Batch: opt.Batch, Seq: opt.Seq, Full: opt.Full, Only: opt.Only, Precision: opt.Precision,
			Match: match, Timing: opt.Timing, StepTiming: opt.StepTiming, CeilingTime: opt.CeilingTime, Rotate: e.rotate, Clock: clock,
		},
		Results: []Result{},
	}

	if err := e.measureCeilings(); err != nil {
		return nil, err
	}
	if opt.Only != "steps" {
		for _, c := range e.opCases() {
			if err := e.runOp(c); err != nil {
				return nil, err
			}
		}
	}
	if opt.Only != "ops" {
		for _, name := range opt.Configs {
			if err := e.runSteps(name); err != nil {
				return nil, err
			}
		}
	}
	m.LoadEnd = loadAverage()
	e.rep.Machine = m
	e.rep.Seconds = time.Since(start).Seconds()
	return e.rep, nil
}

// publishedCeiling is the published dense peak in GFLOP/s of the GPU named
// gpuName for prec, and what it is; 0 and "" when none is known.
func publishedCeiling(gpuName string, prec model.Precision) (float64, string) {
	p, ok := LookupPeak(gpuName)
	if !ok || p.For(prec) <= 0 {
		return 0, ""
	}
	return p.For(prec), fmt.Sprintf("%s, %s dense: %s", p.Card, prec, p.Source)
}

// newEnv prepares a run on b with opt (defaults already applied).
func newEnv(ctx context.Context, b gpu.Backend, opt Options) *env {
	e := &env{ctx: ctx, b: b, opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, 0xbe9c4)), inits: map[string][]float32{},
		act: opt.Precision.ActDType()}
	e.actSize = e.act.Size()
	_, e.isCPU = b.(*cpu.Backend)
	e.rotate = opt.RotateBytes
	if e.rotate <= 0 {
		e.rotate = 256 << 20
		if e.isCPU {
			e.rotate = max(2*LastLevelCache(), 64<<20)
		}
	}
	return e
}

// selected reports whether the benchmark group/name is to run.
func (e *env) selected(group, name string) bool {
	return e.opt.Match == nil || e.opt.Match.MatchString(group+"/"+name)
}

// add records a result and logs it.
func (e *env) add(r Result) {
	e.rep.Results = append(e.rep.Results, r)
	e.opt.Log.Info().Str("bench", r.Key()).Str("shape", r.Shape).
		Str("median", formatValue(r.Value)+" "+r.Unit).Str("of_measured", formatFraction(r, r.OfMeasured)).
		Str("of_published", formatFraction(r, r.OfPublished)).
		Str("time", formatDuration(r.Time.Median)).Int("n", r.Time.N).Msg("bench")
}

// result builds a Result from a measurement: unit is the rate's unit,
// scale divides work/s into it (1e9 for GFLOP/s and GB/s), ceilWork the
// work per call the ceiling fractions are computed from (FLOPs for
// compute, bytes for memory).
func (e *env) result(group, name, shape, unit string, work, scale float64, ceiling string, ceilWork float64, m measured) Result {
	s := m.stats
	r := Result{
		Group: group, Name: name, Shape: shape, Unit: unit,
		Value: rate(work, s.Median) / scale, Min: rate(work, s.Max) / scale, Max: rate(work, s.Min) / scale,
		Work: work, Ceiling: ceiling, Time: s, PerSample: m.perSample,
	}
	r.OfMeasured, r.OfPublished = e.fractions(ceiling, rate(ceilWork, s.Median))
	return r
}

// fractions are perSecond (FLOP/s or bytes/s) over the measured ceiling
// and, for a FLOP rate, over the published peak (0 where there is none).
func (e *env) fractions(ceiling string, perSecond float64) (measured, published float64) {
	c := e.ceil.ComputeGFLOPs
	if ceiling == CeilMemory {
		c = e.ceil.MemoryGBs
	}
	if c > 0 {
		measured = perSecond / 1e9 / c
	}
	if ceiling == CeilCompute && e.ceil.PublishedGFLOPs > 0 {
		published = perSecond / 1e9 / e.ceil.PublishedGFLOPs
	}
	return measured, published
}

// random returns n pseudo-random floats uniform in (−scale, scale), never
// 0, from the run's generator (fast enough for hundreds of millions).
func (e *env) random(n int, scale float32) []float32 {
	out := make([]float32, n)
	k := scale / (1 << 31)
	for i := 0; i < n; i += 2 {
		u := e.rng.Uint64()
		out[i] = (float32(int32(u)) + 0.5) * k
		if i+1 < n {
			out[i+1] = (float32(int32(u>>32)) + 0.5) * k
		}
	}
	return out
}

// randomInts returns n ids uniform in [0, hi).
func (e *env) randomInts(n, hi int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(e.rng.IntN(hi))
	}
	return out
}

// tensor allocates a float tensor of dtype dt holding host (rounded to
// bf16 for a BF16 one).
func (e *env) tensor(dt gpu.DType, host []float32, shape ...int) (*gpu.Tensor, error) {
	t, err := e.b.Alloc(dt, shape...)
	if err != nil {
		return nil, err
	}
	if err := e.b.Upload(t, host); err != nil {
		return nil, err
	}
	return t, nil
}

// tensors allocates k tensors of dtype dt and the shape holding host (the
// same values at different addresses: what the caches see is the
// addresses).
func (e *env) tensors(dt gpu.DType, k int, host []float32, shape ...int) ([]*gpu.Tensor, error) {
	ts := make([]*gpu.Tensor, k)
	for i := range ts {
		var err error
		if ts[i], err = e.tensor(dt, host, shape...); err != nil {
			return nil, err
		}
	}
	return ts, nil
}

// intTensor allocates an Int32 tensor holding host.
func (e *env) intTensor(host []int32, shape ...int) (*gpu.Tensor, error) {
	t, err := e.b.Alloc(gpu.Int32, shape...)
	if err != nil {
		return nil, err
	}
	if err := e.b.UploadInt32(t, host); err != nil {
		return nil, err
	}
	return t, nil
}

// alloc allocates a tensor of dtype dt filled with random values in ±1.
func (e *env) alloc(dt gpu.DType, shape ...int) (*gpu.Tensor, error) {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return e.tensor(dt, e.random(n, 1), shape...)
}

// copies is how many copies of a working set of bytes the memory-bound
// ops rotate through: enough to fill the rotation footprint, at most 64.
func (e *env) copies(bytes int64) int {
	if bytes <= 0 || bytes >= e.rotate {
		return 1
	}
	return int(min(64, (e.rotate+bytes-1)/bytes))
}

// initParams returns GPT-2's initialisation for cfg, drawn once per run.
func (e *env) initParams(cfg model.Config) []float32 {
	key := fmt.Sprintf("%d/%d/%d/%d/%d/%v/%s/%d/%d/%v", cfg.VocabSize, cfg.MaxSeqLen, cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.ScalarHead,
		cfg.Arch, cfg.KVHeads, cfg.Intermediate, cfg.TieEmbeddings)
	if p, ok := e.inits[key]; ok {
		return p
	}
	p := model.InitGPT2(cfg, e.opt.Seed+1)
	e.inits[key] = p
	return p
}
