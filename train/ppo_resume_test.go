package train

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/tokenizer"
	"github.com/instructgo/instructgo/train/data"
)

// ppoResumeConfig is a short PPO-ptx run on the tiny random fixture that
// exercises every piece of loop state: the ptx sampler wraps into its
// second epoch at iteration 3, the adaptive β moves, the prompt order
// wraps, the learning rate decays, and the EMA lags the policy.
func ppoResumeConfig(t *testing.T) func(out string) PPOConfig {
	prompts, policy, reward := writePPOFixture(t)
	ptx := synthText(t, 150) // 9 windows of 16+1 tokens, 4 per iteration
	return func(out string) PPOConfig {
		cfg := DefaultPPO()
		cfg.Prompts, cfg.Policy, cfg.Reward, cfg.Out, cfg.Ptx = prompts, policy, reward, out, []string{ptx}
		cfg.Iterations, cfg.Episodes, cfg.MiniBatch, cfg.MaxNew = 6, 24, 12, 6
		cfg.PtxBatch, cfg.PtxSeq = 2, 16
		cfg.KLTarget, cfg.KLHorizon = 0.5, 100
		cfg.PolicyOptim.LR, cfg.ValueOptim.LR = 1e-3, 1e-3
		cfg.PolicyOptim.Warmup, cfg.PolicyOptim.MinLRFrac = 2, 0.1
		cfg.EMADecay, cfg.SaveEvery, cfg.LogEvery = 0.9, 2, 1
		return cfg
	}
}

// readPPOMetrics returns a run's metrics records with the timings zeroed,
// checking that there is one per iteration, in order.
func readPPOMetrics(t *testing.T, dir string) []PPOMetrics {
	t.Helper()
	recs := readMetrics(t, dir, func(r PPOMetrics) int { return r.Step })
	for i := range recs {
		recs[i].GenSeconds, recs[i].TrainSeconds, recs[i].GenTokensSec, recs[i].Elapsed = 0, 0, 0, 0
	}
	return recs
}

// savedPPOState is a PPO run's resume state: the loop's and PPO's.
type savedPPOState struct {
	TrainerState
	ppoState
}

func readPPOState(t *testing.T, dir string) savedPPOState {
	t.Helper()
	var st savedPPOState
	if err := readJSONState(filepath.Join(dir, ResumeDir, TrainerStateFile), &st.TrainerState); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(st.Method, &st.ppoState); err != nil {
		t.Fatal(err)
	}
	st.Method = nil // compared decoded
	return st
}

// samePPORun checks that two finished runs are bit-identical: the EMA
// policy at the top, every file of the resume state (policy, value
// function, their optimizers, EMA), the per-iteration metrics, the loop
// state and the summary.
func samePPORun(t *testing.T, whole, split string, ws, ss *PPOSummary, iterations int) {
	t.Helper()
	files := []string{model.WeightsFile, model.ConfigFile}
	for _, d := range []string{PPOPolicyDir, PPOValueDir} {
		files = append(files, filepath.Join(ResumeDir, d, model.WeightsFile), filepath.Join(ResumeDir, d, OptimizerFile))
	}
	files = append(files, filepath.Join(ResumeDir, PPOEMADir, model.WeightsFile))
	for _, f := range files {
		a, errA := os.ReadFile(filepath.Join(whole, f))
		b, errB := os.ReadFile(filepath.Join(split, f))
		if errA != nil || errB != nil {
			t.Fatalf("%s: %v, %v", f, errA, errB)
		}
		if string(a) != string(b) {
			t.Errorf("%s differs between the resumed and the uninterrupted run", f)
		}
	}
	ma, mb := readPPOMetrics(t, whole), readPPOMetrics(t, split)
	if len(ma) != iterations || len(mb) != iterations {
		t.Fatalf("%d and %d metrics records, want %d", len(ma), len(mb), iterations)
	}
	for i := range ma {
		if ma[i] != mb[i] {
			t.Errorf("iteration %d: resumed metrics\n%+v\nuninterrupted\n%+v", i+1, mb[i], ma[i])
		}
	}
	sa, sb := readPPOState(t, whole), readPPOState(t, split)
	sa.Seconds, sb.Seconds = 0, 0
	sa.First.Elapsed, sa.First.GenSeconds, sa.First.TrainSeconds, sa.First.GenTokensSec = 0, 0, 0, 0
	sb.First.Elapsed, sb.First.GenSeconds, sb.First.TrainSeconds, sb.First.GenTokensSec = 0, 0, 0, 0
	sa.Last.Elapsed, sa.Last.GenSeconds, sa.Last.TrainSeconds, sa.Last.GenTokensSec = 0, 0, 0, 0
	sb.Last.Elapsed, sb.Last.GenSeconds, sb.Last.TrainSeconds, sb.Last.GenTokensSec = 0, 0, 0, 0
	if fmt.Sprint(sa) != fmt.Sprint(sb) {
		t.Errorf("final loop state differs:\nresumed       %+v\nuninterrupted %+v", sb, sa)
	}
	if ws.Iterations != ss.Iterations || ws.Episodes != ss.Episodes || ws.FirstScore != ss.FirstScore ||
		ws.LastScore != ss.LastScore || ws.LastKL != ss.LastKL || ws.PtxLoss != ss.PtxLoss || ss.Interrupted {
		t.Errorf("summaries differ:\nresumed       %+v\nuninterrupted %+v", ss, ws)
	}
	if !(ss.Seconds > 0) {
		t.Errorf("resumed run's seconds %v", ss.Seconds)
	}
}

// TestPPOResumeIsExact: a PPO-ptx run stopped by Ctrl-C after iteration 3
// (periodic save at 2), or killed during iteration 4 (so only the save at
// 2 is there and metrics.jsonl holds a record the resume must drop), and
// resumed ends bit-identical to an uninterrupted run on the cpu backend
// with the same thread count.
func TestPPOResumeIsExact(t *testing.T) {
	cfg := ppoResumeConfig(t)
	tok, _ := tokenizer.New("byte")
	whole := t.TempDir()
	ws, err := PPO(context.Background(), cpu.New(2), tok, cfg(whole), RunOptions{Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	// The run must exercise the state it saves.
	if st := readPPOState(t, whole); st.Beta == float64(cfg(whole).KLCoef) || st.PtxEpoch == 0 || st.Step != 6 || len(st.Scores) != 6 {
		t.Fatalf("the fixture does not exercise the loop state: %+v", st)
	}

	t.Run("interrupted", func(t *testing.T) {
		split := t.TempDir()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		sum, err := PPO(ctx, cpu.New(2), tok, cfg(split), RunOptions{Log: zerolog.Nop(), Progress: cancelAt{step: 3, cancel: cancel}})
		if err == nil || !strings.Contains(err.Error(), "interrupted after iteration 3") || !errors.Is(err, context.Canceled) {
			t.Fatalf("interrupted run: %v", err)
		}
		if !sum.Interrupted || sum.Iterations != 3 {
			t.Errorf("interrupted summary %+v", sum)
		}
		if st := readPPOState(t, split); st.Step != 3 || st.PtxEpoch != 1 {
			t.Errorf("state saved on interruption: iteration %d, ptx epoch %d; want 3, 1", st.Step, st.PtxEpoch)
		}
		if n := len(readPPOMetrics(t, split)); n != 3 {
			t.Errorf("%d metrics records after the interruption, want 3", n)
		}
		ss, err := PPO(context.Background(), cpu.New(2), tok, cfg(split), RunOptions{Log: zerolog.Nop(), Resume: true})
		if err != nil {
			t.Fatal(err)
		}
		samePPORun(t, whole, split, ws, ss, 6)
	})

	t.Run("killed", func(t *testing.T) {
		split := t.TempDir()
		calls := 0
		crash := errors.New("killed")
		scorer := func(_ []data.Prompt, _ []string, rm []float32) ([]float32, error) {
			if calls++; calls == 4 {
				return nil, crash
			}
			return rm, nil
		}
		if _, err := runPPO(context.Background(), cpu.New(2), tok, cfg(split), RunOptions{Log: zerolog.Nop()}, ppoHooks{scorer: scorer}); !errors.Is(err, crash) {
			t.Fatalf("crashed run: %v", err)
		}
		if st := readPPOState(t, split); st.Step != 2 {
			t.Fatalf("state at iteration %d after the crash, want the periodic save at 2", st.Step)
		}
		if n := len(readPPOMetrics(t, split)); n != 3 {
			t.Fatalf("%d metrics records after the crash, want 3", n)
		}
		ss, err := PPO(context.Background(), cpu.New(2), tok, cfg(split), RunOptions{Log: zerolog.Nop(), Resume: true})
		if err != nil {
			t.Fatal(err)
		}
		samePPORun(t, whole, split, ws, ss, 6)
	})
}

// TestPPOResumeRefusesAnotherRun: a resume refuses saved models that are
// not the configured ones and frozen checkpoints that changed since the
// run started, and says which.
func TestPPOResumeRefusesAnotherRun(t *testing.T) {
	cfgOf := ppoResumeConfig(t)
	tok, _ := tokenizer.New("byte")
	out := t.TempDir()
	cfg := cfgOf(out)
	cfg.Iterations = 1
	if _, err := PPO(context.Background(), cpu.New(1), tok, cfg, RunOptions{Log: zerolog.Nop()}); err != nil {
		t.Fatal(err)
	}
	resume := func() error {
		_, err := PPO(context.Background(), cpu.New(1), tok, cfg, RunOptions{Log: zerolog.Nop(), Resume: true})
		return err
	}
	if err := resume(); !errors.Is(err, ErrFinished) {
		t.Fatalf("resuming a finished run: %v", err)
	}
	// Without its summary the run looks killed after its last save: the
	// checks below are those of a resume.
	if err := os.Remove(filepath.Join(out, SummaryFile)); err != nil {
		t.Fatal(err)
	}
	if err := resume(); err != nil {
		t.Fatalf("resuming after the last save: %v", err)
	}
	os.Remove(filepath.Join(out, SummaryFile))

	// A saved value function of another shape: first as damage the
	// manifest catches, then with the manifest rewritten to match (a state
	// of another run).
	other := model.Config{VocabSize: 258, MaxSeqLen: 32, NLayer: 1, NHead: 2, NEmbd: 32, Tokenizer: "byte", ScalarHead: true}
	stateDir, err := openState(out)
	if err != nil {
		t.Fatal(err)
	}
	valueDir := filepath.Join(stateDir, PPOValueDir)
	saved, _ := os.ReadFile(filepath.Join(valueDir, model.WeightsFile))
	savedCfg, _ := os.ReadFile(filepath.Join(valueDir, model.ConfigFile))
	if err := model.SaveHost(valueDir, other, model.InitGPT2(other, 1)); err != nil {
		t.Fatal(err)
	}
	if err := resume(); err == nil || !strings.Contains(err.Error(), "is damaged") || !strings.Contains(err.Error(), "value/") {
		t.Errorf("resume with a changed saved value function: %v", err)
	}
	rewriteManifest := func() {
		st := readPPOState(t, out)
		m, err := manifestOf(stateDir, st.Step)
		if err != nil {
			t.Fatal(err)
		}
		delete(m.Files, ManifestFile)
		raw, _ := json.Marshal(m)
		if err := os.WriteFile(filepath.Join(stateDir, ManifestFile), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rewriteManifest()
	if err := resume(); err == nil || !strings.Contains(err.Error(), "value function") || !strings.Contains(err.Error(), "not the configured one") {
		t.Errorf("resume with another saved value function: %v", err)
	}
	os.WriteFile(filepath.Join(valueDir, model.WeightsFile), saved, 0o644)
	os.WriteFile(filepath.Join(valueDir, model.ConfigFile), savedCfg, 0o644)
	rewriteManifest()

	// A reward model retrained since the run started.
	rc, _ := model.ReadConfig(cfg.Reward)
	if err := model.SaveHost(cfg.Reward, rc, model.InitGPT2(rc, 99)); err != nil {
		t.Fatal(err)
	}
	if err := resume(); err == nil || !strings.Contains(err.Error(), "reward model checkpoint") {
		t.Errorf("resume against another reward model: %v", err)
	}

	// No saved state at all.
	cfg.Out = t.TempDir()
	if err := resume(); err == nil || !strings.Contains(err.Error(), "holds no saved state") {
		t.Errorf("resume without a saved state: %v", err)
	}
}
