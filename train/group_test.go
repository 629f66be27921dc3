package train

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
)

// smallGroup is a short GRPO or RLOO run on writePPOFixture's files.
func smallGroup(c GroupConfig, prompts, policy, reward, out string) GroupConfig {
	c.Prompts, c.Policy, c.Reward, c.Out = prompts, policy, reward, out
	c.Iterations, c.PromptsPerIter, c.Group, c.MiniBatch, c.MaxNew = 30, 8, 4, 16, 8
	c.Optim.LR = 1e-3
	return c
}

// Any fixed reward model defines a reward function of the response: each
// method must raise its mean, and its KL to the reference must grow from 0.
func TestGroupMethodsRaiseRewardModelScore(t *testing.T) {
	prompts, policy, reward := writePPOFixture(t)
	drGRPO := DefaultGRPO()
	drGRPO.DrGRPO = true
	for _, tc := range []struct {
		name string
		cfg  GroupConfig
		run  func(context.Context, GroupConfig) (*GroupSummary, error)
	}{
		{"grpo", DefaultGRPO(), func(ctx context.Context, c GroupConfig) (*GroupSummary, error) {
			return GRPO(ctx, cpu.New(2), byteTok, c, RunOptions{Log: zerolog.Nop()})
		}},
		{"dr-grpo", drGRPO, func(ctx context.Context, c GroupConfig) (*GroupSummary, error) {
			return GRPO(ctx, cpu.New(2), byteTok, c, RunOptions{Log: zerolog.Nop()})
		}},
		{"rloo", DefaultRLOO(), func(ctx context.Context, c GroupConfig) (*GroupSummary, error) {
			return RLOO(ctx, cpu.New(2), byteTok, c, RunOptions{Log: zerolog.Nop()})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := smallGroup(tc.cfg, prompts, policy, reward, t.TempDir())
			sum, err := tc.run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("mean reward %.3f → %.3f, KL %.3f", sum.FirstReward, sum.LastReward, sum.LastKL)
			if !(sum.LastReward > sum.FirstReward+0.5) {
				t.Errorf("mean reward %v at the start, %v over the last quarter: %s did not raise it", sum.FirstReward, sum.LastReward, tc.name)
			}
			if !(sum.LastKL > 0) {
				t.Errorf("KL to the reference %v after training", sum.LastKL)
			}
			if _, err := model.Load(cpu.New(1), cfg.Out, model.Options{MaxBatch: 1, MaxSeq: 8}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// writeTaskPrompts writes n prompts of the built-in "upper" task.
func writeTaskPrompts(t *testing.T, n int) string {
	var sb strings.Builder
	for i := range n {
		w := []string{"ab", "cd", "ef", "gh"}[i%4]
		rec, _ := json.Marshal(map[string]string{"prompt": fmt.Sprintf("in capitals: %s\n", w), "task": "upper", "answer": strings.ToUpper(w)})
		sb.Write(append(rec, '\n'))
	}
	path := filepath.Join(t.TempDir(), "tasks.jsonl")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// With the task reward alone and no EOS penalty, the reward an iteration
// trains on is the rollouts' ground-truth task score; with the reward
// model too, it is their sum.
func TestGroupTaskReward(t *testing.T) {
	_, policy, reward := writePPOFixture(t)
	prompts := writeTaskPrompts(t, 8)
	for _, withRM := range []bool{false, true} {
		cfg := DefaultGRPO()
		cfg.Prompts, cfg.Policy, cfg.TaskReward, cfg.Out = prompts, policy, true, t.TempDir()
		if withRM {
			cfg.Reward = reward
		}
		cfg.Iterations, cfg.PromptsPerIter, cfg.Group, cfg.MiniBatch, cfg.MaxNew = 2, 4, 4, 8, 6
		if _, err := GRPO(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop()}); err != nil {
			t.Fatal(err)
		}
		for _, rec := range readGroupMetrics(t, cfg.Out) {
			want := *rec.TaskScore
			if withRM {
				want += *rec.RMScore
			}
			if math.Abs(rec.Reward-want) > 1e-5 {
				t.Errorf("reward model %v, iteration %d: reward %v, want %v", withRM, rec.Step, rec.Reward, want)
			}
		}
	}
	// Prompts without a task cannot be rewarded by the tasks.
	plain, _, _ := writePPOFixture(t)
	cfg := DefaultGRPO()
	cfg.Prompts, cfg.Policy, cfg.TaskReward, cfg.Out, cfg.MaxNew = plain, policy, true, t.TempDir(), 8
	if _, err := GRPO(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop()}); err == nil || !strings.Contains(err.Error(), "names none") {
		t.Errorf("task reward on prompts without tasks: %v", err)
	}
}

func readGroupMetrics(t *testing.T, dir string) []GroupMetrics {
	raw, err := os.ReadFile(filepath.Join(dir, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var out []GroupMetrics
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m GroupMetrics
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	if len(out) == 0 {
		t.Fatal("no metrics")
	}
	return out
}

func TestGroupConfigValidate(t *testing.T) {
	ok := DefaultGRPO()
	ok.Prompts, ok.Policy, ok.Reward, ok.Out = "p", "s", "r", "o"
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]func(c *GroupConfig){
		"no reward":      func(c *GroupConfig) { c.Reward = "" },
		"group of one":   func(c *GroupConfig) { c.Group = 1 },
		"minibatch":      func(c *GroupConfig) { c.MiniBatch = 7 },
		"negative kl":    func(c *GroupConfig) { c.KLCoef = -1 },
		"dr-grpo rloo":   func(c *GroupConfig) { c.Method, c.DrGRPO = MethodRLOO, true },
		"unknown method": func(c *GroupConfig) { c.Method = "ppo" },
		"no clip":        func(c *GroupConfig) { c.ClipEps = 0 },
		"huge rollout":   func(c *GroupConfig) { c.PromptsPerIter, c.Group, c.MiniBatch = 1<<14, 8, 8 },
	} {
		c := ok
		bad(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
