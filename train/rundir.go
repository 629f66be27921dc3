package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/internal/atomicfile"
)

// Files of a run directory besides the checkpoint's own (model.ConfigFile,
// model.WeightsFile), which sit at its top so the directory loads as a
// Hugging Face model.
const (
	RunConfigFile = "run_config.json" // the resolved configuration of the run
	MetricsFile   = "metrics.jsonl"   // one JSON object per logged step
	SummaryFile   = "summary.json"    // the run's final numbers
)

// Metrics appends one JSON object per line to a run's metrics.jsonl.
type Metrics struct {
	f *os.File
}

// OpenMetrics creates dir's metrics file, or with resume keeps the records
// up to step and appends after them.
func OpenMetrics(dir string, resume bool, step int) (*Metrics, error) {
	flags := os.O_CREATE | os.O_WRONLY | os.O_TRUNC
	if resume {
		if err := truncateMetrics(dir, step); err != nil {
			return nil, err
		}
		flags = os.O_CREATE | os.O_WRONLY | os.O_APPEND
	}
	f, err := os.OpenFile(filepath.Join(dir, MetricsFile), flags, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open metrics: %w", err)
	}
	return &Metrics{f: f}, nil
}

// Write appends one record. Each line is written whole, so a reader tailing
// the file sees complete records.
func (m *Metrics) Write(rec any) error {
	line, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	if _, err := m.f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return nil
}

// Close flushes the file to disk and closes it.
func (m *Metrics) Close() error {
	if err := m.f.Sync(); err != nil {
		m.f.Close()
		return fmt.Errorf("metrics: %w", err)
	}
	return m.f.Close()
}

// startRun begins a fresh (not resumed) run in dir: it uploads the initial
// weights host into m and records cfg as the run's run_config.json.
func startRun(b gpu.Backend, m *model.Model, host []float32, dir string, cfg any) error {
	if err := b.Upload(m.Params.All, host); err != nil {
		return err
	}
	return atomicfile.WriteJSON(filepath.Join(dir, RunConfigFile), cfg)
}

// initialLM returns a language model's starting weights: the checkpoint in
// init when it is set, else GPT-2's initialisation of c drawn with seed.
func initialLM(c model.Config, init string, seed uint64) ([]float32, error) {
	if init != "" {
		return model.LoadHost(init, c)
	}
	return model.InitGPT2(c, seed), nil
}

// trainRun is what the supervised trainers (pretrain, SFT, reward model)
// keep around their step loops: the model and optimizer, the loop state a
// resume restores, the metrics file, and the clock of the current segment.
// Time counts from the last save (or the start), so TrainerState.Seconds
// adds up across resumed segments.
type trainRun struct {
	dir      string
	m        *model.Model
	optim    *Optimizer
	st       TrainerState
	metrics  *Metrics
	segStart time.Time
	segStep  int
	// position reports where the data stream stands, for the resume state.
	position func() (epoch, next int)
}

// runSetup says how to open a trainRun.
type runSetup struct {
	dir    string
	resume bool
	model  model.Config
	opts   model.Options
	optim  OptimConfig
	// config is recorded as the run's run_config.json on a fresh start.
	config any
	// initial returns the starting weights of a fresh run.
	initial func() ([]float32, error)
	// seek moves the data stream to a resumed run's position; position
	// reports it for the next save.
	seek     func(epoch, next int) error
	position func() (epoch, next int)
}

// openTrainRun makes the run directory, the model and its optimizer; it
// restores the saved state and moves the data to where the run stopped, or
// on a fresh start uploads the initial weights and records the
// configuration; then it opens metrics.jsonl.
func openTrainRun(b gpu.Backend, s runSetup, log zerolog.Logger) (*trainRun, error) {
	if err := os.MkdirAll(s.dir, 0o755); err != nil {
		return nil, err
	}
	m, err := model.New(b, s.model, s.opts)
	if err != nil {
		return nil, err
	}
	optim, err := NewOptimizer(b, s.model, s.optim)
	if err != nil {
		return nil, err
	}
	r := &trainRun{dir: s.dir, m: m, optim: optim, position: s.position}
	if s.resume {
		if r.st, err = LoadResume(s.dir, m, optim); err != nil {
			return nil, err
		}
		if err := s.seek(r.st.Epoch, r.st.Next); err != nil {
			return nil, fmt.Errorf("resume: %w", err)
		}
		log.Info().Int("step", r.st.Step).Str("dir", s.dir).Msg("resuming")
	} else {
		host, err := s.initial()
		if err != nil {
			return nil, err
		}
		if err := startRun(b, m, host, s.dir, s.config); err != nil {
			return nil, err
		}
	}
	if r.metrics, err = OpenMetrics(s.dir, s.resume, r.st.Step); err != nil {
		return nil, err
	}
	r.segStart, r.segStep = time.Now(), r.st.Step
	return r, nil
}

// save writes the resume state: model, optimizer, step and data position.
func (r *trainRun) save() error {
	r.st.Epoch, r.st.Next = r.position()
	r.st.Seconds += time.Since(r.segStart).Seconds()
	r.segStart, r.segStep = time.Now(), r.st.Step
	return SaveResume(r.dir, r.m, r.optim, r.st)
}

// saveIfDue saves the resume state after every every'th step before the
// last (every 0: never); the last step's state is saved after the loop.
func (r *trainRun) saveIfDue(step, every, last int) error {
	if every > 0 && step%every == 0 && step < last {
		return r.save()
	}
	return nil
}

// elapsed is the run's training time so far, over all its segments.
func (r *trainRun) elapsed() float64 { return r.st.Seconds + time.Since(r.segStart).Seconds() }

// eta estimates the time to the last step from this segment's pace.
func (r *trainRun) eta(step, last int) string {
	return eta(time.Since(r.segStart), step-r.segStep, last-step)
}

// diverged is the error for a non-finite loss at step: what happened and
// which saved state predates it.
func (r *trainRun) diverged(what string, step int, loss float64) error {
	return fmt.Errorf("%s step %d: loss is %v; the run diverged (try a lower --lr); the last saved state in %s is from step %d, before it",
		what, step, loss, filepath.Join(r.dir, ResumeDir), r.st.Step)
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

// add records a step of the given loss and tokens; it returns the window's
// tokens per second so far.
func (w *lossWindow) add(loss float64, tokens int64) float64 {
	w.loss += loss
	w.steps++
	w.tokens += tokens
	return w.tokensPerSec()
}

func (w *lossWindow) tokensPerSec() float64 { return float64(w.tokens) / time.Since(w.start).Seconds() }

// logStep summarises the window at step of last: it returns the step's
// metrics record and its log event (step, mean loss, learning rate,
// gradient norm, tokens/s, ETA) for the caller to extend. The caller starts
// a new window once it has validated and written the record, so that the
// next window's throughput leaves that time out.
func (r *trainRun) logStep(w *lossWindow, log zerolog.Logger, step, last int, lr float32, gradNorm float64) (stepMetrics, *zerolog.Event) {
	rec := stepMetrics{Step: step, Loss: w.loss / float64(w.steps), LR: lr, GradNorm: gradNorm,
		TokensSec: w.tokensPerSec(), Elapsed: r.elapsed()}
	ev := log.Info().Int("step", step).Float64("loss", round4(rec.Loss)).Float32("lr", lr).
		Float64("grad_norm", round4(gradNorm)).Float64("tok/s", math.Round(rec.TokensSec)).
		Str("eta", r.eta(step, last))
	return rec, ev
}
