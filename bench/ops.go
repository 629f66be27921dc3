package bench

import (
	"fmt"
	"runtime"
	"slices"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
)

// opCase is one op benchmark: what it is, the work of one call, and how to
// set it up on the backend.
type opCase struct {
	group, name, shape string
	// ceiling is CeilCompute (the figure is a FLOP rate of work FLOPs) or
	// CeilMemory (GB/s of work bytes).
	ceiling string
	work    float64
	// unit is the figure's unit: "" for GFLOP/s (compute) or GB/s
	// (memory); attention's is TFLOP/s.
	unit string
	// extra are secondary rates of the same timing: Value is the work
	// per call in Unit's numerator (scaled by 1e9 for G-units).
	extra []Metric
	// setup allocates the operands and returns the call to time; call i
	// may rotate inputs with i. The cases build it with env.setup.
	setup func() (run func(i int) error, err error)
}

// operands allocates the tensors of one op benchmark's setup and keeps the
// first error, so a setup allocates everything and checks once, the way
// gpu.Backend keeps the errors of its ops. A failed allocation gives nil.
type operands struct {
	e   *env
	err error
}

// setup makes an opCase.setup of f, which allocates through o and returns
// the call to time. f checks o.err before running ops of its own (its
// tensors may be nil). The call returns no error: the backend keeps its
// ops' errors for Sync.
func (e *env) setup(f func(o *operands) func(i int)) func() (func(int) error, error) {
	return func() (func(int) error, error) {
		o := &operands{e: e}
		call := f(o)
		if o.err != nil {
			return nil, o.err
		}
		return func(i int) error {
			call(i)
			return nil
		}, nil
	}
}

// check keeps the first error, with the shape being allocated.
func (o *operands) check(err error, shape []int) {
	if err != nil && o.err == nil {
		o.err = fmt.Errorf("allocate %v: %w", shape, err)
	}
}

// The tensors of a case are of the activation class (dtype o.e.act: the
// activations, their gradients and the weights the ops read) or of the
// float32 class (statistics, losses, parameter gradients, optimizer
// state), as gpu.Checker states op by op; every helper takes the dtype.

// alloc is a tensor of dtype dt of random values in ±1 (env.alloc).
func (o *operands) alloc(dt gpu.DType, shape ...int) *gpu.Tensor {
	t, err := o.e.alloc(dt, shape...)
	o.check(err, shape)
	return t
}

// allocs is k tensors of dtype dt of random values in ±1, each drawn anew.
func (o *operands) allocs(dt gpu.DType, k int, shape ...int) []*gpu.Tensor {
	ts := make([]*gpu.Tensor, k)
	for j := range ts {
		ts[j] = o.alloc(dt, shape...)
	}
	return ts
}

// tensors is k tensors of dtype dt holding host (env.tensors).
func (o *operands) tensors(dt gpu.DType, k int, host []float32, shape ...int) []*gpu.Tensor {
	ts, err := o.e.tensors(dt, k, host, shape...)
	o.check(err, shape)
	return ts
}

// randoms is k tensors of dtype dt holding the same random values in
// ±scale, drawn once: copies an op rotates through to read them from
// memory.
func (o *operands) randoms(dt gpu.DType, k int, scale float32, shape ...int) []*gpu.Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return o.tensors(dt, k, o.e.random(n, scale), shape...)
}

// ints is an Int32 tensor holding host.
func (o *operands) ints(host []int32, shape ...int) *gpu.Tensor {
	t, err := o.e.intTensor(host, shape...)
	o.check(err, shape)
	return t
}

// zeros is a zero-filled tensor of type dt.
func (o *operands) zeros(dt gpu.DType, shape ...int) *gpu.Tensor {
	t, err := o.e.b.Alloc(dt, shape...)
	o.check(err, shape)
	return t
}

// namedConfig is a model config with its step shape.
type namedConfig struct {
	name  string
	cfg   model.Config
	shape Shape
}

// configs resolves Options.Configs (validated by Run).
func (e *env) configs() []namedConfig {
	var out []namedConfig
	for _, name := range e.opt.Configs {
		cfg, _ := model.ConfigByName(name)
		out = append(out, namedConfig{name, cfg, DefaultShape(name, e.opt.Batch, e.opt.Seq)})
	}
	return out
}

// opCases lists the op benchmarks of this run, in table order.
func (e *env) opCases() []opCase {
	var cs []opCase
	cs = append(cs, e.matmulCases()...)
	cs = append(cs, e.attentionCases()...)
	cs = append(cs, e.logSoftmaxCases()...)
	cs = append(cs, e.crossEntropyCases()...)
	cs = append(cs, e.layerNormCases()...)
	cs = append(cs, e.adamWCases()...)
	cs = append(cs, e.decodeAttentionCases()...)
	cs = append(cs, e.sampleCases()...)
	return cs
}

// runOp sets up, measures and records one op benchmark.
func (e *env) runOp(c opCase) error {
	if !e.selected(c.group, c.name) {
		return nil
	}
	if err := e.ctx.Err(); err != nil {
		return fmt.Errorf("bench: interrupted: %w", err)
	}
	e.opt.Log.Debug().Str("bench", c.group+"/"+c.name).Msg("set up")
	run, err := c.setup()
	if err == nil {
		err = e.b.Sync()
	}
	if err != nil {
		return fmt.Errorf("bench %s/%s (%s): set up: %w", c.group, c.name, c.shape, err)
	}
	runtime.GC() // the previous benchmark's buffers, not during the timing
	m, err := measure(e.ctx, e.b, e.opt.Timing, run)
	if err != nil {
		return fmt.Errorf("bench %s/%s (%s): %w", c.group, c.name, c.shape, err)
	}
	unit, scale := c.rateUnit()
	r := e.result(c.group, c.name, c.shape, unit, c.work, scale, c.ceiling, c.work, m)
	for _, x := range c.extra {
		scale := 1.0
		if len(x.Unit) > 0 && x.Unit[0] == 'G' {
			scale = 1e9
		}
		r.Extra = append(r.Extra, Metric{Name: x.Name, Value: rate(x.Value, m.stats.Median) / scale, Unit: x.Unit})
	}
	e.add(r)
	return nil
}

// rateUnit is the case's unit and the scale that divides work/s into it.
func (c opCase) rateUnit() (string, float64) {
	switch {
	case c.unit == "TFLOP/s":
		return c.unit, 1e12
	case c.ceiling == CeilMemory:
		return "GB/s", 1e9
	}
	return "GFLOP/s", 1e9
}

// ---- matmul ----------------------------------------------------------

// matmulCases: square products, every product of a training step at each
// config's shape, and the few-row products of decoding.
func (e *env) matmulCases() []opCase {
	sq, big := []int{256, 512, 1024}, 1024
	if e.opt.Full {
		sq = append(sq, 2048)
	}
	if !e.isCPU {
		sq, big = []int{1024, 2048, 4096}, 4096
		if e.opt.Full {
			sq = append(sq, 8192)
		}
	}
	var cs []opCase
	for _, n := range sq {
		cs = append(cs, e.mm(fmt.Sprintf("square %d", n), n, n, n, false, false, 0, false))
	}
	cs = append(cs, e.mm(fmt.Sprintf("square %d Aᵀ", big), big, big, big, true, false, 0, false))
	cs = append(cs, e.mm(fmt.Sprintf("square %d Bᵀ", big), big, big, big, false, true, 0, false))
	for _, nc := range e.configs() {
		c, V := nc.cfg.NEmbd, nc.cfg.VocabSize
		rows := nc.shape.Batch * nc.shape.Seq
		for _, s := range []struct {
			what           string
			m, n, k        int
			transA, transB bool
			beta           float32
		}{
			{"qkv fwd", rows, 3 * c, c, false, false, 0},
			{"attproj fwd", rows, c, c, false, false, 0},
			{"fc fwd", rows, 4 * c, c, false, false, 0},
			{"fcproj fwd", rows, c, 4 * c, false, false, 0},
			{"fc dinp", rows, c, 4 * c, false, true, 0},
			{"fc dweight", c, 4 * c, rows, true, false, 1},
			{"qkv dweight", c, 3 * c, rows, true, false, 1},
			{"lmhead fwd", rows, V, c, false, true, 0},
			{"lmhead dinp", rows, c, V, false, false, 0},
			{"lmhead dweight", V, c, rows, true, false, 1},
		} {
			cs = append(cs, e.mm(nc.name+" "+s.what, s.m, s.n, s.k, s.transA, s.transB, s.beta, false))
		}
		// Decoding multiplies a few rows by every weight matrix in turn:
		// the weights stream from memory when the model exceeds the cache.
		cold := int64(nc.cfg.NumParams()*e.actSize) > LastLevelCache()
		for _, m := range slices.Compact([]int{1, nc.shape.MiniBatch}) {
			cs = append(cs, e.mm(fmt.Sprintf("%s decode qkv m=%d", nc.name, m), m, 3*c, c, false, false, 0, cold))
		}
		cs = append(cs, e.mm(fmt.Sprintf("%s decode lmhead m=%d", nc.name, nc.shape.MiniBatch), nc.shape.MiniBatch, V, c, false, true, 0, cold))
	}
	return cs
}

// mm is C[m,n] = op(A)·op(B) + beta·C with A and B in the activation
// dtype; C too, except for the accumulating products (beta ≠ 0: the weight
// gradients), whose C is float32 as a parameter gradient is. rotateB
// rotates copies of B (the weights) through the rotation footprint.
func (e *env) mm(name string, m, n, k int, transA, transB bool, beta float32, rotateB bool) opCase {
	shape := fmt.Sprintf("%d×%d×%d", m, n, k)
	switch {
	case transA:
		shape += " Aᵀ"
	case transB:
		shape += " Bᵀ"
	}
	if beta != 0 {
		shape += " +="
	}
	if rotateB {
		shape += " cold B"
	}
	return opCase{
		group: "matmul", name: name, shape: shape, ceiling: CeilCompute, work: MatMulFLOPs(m, n, k),
		setup: e.setup(func(o *operands) func(int) {
			aShape, bShape := []int{m, k}, []int{k, n}
			if transA {
				aShape = []int{k, m}
			}
			if transB {
				bShape = []int{n, k}
			}
			copies := 1
			if rotateB {
				copies = e.copies(int64(e.actSize * k * n))
			}
			cType := e.act
			if beta != 0 {
				cType = gpu.Float32
			}
			A, Bs, C := o.alloc(e.act, aShape...), o.randoms(e.act, copies, 1, bShape...), o.alloc(cType, m, n)
			return func(i int) { e.b.MatMul(C, A, Bs[i%copies], transA, transB, 1, beta) }
		}),
	}
}

// ---- attention -------------------------------------------------------

type attnShape struct {
	label      string
	B, T, C, H int
}

// attentionCases: each config's training shape, then head sizes 32, 64 and
// 128 (768 wide: 24, 12 and 6 heads) across sequence lengths at a fixed
// token count per call. Rates are TFLOP/s of AttentionFLOPs,
// FlashAttention's count.
func (e *env) attentionCases() []opCase {
	var shapes []attnShape
	for _, nc := range e.configs() {
		shapes = append(shapes, attnShape{nc.name, nc.shape.Batch, nc.shape.Seq, nc.cfg.NEmbd, nc.cfg.NHead})
	}
	tokens, Ts := 2048, []int{128, 512}
	if e.opt.Full {
		Ts = []int{128, 256, 512, 1024}
	}
	if !e.isCPU {
		tokens, Ts = 16384, []int{512, 2048}
		if e.opt.Full {
			Ts = []int{512, 1024, 2048, 4096}
		}
	}
	for _, hs := range []int{32, 64, 128} {
		for _, T := range Ts {
			shapes = append(shapes, attnShape{fmt.Sprintf("hs%d T%d", hs, T), max(1, tokens/T), T, 768, 768 / hs})
		}
	}
	var cs []opCase
	for _, s := range shapes {
		for _, bwd := range []bool{false, true} {
			cs = append(cs, e.attention(s, bwd))
		}
	}
	return cs
}

func (e *env) attention(s attnShape, bwd bool) opCase {
	B, T, C, H := s.B, s.T, s.C, s.H
	pass := "fwd"
	if bwd {
		pass = "bwd"
	}
	return opCase{
		group: "attention", name: s.label + " " + pass,
		shape:   fmt.Sprintf("B%d T%d C%d H%d hs%d causal", B, T, C, H, C/H),
		ceiling: CeilCompute, work: AttentionFLOPs(B, T, H, C/H, bwd), unit: "TFLOP/s",
		setup: e.setup(func(o *operands) func(int) {
			qkv, out, lse := o.alloc(e.act, B, T, 3*C), o.alloc(e.act, B, T, C), o.alloc(gpu.Float32, B, H, T)
			if !bwd {
				return func(int) { e.b.AttentionForward(out, lse, qkv, nil, H, H) }
			}
			dout, dqkv := o.alloc(e.act, B, T, C), o.alloc(e.act, B, T, 3*C)
			if o.err != nil {
				return nil
			}
			e.b.AttentionForward(out, lse, qkv, nil, H, H)
			return func(int) { e.b.AttentionBackward(dqkv, dout, qkv, out, lse, nil, H, H) }
		}),
	}
}

// ---- log-softmax -----------------------------------------------------

type rowsShape struct {
	label string
	N, V  int
}

// lsmShapes: each config's LM-head output (B·T rows of the vocabulary),
// and GPT-2's vocabulary at 256 rows.
func (e *env) lsmShapes() []rowsShape {
	var out []rowsShape
	seen := map[[2]int]bool{}
	add := func(label string, n, v int) {
		if !seen[[2]int{n, v}] {
			seen[[2]int{n, v}] = true
			out = append(out, rowsShape{label, n, v})
		}
	}
	for _, nc := range e.configs() {
		add(nc.name, nc.shape.Batch*nc.shape.Seq, nc.cfg.VocabSize)
	}
	add("V50257", 256, 50257)
	return out
}

// logSoftmaxCases: the fused forward (one read of the logits counted) and
// backward (one read and one write: the gradient overwrites the logits),
// the logits in the activation dtype.
func (e *env) logSoftmaxCases() []opCase {
	var cs []opCase
	for _, s := range e.lsmShapes() {
		N, V := s.N, s.V
		bytes := int64(e.actSize * N * V)
		k := e.copies(bytes)
		shape := fmt.Sprintf("%d×%d", N, V)
		cs = append(cs, opCase{
			group: "logsoftmax", name: s.label + " fwd", shape: shape + ", logits read once", ceiling: CeilMemory, work: float64(bytes),
			setup: e.setup(func(o *operands) func(int) {
				logits, targets, logp := o.randoms(e.act, k, 4, N, V), o.ints(e.randomInts(N, V), N), o.alloc(gpu.Float32, N)
				ent, lse := o.alloc(gpu.Float32, N), o.alloc(gpu.Float32, N)
				return func(i int) { e.b.LogSoftmaxForward(logp, ent, lse, logits[i%k], targets) }
			}),
		})
		cs = append(cs, opCase{
			group: "logsoftmax", name: s.label + " bwd", shape: shape + ", in place: read + write", ceiling: CeilMemory, work: float64(2 * bytes),
			setup: e.setup(func(o *operands) func(int) {
				logits, targets, logp := o.randoms(e.act, k, 4, N, V), o.ints(e.randomInts(N, V), N), o.alloc(gpu.Float32, N)
				dlogp, lses := o.alloc(gpu.Float32, N), o.allocs(gpu.Float32, k, N)
				if o.err != nil {
					return nil
				}
				for j := range k {
					e.b.LogSoftmaxForward(logp, nil, lses[j], logits[j], targets)
				}
				// Later calls run on earlier gradients: the same work, as
				// nothing in the pass depends on the values.
				return func(i int) { e.b.LogSoftmaxBackward(logits[i%k], lses[i%k], nil, targets, dlogp, nil) }
			}),
		})
	}
	return cs
}

// ---- cross-entropy ---------------------------------------------------

// crossEntropyCases: the loss's log-softmax pair as one call, forward
// (LogSoftmaxForward: per-row log-probability of the target and
// log-sum-exp) then backward (LogSoftmaxBackward: the gradient of the mean
// loss written over the logits), at the log-softmax shapes and, with Full,
// GPT-2's LM head at 8 sequences of 1024 tokens. Counted bytes:
// CrossEntropyBytes, the logits read once and their gradient written once
// in the activation dtype; the pair reads the logits twice, so it can
// reach at most about 2/3 of the memory ceiling, a fused kernel all of it.
func (e *env) crossEntropyCases() []opCase {
	shapes := e.lsmShapes()
	if e.opt.Full {
		shapes = append(shapes, rowsShape{"V50257 N8192", 8192, 50257})
	}
	var cs []opCase
	for _, s := range shapes {
		N, V := s.N, s.V
		bytes := CrossEntropyBytes(N, V, e.actSize)
		k := e.copies(int64(e.actSize * N * V))
		cs = append(cs, opCase{
			group: "crossentropy", name: s.label,
			shape:   fmt.Sprintf("%d×%d %s, log-softmax fwd + bwd; logits read + gradient written", N, V, e.act),
			ceiling: CeilMemory, work: bytes,
			setup: e.setup(func(o *operands) func(int) {
				logits, targets := o.randoms(e.act, k, 4, N, V), o.ints(e.randomInts(N, V), N)
				logp, lse := o.alloc(gpu.Float32, N), o.alloc(gpu.Float32, N)
				dlogp := o.tensors(gpu.Float32, 1, slices.Repeat([]float32{-1 / float32(N)}, N), N)
				if o.err != nil {
					return nil
				}
				// Later calls run on earlier gradients: the same work.
				return func(i int) {
					x := logits[i%k]
					e.b.LogSoftmaxForward(logp, nil, lse, x, targets)
					e.b.LogSoftmaxBackward(x, lse, nil, targets, dlogp[0], nil)
				}
			}),
		})
	}
	return cs
}

// ---- layernorm -------------------------------------------------------

// layerNormCases: forward (reads the input, weight and bias, writes the
// output and the float32 statistics) and backward (reads dout, the input,
// the weight and the statistics, accumulates into dinp and into the
// float32 dweight and dbias) at each config's activation shape; the
// activation-class tensors in the activation dtype.
func (e *env) layerNormCases() []opCase {
	var cs []opCase
	for _, nc := range e.configs() {
		N, C := nc.shape.Batch*nc.shape.Seq, nc.cfg.NEmbd
		shape := fmt.Sprintf("%d×%d", N, C)
		a := e.actSize
		fwdBytes := int64(a*(2*N*C+2*C) + 4*2*N)
		bwdBytes := int64(a*(4*N*C+C) + 4*(4*C+2*N))
		cs = append(cs, opCase{
			group: "layernorm", name: nc.name + " fwd", shape: shape, ceiling: CeilMemory, work: float64(fwdBytes),
			setup: e.setup(func(o *operands) func(int) {
				k := e.copies(fwdBytes)
				inp, out := o.randoms(e.act, k, 2, N, C), o.randoms(e.act, k, 1, N, C)
				mean, rstd := o.randoms(gpu.Float32, k, 1, N), o.randoms(gpu.Float32, k, 1, N)
				w, bias := o.alloc(e.act, C), o.alloc(e.act, C)
				return func(i int) {
					j := i % k
					e.b.LayerNormForward(out[j], mean[j], rstd[j], inp[j], w, bias)
				}
			}),
		})
		cs = append(cs, opCase{
			group: "layernorm", name: nc.name + " bwd", shape: shape, ceiling: CeilMemory, work: float64(bwdBytes),
			setup: e.setup(func(o *operands) func(int) {
				k := e.copies(bwdBytes)
				inp, dout, dinp := o.randoms(e.act, k, 2, N, C), o.randoms(e.act, k, 1, N, C), o.randoms(e.act, k, 1, N, C)
				w, bias, dw, db := o.alloc(e.act, C), o.alloc(e.act, C), o.alloc(gpu.Float32, C), o.alloc(gpu.Float32, C)
				out, mean, rstd := o.alloc(e.act, N, C), o.allocs(gpu.Float32, k, N), o.allocs(gpu.Float32, k, N)
				if o.err != nil {
					return nil
				}
				for j := range k {
					e.b.LayerNormForward(out, mean[j], rstd[j], inp[j], w, bias)
				}
				return func(i int) {
					j := i % k
					e.b.LayerNormBackward(dinp[j], dw, db, dout[j], inp[j], w, mean[j], rstd[j])
				}
			}),
		})
	}
	return cs
}

// ---- AdamW -----------------------------------------------------------

// adamWCases: one fused AdamW pass (reads params, grads and both moments,
// writes params and moments: 7 floats per parameter; in the bf16 mode it
// also writes the bf16 copy of the weights the ops read, 2 bytes more)
// over each config's parameter count and over 16M parameters.
func (e *env) adamWCases() []opCase {
	type size struct {
		label string
		n     int
	}
	var sizes []size
	seen := map[int]bool{}
	for _, nc := range e.configs() {
		if n := nc.cfg.NumParams(); !seen[n] {
			seen[n] = true
			sizes = append(sizes, size{nc.name, n})
		}
	}
	if !seen[16<<20] {
		sizes = append(sizes, size{"16M", 16 << 20})
	}
	var cs []opCase
	for _, s := range sizes {
		n := s.n
		bf16 := e.act == gpu.BF16
		bytes, what := int64(7*4*n), "clip + decay"
		if bf16 {
			bytes, what = bytes+int64(2*n), "clip + decay + bf16 copy"
		}
		cs = append(cs, opCase{
			group: "adamw", name: s.label, shape: fmt.Sprintf("%s params, %s", groupThousands(int64(n)), what), ceiling: CeilMemory, work: float64(bytes),
			setup: e.setup(func(o *operands) func(int) {
				k := e.copies(int64(16 * n))
				host := e.random(n, 1)
				p, g, m := o.tensors(gpu.Float32, k, host, n), o.randoms(gpu.Float32, k, 1e-2, n), o.randoms(gpu.Float32, k, 1e-3, n)
				for i := range host {
					host[i] = host[i]*host[i]*1e-4 + 1e-8
				}
				v, normSq := o.tensors(gpu.Float32, k, host, n), o.zeros(gpu.Float32, 1)
				lowp := make([]*gpu.Tensor, k) // nil: no bf16 copy
				if bf16 {
					for j := range lowp {
						lowp[j] = o.zeros(gpu.BF16, n)
					}
				}
				if o.err != nil {
					return nil
				}
				e.b.SumSquares(normSq, g[0])
				h := gpu.AdamW{LR: 1e-4, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, MaxNorm: 1, GradScale: 1}
				return func(i int) {
					j := i % k
					h.Step = i + 1
					e.b.AdamW(p[j], lowp[j], g[j], m[j], v[j], normSq, h)
				}
			}),
		})
	}
	return cs
}

// ---- decode attention ------------------------------------------------

type decodeShape struct {
	label       string
	B, H, hs, S int
}

// decodeAttentionCases: one query per sequence against a full KV cache:
// each config at its PPO rollout shape, then head sizes 64 and 128 at 512
// cached positions (and 1024 with Full). Counted bytes, in the activation
// dtype: the keys and values read, the query read and the output written.
func (e *env) decodeAttentionCases() []opCase {
	var shapes []decodeShape
	for _, nc := range e.configs() {
		shapes = append(shapes, decodeShape{nc.name, nc.shape.MiniBatch, nc.cfg.NHead, nc.cfg.HeadSize(), nc.shape.Prompt + nc.shape.New})
	}
	B, Ss := 16, []int{512}
	if e.opt.Full {
		Ss = []int{512, 1024}
	}
	if !e.isCPU {
		B = 64
	}
	for _, hs := range []int{64, 128} {
		for _, S := range Ss {
			shapes = append(shapes, decodeShape{fmt.Sprintf("hs%d S%d", hs, S), B, 768 / hs, hs, S})
		}
	}
	var cs []opCase
	for _, s := range shapes {
		B, H, hs, S := s.B, s.H, s.hs, s.S
		C := H * hs
		cache := int64(e.actSize * B * H * S * hs)
		bytes := 2*cache + int64(e.actSize*2*B*C)
		cs = append(cs, opCase{
			group: "decode-attn", name: s.label, shape: fmt.Sprintf("B%d H%d hs%d, %d cached", B, H, hs, S), ceiling: CeilMemory, work: float64(bytes),
			extra: []Metric{{Name: "compute", Value: DecodeAttentionFLOPs(B, S, H, hs), Unit: "GFLOP/s"}},
			setup: e.setup(func(o *operands) func(int) {
				k := e.copies(2 * cache)
				qkv := o.alloc(e.act, B, 3*C)
				kc, vc := o.randoms(e.act, k, 1, B, H, S, hs), o.randoms(e.act, k, 1, B, H, S, hs)
				lens, out := o.ints(slices.Repeat([]int32{int32(S)}, B), B), o.alloc(e.act, B, C)
				return func(i int) { e.b.AttentionDecode(out, qkv, kc[i%k], vc[i%k], lens, H, H) }
			}),
		})
	}
	return cs
}

// ---- sampling --------------------------------------------------------

// sampleCases: one token per row of logits, as PPO's rollouts (temperature
// 1) and evaluation (greedy) draw them, at each config's PPO batch and at
// GPT-2's vocabulary, where top-p (a sort per row) is measured too.
// Counted bytes: the logits read once, in the activation dtype.
func (e *env) sampleCases() []opCase {
	type sampleShape struct {
		label string
		N, V  int
		s     gpu.Sampling
		desc  string
	}
	var shapes []sampleShape
	for _, nc := range e.configs() {
		if nc.cfg.VocabSize != 50257 {
			shapes = append(shapes, sampleShape{nc.name + " T=1", nc.shape.MiniBatch, nc.cfg.VocabSize, gpu.Sampling{Temperature: 1}, "temperature 1"})
		}
	}
	rows := 16
	if !e.isCPU {
		rows = 64
	}
	shapes = append(shapes,
		sampleShape{"V50257 greedy", rows, 50257, gpu.Sampling{}, "greedy"},
		sampleShape{"V50257 T=1", rows, 50257, gpu.Sampling{Temperature: 1}, "temperature 1"},
		sampleShape{"V50257 top-p 0.9", rows, 50257, gpu.Sampling{Temperature: 1, TopP: 0.9}, "temperature 1, top-p 0.9"},
	)
	var cs []opCase
	for _, s := range shapes {
		N, V, smp := s.N, s.V, s.s
		bytes := int64(e.actSize * N * V)
		cs = append(cs, opCase{
			group: "sample", name: s.label, shape: fmt.Sprintf("%d×%d, %s", N, V, s.desc), ceiling: CeilMemory, work: float64(bytes),
			extra: []Metric{{Name: "rows", Value: float64(N), Unit: "rows/s"}},
			setup: e.setup(func(o *operands) func(int) {
				k := e.copies(bytes)
				logits, tokens := o.randoms(e.act, k, 4, N, V), o.zeros(gpu.Int32, N)
				seed := e.opt.Seed
				return func(i int) { e.b.Sample(tokens, logits[i%k], smp, gpu.Mix64(seed, uint64(i))) }
			}),
		})
	}
	return cs
}
