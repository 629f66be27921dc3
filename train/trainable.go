package train

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
)

// trainable is a model that learns: its optimizer and the run's length in
// optimizer updates, which the learning-rate schedule spans. Every method
// zeroes and updates its models through it, so the schedule and the
// update are stated once.
type trainable struct {
	m       *model.Model
	opt     *Optimizer
	updates int         // optimizer updates of the whole run
	lr      float32     // of the last update
	wsq     *gpu.Tensor // [1]: Σ w² of the master weights after the last update
	comm    gpu.Comm    // the data-parallel ranks whose gradients reduceGrads sums; nil: one
	sum     gradSum     // the step's gradient all-reduce when it overlaps the backward pass (dist.go)
}

func newTrainable(m *model.Model, oc OptimConfig, updates int) (*trainable, error) {
	if m.Grads == nil {
		return nil, fmt.Errorf("the model was allocated without gradients")
	}
	opt, err := NewOptimizer(m.Backend(), m.Cfg, oc)
	if err != nil {
		return nil, err
	}
	wsq, err := m.Backend().Alloc(gpu.Float32, 1)
	if err != nil {
		return nil, err
	}
	return &trainable{m: m, opt: opt, updates: updates, wsq: wsq}, nil
}

// zeroGrad clears the gradients before a step's first micro-batch.
func (t *trainable) zeroGrad() { t.m.Backend().Fill(t.m.Grads.All, 0) }

// update applies one AdamW step to the gradients of accum micro-batches at
// the schedule's learning rate for this update: linear warmup, then cosine
// decay over the run's updates.
func (t *trainable) update(accum int) {
	c := t.opt.Cfg
	t.lr = CosineLR(t.opt.Step+1, c.Warmup, t.updates, c.LR, c.MinLRFrac)
	t.opt.Update(t.m.Params, t.m.LowP(), t.m.Grads, t.lr, accum)
	t.m.Backend().SumSquares(t.wsq, t.m.Params.All)
}

// health is the divergence guard's reading after the last update: the
// squared norm of its gradient and of the updated weights, one reduction
// each on the device, read back in one synchronisation. A non-finite one
// ends the run before anything is saved.
func (t *trainable) health(name string) ([]namedValue, error) {
	b := t.m.Backend()
	var g, w [1]float32
	if err := b.Download(g[:], t.opt.normSq); err != nil {
		return nil, err
	}
	if err := b.Download(w[:], t.wsq); err != nil {
		return nil, err
	}
	return []namedValue{{"the " + name + " gradient norm", float64(g[0])}, {"the " + name + " weight norm", float64(w[0])}}, nil
}

// part is the trainable as the resume state holds it.
func (t *trainable) part(dir, name string, updatesPerStep int) savedPart {
	return savedPart{dir: dir, name: name, b: t.m.Backend(), cfg: t.m.Cfg, params: t.m.Params, opt: t.opt,
		updatesPerStep: updatesPerStep, loaded: t.m.SyncWeights}
}
