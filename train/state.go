package train

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/atomicfile"
	"github.com/instructgo/instructgo/model/safetensors"
)

// A run directory keeps the state to resume from in a sub-directory:
// the model as of the last saved step, AdamW's moments and the loop's
// position. The model at the top of the run directory is the run's result
// (the last step, or the best by validation for SFT).
const (
	ResumeDir        = "resume"
	OptimizerFile    = "optimizer.safetensors"
	TrainerStateFile = "trainer_state.json"
)

// TrainerState is the loop's position: with the model and the optimizer it
// is everything a run needs to continue exactly where it stopped.
type TrainerState struct {
	Step      int     `json:"step"`       // optimizer steps done
	Epoch     int     `json:"data_epoch"` // data order position
	Next      int     `json:"data_next"`
	BestScore float64 `json:"best_score"` // best validation score so far (SFT)
	BestStep  int     `json:"best_step"`
	Tokens    int64   `json:"tokens"` // tokens trained on so far
	Seconds   float64 `json:"seconds"`
}

// SaveResume writes the model, optimizer and loop state to dir/resume,
// each file atomically, the trainer state last so that a state file never
// points at data that is not there.
func SaveResume(dir string, m *model.Model, opt *Optimizer, st TrainerState) error {
	rd := filepath.Join(dir, ResumeDir)
	if err := model.Save(rd, m); err != nil {
		return fmt.Errorf("save resume state: %w", err)
	}
	b := m.Backend()
	moments := make([]safetensors.Tensor, 0, 2)
	for _, p := range []struct {
		name string
		t    *gpu.Tensor
	}{{"exp_avg", opt.M.All}, {"exp_avg_sq", opt.V.All}} {
		host := make([]float32, p.t.Len())
		if err := b.Download(host, p.t); err != nil {
			return fmt.Errorf("save optimizer: %w", err)
		}
		moments = append(moments, safetensors.Tensor{Name: p.name, Shape: []int{len(host)}, Data: host})
	}
	meta := map[string]string{"step": strconv.Itoa(opt.Step)}
	if err := safetensors.Write(filepath.Join(rd, OptimizerFile), moments, meta); err != nil {
		return fmt.Errorf("save optimizer: %w", err)
	}
	if err := atomicfile.WriteJSON(filepath.Join(rd, TrainerStateFile), st); err != nil {
		return fmt.Errorf("save resume state: %w", err)
	}
	return nil
}

// LoadResume restores a model's parameters, the optimizer's moments and
// step, and returns the loop state saved in dir/resume.
func LoadResume(dir string, m *model.Model, opt *Optimizer) (TrainerState, error) {
	rd := filepath.Join(dir, ResumeDir)
	var st TrainerState
	data, err := os.ReadFile(filepath.Join(rd, TrainerStateFile))
	if err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	if err := json.Unmarshal(data, &st); err != nil {
		return st, fmt.Errorf("resume %s: %w", filepath.Join(rd, TrainerStateFile), err)
	}
	cfg, err := model.ReadConfig(rd)
	if err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	if cfg.Dropout = m.Cfg.Dropout; cfg != m.Cfg {
		return st, fmt.Errorf("resume: the saved model (%+v) is not the configured one (%+v)", cfg, m.Cfg)
	}
	host, err := model.LoadHost(rd, m.Cfg)
	if err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	b := m.Backend()
	if err := b.Upload(m.Params.All, host); err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	f, err := safetensors.Open(filepath.Join(rd, OptimizerFile))
	if err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	defer f.Close()
	for _, p := range []struct {
		name string
		t    *gpu.Tensor
	}{{"exp_avg", opt.M.All}, {"exp_avg_sq", opt.V.All}} {
		host := make([]float32, p.t.Len())
		info, ok := f.Info(p.name)
		if !ok || info.NumElements() != len(host) {
			return st, fmt.Errorf("resume: optimizer state %s missing or of the wrong size", p.name)
		}
		if err := f.ReadFloat32(p.name, host); err != nil {
			return st, fmt.Errorf("resume: %w", err)
		}
		if err := b.Upload(p.t, host); err != nil {
			return st, fmt.Errorf("resume: %w", err)
		}
	}
	step, err := strconv.Atoi(f.Metadata()["step"])
	if err != nil || step != st.Step {
		return st, fmt.Errorf("resume: optimizer step %q does not match the trainer state's %d", f.Metadata()["step"], st.Step)
	}
	opt.Step = step
	return st, nil
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
