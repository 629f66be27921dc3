package train

import (
	"fmt"
	"math"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
)

// OptimConfig holds AdamW's and the schedule's hyper-parameters.
type OptimConfig struct {
	LR          float32 `json:"lr"`           // peak learning rate
	MinLRFrac   float32 `json:"min_lr_frac"`  // cosine decay ends at LR·MinLRFrac
	Warmup      int     `json:"warmup_steps"` // linear warmup from 0
	Beta1       float32 `json:"beta1"`
	Beta2       float32 `json:"beta2"`
	Eps         float32 `json:"eps"`
	WeightDecay float32 `json:"weight_decay"` // decoupled; matrices and embeddings only
	MaxGradNorm float32 `json:"max_grad_norm"`
}

// DefaultOptim is AdamW as GPT-style training uses it: β = (0.9, 0.95),
// weight decay 0.1, clipping at 1, cosine decay to 10%.
func DefaultOptim() OptimConfig {
	return OptimConfig{LR: 1e-3, MinLRFrac: 0.1, Warmup: 20, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, MaxGradNorm: 1}
}

// Validate reports hyper-parameters outside their domain.
func (c OptimConfig) Validate() error {
	switch {
	case !(c.LR > 0):
		return fmt.Errorf("learning rate %g must be positive", c.LR)
	case c.MinLRFrac < 0 || c.MinLRFrac > 1:
		return fmt.Errorf("min-lr fraction %g must be in [0, 1]", c.MinLRFrac)
	case c.Warmup < 0:
		return fmt.Errorf("warmup %d must not be negative", c.Warmup)
	case c.Beta1 < 0 || c.Beta1 >= 1 || c.Beta2 < 0 || c.Beta2 >= 1:
		return fmt.Errorf("betas (%g, %g) must be in [0, 1)", c.Beta1, c.Beta2)
	case c.WeightDecay < 0:
		return fmt.Errorf("weight decay %g must not be negative", c.WeightDecay)
	case c.MaxGradNorm < 0:
		return fmt.Errorf("max grad norm %g must not be negative", c.MaxGradNorm)
	}
	return nil
}

// CosineLR is the learning rate at step (1-based) of total: linear warmup
// to peak over warmup steps, then cosine decay to peak·minFrac at total.
func CosineLR(step, warmup, total int, peak, minFrac float32) float32 {
	if warmup > 0 && step <= warmup {
		return peak * float32(step) / float32(warmup)
	}
	if total <= warmup {
		return peak
	}
	progress := math.Min(1, float64(step-warmup)/float64(total-warmup))
	cos := 0.5 * (1 + math.Cos(math.Pi*progress))
	return peak * (minFrac + (1-minFrac)*float32(cos))
}

// Optimizer is AdamW over a model's parameter buffer. Its moments share the
// parameters' layout, so one update is two fused passes: the decayed half
// and the rest.
type Optimizer struct {
	Cfg    OptimConfig
	M, V   *model.Params
	Step   int // updates done
	b      gpu.Backend
	normSq *gpu.Tensor
}

// NewOptimizer allocates zeroed moments for a model of cfg on b.
func NewOptimizer(b gpu.Backend, cfg model.Config, oc OptimConfig) (*Optimizer, error) {
	if err := oc.Validate(); err != nil {
		return nil, err
	}
	o := &Optimizer{Cfg: oc, b: b}
	var err error
	if o.M, err = model.NewParams(b, cfg); err != nil {
		return nil, fmt.Errorf("adam first moment: %w", err)
	}
	if o.V, err = model.NewParams(b, cfg); err != nil {
		return nil, fmt.Errorf("adam second moment: %w", err)
	}
	if o.normSq, err = b.Alloc(gpu.Float32, 1); err != nil {
		return nil, err
	}
	return o, nil
}

// Update applies one AdamW step with learning rate lr to params from grads,
// which hold the sum of accum micro-batch gradients, and writes the bf16
// copy lowp of the updated params (nil: none). The gradient norm is
// computed and applied on the device; GradNorm reads it back.
func (o *Optimizer) Update(params, lowp, grads *model.Params, lr float32, accum int) {
	o.Step++
	b := o.b
	b.SumSquares(o.normSq, grads.All)
	h := gpu.AdamW{
		LR: lr, Beta1: o.Cfg.Beta1, Beta2: o.Cfg.Beta2, Eps: o.Cfg.Eps,
		WeightDecay: o.Cfg.WeightDecay, Step: o.Step, MaxNorm: o.Cfg.MaxGradNorm,
		GradScale: 1 / float32(max(accum, 1)),
	}
	var lowDecay, lowNoDecay *gpu.Tensor
	if lowp != nil {
		lowDecay, lowNoDecay = lowp.Decay, lowp.NoDecay
	}
	b.AdamW(params.Decay, lowDecay, grads.Decay, o.M.Decay, o.V.Decay, o.normSq, h)
	h.WeightDecay = 0
	b.AdamW(params.NoDecay, lowNoDecay, grads.NoDecay, o.M.NoDecay, o.V.NoDecay, o.normSq, h)
}

// moments are the optimizer's state tensors by the names a saved state
// gives them (PyTorch's).
func (o *Optimizer) moments() []struct {
	name string
	t    *gpu.Tensor
} {
	return []struct {
		name string
		t    *gpu.Tensor
	}{{"exp_avg", o.M.All}, {"exp_avg_sq", o.V.All}}
}

// GradNorm is the global norm of the last update's (averaged) gradient,
// before clipping. It synchronises with the device.
func (o *Optimizer) GradNorm(accum int) (float64, error) {
	var v [1]float32
	if err := o.b.Download(v[:], o.normSq); err != nil {
		return 0, err
	}
	return math.Sqrt(float64(v[0])) / float64(max(accum, 1)), nil
}
