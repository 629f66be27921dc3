//go:build mpi

package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/gpu/mpi"
	"github.com/instructgo/instructgo/internal/mpitest"
	"github.com/instructgo/instructgo/train"
)

// distPipelineTol bounds the relative difference of every number of the
// report (task scores, win rates, losses, KL, reward-model accuracy)
// between 2 ranks and one process. The training stages agree to float32
// rounding of the all-reduce order (train's data-parallel tests); on
// smallPipeline's few steps that moves no greedy or sampled token, so the
// task scores and win rates are equal and the losses and KL agree far
// below this. After many steps a token whose two most likely choices are
// within rounding of each other may flip, and then a score moves by one
// prompt's share: such a run would need a tolerance of its scale.
const distPipelineTol = 1e-4

// distPipelineEnv carries the ranks' run directory.
const distPipelineEnv = "INSTRUCTGO_DIST_PIPELINE_OUT"

// TestDataParallelPipeline: smallPipeline (every stage of the default
// pipeline, a few steps each) as 2 ranks writes one process's report,
// number for number to distPipelineTol; run again on the finished
// directory, the ranks repeat only the evaluation, which agrees exactly;
// and a job whose rank dies resumes to the same report.
func TestDataParallelPipeline(t *testing.T) {
	if mpitest.InRank() {
		c, err := mpi.Open(cpu.New(1))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		out := os.Getenv(distPipelineEnv)
		var comm gpu.Comm = c
		if os.Getenv(distPipelineKillEnv) != "" && c.Rank() == 1 {
			comm = &killingComm{Comm: c, when: func() bool { return train.HasState(filepath.Join(out, StagePPO)) }}
		}
		if _, err := runSmall(out, comm); err != nil {
			t.Fatalf("rank %d: %v", c.Rank(), err)
		}
		return
	}
	one, two := t.TempDir(), t.TempDir()
	start := time.Now()
	if _, err := runSmall(one, nil); err != nil {
		t.Fatal(err)
	}
	oneTime := time.Since(start)
	start = time.Now()
	mpitest.Ranks(t, 2, 5*time.Minute, distPipelineEnv+"="+two)
	t.Logf("one process %.1f s, 2 ranks %.1f s", oneTime.Seconds(), time.Since(start).Seconds())
	a, b := reportNumbers(t, one), reportNumbers(t, two)
	if len(a) != len(b) {
		t.Errorf("%d numbers in one process's report, %d in the ranks'", len(a), len(b))
	}
	worst, worstAt, equal := 0.0, "", 0
	for _, k := range sortedKeys(a) {
		y, ok := b[k]
		if !ok {
			t.Errorf("%s: missing from the ranks' report", k)
			continue
		}
		x := a[k]
		if x == y {
			equal++
			continue
		}
		rel := math.Abs(x-y) / math.Max(math.Abs(x), 1e-3)
		if rel > worst {
			worst, worstAt = rel, k
		}
		t.Logf("%s: %v on 2 ranks, %v in one process (relative %.2g)", k, y, x, rel)
		if rel > distPipelineTol {
			t.Errorf("%s: %v on 2 ranks, %v in one process (relative %.2g > %g)", k, y, x, rel, distPipelineTol)
		}
	}
	t.Logf("%d report numbers: %d equal, the rest within %.2g relative (most: %s)", len(a), equal, worst, worstAt)
	for _, k := range []string{"pretrain.task_score", "sft.task_score", "ppo.task_score", "ppo.win_rate_vs_sft"} {
		if _, ok := a[k]; !ok {
			t.Errorf("the report has no %s", k)
		} else if a[k] != b[k] {
			t.Errorf("%s: %v on 2 ranks, %v in one process: a token flipped", k, b[k], a[k])
		}
	}
	// A rerun on the finished directory: rank 0 finds every stage done and
	// the ranks follow it to the evaluation, which gives the same report.
	mpitest.Ranks(t, 2, 5*time.Minute, distPipelineEnv+"="+two)
	again := reportNumbers(t, two)
	for k, x := range b {
		if again[k] != x {
			t.Errorf("rerun of the finished run: %s is %v, was %v", k, again[k], x)
		}
	}
	// A job whose rank 1 dies in PPO's second iteration fails; run again,
	// rank 0 finds the stages before PPO done and PPO resumable, every
	// rank follows, and the report is the uninterrupted job's.
	three := t.TempDir()
	if out, err := mpitest.Run(t, 2, 5*time.Minute, distPipelineEnv+"="+three, distPipelineKillEnv+"=1"); err == nil {
		t.Fatalf("a job whose rank 1 was killed succeeded:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(three, StagePPO, train.SummaryFile)); err == nil {
		t.Fatal("PPO finished although rank 1 was killed in it")
	}
	if _, err := os.Stat(filepath.Join(three, StageRM, train.SummaryFile)); err != nil {
		t.Fatalf("the reward model did not finish before the kill: %v", err)
	}
	if !train.HasState(filepath.Join(three, StagePPO)) {
		t.Fatal("the killed job left no PPO state: the rerun would not resume")
	}
	mpitest.Ranks(t, 2, 5*time.Minute, distPipelineEnv+"="+three)
	resumed := reportNumbers(t, three)
	for k, x := range b {
		if resumed[k] != x {
			t.Errorf("resumed after a killed rank: %s is %v, uninterrupted %v", k, resumed[k], x)
		}
	}
	for _, f := range []string{"report.md", "eval_samples.jsonl", ConfigFile} {
		if _, err := os.Stat(filepath.Join(two, f)); err != nil {
			t.Errorf("the ranks wrote no %s: %v", f, err)
		}
	}
}

// distPipelineKillEnv, when set, makes rank 1 kill itself in PPO, at
// its first all-reduce after rank 0 saved PPO's state (PPO saves every
// iteration, so in the second of its two).
const distPipelineKillEnv = "INSTRUCTGO_DIST_PIPELINE_KILL"

// killingComm kills its process with SIGKILL at the first all-reduce at
// which when is true, as a crashed or OOM-killed rank dies.
type killingComm struct {
	gpu.Comm
	when func() bool
}

func (k *killingComm) AllReduceSum(t *gpu.Tensor) error {
	if k.when() {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {}
	}
	return k.Comm.AllReduceSum(t)
}

// runSmall runs smallPipeline into out on one cpu thread with comm,
// without SFT's dropout: its ranks would draw other masks than one
// process (train.rankSeed), which changes the SFT model by more than
// rounding.
func runSmall(out string, comm gpu.Comm) (*Report, error) {
	c := smallPipeline(out)
	c.SFTDropout = 0
	return Run(context.Background(), cpu.New(1), c, train.RunOptions{Log: zerolog.Nop(), Comm: comm})
}

// reportNumbers reads every number of dir's report.json by its path of
// keys, leaving out the times.
func reportNumbers(t *testing.T, dir string) map[string]float64 {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if !strings.Contains(k, "seconds") {
					walk(strings.TrimPrefix(path+"."+k, "."), e)
				}
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		case float64:
			out[path] = x
		}
	}
	walk("", v)
	return out
}

func sortedKeys(m map[string]float64) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
