package train

import (
	"fmt"
	"math"
	"os"
	"slices"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/train/data"
)

// Data parallel. A run with a communicator of more than one rank trains
// one model replica per rank: every rank draws the same global batches
// (the samplers are seeded alike and resume from the same saved
// position), forwards and backwards its contiguous shard of each batch's
// rows (gpu.Shard), and the ranks sum the one gradient buffer once per
// step before the optimizer update, which is then the same on every rank.
// Each rank's losses are weighted by the global batch's normalisers (the
// target count of a language-model micro-batch, the prompts of a reward
// model step), so the summed gradient is the global batch's mean gradient
// and the results do not depend on the number of ranks beyond float32
// rounding of the sums. Rank 0 alone evaluates and writes files
// (checkpoints, metrics, the resume state, the summary); every rank
// resumes from them.

// dataParallel is a method that trains data parallel when its run has a
// communicator of several ranks. Every method of the loop driver is one
// now; a new method must shard its work before it declares itself.
type dataParallel interface{ dataParallel() }

func (*pretrainer) dataParallel()   {}
func (*sftTrainer) dataParallel()   {}
func (*rmTrainer) dataParallel()    {}
func (*ppoTrainer) dataParallel()   {}
func (*dpoTrainer) dataParallel()   {}
func (*groupTrainer) dataParallel() {}

// comm is the run's communicator: Single when none was given.
func (o RunOptions) comm() gpu.Comm {
	if o.Comm == nil {
		return gpu.Single{}
	}
	return o.Comm
}

// distributed reports whether c spans more than one rank.
func distributed(c gpu.Comm) bool { return c != nil && c.Size() > 1 }

// shardRows returns the rows of in that are rank's shard of its B rows
// (the same tokens, no copy); B is 0 when the shard is empty.
func shardRows(in *model.Batch, rank, size int) *model.Batch {
	lo, hi := gpu.Shard(in.B, rank, size)
	return batchRows(in, lo, hi)
}

// shardCap is the most rows of a global batch of n that a rank of c
// trains on (gpu.Shard's largest piece, ⌈n/size⌉): what a rank's training
// models are sized for, so that N ranks hold 1/N of the activations.
func shardCap(c gpu.Comm, n int) int {
	size := 1
	if c != nil {
		size = c.Size()
	}
	return (n + size - 1) / size
}

// comparisonShardRows is the most responses a data-parallel rank's
// micro-batch of ranked comparisons holds (the reward model's, DPO's): its
// shard of a step's batch prompts, each with the most responses of a
// training comparison, and no more than maxRows (one process: always
// maxRows, so that its evaluations run in whole batches). The
// micro-batches are cut as with maxRows, which a shard never reaches when
// this is smaller.
func comparisonShardRows(c gpu.Comm, maxRows, batch int, train []data.ComparisonTokens) int {
	if !distributed(c) {
		return maxRows
	}
	k := 0
	for _, t := range train {
		k = max(k, len(t.Responses))
	}
	return min(maxRows, shardCap(c, batch)*k)
}

// forwardPieces runs m without dropout over in's rows in pieces of at
// most m.MaxBatch() rows, each piece's outputs handed to use: rank 0's
// evaluations forward whole batches through a model sized for a shard.
// A row's outputs do not depend on the other rows of its batch in exact
// arithmetic, so the results are one forward pass's over in to float32
// rounding (a backend may round a row differently in a smaller batch);
// when in fits the model it is that one pass.
func forwardPieces(m *model.Model, in *model.Batch, use func(lo, hi int) error) error {
	for lo := 0; lo < in.B; lo += m.MaxBatch() {
		hi := min(in.B, lo+m.MaxBatch())
		if err := m.Forward(batchRows(in, lo, hi), false, 0); err != nil {
			return err
		}
		if err := use(lo, hi); err != nil {
			return err
		}
	}
	return nil
}

// batchRows returns rows lo..hi of in (the same tokens, no copy).
func batchRows(in *model.Batch, lo, hi int) *model.Batch {
	out := &model.Batch{B: hi - lo, T: in.T, Tokens: in.Tokens[lo*in.T : hi*in.T]}
	if in.Targets != nil {
		out.Targets = in.Targets[lo*in.T : hi*in.T]
	}
	if in.ValidLen != nil {
		out.ValidLen = in.ValidLen[lo:hi]
	}
	return out
}

// rankSeed gives each rank of a distributed run its own dropout masks
// (drawn from seed and the rank): masks index a rank's own activations, so
// equal seeds would repeat one mask on every shard.
func rankSeed(c gpu.Comm, seed uint64) uint64 {
	if !distributed(c) {
		return seed
	}
	return gpu.Mix64(seed, 0x5eed0000+uint64(c.Rank()))
}

// checkReplicas ends a data-parallel run whose replicas differ after a
// step: every rank must read the same gradient and weight norms (the
// guard's values), bit for bit, as equal gradients and updates give. It
// costs one all-gather of a few numbers per step.
func (l *loop) checkReplicas(step int, res stepResult) error {
	if !distributed(l.comm) || len(res.finite) == 0 {
		return nil
	}
	local := make([]float64, len(res.finite))
	for i, v := range res.finite {
		local[i] = v.value
	}
	all, err := l.comm.AllGather(local)
	if err != nil {
		return fmt.Errorf("%s %s %d: compare the replicas: %w", l.name, l.unit, step, err)
	}
	n := len(local)
	for r := 1; r < l.comm.Size(); r++ {
		for i, v := range res.finite {
			if a, b := all[i], all[r*n+i]; math.Float64bits(a) != math.Float64bits(b) {
				return fmt.Errorf("%s %s %d: the replicas diverged: %s is %v on rank %d, %v on rank 0", l.name, l.unit, step, v.name, b, r, a)
			}
		}
	}
	return nil
}

// reduceGrads sums the model's gradient buffer over the ranks (nothing on
// one rank). When the engine overlaps (gradSum) it sums the buffer as the
// ranges of model.GradRanges, in that order on every rank: it starts those
// the last backward pass has not started and waits for all of them; else
// one blocking all-reduce of the whole buffer. Both sum each element over
// the same ranks (2 ranks: the same bits).
func (t *trainable) reduceGrads() error {
	if !distributed(t.comm) {
		return nil
	}
	on, err := t.overlaps()
	if err == nil && !on {
		err = t.sum.err // the agreement's, when reduceDuringBackward made it
	}
	if err != nil {
		t.sum.err = nil
		return err
	}
	if !on {
		return t.comm.AllReduceSum(t.m.Grads.All)
	}
	t.m.OnGradsReady = nil
	s := &t.sum
	for s.started < len(s.ranges) && s.err == nil {
		s.start(t.comm, t.m.Grads.All, s.ranges[s.started])
	}
	err = s.err
	for _, p := range s.pending {
		if werr := p.Wait(); err == nil {
			err = werr
		}
	}
	s.reset()
	if err != nil {
		return fmt.Errorf("sum the gradients over the ranks: %w", err)
	}
	return nil
}

// reduceDuringBackward makes the next backward pass, the last of a step,
// start summing each range of the gradients over the ranks as soon as the
// pass has finished it (model.OnGradsReady), when the engine overlaps;
// reduceGrads waits for them. A method calls it on every rank (a rank
// whose shard skips the backward starts the ranges in reduceGrads).
func (t *trainable) reduceDuringBackward() {
	if !distributed(t.comm) {
		return
	}
	if on, err := t.overlaps(); !on || err != nil {
		t.sum.err = err
		return
	}
	if t.sum.hook == nil { // made once: arming allocates nothing per step
		t.sum.hook = t.gradsReady
	}
	t.m.OnGradsReady = t.sum.hook
}

// gradsReady is the backward pass's hook: it starts the all-reduce of the
// range [lo, hi) the pass has just finished, which must be the next of
// model.GradRanges, and moves the started ones along.
func (t *trainable) gradsReady(lo, hi int) {
	s := &t.sum
	if s.err != nil {
		return
	}
	if s.started == len(s.ranges) || s.ranges[s.started] != (model.GradRange{Lo: lo, Hi: hi}) {
		s.err = fmt.Errorf("the backward pass reported gradients [%d, %d) out of model.GradRanges' order", lo, hi)
		return
	}
	s.start(t.comm, t.m.Grads.All, s.ranges[s.started])
	s.progress()
}

// overlapEnv set to 0 on any rank turns the overlap off (one blocking
// all-reduce per step, for comparison).
const overlapEnv = "INSTRUCTGO_GRAD_OVERLAP"

// overlaps reports whether t's gradients are summed as ranges started
// during the backward pass: on every rank the engine can (gpu.Overlaps)
// and overlapEnv does not say 0. The ranks agree on it with one
// all-gather, the first time (the first step's gradient sum; a rank that
// went on alone would wait for ever on ranges the others never start).
func (t *trainable) overlaps() (bool, error) {
	if t.sum.ranges != nil {
		return t.sum.on, nil
	}
	local := 0.0
	if gpu.Overlaps(t.comm) && os.Getenv(overlapEnv) != "0" {
		local = 1
	}
	t.sum.ranges = t.m.GradRanges() // decided, even on an error: no second all-gather
	all, err := t.comm.AllGather([]float64{local})
	if err != nil {
		return false, fmt.Errorf("agree on overlapping the gradient all-reduce: %w", err)
	}
	t.sum.on = !slices.Contains(all, 0)
	return t.sum.on, nil
}

// gradSum is the state of a step's gradient all-reduce as ranges.
type gradSum struct {
	on      bool
	ranges  []model.GradRange // in the order the backward pass finishes them
	started int               // ranges started
	pending []gpu.Pending     // their requests
	tested  int               // the requests before this one are complete
	err     error             // the first error, returned by reduceGrads
	hook    func(lo, hi int)  // trainable.gradsReady, bound once
}

// start starts the all-reduce of range r of all.
func (s *gradSum) start(c gpu.Comm, all *gpu.Tensor, r model.GradRange) {
	p, err := gpu.StartAllReduceSum(c, all.MustView(r.Lo, r.Hi-r.Lo))
	if err != nil {
		s.err = err
		return
	}
	s.pending = append(s.pending, p)
	s.started++
}

// progress tests the requests not yet complete, in order, which moves
// their data along on an engine without a progress thread.
func (s *gradSum) progress() {
	for s.tested < len(s.pending) {
		done, err := s.pending[s.tested].Test()
		if err != nil {
			s.err = err
		}
		if !done || err != nil {
			return
		}
		s.tested++
	}
}

func (s *gradSum) reset() {
	s.started, s.pending, s.tested, s.err = 0, s.pending[:0], 0, nil
}

// sumOverRanks returns the sums of xs over the ranks (xs on one rank).
func sumOverRanks(c gpu.Comm, xs ...float64) ([]float64, error) {
	if !distributed(c) {
		return xs, nil
	}
	return gpu.SumOverRanks(c, xs...)
}
