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
// directory, the ranks repeat only the evaluation, which agrees exactly.
func TestDataParallelPipeline(t *testing.T) {
	if mpitest.InRank() {
		c, err := mpi.Open(cpu.New(1))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := runSmall(os.Getenv(distPipelineEnv), c); err != nil {
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
	for _, f := range []string{"report.md", "eval_samples.jsonl", ConfigFile} {
		if _, err := os.Stat(filepath.Join(two, f)); err != nil {
			t.Errorf("the ranks wrote no %s: %v", f, err)
		}
	}
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
