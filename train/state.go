package train

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/internal/atomicfile"
	"github.com/instructgo/instructgo/internal/readfile"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/safetensors"
)

// A run directory keeps the state to resume from in a sub-directory: the
// models as of the last saved step, their AdamW moments, and the loop's
// and the method's position. The model at the top of the run directory is
// the run's result (the last step, the best by validation for SFT, the EMA
// policy for PPO).
const (
	ResumeDir        = "resume"
	OptimizerFile    = "optimizer.safetensors"
	TrainerStateFile = "trainer_state.json"
)

// TrainerState is a run's position after a step: with the saved models and
// optimizers it is everything the run needs to continue exactly where it
// stopped.
type TrainerState struct {
	Step    int     `json:"step"`    // loop steps done (PPO: iterations)
	Tokens  int64   `json:"tokens"`  // tokens trained on so far
	Seconds float64 `json:"seconds"` // training time over all segments
	// Method is the method's own position: where its data stand, its best
	// validation so far (SFT), its KL coefficient and the fingerprints of
	// its frozen models (PPO).
	Method json.RawMessage `json:"method,omitempty"`
	// Window is the loss window since the last logged step, so that the
	// first line a resumed run logs averages the same steps as the
	// uninterrupted run's.
	Window savedWindow `json:"window"`
	// Inputs are the SHA-256 digests of the run's data files (and
	// directories) by absolute path: a resume refuses data that changed.
	Inputs map[string]string `json:"inputs,omitempty"`
	// Chat is how the run renders conversations (chatRendering): a resume
	// that would render them otherwise is refused. "" in a state saved
	// before it was recorded (not checked).
	Chat string `json:"chat,omitempty"`
}

// savedWindow is a lossWindow's sums.
type savedWindow struct {
	Loss   float64 `json:"loss_sum"`
	Steps  int     `json:"steps"`
	Tokens int64   `json:"tokens"`
}

// savedPart is one set of weights of the resume state, in a sub-directory
// of resume/ ("" for resume/ itself): a model's checkpoint and, for a
// model that trains, its optimizer, which must have taken updatesPerStep
// updates per loop step.
type savedPart struct {
	dir            string
	name           string // in messages: "model", "policy", "value function", "EMA"
	b              gpu.Backend
	cfg            model.Config
	params         *model.Params
	opt            *Optimizer // nil: weights only (the EMA)
	updatesPerStep int
	// loaded, when set, runs after the weights were written: a model
	// refreshes the bf16 copy its ops read.
	loaded func()
}

// saveResume writes the parts and the loop state as one state set of run
// directory dir (see stateset.go): a kill at any moment leaves the previous
// complete state or this one.
func saveResume(dir string, parts []savedPart, st TrainerState) error {
	err := writeState(dir, st.Step, func(sd string) error {
		for _, p := range parts {
			if err := p.save(filepath.Join(sd, p.dir)); err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
		}
		return atomicfile.WriteJSON(filepath.Join(sd, TrainerStateFile), st)
	})
	if err != nil {
		return fmt.Errorf("save resume state: %w", err)
	}
	return nil
}

// loadResume restores the parts from dir's saved state (its manifest
// verified) and returns the loop state, refusing parts whose optimizers did
// not take the updates of the saved steps.
func loadResume(dir string, parts []savedPart) (TrainerState, error) {
	var st TrainerState
	rd, err := openState(dir)
	if err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	if err := readJSONState(filepath.Join(rd, TrainerStateFile), &st); err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	for _, p := range parts {
		step, err := p.load(filepath.Join(rd, p.dir))
		if err != nil {
			return st, fmt.Errorf("resume: %s: %w", p.name, err)
		}
		if want := st.Step * p.updatesPerStep; p.opt != nil && step != want {
			return st, fmt.Errorf("resume: the %s's optimizer took %d steps, not the %d of %d steps in the trainer state", p.name, step, want, st.Step)
		}
	}
	return st, nil
}

// save writes the part into dir: its checkpoint (config.json,
// model.safetensors) and its optimizer's moments and step
// (optimizer.safetensors), each file atomically.
func (p savedPart) save(dir string) error {
	b := p.b
	host := make([]float32, p.params.All.Len())
	if err := b.Download(host, p.params.All); err != nil {
		return err
	}
	if err := model.SaveHost(dir, p.cfg, host); err != nil {
		return err
	}
	if p.opt == nil {
		return nil
	}
	moments := make([]safetensors.Tensor, 0, 2)
	for _, m := range p.opt.moments() {
		host := make([]float32, m.t.Len())
		if err := b.Download(host, m.t); err != nil {
			return fmt.Errorf("save optimizer: %w", err)
		}
		moments = append(moments, safetensors.Tensor{Name: m.name, Shape: []int{len(host)}, Data: host})
	}
	meta := map[string]string{"step": strconv.Itoa(p.opt.Step)}
	if err := safetensors.Write(filepath.Join(dir, OptimizerFile), moments, meta); err != nil {
		return fmt.Errorf("save optimizer: %w", err)
	}
	return nil
}

// load restores what save wrote into dir, refusing a saved model that is
// not the part's configuration, and returns the optimizer's saved step
// (which it also sets).
func (p savedPart) load(dir string) (int, error) {
	b := p.b
	if err := loadParams(dir, p.cfg, b, p.params.All); err != nil {
		return 0, err
	}
	if p.loaded != nil {
		p.loaded()
	}
	if p.opt == nil {
		return 0, nil
	}
	f, err := safetensors.Open(filepath.Join(dir, OptimizerFile))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for _, m := range p.opt.moments() {
		host := make([]float32, m.t.Len())
		info, ok := f.Info(m.name)
		if !ok || info.NumElements() != len(host) {
			return 0, fmt.Errorf("optimizer state %s missing or of the wrong size in %s", m.name, dir)
		}
		if err := f.ReadFloat32(m.name, host); err != nil {
			return 0, err
		}
		if err := b.Upload(m.t, host); err != nil {
			return 0, err
		}
	}
	step, err := strconv.Atoi(f.Metadata()["step"])
	if err != nil {
		return 0, fmt.Errorf("optimizer step %q in %s: %w", f.Metadata()["step"], dir, err)
	}
	p.opt.Step = step
	return step, nil
}

// loadParams uploads the checkpoint in dir into dst, a parameter buffer of
// a model of configuration cfg, refusing a checkpoint of another
// configuration (dropout aside, which is not part of the weights).
func loadParams(dir string, cfg model.Config, b gpu.Backend, dst *gpu.Tensor) error {
	saved, err := model.ReadConfig(dir)
	if err != nil {
		return err
	}
	if saved.Dropout = cfg.Dropout; saved != cfg {
		return fmt.Errorf("the saved model in %s (%+v) is not the configured one (%+v)", dir, saved, cfg)
	}
	host, err := model.LoadHost(dir, cfg)
	if err != nil {
		return err
	}
	return b.Upload(dst, host)
}

// readJSONState reads a saved loop state.
func readJSONState(path string, v any) error {
	data, err := readfile.Bounded(path, readfile.JSONLimit)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// truncateMetrics keeps the records of steps ≤ step in dir's metrics file,
// so a resumed run does not repeat the lines logged after its checkpoint.
func truncateMetrics(dir string, step int) error {
	path := filepath.Join(dir, MetricsFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer f.Close()
	var kept [][]byte
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	for sc.Scan() {
		var rec struct {
			Step int `json:"step"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec.Step > step {
			continue
		}
		kept = append(kept, append([]byte(nil), sc.Bytes()...))
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return atomicfile.Write(path, func(w io.Writer) error {
		for _, line := range kept {
			if _, err := w.Write(append(line, '\n')); err != nil {
				return err
			}
		}
		return nil
	})
}

// checkpointSHA256 fingerprints a checkpoint's weights: its
// model.safetensors, or for a sharded checkpoint its index and every shard
// the index names (in name order), so that a frozen model read again on
// resume is known to be the same.
func checkpointSHA256(dir string) (string, error) {
	single := filepath.Join(dir, model.WeightsFile)
	if _, err := os.Stat(single); err == nil {
		return fileSHA256(single)
	}
	index := filepath.Join(dir, model.WeightsIndexFile)
	raw, err := os.ReadFile(index)
	if err != nil {
		return "", fmt.Errorf("%s has neither %s nor a readable %s: %w", dir, model.WeightsFile, model.WeightsIndexFile, err)
	}
	var idx struct {
		WeightMap map[string]string `json:"weight_map"`
	}
	if err := json.Unmarshal(raw, &idx); err != nil {
		return "", fmt.Errorf("%s: %w", index, err)
	}
	files := slices.Sorted(maps.Values(idx.WeightMap))
	files = slices.Compact(files)
	h := sha256.New()
	h.Write(raw)
	for _, f := range files {
		if filepath.Base(f) != f {
			return "", fmt.Errorf("%s: shard %q is not a file name in the checkpoint's directory", index, f)
		}
		sum, err := fileSHA256(filepath.Join(dir, f))
		if err != nil {
			return "", err
		}
		h.Write([]byte(f + " " + sum + "\n"))
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fileSHA256 is the hex SHA-256 of a file's contents.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// sameCheckpoint is the error of a resumed run whose frozen checkpoint
// (what: "policy", "reward model", ...) no longer has the weights it
// started from (fingerprints now and saved); other names what the run
// would continue against.
func sameCheckpoint(what, other, now, saved string) error {
	if now == saved {
		return nil
	}
	return fmt.Errorf("the %s checkpoint's weights are not those the run started from (SHA-256 %.12s…, saved %.12s…); the run cannot continue against another %s", what, now, saved, other)
}

// sameCheckpoints is the first of the checks' errors.
func sameCheckpoints(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
