package model

import (
	"fmt"
	"math"
	"strings"

	"github.com/instructgo/instructgo/gpu"
)

// Model is a network (GPT-2 or the Llama family, by Cfg.Arch) on a
// backend: parameters, optionally their gradients, and activation buffers
// sized once for the largest batch it will see. A forward or backward pass
// allocates no device memory.
type Model struct {
	Cfg    Config
	Params *Params // the float32 master weights
	Grads  *Params // float32; nil for a model that never trains

	// OnGradsReady, when set, is called during Backward with each range
	// [lo, hi) of Grads.All whose gradients that Backward has finished
	// (GradRanges, gradready.go): each block's as soon as its backward has
	// run, the rest at the end.
	OnGradsReady func(lo, hi int)
	gradGroups   [][]GradRange // GradRanges by the block that completes them

	prec Precision
	// w are the weights the ops read: Params, or in the bf16 precision
	// mode their bf16 copy (refreshed by SyncWeights and by the optimizer).
	w *Params

	b          gpu.Backend
	maxB, maxT int
	bufs       buffers
	cur        *acts // views of bufs for the last batch shape
	curB, curT int
	next       *gpu.Tensor // next-token logits [B,V] of the last Prefill or DecodeStep

	// scoreBias holds Cfg.ScoreBias on the device ([1], scalar head only);
	// biasOnDevice is the value last uploaded, so that a change of
	// Cfg.ScoreBias reaches the device at the next Forward.
	scoreBias    *gpu.Tensor
	biasOnDevice float32

	llama llamaState // the Llama family's constant tensors
}

// Options size a model's activation buffers and choose its precision.
type Options struct {
	MaxBatch  int  // sequences per forward pass
	MaxSeq    int  // tokens per sequence; at most Cfg.MaxSeqLen
	Train     bool // allocate gradients and the activations backward needs
	Precision Precision
	// AllowNonFinite lets Load read a checkpoint with NaN or infinite
	// weights (refused otherwise).
	AllowNonFinite bool
}

// New allocates a model with zeroed parameters; load a checkpoint or upload
// InitGPT2 to give it weights.
func New(b gpu.Backend, cfg Config, opt Options) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opt.MaxBatch <= 0 || opt.MaxSeq <= 0 || opt.MaxSeq > cfg.MaxSeqLen {
		return nil, fmt.Errorf("model: batch %d × sequence %d out of range (sequence at most %d)", opt.MaxBatch, opt.MaxSeq, cfg.MaxSeqLen)
	}
	if opt.Precision > BF16 {
		return nil, fmt.Errorf("model: unknown precision %v", opt.Precision)
	}
	if strings.HasPrefix(b.Name(), "cpu") { // a device reports its own out-of-memory
		if err := fitsMemory("model", footprint(cfg, opt.Precision, opt.MaxBatch, opt.MaxSeq, opt.Train)); err != nil {
			return nil, err
		}
	}
	m := &Model{Cfg: cfg, b: b, maxB: opt.MaxBatch, maxT: opt.MaxSeq, prec: opt.Precision}
	var err error
	if m.Params, err = NewParams(b, cfg); err != nil {
		return nil, err
	}
	m.w = m.Params
	if opt.Precision == BF16 {
		if m.w, err = newParams(b, cfg, gpu.BF16); err != nil {
			return nil, fmt.Errorf("bf16 weights: %w", err)
		}
	}
	if opt.Train {
		if m.Grads, err = NewParams(b, cfg); err != nil {
			return nil, fmt.Errorf("gradients: %w", err)
		}
	}
	if err := m.bufs.alloc(b, cfg, opt.Precision.ActDType(), opt.MaxBatch, opt.MaxSeq, opt.Train); err != nil {
		return nil, fmt.Errorf("activations: %w", err)
	}
	if cfg.ScalarHead {
		if m.scoreBias, err = b.Alloc(gpu.Float32, 1); err != nil {
			return nil, fmt.Errorf("score bias: %w", err)
		}
	}
	if cfg.IsLlama() {
		if err := m.llama.init(m); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Backend is the backend the model lives on.
func (m *Model) Backend() gpu.Backend { return m.b }

// Precision is the model's precision policy.
func (m *Model) Precision() Precision { return m.prec }

// LowP is the bf16 copy of the weights that the optimizer refreshes with
// every update (nil unless the precision is BF16).
func (m *Model) LowP() *Params {
	if m.w == m.Params {
		return nil
	}
	return m.w
}

// SyncWeights refreshes the weights the ops read from the master weights:
// call it after writing m.Params other than through the optimizer.
func (m *Model) SyncWeights() {
	if m.w != m.Params {
		m.b.Convert(m.w.All, m.Params.All)
	}
}

// SetParams uploads host into the master weights and refreshes the
// weights the ops read.
func (m *Model) SetParams(host []float32) error {
	if err := m.b.Upload(m.Params.All, host); err != nil {
		return err
	}
	m.SyncWeights()
	return m.b.Err()
}

// MaxBatch and MaxSeq are the largest batch shape the model accepts.
func (m *Model) MaxBatch() int { return m.maxB }

// MaxSeq is the longest sequence the model's buffers hold.
func (m *Model) MaxSeq() int { return m.maxT }

// Batch is the host side of one forward pass: B sequences of T tokens each,
// right-padded.
type Batch struct {
	B, T int
	// Tokens are the inputs, B·T ids.
	Tokens []int32
	// Targets are the next-token labels for the LM head, B·T ids, −1 where
	// no loss applies (prompt, padding). Nil for a scalar-head model.
	Targets []int32
	// ValidLen is each sequence's length before padding (1..T); nil means
	// every sequence is T long. The scalar head is read at ValidLen−1.
	ValidLen []int32
}

func (m *Model) checkBatch(in *Batch) error {
	if in.B <= 0 || in.T <= 0 || in.B > m.maxB || in.T > m.maxT {
		return fmt.Errorf("batch %d×%d does not fit the model's buffers %d×%d", in.B, in.T, m.maxB, m.maxT)
	}
	n := in.B * in.T
	if len(in.Tokens) != n {
		return fmt.Errorf("batch: %d tokens for %d×%d", len(in.Tokens), in.B, in.T)
	}
	for i, t := range in.Tokens {
		if t < 0 || int(t) >= m.Cfg.VocabSize {
			return fmt.Errorf("batch: token %d at %d outside vocabulary of %d", t, i, m.Cfg.VocabSize)
		}
	}
	if !m.Cfg.ScalarHead {
		if len(in.Targets) != n {
			return fmt.Errorf("batch: %d targets for %d×%d", len(in.Targets), in.B, in.T)
		}
		for i, t := range in.Targets {
			if t < -1 || int(t) >= m.Cfg.VocabSize {
				return fmt.Errorf("batch: target %d at %d outside vocabulary of %d", t, i, m.Cfg.VocabSize)
			}
		}
	}
	if in.ValidLen != nil {
		if len(in.ValidLen) != in.B {
			return fmt.Errorf("batch: %d valid lengths for %d sequences", len(in.ValidLen), in.B)
		}
		for i, l := range in.ValidLen {
			if l < 1 || int(l) > in.T {
				return fmt.Errorf("batch: sequence %d has valid length %d, want 1..%d", i, l, in.T)
			}
		}
	}
	return nil
}

// Forward runs the network on a batch. With train set, dropout is active
// (masks drawn from seed) and everything Backward needs is kept. An LM model
// ends with per-token log-probabilities of the targets and entropies
// (LogProbs, Entropy); a scalar-head model with per-token values (Values).
func (m *Model) Forward(in *Batch, train bool, seed uint64) error {
	return m.forward(in, train, seed, nil)
}

// ForwardLM is the training forward pass of an LM model for a loss
// L = Σ_i dlogp[i]·logp[i] whose weights dlogp [B·T] (float32; 0 where no
// loss applies) are known before it runs, as the next-token loss of
// pretraining and SFT: the head is the fused cross-entropy, which leaves
// LogProbs and, in the logits buffer, ∂L/∂logits, so the Backward(nil, nil)
// that follows starts from there instead of recomputing the softmax. It
// computes no entropies (Entropy is nil until the next Forward). Dropout
// masks are drawn from seed, as in Forward.
func (m *Model) ForwardLM(in *Batch, seed uint64, dlogp *gpu.Tensor) error {
	if m.Cfg.ScalarHead {
		return fmt.Errorf("forward: a scalar-head model has no LM loss")
	}
	if dlogp == nil || dlogp.Len() != in.B*in.T {
		return fmt.Errorf("forward: the loss weights must have %d elements", in.B*in.T)
	}
	return m.forward(in, true, seed, dlogp)
}

// forward is Forward, or with dlogp (an LM model training) ForwardLM.
func (m *Model) forward(in *Batch, train bool, seed uint64, dlogp *gpu.Tensor) error {
	if err := m.checkBatch(in); err != nil {
		return err
	}
	if train && m.Grads == nil {
		return fmt.Errorf("forward: model was allocated without training buffers")
	}
	a := m.views(in.B, in.T)
	if err := m.upload(a, in); err != nil {
		return err
	}
	b, c := m.b, m.Cfg
	if c.ScalarHead && c.ScoreBias != m.biasOnDevice {
		if math.IsNaN(float64(c.ScoreBias)) || math.IsInf(float64(c.ScoreBias), 0) {
			return fmt.Errorf("forward: score bias %g is not finite", c.ScoreBias)
		}
		if err := b.Upload(m.scoreBias, []float32{c.ScoreBias}); err != nil {
			return fmt.Errorf("forward: score bias: %w", err)
		}
		m.biasOnDevice = c.ScoreBias
	}
	drop := float32(0)
	if train {
		drop = c.Dropout
	}
	validLen := a.validLen
	if in.ValidLen == nil {
		validLen = nil
	}

	m.body(a, validLen, drop, seed)
	m.headForward(a, dlogp)
	a.train, a.seed, a.padded = train, seed, in.ValidLen != nil
	a.logitsGrad = dlogp != nil
	if err := b.Err(); err != nil {
		return fmt.Errorf("forward: %w", err)
	}
	return nil
}

// body runs the network from the embeddings to the final normalisation
// (a.lnf) on the tokens already in a, with residual dropout drop (0: none).
func (m *Model) body(a *acts, validLen *gpu.Tensor, drop float32, seed uint64) {
	if m.Cfg.IsLlama() {
		m.llamaBody(a, validLen, drop, seed)
	} else {
		m.gpt2Body(a, validLen, drop, seed)
	}
}

// gpt2Body is body for GPT-2.
func (m *Model) gpt2Body(a *acts, validLen *gpu.Tensor, drop float32, seed uint64) {
	b, c := m.b, m.Cfg
	p := m.w
	b.EmbeddingForward(a.encoded3, a.tokens, nil, p.WTE, p.WPE)
	if drop > 0 {
		b.Dropout(a.encoded, a.encoded, drop, dropSeed(seed, 0))
	}
	// Each residual add is fused with the LayerNorm that reads its sum:
	// res2 with the block's ln2, res3 with the next block's ln1 (or the
	// final LayerNorm). Only the first ln1 stands alone.
	s0 := &a.layers[0]
	b.LayerNormForward(s0.ln1, s0.ln1Mean, s0.ln1Rstd, a.encoded, p.Blocks[0].LN1W, p.Blocks[0].LN1B)
	residual := a.encoded
	for l := range p.Blocks {
		w, s := &p.Blocks[l], &a.layers[l]
		b.MatMulBias(s.qkv, s.ln1, w.AttnW, w.AttnB)
		b.AttentionForward(s.atty3, s.lse, s.qkv3, validLen, c.NHead, c.NHead)
		b.MatMulBias(s.attProj, s.atty, w.AttnProjW, w.AttnPrB)
		if drop > 0 {
			b.Dropout(s.attProj, s.attProj, drop, dropSeed(seed, 2*l+1))
		}
		b.AddLayerNormForward(s.res2, s.ln2, s.ln2Mean, s.ln2Rstd, residual, s.attProj, w.LN2W, w.LN2B)
		b.MatMulBiasGELU(s.fchGelu, s.fch, s.ln2, w.FCW, w.FCB) // fch keeps the pre-activation
		b.MatMulBias(s.fcProj, s.fchGelu, w.FCProjW, w.FCProjB)
		if drop > 0 {
			b.Dropout(s.fcProj, s.fcProj, drop, dropSeed(seed, 2*l+2))
		}
		if l+1 < len(p.Blocks) {
			nw, ns := &p.Blocks[l+1], &a.layers[l+1]
			b.AddLayerNormForward(s.res3, ns.ln1, ns.ln1Mean, ns.ln1Rstd, s.res2, s.fcProj, nw.LN1W, nw.LN1B)
		} else {
			b.AddLayerNormForward(s.res3, a.lnf, a.lnfMean, a.lnfRstd, s.res2, s.fcProj, p.LNFW, p.LNFB)
		}
		residual = s.res3
	}
}

// dropSeed derives the dropout seed of one site (embedding, or a block's
// attention or MLP output) from the step's seed.
func dropSeed(seed uint64, site int) uint64 { return gpu.Mix64(seed, uint64(site)) }

// LogProbs is the [B·T] log-probability of each target from the last
// Forward (0 where the target is −1).
func (m *Model) LogProbs() *gpu.Tensor { return m.cur.logp }

// Entropy is the [B·T] entropy of each position's next-token distribution
// from the last Forward; nil after a ForwardLM, which computes none.
func (m *Model) Entropy() *gpu.Tensor {
	if m.cur.logitsGrad {
		return nil
	}
	return m.cur.entropy
}

// Values is the [B·T] scalar head output from the last Forward of a
// scalar-head model, Cfg.ScoreBias included.
func (m *Model) Values() *gpu.Tensor { return m.cur.values }

// hidden is the [B,T,C] output of the final LayerNorm from the last Forward.
func (m *Model) hidden() *gpu.Tensor { return m.cur.lnf }

// Backward adds the parameter gradients of the last Forward (which must have
// run with train set) or ForwardLM into m.Grads. For an LM model dout holds
// ∂L/∂logp [B·T] and dentropy ∂L/∂entropy [B·T] (nil for none); for a
// scalar-head model dout holds ∂L/∂values [B·T] and dentropy must be nil.
// After ForwardLM both are nil: the loss's gradient is already in the
// logits buffer. Backward overwrites the logits buffer; gradients
// accumulate, so zero m.Grads.All before the first micro-batch of a step.
func (m *Model) Backward(dout, dentropy *gpu.Tensor) error {
	a := m.cur
	if a == nil || !a.train {
		return fmt.Errorf("backward: no training forward pass to differentiate")
	}
	n := m.curB * m.curT
	switch {
	case a.logitsGrad && (dout != nil || dentropy != nil):
		return fmt.Errorf("backward: after ForwardLM the loss's gradient is in the logits; pass no gradient tensors")
	case a.logitsGrad:
	case dout == nil || dout.Len() != n || (dentropy != nil && dentropy.Len() != n):
		return fmt.Errorf("backward: gradient tensors must have %d elements", n)
	case m.Cfg.ScalarHead && dentropy != nil:
		return fmt.Errorf("backward: a scalar-head model has no entropy")
	}
	validLen := a.validLen
	if !a.padded {
		validLen = nil
	}
	m.headBackward(a, dout, dentropy)
	if m.Cfg.IsLlama() {
		m.llamaBackward(a, validLen)
	} else {
		m.gpt2Backward(a, validLen)
	}
	a.train = false // the logits were overwritten: a second Backward would be wrong
	if err := m.b.Err(); err != nil {
		return fmt.Errorf("backward: %w", err)
	}
	return nil
}

// gpt2Backward is Backward through GPT-2's body, from ∂L/∂(final LayerNorm
// output) in a.dNormOut.
func (m *Model) gpt2Backward(a *acts, validLen *gpu.Tensor) {
	b, c := m.b, m.Cfg
	p, g := m.w, m.Grads
	drop := c.Dropout
	dres := a.dResidual
	b.Fill(dres, 0)
	last := a.encoded
	if len(a.layers) > 0 {
		last = a.layers[len(a.layers)-1].res3
	}
	b.LayerNormBackward(dres, g.LNFW, g.LNFB, a.dNormOut, last, p.LNFW, a.lnfMean, a.lnfRstd)

	for l := len(p.Blocks) - 1; l >= 0; l-- {
		w, gw, s := &p.Blocks[l], &g.Blocks[l], &a.layers[l]
		residual := a.encoded
		if l > 0 {
			residual = a.layers[l-1].res3
		}
		// res3 = res2 + dropout(fcProj): dres stays as ∂L/∂res2's first term.
		b.DropoutBackward(a.dBranch, dres, drop, dropSeed(a.seed, 2*l+2))
		b.MatMul(gw.FCProjW, s.fchGelu, a.dBranch, true, false, 1, 1)
		b.BiasBackward(gw.FCProjB, a.dBranch)
		b.MatMulDGELU(a.dMLPHidden, a.dBranch, w.FCProjW, s.fch)
		b.MatMul(gw.FCW, s.ln2, a.dMLPHidden, true, false, 1, 1)
		b.BiasBackward(gw.FCB, a.dMLPHidden)
		b.MatMul(a.dNormOut, a.dMLPHidden, w.FCW, false, true, 1, 0)
		b.LayerNormBackward(dres, gw.LN2W, gw.LN2B, a.dNormOut, s.res2, w.LN2W, s.ln2Mean, s.ln2Rstd)
		// res2 = residual + dropout(attProj).
		b.DropoutBackward(a.dBranch, dres, drop, dropSeed(a.seed, 2*l+1))
		b.MatMul(gw.AttnProjW, s.atty, a.dBranch, true, false, 1, 1)
		b.BiasBackward(gw.AttnPrB, a.dBranch)
		b.MatMul(a.dAttnOut, a.dBranch, w.AttnProjW, false, true, 1, 0)
		b.AttentionBackward(a.dQKV3, a.dAttnOut3, s.qkv3, s.atty3, s.lse, validLen, c.NHead, c.NHead)
		b.MatMul(gw.AttnW, s.ln1, a.dQKV, true, false, 1, 1)
		b.BiasBackward(gw.AttnB, a.dQKV)
		b.MatMul(a.dNormOut, a.dQKV, w.AttnW, false, true, 1, 0)
		b.LayerNormBackward(dres, gw.LN1W, gw.LN1B, a.dNormOut, residual, w.LN1W, s.ln1Mean, s.ln1Rstd)
		m.gradsReady(l)
	}
	b.DropoutBackward(dres, dres, drop, dropSeed(a.seed, 0))
	b.EmbeddingBackward(g.WTE, g.WPE, a.dResidual3, a.tokens, nil)
	m.gradsReady(-1)
}
