package train

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/internal/crashpoint"
	"github.com/instructgo/instructgo/model"
)

// The crash tests kill a training run with SIGKILL at every file operation
// of one of its saves (internal/crashpoint counts them), resume it, and
// require the result of the uninterrupted run, bit for bit. The runs are
// child processes: this test binary, started again with crashChildEnv set,
// runs one scenario and exits (TestMain).

const (
	crashChildEnv   = "INSTRUCTGO_CRASH_CHILD"   // the scenario to run
	crashOutEnv     = "INSTRUCTGO_CRASH_OUT"     // its run directory
	crashFixtureEnv = "INSTRUCTGO_CRASH_FIXTURE" // JSON of the fixture's paths
	crashResumeEnv  = "INSTRUCTGO_CRASH_RESUME"  // "1": resume
)

// crashScenario is a short run of one method that saves three times.
type crashScenario struct {
	name    string
	fixture func(t *testing.T) map[string]string
	run     func(out string, fx map[string]string, resume bool) error
}

var crashScenarios = []crashScenario{
	{"pretrain", func(t *testing.T) map[string]string {
		return map[string]string{"text": synthText(t, 3000)}
	}, func(out string, fx map[string]string, resume bool) error {
		cfg := PretrainConfig{
			Data:  []string{fx["text"]},
			Model: model.Config{VocabSize: 258, MaxSeqLen: 16, NLayer: 1, NHead: 2, NEmbd: 16, Tokenizer: "byte", Dropout: 0.1},
			Out:   out, Steps: 6, Batch: 2, Seq: 16, Accum: 2, Optim: DefaultOptim(), Seed: 3, ValFrac: 0.1,
			EvalEvery: 2, EvalBatches: 1, LogEvery: 1, SaveEvery: 2,
		}
		_, err := Pretrain(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop(), Resume: resume})
		return err
	}},
	{"sft", func(t *testing.T) map[string]string {
		return map[string]string{"data": writeUpperSFT(t, 40)}
	}, func(out string, fx map[string]string, resume bool) error {
		cfg := smallSFT(fx["data"], out)
		cfg.Model = model.Config{VocabSize: 258, MaxSeqLen: 48, NLayer: 1, NHead: 2, NEmbd: 16, Tokenizer: "byte", Dropout: 0.1}
		cfg.TokenBudget, cfg.MaxBatch = 8*48, 8
		cfg.Steps, cfg.EvalEvery, cfg.EvalPrompts, cfg.MaxNew, cfg.LogEvery, cfg.SaveEvery = 6, 2, 3, 4, 1, 2
		_, err := SFT(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop(), Resume: resume})
		return err
	}},
	{"rm", func(t *testing.T) map[string]string {
		rm, sft := writeLengthRM(t, 40)
		return map[string]string{"rm": rm, "sft": sft, "init": writeInit(t)}
	}, func(out string, fx map[string]string, resume bool) error {
		cfg := smallRM(fx["rm"], fx["init"], out)
		cfg.CenterData = fx["sft"]
		cfg.Batch, cfg.Epochs, cfg.Steps, cfg.EvalEvery, cfg.LogEvery, cfg.SaveEvery = 4, 0, 6, 2, 1, 2
		_, err := RM(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop(), Resume: resume})
		return err
	}},
	{"dpo", func(t *testing.T) map[string]string {
		rm, _ := writeLengthRM(t, 40)
		return map[string]string{"rm": rm, "init": writeInitWith(t, dpoLMConfig())}
	}, func(out string, fx map[string]string, resume bool) error {
		cfg := smallDPO(fx["rm"], fx["init"], out)
		// Saves between logged steps: the reward metrics' window is saved too.
		cfg.Batch, cfg.Epochs, cfg.Steps, cfg.EvalEvery, cfg.LogEvery, cfg.SaveEvery = 4, 0, 6, 3, 3, 2
		_, err := DPO(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop(), Resume: resume})
		return err
	}},
	{"ppo", func(t *testing.T) map[string]string {
		prompts, policy, reward := writePPOFixture(t)
		return map[string]string{"prompts": prompts, "policy": policy, "reward": reward, "ptx": synthText(t, 600)}
	}, func(out string, fx map[string]string, resume bool) error {
		cfg := DefaultPPO()
		cfg.Prompts, cfg.Policy, cfg.Reward, cfg.Out, cfg.Ptx = fx["prompts"], fx["policy"], fx["reward"], out, []string{fx["ptx"]}
		cfg.Iterations, cfg.Episodes, cfg.MiniBatch, cfg.MaxNew = 6, 4, 2, 4
		cfg.PtxBatch, cfg.PtxSeq, cfg.SaveEvery, cfg.LogEvery = 1, 16, 2, 1
		_, err := PPO(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop(), Resume: resume})
		return err
	}},
	{"grpo", func(t *testing.T) map[string]string {
		prompts, policy, reward := writePPOFixture(t)
		return map[string]string{"prompts": prompts, "policy": policy, "reward": reward}
	}, func(out string, fx map[string]string, resume bool) error {
		cfg := smallGroup(DefaultGRPO(), fx["prompts"], fx["policy"], fx["reward"], out)
		cfg.Iterations, cfg.PromptsPerIter, cfg.Group, cfg.MiniBatch, cfg.MaxNew, cfg.SaveEvery = 6, 2, 3, 3, 4, 2
		_, err := GRPO(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop(), Resume: resume})
		return err
	}},
	{"rloo", func(t *testing.T) map[string]string {
		prompts, policy, reward := writePPOFixture(t)
		return map[string]string{"prompts": prompts, "policy": policy, "reward": reward}
	}, func(out string, fx map[string]string, resume bool) error {
		cfg := smallGroup(DefaultRLOO(), fx["prompts"], fx["policy"], fx["reward"], out)
		cfg.Iterations, cfg.PromptsPerIter, cfg.Group, cfg.MiniBatch, cfg.MaxNew, cfg.SaveEvery = 6, 2, 2, 2, 4, 2
		_, err := RLOO(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop(), Resume: resume})
		return err
	}},
}

// TestMain runs a crash child when asked to, else the tests.
func TestMain(m *testing.M) {
	if name := os.Getenv(crashChildEnv); name != "" {
		os.Exit(crashChild(name))
	}
	os.Exit(m.Run())
}

// crashChild runs a scenario and prints, one a line, the crash-point
// counts at which each save began and ended: "save STEP BEGIN END".
func crashChild(name string) int {
	var fx map[string]string
	if err := json.Unmarshal([]byte(os.Getenv(crashFixtureEnv)), &fx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var begin int64
	saveHook = func(step int, starting bool) {
		if starting {
			begin = crashpoint.Count()
			return
		}
		fmt.Printf("save %d %d %d\n", step, begin, crashpoint.Count())
	}
	for _, s := range crashScenarios {
		if s.name == name {
			if err := s.run(os.Getenv(crashOutEnv), fx, os.Getenv(crashResumeEnv) == "1"); err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			return 0
		}
	}
	fmt.Fprintln(os.Stderr, "no scenario", name)
	return 2
}

// runCrashChild runs a scenario in a child process; crashAt 0 arms no
// crash. It returns the child's output and whether it was killed.
func runCrashChild(t *testing.T, name, out string, fx map[string]string, resume bool, crashAt int64) (string, bool) {
	t.Helper()
	raw, _ := json.Marshal(fx)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+name, crashOutEnv+"="+out, crashFixtureEnv+"="+string(raw),
		crashpoint.EnvVar+"="+strconv.FormatInt(crashAt, 10))
	if resume {
		cmd.Env = append(cmd.Env, crashResumeEnv+"=1")
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok && ee.ProcessState.String() == "signal: killed" {
			return stdout.String(), true
		}
		t.Fatalf("%s (crash at %d, resume %v): %v\n%s", name, crashAt, resume, err, stderr.String())
	}
	return stdout.String(), false
}

// runResult is what two runs must share: the result at the top of the run
// directory, every file of the saved state but the manifest and the loop
// state (which holds the run's time), the loop state without its time, and
// the metrics without their timings.
func runResult(t *testing.T, out string) map[string]string {
	t.Helper()
	res := map[string]string{}
	read := func(key, path string) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		res[key] = string(raw)
	}
	read("top weights", filepath.Join(out, model.WeightsFile))
	state, err := openState(out)
	if err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(state, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() == ManifestFile || d.Name() == TrainerStateFile {
			return err
		}
		rel, _ := filepath.Rel(state, path)
		read("state "+rel, path)
		return nil
	})
	var st TrainerState
	if err := readJSONState(filepath.Join(state, TrainerStateFile), &st); err != nil {
		t.Fatal(err)
	}
	var method map[string]any
	json.Unmarshal(st.Method, &method)
	for _, k := range []string{"first", "last"} { // PPO's, with timings
		if m, ok := method[k].(map[string]any); ok {
			dropTimings(m)
		}
	}
	res["loop state"] = fmt.Sprint(st.Step, st.Tokens, method)
	raw, err := os.ReadFile(filepath.Join(out, MetricsFile))
	if err != nil {
		t.Fatal(err)
	}
	var recs []string
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		dropTimings(m)
		recs = append(recs, fmt.Sprint(m))
	}
	res["metrics"] = strings.Join(recs, "\n")
	return res
}

// dropTimings removes a metrics record's wall-clock figures.
func dropTimings(m map[string]any) {
	for k := range m {
		if strings.HasSuffix(k, "_sec") || strings.HasSuffix(k, "per_sec") {
			delete(m, k)
		}
	}
}

// TestKillAtEverySavePoint: for each method, a run killed before any one
// of the file operations of its second save and then resumed ends exactly
// like the uninterrupted run.
func TestKillAtEverySavePoint(t *testing.T) {
	if testing.Short() {
		t.Skip("starts hundreds of processes")
	}
	for _, s := range crashScenarios {
		t.Run(s.name, func(t *testing.T) {
			fx := s.fixture(t)
			whole := t.TempDir()
			log, killed := runCrashChild(t, s.name, whole, fx, false, 0)
			if killed {
				t.Fatal("the uninterrupted run was killed")
			}
			var saves [][3]int64
			for _, line := range strings.Split(strings.TrimSpace(log), "\n") {
				var step, begin, end int64
				if _, err := fmt.Sscanf(line, "save %d %d %d", &step, &begin, &end); err == nil {
					saves = append(saves, [3]int64{step, begin, end})
				}
			}
			if len(saves) < 3 {
				t.Fatalf("%d saves (%q), want at least 3", len(saves), log)
			}
			want := runResult(t, whole)
			second := saves[1]
			for at := second[1] + 1; at <= second[2]; at++ {
				out := t.TempDir()
				if _, killed := runCrashChild(t, s.name, out, fx, false, at); !killed {
					t.Fatalf("crash point %d (of %d..%d) was not reached", at, second[1]+1, second[2])
				}
				runCrashChild(t, s.name, out, fx, true, 0)
				got := runResult(t, out)
				for k, v := range want {
					if got[k] != v {
						t.Fatalf("killed at point %d of the save at step %d (points %d..%d), resumed: %s differs from the uninterrupted run's",
							at, second[0], second[1]+1, second[2], k)
					}
				}
				if !reflect.DeepEqual(keys(got), keys(want)) {
					t.Fatalf("killed at point %d: files %v, uninterrupted %v", at, keys(got), keys(want))
				}
			}
			t.Logf("%d crash points in the save at step %d", second[2]-second[1], second[0])
		})
	}
}

func keys(m map[string]string) []string { return slices.Sorted(maps.Keys(m)) }
