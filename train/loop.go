package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/model/tokenizer"
)

// A method is one way of training (pretraining, SFT, the reward model,
// PPO) as the loop driver sees it: a step, the record of a logged step,
// and its own position in the resume state. The driver owns everything
// around the steps: the interrupt, step counting, the divergence guard,
// the progress bar, log lines, metrics.jsonl, periodic and final saves,
// resume and the run's time.
type method interface {
	// step runs loop step `step` (1-based): a language model's optimizer
	// update over its micro-batches, a PPO iteration's rollout and
	// minibatch updates.
	step(step int) (stepResult, error)
	// record returns the metrics.jsonl record of a logged step and adds
	// the step's figures to its log line. w holds the steps since the last
	// logged one; eval says the method's evaluation is due (every
	// evalEvery steps and at the last).
	record(l *loop, step int, eval bool, w *lossWindow, ev *zerolog.Event) (any, *zerolog.Event, error)
	// state is the method's position for the resume state (data order,
	// best checkpoint so far, ...); restore sets it from a saved one and
	// refuses one that does not belong to this run.
	state() any
	restore(saved json.RawMessage) error
}

// afterSaver is a method that writes something beside the resume state at
// every save (PPO's EMA policy at the top of the run directory).
type afterSaver interface {
	afterSave() error
}

// stepResult is what one step measured.
type stepResult struct {
	loss   float64 // the training loss, averaged over the log window
	tokens int64   // tokens the step trained on
	status string  // the progress bar's text; "": the loss and tokens/s
	// finite are further values that must be finite (PPO's value loss
	// and score), by name; the loss always is.
	finite []namedValue
}

type namedValue struct {
	name  string
	value float64
}

// loopSpec says how to open a loop.
type loopSpec struct {
	name  string // "pretrain", "sft", "rm", "ppo": log messages and errors
	unit  string // what a step is called in messages: "step", "iteration"
	dir   string
	steps int // the last step
	// logEvery, evalEvery and saveEvery are intervals in steps; eval 0:
	// at the last step only, save 0: at the end only.
	logEvery, evalEvery, saveEvery int
	resume                         bool
	// config is recorded as run_config.json on a fresh start.
	config any
	// parts are the models the resume state holds.
	parts []savedPart
	// initial returns the starting weights of the first part on a fresh
	// start; nil: the parts already hold theirs (PPO's, from checkpoints).
	initial func() ([]float32, error)
	// inputs are the data files (or directories) the run reads: their
	// digests are recorded, and a resume refuses changed ones.
	inputs []string
	// checkpoints are the checkpoint directories the run reads, which its
	// run directory must not be.
	checkpoints []string
	// tok is the run's tokenizer: a Hugging Face one's files are written
	// beside the checkpoint, so the run directory loads with the same
	// tokenizer as the checkpoint it started from.
	tok tokenizer.Tokenizer
}

// loop is one run of a method in a run directory.
type loop struct {
	loopSpec
	st          TrainerState
	metrics     *Metrics
	log         zerolog.Logger
	progress    Progress
	interrupted bool
	window      lossWindow
	// Time counts from the last save (or the start), so st.Seconds adds up
	// across resumed segments; segStep is the step the segment began at.
	segStart time.Time
	segStep  int
	// comm is the run's data-parallel ranks (gpu.Single: one); only rank 0
	// evaluates and writes files (dist.go).
	comm gpu.Comm
}

// primary reports whether this process writes the run's files: rank 0.
func (l *loop) primary() bool { return l.comm.Rank() == 0 }

// ErrFinished is the error of resuming a run that ran to its end: nothing
// is done and nothing changes.
var ErrFinished = errors.New("the run is finished; there is nothing to resume")

// openLoop makes the run directory and either restores the saved state
// into the parts and the method (resume) or gives the parts their initial
// weights and records the configuration; then it opens metrics.jsonl.
func openLoop(s loopSpec, m method, opt RunOptions) (*loop, error) {
	l := &loop{loopSpec: s, log: opt.Log, progress: opt.progress(), window: newLossWindow(), comm: opt.comm()}
	if !l.primary() {
		l.progress = NoProgress{}
	}
	if _, ok := m.(dataParallel); distributed(l.comm) && !ok {
		return nil, fmt.Errorf("%s does not run data parallel (its method shards nothing; see dist.go)", s.name)
	}
	if err := outsideInputs(s.dir, s.checkpoints, s.inputs); err != nil {
		return nil, err
	}
	inputs, err := digestInputs(s.inputs)
	if err != nil {
		return nil, err
	}
	// A fresh run reads its starting weights before it creates anything,
	// so that a bad checkpoint leaves no run directory behind.
	if !s.resume && s.initial != nil {
		host, err := s.initial()
		if err != nil {
			return nil, err
		}
		p := s.parts[0]
		if err := p.b.Upload(p.params.All, host); err != nil {
			return nil, err
		}
		if p.loaded != nil {
			p.loaded()
		}
	}
	if l.primary() {
		if err := l.prepareDir(); err != nil {
			return nil, err
		}
	}
	// The other ranks read the resume state once rank 0 has cleaned up.
	if err := l.comm.Barrier(); err != nil {
		return nil, fmt.Errorf("wait for rank 0 to prepare %s: %w", s.dir, err)
	}
	if s.resume {
		if finished(s.dir) {
			return nil, fmt.Errorf("%s: %w", s.dir, ErrFinished)
		}
		st, err := loadResume(s.dir, s.parts)
		if err != nil {
			return nil, err
		}
		if err := checkInputs(st.Inputs, inputs, opt.AllowChangedData); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
		if chat := chatRendering(s.tok); st.Chat != "" && st.Chat != chat {
			return nil, fmt.Errorf("resume: the run rendered its data with chat template %q, this resume would use %q; pass --chat-template %s as the run started", st.Chat, chat, st.Chat)
		}
		if err := m.restore(st.Method); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
		l.st = st
		l.window.loss, l.window.steps, l.window.tokens = st.Window.Loss, st.Window.Steps, st.Window.Tokens
		l.log.Info().Int(s.unit, st.Step).Str("dir", s.dir).Msg("resuming")
	} else if l.primary() {
		if err := atomicfile.WriteJSON(filepath.Join(s.dir, RunConfigFile), s.config); err != nil {
			return nil, err
		}
	}
	l.st.Inputs, l.st.Chat = inputs, chatRendering(s.tok)
	if l.primary() {
		if l.metrics, err = OpenMetrics(s.dir, s.resume, l.st.Step); err != nil {
			return nil, err
		}
	}
	if err := l.broadcastParts(); err != nil {
		return nil, err
	}
	l.segStart, l.segStep = time.Now(), l.st.Step
	return l, nil
}

// chatRendering names how tok renders conversations and the prompts and
// completions of plain data: its chat template's name, or "none" (a
// tokenizer without a template, or one that refuses messages data).
func chatRendering(tok tokenizer.Tokenizer) string {
	if tmpl, err := tokenizer.ChatOf(tok); err == nil && tmpl != nil {
		return tmpl.Name()
	}
	return tokenizer.ChatNone
}

// prepareDir makes the run directory, writes a Hugging Face tokenizer's
// files into it and removes what an interrupted save left.
func (l *loop) prepareDir() error {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return err
	}
	if hf, ok := tokenizer.Base(l.tok).(*tokenizer.HF); ok {
		if err := hf.WriteFiles(l.dir); err != nil {
			return err
		}
	}
	if err := cleanStates(l.dir); err != nil {
		return fmt.Errorf("clean up after an earlier save: %w", err)
	}
	return nil
}

// broadcastParts gives every rank of a data-parallel run rank 0's weights,
// so the replicas start equal whatever each read or drew.
func (l *loop) broadcastParts() error {
	if !distributed(l.comm) {
		return nil
	}
	for _, p := range l.parts {
		if err := l.comm.Broadcast(p.params.All, 0); err != nil {
			return fmt.Errorf("broadcast the %s's weights: %w", p.name, err)
		}
		if p.loaded != nil {
			p.loaded()
		}
	}
	return nil
}

// run runs the method's steps from where the run stands to the last,
// saving every saveEvery steps and at the end. Cancelling ctx ends the
// loop after the step under way; the state is then saved and
// l.interrupted set. A step that fails or diverges returns its error
// without saving: the last saved state stays the one to resume from.
func (l *loop) run(ctx context.Context, m method) error {
	l.progress.Start(l.name, l.st.Step, l.steps)
	defer l.progress.Finish()
	w := &l.window
	for l.st.Step < l.steps {
		stop, err := l.stopping(ctx)
		if err != nil {
			return err
		}
		if stop {
			l.interrupted = true
			l.log.Warn().Int(l.unit, l.st.Step).Msg("interrupted: saving the run state")
			break
		}
		step := l.st.Step + 1
		res, err := m.step(step)
		if err != nil {
			return fmt.Errorf("%s %s %d: %w", l.name, l.unit, step, err)
		}
		if err := l.checkFinite(step, res); err != nil {
			return err
		}
		if err := l.checkReplicas(step, res); err != nil {
			return err
		}
		l.st.Step, l.st.Tokens = step, l.st.Tokens+res.tokens
		w.add(res.loss, res.tokens)
		if res.status == "" {
			res.status = fmt.Sprintf("loss %.4f  %.0f tok/s", res.loss, w.tokensPerSec())
		}
		l.progress.Step(step, res.status)

		eval := (l.evalEvery > 0 && step%l.evalEvery == 0) || step == l.steps
		if !l.primary() {
			if step%l.logEvery == 0 || eval {
				*w = newLossWindow()
			}
		} else if step%l.logEvery == 0 || eval {
			rec, ev, err := m.record(l, step, eval, w, l.log.Info().Int(l.unit, step))
			if err != nil {
				return fmt.Errorf("%s %s %d: %w", l.name, l.unit, step, err)
			}
			ev.Str("eta", l.eta(step)).Msg(l.name)
			if err := l.metrics.Write(rec); err != nil {
				return err
			}
			*w = newLossWindow()
		}
		if l.saveEvery > 0 && step%l.saveEvery == 0 && step < l.steps {
			if err := l.save(m); err != nil {
				return err
			}
		}
	}
	return l.save(m)
}

// stopping reports whether the run is to stop before its next step: ctx
// is cancelled, on any rank of a data-parallel run (so that all stop at
// the same step).
func (l *loop) stopping(ctx context.Context) (bool, error) {
	stop := ctx.Err() != nil
	if !distributed(l.comm) {
		return stop, nil
	}
	flag := 0.0
	if stop {
		flag = 1
	}
	votes, err := gpu.SumOverRanks(l.comm, flag)
	if err != nil {
		return false, fmt.Errorf("%s %s %d: agree on stopping: %w", l.name, l.unit, l.st.Step+1, err)
	}
	return votes[0] > 0, nil
}

// checkFinite is the divergence guard: a step whose loss (or another of
// its values) is not finite ends the run, naming the saved state before it.
func (l *loop) checkFinite(step int, res stepResult) error {
	for _, v := range append([]namedValue{{"the loss", res.loss}}, res.finite...) {
		if math.IsNaN(v.value) || math.IsInf(v.value, 0) {
			return fmt.Errorf("%s %s %d: %s is %v; the run diverged (try a lower learning rate); the last saved state in %s is from %s %d, before it",
				l.name, l.unit, step, v.name, v.value, filepath.Join(l.dir, ResumeDir), l.unit, l.st.Step)
		}
	}
	return nil
}

// saveHook, when set (by the crash tests), is called as each save begins
// and ends.
var saveHook func(step int, begin bool)

// save writes the resume state: the parts, then the loop's and the
// method's position. Only rank 0 writes.
func (l *loop) save(m method) error {
	if !l.primary() {
		l.st.Seconds += time.Since(l.segStart).Seconds()
		l.segStart, l.segStep = time.Now(), l.st.Step
		return nil
	}
	if saveHook != nil {
		saveHook(l.st.Step, true)
		defer saveHook(l.st.Step, false)
	}
	l.st.Seconds += time.Since(l.segStart).Seconds()
	l.segStart, l.segStep = time.Now(), l.st.Step
	raw, err := json.Marshal(m.state())
	if err != nil {
		return fmt.Errorf("save resume state: %w", err)
	}
	l.st.Method = raw
	l.st.Window = savedWindow{Loss: l.window.loss, Steps: l.window.steps, Tokens: l.window.tokens}
	if err := saveResume(l.dir, l.parts, l.st); err != nil {
		return err
	}
	if a, ok := m.(afterSaver); ok {
		if err := a.afterSave(); err != nil {
			return fmt.Errorf("save: %w", err)
		}
	}
	return nil
}

// finish writes the run's summary.json and closes the metrics; for an
// interrupted run it returns the error that says how to resume.
func (l *loop) finish(ctx context.Context, summary any) error {
	if !l.primary() {
		return l.interruptedErr(ctx)
	}
	if err := atomicfile.WriteJSON(filepath.Join(l.dir, SummaryFile), summary); err != nil {
		return err
	}
	if err := l.metrics.Close(); err != nil {
		return err
	}
	return l.interruptedErr(ctx)
}

// interruptedErr is the error of an interrupted run, saying how to resume.
func (l *loop) interruptedErr(ctx context.Context) error {
	if !l.interrupted {
		return nil
	}
	cause := context.Cause(ctx)
	if cause == nil { // another rank was interrupted
		cause = context.Canceled
	}
	return fmt.Errorf("%s interrupted after %s %d (resume with --resume %s): %w", l.name, l.unit, l.st.Step, l.dir, cause)
}

// close releases the metrics file of a run that ends in an error.
func (l *loop) close() {
	if l.metrics != nil {
		l.metrics.Close()
	}
}

// elapsed is the run's training time so far, over all its segments.
func (l *loop) elapsed() float64 { return l.st.Seconds + time.Since(l.segStart).Seconds() }

// tokensPerSec is the run's mean training throughput.
func (l *loop) tokensPerSec() float64 { return float64(l.st.Tokens) / math.Max(l.st.Seconds, 1e-9) }

// eta estimates the time to the last step from this segment's pace.
func (l *loop) eta(step int) string {
	return eta(time.Since(l.segStart), step-l.segStep, l.steps-step)
}

// eta estimates the time left when done steps took elapsed and left remain.
func eta(elapsed time.Duration, done, left int) string {
	if done <= 0 {
		return "?"
	}
	return time.Duration(float64(elapsed) / float64(done) * float64(left)).Round(time.Second).String()
}

// lossWindow averages the training loss, and measures tokens per second,
// over the steps since the last logged step.
type lossWindow struct {
	start  time.Time
	loss   float64
	steps  int
	tokens int64
}

func newLossWindow() lossWindow { return lossWindow{start: time.Now()} }

func (w *lossWindow) add(loss float64, tokens int64) {
	w.loss += loss
	w.steps++
	w.tokens += tokens
}

func (w *lossWindow) meanLoss() float64     { return w.loss / float64(max(w.steps, 1)) }
func (w *lossWindow) tokensPerSec() float64 { return float64(w.tokens) / time.Since(w.start).Seconds() }

// round4 rounds to four decimals for log lines (metrics keep full values).
func round4(x float64) float64 { return math.Round(x*1e4) / 1e4 }
