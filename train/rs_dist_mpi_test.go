//go:build mpi

package train

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/internal/mpitest"
)

func distRS(fx distFixture, comm gpu.Comm) error {
	cfg := smallRS(fx.Files["prompts"], fx.Files["policy"], fx.Files["reward"], fx.Out)
	cfg.Batch, cfg.SFT.MaxBatch, cfg.SFT.TokenBudget = 7, 7, 7*32 // 6 batches of prompts: 3 per rank; SFT shards of 3 and 4
	_, err := RejectionSampling(context.Background(), cpu.New(1), byteTok, cfg, RunOptions{Log: zerolog.Nop(), Comm: comm})
	return err
}

// TestDataParallelRS: rejection sampling on 2 ranks keeps one process's
// picks, byte for byte (each rank samples whole batches with their global
// seeds, the gather is exact), and its SFT gives one process's losses and
// weights.
func TestDataParallelRS(t *testing.T) {
	fx := distFixture{Files: map[string]string{}}
	if mpitest.InRank() {
		runDist(t, fx, distRS)
		return
	}
	fx.Files["prompts"], fx.Files["policy"], fx.Files["reward"] = writePPOFixture(t)
	one := t.TempDir()
	if err := distRS(distFixture{Files: fx.Files, Out: one}, nil); err != nil {
		t.Fatal(err)
	}
	fx.Out = t.TempDir()
	runDist(t, fx, distRS)
	for _, f := range []string{RSPicksFile, RSSummaryFile} {
		a, errA := os.ReadFile(filepath.Join(one, f))
		b, errB := os.ReadFile(filepath.Join(fx.Out, f))
		if errA != nil || errB != nil || string(a) != string(b) || len(a) == 0 {
			t.Errorf("%s differs on 2 ranks (%v, %v)", f, errA, errB)
		}
	}
	compareRuns(t, one, fx.Out, 4)
}
