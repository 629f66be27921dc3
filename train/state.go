package train

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/internal/atomicfile"
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
	if err := saveModelState(rd, m, opt); err != nil {
		return fmt.Errorf("save resume state: %w", err)
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
	if err := readJSONState(filepath.Join(rd, TrainerStateFile), &st); err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	step, err := loadModelState(rd, m, opt)
	if err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	if step != st.Step {
		return st, fmt.Errorf("resume: optimizer step %d does not match the trainer state's %d", step, st.Step)
	}
	opt.Step = step
	return st, nil
}

// saveModelState writes one trained model into dir: its checkpoint
// (config.json, model.safetensors) and its optimizer's moments and step
// (optimizer.safetensors), each file atomically. A resume state is one or
// more of these plus the loop's state, written after them.
func saveModelState(dir string, m *model.Model, opt *Optimizer) error {
	if err := model.Save(dir, m); err != nil {
		return err
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
	if err := safetensors.Write(filepath.Join(dir, OptimizerFile), moments, meta); err != nil {
		return fmt.Errorf("save optimizer: %w", err)
	}
	return nil
}

// loadModelState restores what saveModelState wrote into dir: m's
// parameters and opt's moments. It returns the saved optimizer step
// without setting it, so the caller can check it against its loop state
// first, and refuses a saved model that is not m's configuration.
func loadModelState(dir string, m *model.Model, opt *Optimizer) (int, error) {
	if err := loadParams(dir, m.Cfg, m.Backend(), m.Params.All); err != nil {
		return 0, err
	}
	b := m.Backend()
	f, err := safetensors.Open(filepath.Join(dir, OptimizerFile))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	for _, p := range []struct {
		name string
		t    *gpu.Tensor
	}{{"exp_avg", opt.M.All}, {"exp_avg_sq", opt.V.All}} {
		host := make([]float32, p.t.Len())
		info, ok := f.Info(p.name)
		if !ok || info.NumElements() != len(host) {
			return 0, fmt.Errorf("optimizer state %s missing or of the wrong size in %s", p.name, dir)
		}
		if err := f.ReadFloat32(p.name, host); err != nil {
			return 0, err
		}
		if err := b.Upload(p.t, host); err != nil {
			return 0, err
		}
	}
	step, err := strconv.Atoi(f.Metadata()["step"])
	if err != nil {
		return 0, fmt.Errorf("optimizer step %q in %s: %w", f.Metadata()["step"], dir, err)
	}
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
	data, err := os.ReadFile(path)
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

// A PPO run's resume state holds two trained models and the EMA: the
// policy and the value function each with their optimizer (saveModelState)
// in resume/policy and resume/value, the EMA weights in resume/ema, and
// the loop's PPOState in resume/trainer_state.json, written last.
const (
	PPOPolicyDir = "policy"
	PPOValueDir  = "value"
	PPOEMADir    = "ema"
)

// PPOState is a PPO run's position after an iteration: with the policy,
// the value function, their optimizers and the EMA it is everything the
// run needs to continue exactly where it stopped. The frozen reference and
// reward models are not saved; the fingerprints of their checkpoints
// refuse a resume whose checkpoints changed.
type PPOState struct {
	Iteration  int     `json:"iteration"`   // iterations done
	Beta       float64 `json:"beta"`        // the KL coefficient of the next iteration
	PromptNext int     `json:"prompt_next"` // position in the seeded prompt order
	PtxEpoch   int     `json:"ptx_epoch"`   // ptx window sampler position
	PtxNext    int     `json:"ptx_next"`
	Seconds    float64 `json:"seconds"`
	// What the summary needs: the first and latest iteration's metrics and
	// every iteration's mean score and task score (the summary averages
	// the last quarter).
	First      PPOMetrics `json:"first"`
	Last       PPOMetrics `json:"last"`
	Scores     []float64  `json:"scores"`
	TaskScores []float64  `json:"task_scores,omitempty"`

	PolicySHA256 string `json:"policy_sha256"` // of the SFT checkpoint's weights file
	RewardSHA256 string `json:"reward_sha256"` // of the reward model's
}

// savePPOResume writes a PPO run's resume state to dir/resume, each file
// atomically, the state last.
func savePPOResume(dir string, b gpu.Backend, ms *ppoModels, st PPOState) error {
	rd := filepath.Join(dir, ResumeDir)
	if err := saveModelState(filepath.Join(rd, PPOPolicyDir), ms.policy, ms.policyOpt); err != nil {
		return fmt.Errorf("save resume state: policy: %w", err)
	}
	if err := saveModelState(filepath.Join(rd, PPOValueDir), ms.value, ms.valueOpt); err != nil {
		return fmt.Errorf("save resume state: value function: %w", err)
	}
	if err := saveEMAPolicy(b, filepath.Join(rd, PPOEMADir), ms); err != nil {
		return fmt.Errorf("save resume state: EMA: %w", err)
	}
	if err := atomicfile.WriteJSON(filepath.Join(rd, TrainerStateFile), st); err != nil {
		return fmt.Errorf("save resume state: %w", err)
	}
	return nil
}

// loadPPOResume restores the policy, the value function, their optimizers
// and the EMA from dir/resume and returns the loop state. It refuses a
// state whose frozen checkpoints' fingerprints are not policySum and
// rewardSum, whose saved models are not ms's configurations, or whose
// optimizers did not take stepsPerIter steps per saved iteration.
func loadPPOResume(dir string, b gpu.Backend, ms *ppoModels, stepsPerIter int, policySum, rewardSum string) (PPOState, error) {
	rd := filepath.Join(dir, ResumeDir)
	var st PPOState
	if err := readJSONState(filepath.Join(rd, TrainerStateFile), &st); err != nil {
		return st, fmt.Errorf("resume: %w", err)
	}
	if st.PolicySHA256 != policySum {
		return st, fmt.Errorf("resume: the policy checkpoint's weights are not those the run started from (SHA-256 %.12s…, saved %.12s…); the run cannot continue against another SFT model", policySum, st.PolicySHA256)
	}
	if st.RewardSHA256 != rewardSum {
		return st, fmt.Errorf("resume: the reward model checkpoint's weights are not those the run started from (SHA-256 %.12s…, saved %.12s…); the run cannot continue against another reward model", rewardSum, st.RewardSHA256)
	}
	want := st.Iteration * stepsPerIter
	for _, p := range []struct {
		name, dir string
		m         *model.Model
		opt       *Optimizer
	}{{"policy", PPOPolicyDir, ms.policy, ms.policyOpt}, {"value function", PPOValueDir, ms.value, ms.valueOpt}} {
		step, err := loadModelState(filepath.Join(rd, p.dir), p.m, p.opt)
		if err != nil {
			return st, fmt.Errorf("resume: %s: %w", p.name, err)
		}
		if step != want {
			return st, fmt.Errorf("resume: the %s's optimizer took %d steps, not the %d of %d iterations in the trainer state", p.name, step, want, st.Iteration)
		}
		p.opt.Step = step
	}
	if err := loadParams(filepath.Join(rd, PPOEMADir), ms.policy.Cfg, b, ms.ema.All); err != nil {
		return st, fmt.Errorf("resume: EMA: %w", err)
	}
	return st, nil
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
