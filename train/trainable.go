package train

import (
	"fmt"

	"github.com/instructgo/instructgo/model"
)

// trainable is a model that learns: its optimizer and the run's length in
// optimizer updates, which the learning-rate schedule spans. Every method
// zeroes and updates its models through it, so the schedule and the
// update are stated once.
type trainable struct {
	m       *model.Model
	opt     *Optimizer
	updates int     // optimizer updates of the whole run
	lr      float32 // of the last update
}

func newTrainable(m *model.Model, oc OptimConfig, updates int) (*trainable, error) {
	if m.Grads == nil {
		return nil, fmt.Errorf("the model was allocated without gradients")
	}
	opt, err := NewOptimizer(m.Backend(), m.Cfg, oc)
	if err != nil {
		return nil, err
	}
	return &trainable{m: m, opt: opt, updates: updates}, nil
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
}

// part is the trainable as the resume state holds it.
func (t *trainable) part(dir, name string, updatesPerStep int) savedPart {
	return savedPart{dir: dir, name: name, b: t.m.Backend(), cfg: t.m.Cfg, params: t.m.Params, opt: t.opt,
		updatesPerStep: updatesPerStep, loaded: t.m.SyncWeights}
}
