package model

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
)

// buffers are the activation and scratch allocations of a model, sized for
// its largest batch. A pass over a smaller batch uses prefixes of them.
type buffers struct {
	tokens, targets, validLen *gpu.Tensor // Int32
	named                     map[string]*gpu.Tensor
}

// actSpec describes one activation as a function of B·T (rows). It is of
// the precision's activation dtype unless f32: statistics, log-probs,
// entropies and values are always float32.
type actSpec struct {
	name     string
	perRow   int  // elements per token
	perLayer bool // one per block
	train    bool // only needed for backward
	f32      bool
}

func actSpecs(c Config) []actSpec {
	C, W, F := c.NEmbd, c.QKVWidth(), c.MLPWidth()
	// hidden is the MLP's first projection: GPT-2's 4C before GELU, the
	// Llama family's gate and up projections (2F) before SwiGLU.
	hidden, llama := F, c.IsLlama()
	if llama {
		hidden = 2 * F
	}
	specs := []actSpec{
		{name: "encoded", perRow: C},
		{name: "ln1", perRow: C, perLayer: true},
		{name: "ln1Rstd", perRow: 1, perLayer: true, f32: true},
		{name: "qkv", perRow: W, perLayer: true},
		{name: "atty", perRow: C, perLayer: true},
		{name: "lse", perRow: c.NHead, perLayer: true, f32: true},
		{name: "attProj", perRow: C, perLayer: true},
		{name: "res2", perRow: C, perLayer: true},
		{name: "ln2", perRow: C, perLayer: true},
		{name: "ln2Rstd", perRow: 1, perLayer: true, f32: true},
		{name: "fch", perRow: hidden, perLayer: true},
		{name: "fchGelu", perRow: F, perLayer: true},
		{name: "fcProj", perRow: C, perLayer: true},
		{name: "res3", perRow: C, perLayer: true},
		{name: "lnf", perRow: C},
		{name: "lnfRstd", perRow: 1, f32: true},
		{name: "dResidual", perRow: C, train: true},
		{name: "dNormOut", perRow: C, train: true},
		{name: "dAttnOut", perRow: C, train: true},
		{name: "dQKV", perRow: W, train: true},
		{name: "dMLPHidden", perRow: hidden, train: true},
	}
	if llama {
		// SwiGLU's backward reads ∂L/∂(its output) from a buffer of its own.
		specs = append(specs, actSpec{name: "dMLPAct", perRow: F, train: true})
	} else {
		// LayerNorm's means.
		specs = append(specs,
			actSpec{name: "ln1Mean", perRow: 1, perLayer: true, f32: true},
			actSpec{name: "ln2Mean", perRow: 1, perLayer: true, f32: true},
			actSpec{name: "lnfMean", perRow: 1, f32: true})
	}
	if c.ScalarHead {
		specs = append(specs, actSpec{name: "values", perRow: 1, f32: true},
			actSpec{name: "dValues", perRow: 1, train: true})
	} else {
		specs = append(specs,
			actSpec{name: "logits", perRow: c.VocabSize},
			actSpec{name: "logp", perRow: 1, f32: true},
			actSpec{name: "entropy", perRow: 1, f32: true},
			actSpec{name: "lseV", perRow: 1, f32: true})
	}
	return specs
}

func (bf *buffers) alloc(b gpu.Backend, c Config, act gpu.DType, maxB, maxT int, train bool) error {
	rows := maxB * maxT
	var err error
	if bf.tokens, err = b.Alloc(gpu.Int32, rows); err != nil {
		return err
	}
	if bf.targets, err = b.Alloc(gpu.Int32, rows); err != nil {
		return err
	}
	if bf.validLen, err = b.Alloc(gpu.Int32, maxB); err != nil {
		return err
	}
	bf.named = map[string]*gpu.Tensor{}
	for _, s := range actSpecs(c) {
		if s.train && !train {
			continue
		}
		count := 1
		if s.perLayer {
			count = c.NLayer
		}
		for l := 0; l < count; l++ {
			dt := act
			if s.f32 {
				dt = gpu.Float32
			}
			t, err := b.Alloc(dt, rows*s.perRow)
			if err != nil {
				return fmt.Errorf("%s: %w", s.name, err)
			}
			bf.named[key(s.name, l, s.perLayer)] = t
		}
	}
	return nil
}

func key(name string, l int, perLayer bool) string {
	if !perLayer {
		return name
	}
	return fmt.Sprintf("%s.%d", name, l)
}

// layerActs are one block's activations for a B×T batch. The Llama family
// uses the same slots: ln1 and ln2 hold RMSNorm outputs (no means), fch the
// gate and up projections, fchGelu their SwiGLU.
type layerActs struct {
	ln1, ln1Mean, ln1Rstd, qkv, atty, lse, attProj, res2 *gpu.Tensor
	ln2, ln2Mean, ln2Rstd, fch, fchGelu, fcProj, res3    *gpu.Tensor
	qkv3, atty3                                          *gpu.Tensor // [B,T,·] views for attention
}

// acts are views of the buffers shaped for one B×T batch, plus what the
// forward pass left for backward.
type acts struct {
	tokens, targets, validLen *gpu.Tensor
	encoded                   *gpu.Tensor
	layers                    []layerActs
	lnf, lnfMean, lnfRstd     *gpu.Tensor
	logits, logp, entropy     *gpu.Tensor
	lseV, values              *gpu.Tensor
	encoded3                  *gpu.Tensor // [B,T,C] view for the embedding

	// The backward pass's gradients, named for what they are the gradient
	// of: dResidual of the residual stream; dNormOut of a LayerNorm's
	// output and dBranch of a residual branch's output (attention or MLP
	// projection), which share one buffer as they are never live together;
	// dAttnOut of the attention's output; dQKV of the queries, keys and
	// values; dMLPHidden of the MLP's hidden layer (before and after GELU).
	dResidual, dNormOut, dBranch *gpu.Tensor
	dAttnOut, dQKV, dMLPHidden   *gpu.Tensor
	dMLPAct                      *gpu.Tensor // ∂L/∂(SwiGLU output), the Llama family
	dValues                      *gpu.Tensor // ∂L/∂values in the activation dtype (scalar head)
	dResidual3, dAttnOut3, dQKV3 *gpu.Tensor // [B,T,·] views for embedding and attention

	train      bool   // the forward pass kept what backward needs
	seed       uint64 // the forward pass's dropout seed
	padded     bool   // valid lengths were given
	logitsGrad bool   // ForwardLM left ∂L/∂logits in the logits (no entropies)
}

// views returns the activation views for a B×T batch, reusing the last set
// when the shape repeats so a steady training loop allocates nothing.
func (m *Model) views(B, T int) *acts {
	if m.cur != nil && m.curB == B && m.curT == T {
		return m.cur
	}
	c, bf := m.Cfg, &m.bufs
	rows := B * T
	C, W, F := c.NEmbd, c.QKVWidth(), c.MLPWidth()
	hidden := F
	if c.IsLlama() {
		hidden = 2 * F
	}
	v := func(name string, l int, perLayer bool, shape ...int) *gpu.Tensor {
		t, ok := bf.named[key(name, l, perLayer)]
		if !ok {
			return nil
		}
		return t.MustView(0, shape...)
	}
	a := &acts{
		tokens:     bf.tokens.MustView(0, B, T),
		targets:    bf.targets.MustView(0, rows),
		validLen:   bf.validLen.MustView(0, B),
		encoded:    v("encoded", 0, false, rows, C),
		encoded3:   v("encoded", 0, false, B, T, C),
		lnf:        v("lnf", 0, false, rows, C),
		lnfMean:    v("lnfMean", 0, false, rows),
		lnfRstd:    v("lnfRstd", 0, false, rows),
		logits:     v("logits", 0, false, rows, c.VocabSize),
		logp:       v("logp", 0, false, rows),
		entropy:    v("entropy", 0, false, rows),
		lseV:       v("lseV", 0, false, rows),
		values:     v("values", 0, false, rows, 1),
		dResidual:  v("dResidual", 0, false, rows, C),
		dResidual3: v("dResidual", 0, false, B, T, C),
		dNormOut:   v("dNormOut", 0, false, rows, C),
		dBranch:    v("dNormOut", 0, false, rows, C),
		dAttnOut:   v("dAttnOut", 0, false, rows, C),
		dAttnOut3:  v("dAttnOut", 0, false, B, T, C),
		dQKV:       v("dQKV", 0, false, rows, W),
		dQKV3:      v("dQKV", 0, false, B, T, W),
		dMLPHidden: v("dMLPHidden", 0, false, rows, hidden),
		dMLPAct:    v("dMLPAct", 0, false, rows, F),
		dValues:    v("dValues", 0, false, rows, 1),
		layers:     make([]layerActs, c.NLayer),
	}
	for l := range a.layers {
		a.layers[l] = layerActs{
			ln1:     v("ln1", l, true, rows, C),
			ln1Mean: v("ln1Mean", l, true, rows),
			ln1Rstd: v("ln1Rstd", l, true, rows),
			qkv:     v("qkv", l, true, rows, W),
			qkv3:    v("qkv", l, true, B, T, W),
			atty:    v("atty", l, true, rows, C),
			atty3:   v("atty", l, true, B, T, C),
			lse:     v("lse", l, true, B, c.NHead, T),
			attProj: v("attProj", l, true, rows, C),
			res2:    v("res2", l, true, rows, C),
			ln2:     v("ln2", l, true, rows, C),
			ln2Mean: v("ln2Mean", l, true, rows),
			ln2Rstd: v("ln2Rstd", l, true, rows),
			fch:     v("fch", l, true, rows, hidden),
			fchGelu: v("fchGelu", l, true, rows, F),
			fcProj:  v("fcProj", l, true, rows, C),
			res3:    v("res3", l, true, rows, C),
		}
	}
	m.cur, m.curB, m.curT = a, B, T
	return a
}

// upload copies a batch's ids into the device buffers.
func (m *Model) upload(a *acts, in *Batch) error {
	b := m.b
	if err := b.UploadInt32(a.tokens, in.Tokens); err != nil {
		return fmt.Errorf("upload tokens: %w", err)
	}
	if !m.Cfg.ScalarHead {
		if err := b.UploadInt32(a.targets, in.Targets); err != nil {
			return fmt.Errorf("upload targets: %w", err)
		}
	}
	if in.ValidLen != nil {
		if err := b.UploadInt32(a.validLen, in.ValidLen); err != nil {
			return fmt.Errorf("upload lengths: %w", err)
		}
	}
	return nil
}
