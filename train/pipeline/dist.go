package pipeline

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
)

// Data parallel. With a communicator of several ranks (RunOptions.Comm)
// every rank runs the pipeline: the training stages get the communicator
// and train data parallel, and everything else (the run's configuration
// and stage clock, the synthetic data, the labelling of policy samples,
// the evaluation, the reports) runs on rank 0 alone while the others wait
// in a collective and then read what rank 0 wrote. Whether a stage runs or
// resumes is rank 0's decision, shared, so every rank takes the same path
// however the run directory changes under them. A rank-0 step counts
// against the watchdog (--dist-timeout) of the ranks waiting for it.

// distributed reports whether c spans more than one rank.
func distributed(c gpu.Comm) bool { return c != nil && c.Size() > 1 }

// primary reports whether this rank writes the run's files: rank 0, or
// the one process.
func primary(c gpu.Comm) bool { return c == nil || c.Rank() == 0 }

// onRank0 runs f on rank 0 alone; the other ranks wait until it has
// finished and then learn whether it failed (rank 0 returns f's error,
// the others an error saying that rank 0 failed to do what).
func onRank0(c gpu.Comm, what string, f func() error) error {
	var err error
	if primary(c) {
		err = f()
	}
	failed, gerr := shareFlags(c, err != nil)
	if gerr != nil {
		return fmt.Errorf("wait for rank 0 to %s: %w", what, gerr)
	}
	if err != nil {
		return err
	}
	if failed[0] {
		return fmt.Errorf("rank 0 failed to %s (its log says why)", what)
	}
	return nil
}

// shareFlags returns rank 0's flags on every rank (flags as given on one
// rank); every rank must pass as many.
func shareFlags(c gpu.Comm, flags ...bool) ([]bool, error) {
	if !distributed(c) {
		return flags, nil
	}
	local := make([]float64, len(flags))
	for i, f := range flags {
		if f {
			local[i] = 1
		}
	}
	all, err := c.AllGather(local)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(flags))
	for i := range out {
		out[i] = all[i] == 1
	}
	return out, nil
}

// barrier waits, on a run of several ranks, until every rank has reached
// it: after a training stage, so that rank 0 has written the stage's
// summary before the others read it.
func barrier(c gpu.Comm, what string) error {
	if !distributed(c) {
		return nil
	}
	if err := c.Barrier(); err != nil {
		return fmt.Errorf("wait for every rank to finish %s: %w", what, err)
	}
	return nil
}
