//go:build mpi

package train

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/mpi"
	"github.com/instructgo/instructgo/internal/mpitest"
	"github.com/instructgo/instructgo/model"
)

// countingComm counts the all-reduces started and the blocking ones.
type countingComm struct {
	*mpi.Comm
	started, blocking int
}

func (c *countingComm) StartAllReduceSum(t *gpu.Tensor) (gpu.Pending, error) {
	c.started++
	return c.Comm.StartAllReduceSum(t)
}

func (c *countingComm) AllReduceSum(t *gpu.Tensor) error {
	c.blocking++
	return c.Comm.AllReduceSum(t)
}

// overlapScenarios are the methods TestDataParallelOverlap runs: the
// step of the language models (pretraining, with accumulation over shards
// of 2 and 3 rows) and of ranked comparisons (RM, whose ranks' shards take
// different numbers of micro-batches, and DPO), and the RL updates: PPO
// with ptx (the policy's last backward pass is the ptx term's: a range
// summed after the surrogate's would miss it) and GRPO.
// The ranks run them in this order.
var overlapScenarios = []struct {
	name string
	run  distScenario
}{{"pretrain", distPretrain}, {"rm", distRM}, {"dpo", distDPO}, {"ppo", distPPO}, {"grpo", distGroup}}

// TestDataParallelOverlap: on 2 ranks, summing the gradients as ranges
// started during the last backward pass gives the blocking all-reduce's
// results bit for bit (each element is the sum of the same 2 values):
// every step's loss in metrics.jsonl and the final checkpoint's bytes. The
// ranks check that the overlapped runs started all-reduces and the others
// did not, also when rank 1 alone turns it off.
func TestDataParallelOverlap(t *testing.T) {
	fx := distFixture{Files: map[string]string{}}
	if !mpitest.InRank() {
		fx.Files["text"] = synthText(t, 20000)
		fx.Files["rm"], fx.Files["sft"] = writeLengthRM(t, 200)
		fx.Files["init"] = writeInit(t)
		fx.Files["dpo-init"] = writeInitWith(t, dpoLMConfig())
		fx.Files["prompts"], fx.Files["policy"], fx.Files["reward"] = writePPOFixture(t)
		fx.Files["ptx"], fx.Files["method"] = synthText(t, 400), MethodGRPO
		fx.Out = t.TempDir()
		runDist(t, fx, runOverlapScenarios)
		for _, sc := range overlapScenarios {
			name := sc.name
			off := filepath.Join(fx.Out, name, "off")
			for _, mode := range []string{"on", "mixed"} {
				dir := filepath.Join(fx.Out, name, mode)
				if a, b := readLosses(t, dir), readLosses(t, off); len(a) == 0 || !slices.Equal(a, b) {
					t.Errorf("%s: losses %s %v, without overlap %v", name, mode, a, b)
				}
				if a, b := checkpointBytes(t, dir), checkpointBytes(t, off); !bytes.Equal(a, b) {
					t.Errorf("%s: the checkpoints %s and without overlap differ", name, mode)
				}
			}
		}
		return
	}
	runDist(t, fx, runOverlapScenarios)
}

// runOverlapScenarios runs each scenario with the overlap on, then off.
func runOverlapScenarios(fx distFixture, comm gpu.Comm) error {
	c := &countingComm{Comm: comm.(*mpi.Comm)}
	defer os.Unsetenv(overlapEnv)
	for _, sc := range overlapScenarios {
		name := sc.name
		for _, mode := range []string{"on", "off", "mixed"} {
			// mixed: off on rank 1 only, which turns it off on both.
			os.Setenv(overlapEnv, map[string]string{"on": "1", "off": "0", "mixed": fmt.Sprint(1 - comm.Rank())}[mode])
			c.started, c.blocking = 0, 0
			f := distFixture{Files: maps.Clone(fx.Files), Out: filepath.Join(fx.Out, name, mode)}
			if name == "dpo" {
				f.Files["init"] = fx.Files["dpo-init"]
			}
			if err := sc.run(f, c); err != nil {
				return err
			}
			if (mode == "on") != (c.started > 0) {
				return fmt.Errorf("%s, overlap %s: %d all-reduces started, %d blocking", name, mode, c.started, c.blocking)
			}
		}
	}
	return nil
}

// checkpointBytes is the weights file of the checkpoint in dir.
func checkpointBytes(t *testing.T, dir string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, model.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	return b
}
