package train

import (
	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/rs/zerolog"
)

// Progress shows how far a long loop has come. The command line draws it as
// a bar on a terminal; elsewhere the periodic log lines carry the same
// numbers and Progress does nothing.
type Progress interface {
	// Start begins a loop of total steps of which done are already done
	// (a resumed run).
	Start(name string, done, total int)
	// Step reports that step is done, with a short status (loss, tokens/s).
	Step(step int, status string)
	// Finish ends the loop's display.
	Finish()
}

// NoProgress is a Progress that shows nothing.
type NoProgress struct{}

func (NoProgress) Start(string, int, int) {}
func (NoProgress) Step(int, string)       {}
func (NoProgress) Finish()                {}

// RunOptions are how a loop reports, whether it resumes, and the precision
// policy of the models it builds.
type RunOptions struct {
	Log      zerolog.Logger
	Progress Progress // nil: NoProgress
	// Resume continues the run in the output directory from its last saved
	// state instead of starting afresh.
	Resume    bool
	Precision model.Precision
	// AllowNonFinite loads starting checkpoints with NaN or infinite
	// weights (refused otherwise); a run never saves such weights.
	AllowNonFinite bool
	// AllowChangedData resumes a run whose data files changed since it
	// started (refused otherwise).
	AllowChangedData bool
	// SaveDType is how a run's result (the checkpoint at the top of its
	// directory) stores its weights: "" or safetensors.F32, or
	// safetensors.BF16. The resume state is always float32.
	SaveDType string
	// Comm makes the run data parallel over its ranks (see dist.go); nil:
	// one process. Pretraining, SFT, the reward model, DPO, PPO, GRPO, RLOO
	// and rejection sampling take it.
	Comm gpu.Comm
}

// models are the model options the run's precision and loading policy
// give a model of at most maxB sequences of maxT tokens.
func (o RunOptions) models(maxB, maxT int, train bool) model.Options {
	return model.Options{MaxBatch: maxB, MaxSeq: maxT, Train: train, Precision: o.Precision, AllowNonFinite: o.AllowNonFinite}
}

// load is the loading policy for starting checkpoints.
func (o RunOptions) load() model.LoadOptions {
	return model.LoadOptions{AllowNonFinite: o.AllowNonFinite}
}

func (o RunOptions) progress() Progress {
	if o.Progress == nil {
		return NoProgress{}
	}
	return o.Progress
}
