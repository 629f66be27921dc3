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
}

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
	C, V := c.NEmbd, c.VocabSize
	var decay, plain []paramSpec
	add := func(name string, dec bool, shape ...int) {
		p := paramSpec{name: name, shape: shape, decay: dec}
		if dec {
			decay = append(decay, p)
		} else {
			plain = append(plain, p)
		}
	}
	add("wte.weight", true, V, C)
	add("wpe.weight", true, c.MaxSeqLen, C)
	for l := 0; l < c.NLayer; l++ {
		h := fmt.Sprintf("h.%d.", l)
		add(h+"ln_1.weight", false, C)
		add(h+"ln_1.bias", false, C)
		add(h+"attn.c_attn.weight", true, C, 3*C)
		add(h+"attn.c_attn.bias", false, 3*C)
		add(h+"attn.c_proj.weight", true, C, C)
		add(h+"attn.c_proj.bias", false, C)
		add(h+"ln_2.weight", false, C)
		add(h+"ln_2.bias", false, C)
		add(h+"mlp.c_fc.weight", true, C, 4*C)
		add(h+"mlp.c_fc.bias", false, 4*C)
		add(h+"mlp.c_proj.weight", true, 4*C, C)
		add(h+"mlp.c_proj.bias", false, C)
	}
	add("ln_f.weight", false, C)
	add("ln_f.bias", false, C)
	if c.ScalarHead {
		// HF stores score.weight as [1, C]; [C, 1] is the same bytes and
		// lets the head be a plain x·W matmul.
		add("score.weight", true, C, 1)
	}
	return append(decay, plain...)
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

	WTE, WPE   *gpu.Tensor // [V,C], [maxT,C]
	Blocks     []Block
	LNFW, LNFB *gpu.Tensor // [C]
	Score      *gpu.Tensor // [C,1], nil without a scalar head

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
		Blocks:  make([]Block, cfg.NLayer),
	}
	off := 0
	for _, s := range specs {
		t := all.MustView(off, s.shape...)
		off += s.size()
		p.names = append(p.names, s.name)
		p.byName[s.name] = t
	}
	p.WTE, p.WPE = p.byName["wte.weight"], p.byName["wpe.weight"]
	p.LNFW, p.LNFB = p.byName["ln_f.weight"], p.byName["ln_f.bias"]
	p.Score = p.byName["score.weight"]
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

// Tensor returns the named tensor (HF GPT-2 name without "transformer."),
// or nil.
func (p *Params) Tensor(name string) *gpu.Tensor { return p.byName[name] }

// InitGPT2 fills host with GPT-2's initialisation for cfg's layout:
// weights and embeddings N(0, 0.02), the residual projections (attn.c_proj,
// mlp.c_proj) N(0, 0.02/sqrt(2·n_layer)), biases 0, LayerNorm gains 1.
// The draw is a pure function of seed.
func InitGPT2(cfg Config, seed uint64) []float32 {
	rng := rand.New(rand.NewPCG(seed, 0x6a09e667f3bcc908))
	projStd := 0.02 / math.Sqrt(2*float64(cfg.NLayer))
	var host []float32
	for _, s := range cfg.layout() {
		n := s.size()
		switch {
		case hasSuffix(s.name, ".c_proj.weight"):
			host = appendNormal(host, rng, n, projStd)
		case s.decay:
			host = appendNormal(host, rng, n, 0.02)
		case hasSuffix(s.name, "ln_1.weight"), hasSuffix(s.name, "ln_2.weight"), s.name == "ln_f.weight":
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

func hasSuffix(s, suffix string) bool {
	return len(s) >= len(suffix) && s[len(s)-len(suffix):] == suffix
}

// TensorRange locates a named tensor (HF GPT-2 name without
// "transformer.") in cfg's parameter buffer: its offset and element count,
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
