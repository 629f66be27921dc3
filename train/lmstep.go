package train

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
)

// LMStep is one optimizer step of the next-token loss, as pretraining and
// SFT take it: zero the gradients; per micro-batch the loss weights of the
// batch's targets (a target of −1 carries none), the forward pass (with the
// model's dropout) whose fused cross-entropy head leaves the loss's
// gradient in the logits, the mean loss, and the backward pass; then
// global-norm clipping and AdamW at the schedule's learning rate. The loss
// stays on the device until the step ends.
type LMStep struct {
	t     *trainable
	loss  *tokenLoss
	accum int
	seed  uint64
	comm  gpu.Comm // data-parallel ranks (dist.go); nil: one
}

// NewLMStep prepares steps of m, which must have been built for training:
// AdamW with oc over a run of updates optimizer steps (the schedule's
// length), accum micro-batches per step, dropout masks drawn from seed.
func NewLMStep(m *model.Model, oc OptimConfig, updates, accum int, seed uint64) (*LMStep, error) {
	if accum <= 0 {
		return nil, fmt.Errorf("lm step: gradient accumulation %d must be positive", accum)
	}
	t, err := newTrainable(m, oc, updates)
	if err != nil {
		return nil, fmt.Errorf("lm step: %w", err)
	}
	loss, err := newTokenLoss(m.Backend(), m.MaxBatch()*m.MaxSeq())
	if err != nil {
		return nil, fmt.Errorf("lm step: %w", err)
	}
	return &LMStep{t: t, loss: loss, accum: accum, seed: seed}, nil
}

// distribute makes the steps data parallel over c's ranks (dist.go).
func (s *LMStep) distribute(c gpu.Comm) { s.comm, s.t.comm = c, c }

// Run runs step `step` (1-based) on accum micro-batches drawn from next,
// and returns the step's loss (the mean over its micro-batches) and the
// tokens it processed (B·T per micro-batch, padding included). Data
// parallel, next returns the global micro-batch, the rank trains on its
// rows weighted by the global batch's target count, and the loss and
// tokens are the global batch's.
func (s *LMStep) Run(step int, next func() (*model.Batch, error)) (loss float64, tokens int64, err error) {
	m := s.t.m
	s.t.zeroGrad()
	for micro := 0; micro < s.accum; micro++ {
		in, err := next()
		if err != nil {
			return 0, 0, err
		}
		count := countTargets(in.Targets)
		if count == 0 {
			return 0, 0, fmt.Errorf("batch has no target tokens")
		}
		tokens += int64(in.B * in.T)
		if distributed(s.comm) {
			if in = shardRows(in, s.comm.Rank(), s.comm.Size()); in.B == 0 {
				continue
			}
		}
		w, err := s.loss.weights(in.Targets, count)
		if err != nil {
			return 0, 0, err
		}
		if err := m.ForwardLM(in, rankSeed(s.comm, gpu.Mix64(s.seed, uint64((step-1)*s.accum+micro))), w); err != nil {
			return 0, 0, err
		}
		s.loss.accumulate(m.LogProbs(), w, 1/float32(s.accum))
		if micro == s.accum-1 {
			s.t.reduceDuringBackward()
		}
		if err := m.Backward(nil, nil); err != nil {
			return 0, 0, err
		}
	}
	if err := s.t.reduceGrads(); err != nil {
		return 0, 0, err
	}
	s.t.update(s.accum)
	if loss, err = s.loss.read(); err != nil {
		return 0, 0, err
	}
	sum, err := sumOverRanks(s.comm, loss)
	if err != nil {
		return 0, 0, err
	}
	return sum[0], tokens, nil
}

// LR is the learning rate of the last step.
func (s *LMStep) LR() float32 { return s.t.lr }

// Health reads the divergence guard's values after the last step: the
// squared norms of its gradient and of the updated weights, by name.
func (s *LMStep) Health() ([]namedValue, error) { return s.t.health("model") }

// GradNorm is the global norm of the last step's mean gradient, before
// clipping. It synchronises with the device.
func (s *LMStep) GradNorm() (float64, error) { return s.t.opt.GradNorm(s.accum) }

// tokenLoss is the mean next-token loss over a batch's targets, kept on the
// device: each target token weighs −1/(number of targets), the others 0,
// so Dot(logp, weights) is the loss and the weights are ∂loss/∂logp.
type tokenLoss struct {
	b                    gpu.Backend
	buf, micro, stepLoss *gpu.Tensor
	host                 []float32
}

func newTokenLoss(b gpu.Backend, n int) (*tokenLoss, error) {
	l := &tokenLoss{b: b, host: make([]float32, n)}
	var err error
	if l.buf, err = b.Alloc(gpu.Float32, n); err != nil {
		return nil, err
	}
	if l.micro, err = b.Alloc(gpu.Float32, 1); err != nil {
		return nil, err
	}
	if l.stepLoss, err = b.Alloc(gpu.Float32, 1); err != nil {
		return nil, err
	}
	return l, nil
}

// countTargets is the number of targets that carry a loss (not −1).
func countTargets(targets []int32) int {
	count := 0
	for _, t := range targets {
		if t >= 0 {
			count++
		}
	}
	return count
}

// weights uploads the loss weights of a batch's targets, each target
// weighing −1/count (count: the batch's, or data parallel the global
// micro-batch's, targets), and returns them as a tensor of len(targets)
// elements.
func (l *tokenLoss) weights(targets []int32, count int) (*gpu.Tensor, error) {
	if len(targets) > len(l.host) {
		return nil, fmt.Errorf("loss: %d targets for a buffer of %d", len(targets), len(l.host))
	}
	if count <= 0 {
		return nil, fmt.Errorf("batch has no target tokens")
	}
	w := l.host[:len(targets)]
	for i, t := range targets {
		w[i] = 0
		if t >= 0 {
			w[i] = -1 / float32(count)
		}
	}
	view, err := l.buf.View(0, len(targets))
	if err != nil {
		return nil, err
	}
	return view, l.b.Upload(view, w)
}

// accumulate adds scale × the batch's loss to the step's loss.
func (l *tokenLoss) accumulate(logp, w *gpu.Tensor, scale float32) {
	l.b.Dot(l.micro, logp, w)
	l.b.Axpy(l.stepLoss, scale, l.micro)
}

// read returns the step's loss and resets it.
func (l *tokenLoss) read() (float64, error) {
	var v [1]float32
	if err := l.b.Download(v[:], l.stepLoss); err != nil {
		return 0, err
	}
	l.b.Fill(l.stepLoss, 0)
	return float64(v[0]), nil
}
