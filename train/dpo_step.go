package train

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train/data"
)

// DPOStep is one optimizer step of a policy on ranked comparisons against
// a frozen reference's sequence log-probs: zero the gradients; per
// micro-batch (at most maxRows responses and budget padded tokens, a
// prompt's K responses together) forward every response once, sum each
// response's token log-probs into log π(y|x), form the implicit rewards
// r = β·(log π − log π_ref), evaluate the preference loss and ∂L/∂r on the
// host in float64, and send ∂L/∂logp = β·∂L/∂r to every response token of
// the row through the LM head's backward pass; then clipping and AdamW.
//
// The per-token log-probs (B·T floats) go to the host and the gradient
// comes back as one upload per micro-batch; issue 16 makes this
// device-resident.
type DPOStep struct {
	t               *trainable
	loss            PreferenceLoss
	maxRows, budget int
	pad             int32
	dlogp           *gpu.Tensor // [maxRows·maxT]
	host            []float32   // log-probs down, their gradient up
	comm            gpu.Comm    // data-parallel ranks (dist.go); nil: one
}

// NewDPOStep prepares steps of the language model m (built for training,
// without dropout: the reference's log-probs are computed without it, so
// the implicit rewards start at exactly 0): AdamW with oc over a run of
// updates steps, the preference loss, micro-batches of at most maxRows
// responses and budget padded tokens padded with pad.
func NewDPOStep(m *model.Model, oc OptimConfig, updates int, loss PreferenceLoss, maxRows, budget int, pad int32) (*DPOStep, error) {
	switch {
	case m.Cfg.ScalarHead:
		return nil, fmt.Errorf("dpo step: the model has a scalar head, not a language model's")
	case m.Cfg.Dropout != 0:
		return nil, fmt.Errorf("dpo step: the model has dropout %g; DPO trains without", m.Cfg.Dropout)
	case maxRows < 2 || maxRows > m.MaxBatch():
		return nil, fmt.Errorf("dpo step: %d rows per micro-batch for a model of %d", maxRows, m.MaxBatch())
	}
	if err := loss.Validate(); err != nil {
		return nil, fmt.Errorf("dpo step: %w", err)
	}
	t, err := newTrainable(m, oc, updates)
	if err != nil {
		return nil, fmt.Errorf("dpo step: %w", err)
	}
	n := m.MaxBatch() * m.MaxSeq()
	dlogp, err := m.Backend().Alloc(gpu.Float32, n)
	if err != nil {
		return nil, fmt.Errorf("dpo step: %w", err)
	}
	return &DPOStep{t: t, loss: loss, maxRows: maxRows, budget: budget, pad: pad, dlogp: dlogp, host: make([]float32, n)}, nil
}

// distribute makes the steps data parallel over c's ranks (dist.go).
func (s *DPOStep) distribute(c gpu.Comm) { s.comm, s.t.comm = c, c }

// Run runs step `step` on the prompts cs[idx...], whose responses' reference
// log-probs are ref[i][k]: their mean preference loss, each prompt counting
// once. It adds the step's implicit rewards to w and returns the loss, the
// padded tokens and the rows (responses) forwarded. Data parallel, each
// rank takes its shard of idx, weighted by the global count of prompts,
// and the figures returned and added to w are the global step's.
func (s *DPOStep) Run(step int, cs []data.ComparisonTokens, ref [][]float64, idx []int, w *rewardStats) (loss float64, tokens int64, rows int, err error) {
	s.t.zeroGrad()
	weight := 1 / float64(len(idx))
	var local rewardStats // a rank's share of the step's rewards, summed into w below
	into := w
	if distributed(s.comm) {
		lo, hi := gpu.Shard(len(idx), s.comm.Rank(), s.comm.Size())
		idx, into = idx[lo:hi], &local
	}
	if loss, tokens, rows, err = s.accumulate(cs, ref, idx, weight, into); err != nil {
		return 0, 0, 0, fmt.Errorf("dpo step %d: %w", step, err)
	}
	if err := s.t.reduceGrads(); err != nil {
		return 0, 0, 0, fmt.Errorf("dpo step %d: %w", step, err)
	}
	s.t.update(1)
	if err := s.t.m.Backend().Err(); err != nil || !distributed(s.comm) {
		return loss, tokens, rows, err
	}
	sums, err := gpu.SumOverRanks(s.comm, append([]float64{loss, float64(tokens), float64(rows)}, local.values()...)...)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("dpo step %d: %w", step, err)
	}
	w.addValues(sums[3:])
	return sums[0], int64(sums[1]), int(sums[2]), nil
}

// accumulate adds the gradient of the prompts' loss, each weighing
// weight, to the model's gradients and returns the loss.
func (s *DPOStep) accumulate(cs []data.ComparisonTokens, ref [][]float64, idx []int, weight float64, w *rewardStats) (loss float64, tokens int64, rows int, err error) {
	m, beta := s.t.m, s.loss.Beta
	mbs := microBatches(cs, idx, s.maxRows, s.budget)
	for mi, sub := range mbs {
		rb, err := newResponseBatch(cs, sub, s.pad)
		if err != nil {
			return 0, 0, 0, err
		}
		if err := rb.forward(m, true, s.host); err != nil {
			return 0, 0, 0, err
		}
		r, err := implicitRewards(rb, ref, beta)
		if err != nil {
			return 0, 0, 0, err
		}
		dr := make([]float64, rb.B)
		l, err := s.loss.Eval(rb.Groups, r, weight, dr)
		if err != nil {
			return 0, 0, 0, err
		}
		w.add(rb.Groups, r, rb.sums)
		n := rb.B * rb.T
		dl := s.host[:n]
		for i, t := range rb.Targets {
			dl[i] = 0
			if t >= 0 {
				dl[i] = float32(beta * dr[i/rb.T])
			}
		}
		view := s.dlogp.MustView(0, n)
		if err := m.Backend().Upload(view, dl); err != nil {
			return 0, 0, 0, err
		}
		if mi == len(mbs)-1 {
			s.t.reduceDuringBackward()
		}
		if err := m.Backward(view, nil); err != nil {
			return 0, 0, 0, err
		}
		loss += l
		tokens += int64(n)
		rows += rb.B
	}
	return loss, tokens, rows, nil
}

// implicitRewards returns β·(log π − log π_ref) of the batch's rows.
func implicitRewards(rb *responseBatch, ref [][]float64, beta float64) ([]float64, error) {
	r := make([]float64, rb.B)
	for gi, g := range rb.Groups {
		e := rb.Examples[gi]
		if e >= len(ref) || len(ref[e]) != g.K {
			return nil, fmt.Errorf("comparison %d has %d responses and no reference log-probs for them", e, g.K)
		}
		for k := range g.K {
			r[g.Start+k] = beta * (rb.sums[g.Start+k] - ref[e][k])
		}
	}
	return r, nil
}

// LR is the learning rate of the last step.
func (s *DPOStep) LR() float32 { return s.t.lr }

// Health reads the divergence guard's values after the last step (see
// LMStep.Health).
func (s *DPOStep) Health() ([]namedValue, error) { return s.t.health("model") }

// GradNorm is the global norm of the last step's gradient, before
// clipping. It synchronises with the device.
func (s *DPOStep) GradNorm() (float64, error) { return s.t.opt.GradNorm(1) }
