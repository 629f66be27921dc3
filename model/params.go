package model

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/instructgo/instructgo/gpu"
)

// paramSpec is one named tensor of the parameter buffer. Names and shapes
// are those of Hugging Face's GPT-2 (without the "transformer." prefix):
// Conv1D weights are [in, out], so the forward pass is x·W + b.
type paramSpec struct {
	name  string
	shape []int
	decay bool // weight decay applies (matrices and embeddings, not biases or norms)
	init  paramInit
}

// paramInit is how Init draws a tensor.
type paramInit uint8

const (
	initNormal   paramInit = iota // N(0, 0.02)
	initResidual                  // N(0, 0.02/sqrt(2·n_layer)): projections into the residual stream
	initOnes                      // normalisation gains
	initZero                      // biases
)

func (p paramSpec) size() int {
	n := 1
	for _, d := range p.shape {
		n *= d
	}
	return n
}

// layout lists the parameters in buffer order: every decayed tensor first,
// then every tensor without decay, so AdamW runs as two passes over two
// contiguous halves of one buffer.
func (c Config) layout() []paramSpec {
	var l layoutBuilder
	if c.IsLlama() {
		c.llamaLayout(&l)
	} else {
		c.gpt2Layout(&l)
	}
	if c.ScalarHead {
		// HF stores score.weight as [1, C]; [C, 1] is the same bytes and
		// lets the head be a plain x·W matmul.
		l.add("score.weight", true, initNormal, c.NEmbd, 1)
	}
	return append(l.decay, l.plain...)
}

// layoutBuilder collects parameter specs into the decayed and the plain
// part of the buffer.
type layoutBuilder struct{ decay, plain []paramSpec }

func (l *layoutBuilder) add(name string, decay bool, init paramInit, shape ...int) {
	p := paramSpec{name: name, shape: shape, decay: decay, init: init}
	if decay {
		l.decay = append(l.decay, p)
	} else {
		l.plain = append(l.plain, p)
	}
}

// gpt2Layout adds GPT-2's tensors.
func (c Config) gpt2Layout(l *layoutBuilder) {
	C, V := c.NEmbd, c.VocabSize
	l.add("wte.weight", true, initNormal, V, C)
	l.add("wpe.weight", true, initNormal, c.MaxSeqLen, C)
	for i := 0; i < c.NLayer; i++ {
		h := fmt.Sprintf("h.%d.", i)
		l.add(h+"ln_1.weight", false, initOnes, C)
		l.add(h+"ln_1.bias", false, initZero, C)
		l.add(h+"attn.c_attn.weight", true, initNormal, C, 3*C)
		l.add(h+"attn.c_attn.bias", false, initZero, 3*C)
		l.add(h+"attn.c_proj.weight", true, initResidual, C, C)
		l.add(h+"attn.c_proj.bias", false, initZero, C)
		l.add(h+"ln_2.weight", false, initOnes, C)
		l.add(h+"ln_2.bias", false, initZero, C)
		l.add(h+"mlp.c_fc.weight", true, initNormal, C, 4*C)
		l.add(h+"mlp.c_fc.bias", false, initZero, 4*C)
		l.add(h+"mlp.c_proj.weight", true, initResidual, 4*C, C)
		l.add(h+"mlp.c_proj.bias", false, initZero, C)
	}
	l.add("ln_f.weight", false, initOnes, C)
	l.add("ln_f.bias", false, initZero, C)
}

// Block holds one transformer block's tensors (parameters or gradients).
type Block struct {
	LN1W, LN1B         *gpu.Tensor // [C]
	AttnW, AttnB       *gpu.Tensor // [C,3C], [3C]
	AttnProjW, AttnPrB *gpu.Tensor // [C,C], [C]
	LN2W, LN2B         *gpu.Tensor // [C]
	FCW, FCB           *gpu.Tensor // [C,4C], [4C]
	FCProjW, FCProjB   *gpu.Tensor // [4C,C], [C]
}

// Params is a model's parameters (or their gradients, or an optimizer
// moment): one buffer, each tensor a view into it.
type Params struct {
	All     *gpu.Tensor // every element, in layout order
	Decay   *gpu.Tensor // the leading part that gets weight decay
	NoDecay *gpu.Tensor // the rest: biases and norms

	WTE, WPE   *gpu.Tensor // [V,C] (Llama: embed_tokens), [maxT,C] (GPT-2 only)
	Blocks     []Block     // GPT-2
	LNFW, LNFB *gpu.Tensor // [C] (GPT-2)
	Score      *gpu.Tensor // [C,1], nil without a scalar head
	// LMHead is the [V,C] unembedding: WTE when tied (always in GPT-2),
	// else lm_head.weight; nil with a scalar head.
	LMHead *gpu.Tensor

	Layers []LlamaBlock // the Llama family
	Norm   *gpu.Tensor  // [C], the Llama family's final RMSNorm gain

	names  []string
	byName map[string]*gpu.Tensor
}

// NewParams allocates a zeroed float32 parameter buffer for cfg on b.
func NewParams(b gpu.Backend, cfg Config) (*Params, error) { return newParams(b, cfg, gpu.Float32) }

// newParams allocates a zeroed parameter buffer of dtype dt (float32, or
// bf16 for the copy the ops read in the bf16 precision mode).
func newParams(b gpu.Backend, cfg Config, dt gpu.DType) (*Params, error) {
	specs := cfg.layout()
	total, nDecay := 0, 0
	for _, s := range specs {
		total += s.size()
		if s.decay {
			nDecay += s.size()
		}
	}
	all, err := b.Alloc(dt, total)
	if err != nil {
		return nil, fmt.Errorf("allocate %d parameters: %w", total, err)
	}
	p := &Params{
		All:     all,
		Decay:   all.MustView(0, nDecay),
		NoDecay: all.MustView(nDecay, total-nDecay),
		byName:  make(map[string]*gpu.Tensor, len(specs)),
	}
	off := 0
	for _, s := range specs {
		t := all.MustView(off, s.shape...)
		off += s.size()
		p.names = append(p.names, s.name)
		p.byName[s.name] = t
	}
	p.Score = p.byName["score.weight"]
	if cfg.IsLlama() {
		p.bindLlama(cfg)
		return p, nil
	}
	p.Blocks = make([]Block, cfg.NLayer)
	p.WTE, p.WPE = p.byName["wte.weight"], p.byName["wpe.weight"]
	p.LNFW, p.LNFB = p.byName["ln_f.weight"], p.byName["ln_f.bias"]
	if !cfg.ScalarHead {
		p.LMHead = p.WTE
	}
	for l := range p.Blocks {
		h := fmt.Sprintf("h.%d.", l)
		get := func(n string) *gpu.Tensor { return p.byName[h+n] }
		p.Blocks[l] = Block{
			LN1W: get("ln_1.weight"), LN1B: get("ln_1.bias"),
			AttnW: get("attn.c_attn.weight"), AttnB: get("attn.c_attn.bias"),
			AttnProjW: get("attn.c_proj.weight"), AttnPrB: get("attn.c_proj.bias"),
			LN2W: get("ln_2.weight"), LN2B: get("ln_2.bias"),
			FCW: get("mlp.c_fc.weight"), FCB: get("mlp.c_fc.bias"),
			FCProjW: get("mlp.c_proj.weight"), FCProjB: get("mlp.c_proj.bias"),
		}
	}
	return p, nil
}

// Names lists the tensor names in buffer order.
func (p *Params) Names() []string { return p.names }

// Tensor returns the named tensor, or nil: an HF GPT-2 name without
// "transformer.", or a Llama-family name of llama_params.go.
func (p *Params) Tensor(name string) *gpu.Tensor { return p.byName[name] }

// InitGPT2 fills host with GPT-2's initialisation for cfg's layout, which
// serves the Llama family too: weights and embeddings N(0, 0.02), the
// projections into the residual stream N(0, 0.02/sqrt(2·n_layer)), biases
// 0, normalisation gains 1. The draw is a pure function of seed.
func InitGPT2(cfg Config, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x6a09e667f3bcc908))
	projStd := 0.02 / math.Sqrt(2*float64(cfg.NLayer))
	var host []float32
	for _, s := range cfg.layout() {
		n := s.size()
		switch s.init {
		case initNormal:
			host = appendNormal(host, rng, n, 0.02)
		case initResidual:
			host = appendNormal(host, rng, n, projStd)
		case initOnes:
			for i := 0; i < n; i++ {
				host = append(host, 1)
			}
		default:
			host = append(host, make([]float32, n)...)
		}
	}
	return host
}

func appendNormal(dst []float32, rng *rand.Rand, n int, std float64) []float32 {
	for i := 0; i < n; i++ {
		dst = append(dst, float32(rng.NormFloat64()*std))
	}
	return dst
}

// TensorRange locates a named tensor (as Params.Tensor names it) in cfg's
// parameter buffer: its offset and element count,
// for code that prepares host parameters (e.g. initialising a new score
// head). ok is false when cfg has no such tensor.
func TensorRange(cfg Config, name string) (offset, n int, ok bool) {
	for _, s := range cfg.layout() {
		if s.name == name {
			return offset, s.size(), true
		}
		offset += s.size()
	}
	return 0, 0, false
}
