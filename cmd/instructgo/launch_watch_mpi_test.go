//go:build mpi

package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/internal/mpitest"
)

// The hang test runs `instructgo launch` (this test binary acting as
// instructgo, TestMain) of a short data-parallel pretraining under mpirun,
// in which rank 1 stops itself with SIGSTOP at its stopAt-th all-reduce
// (a paused machine, or a rank stuck for good) after writing the time to
// stopFile.
const (
	stopAtEnv   = "INSTRUCTGO_TEST_STOP_AT"
	stopFileEnv = "INSTRUCTGO_TEST_STOP_FILE"
)

func init() {
	at, _ := strconv.Atoi(os.Getenv(stopAtEnv))
	if at <= 0 || mpiComm == nil {
		return
	}
	open := mpiComm
	mpiComm = func(b gpu.Backend, heartbeats bool) (engine, error) {
		e, err := open(b, heartbeats)
		if err == nil && e.comm.Rank() == 1 {
			e.comm = &stoppingComm{Comm: e.comm, at: at, file: os.Getenv(stopFileEnv)}
		}
		return e, err
	}
}

// stoppingComm stops its process at its at-th all-reduce.
type stoppingComm struct {
	gpu.Comm
	n, at int
	file  string
}

func (s *stoppingComm) AllReduceSum(t *gpu.Tensor) error {
	if s.n++; s.n == s.at {
		os.WriteFile(s.file, []byte(strconv.FormatInt(time.Now().UnixNano(), 10)), 0o644)
		mpitest.StopSelf(10 * time.Second)
	}
	return s.Comm.AllReduceSum(t)
}

// TestDataParallelRankStopped: rank 1 of a 2-rank pretraining run that
// saves every 4 steps stops (SIGSTOP) in step 7. With --dist-timeout 2s
// rank 0's watchdog must end it, naming rank 1, and launch the job,
// within the timeout, the grace period and a few seconds; the state saved
// at step 4 is intact and resumes to the end.
func TestDataParallelRankStopped(t *testing.T) {
	const timeout, grace = 2 * time.Second, 2 * time.Second
	dir := t.TempDir()
	text := filepath.Join(dir, "text.txt")
	rng := rand.New(rand.NewPCG(5, 6))
	words := strings.Fields("the cat sees a dog and runs to the red house where birds sing")
	var sb strings.Builder
	for sb.Len() < 20000 {
		sb.WriteString(words[rng.IntN(len(words))])
		sb.WriteString(" ")
	}
	if err := os.WriteFile(text, []byte(sb.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stopFile := filepath.Join(dir, "run"), filepath.Join(dir, "stopped")
	run := func(env []string, from ...string) (string, error, time.Time) {
		args := append([]string{"launch", "--nproc", "2", "--grace", grace.String(), "--",
			"--threads", "1", "--log-format", "json", "--dist-timeout", timeout.String(), "pretrain"}, from...)
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), append(env, asMainEnv+"=1")...)
		if os.Geteuid() == 0 {
			cmd.Env = append(cmd.Env, "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
		}
		cmd.WaitDelay = 10 * time.Second
		timer := time.AfterFunc(2*time.Minute, func() { cmd.Process.Kill() })
		defer timer.Stop()
		b, err := cmd.CombinedOutput()
		return string(b), err, time.Now()
	}

	log, err, end := run([]string{stopAtEnv + "=7", stopFileEnv + "=" + stopFile},
		"--data", text, "--out", out, "--config", "tiny", "--steps", "12", "--batch", "4", "--seq", "32",
		"--save-every", "4", "--log-every", "1", "--eval-every", "0", "--eval-batches", "1")
	if err == nil {
		t.Fatalf("the run with a stopped rank succeeded:\n%s", log)
	}
	raw, rerr := os.ReadFile(stopFile)
	if rerr != nil {
		t.Fatalf("rank 1 did not stop: %v\n%s", rerr, log)
	}
	ns, _ := strconv.ParseInt(string(raw), 10, 64)
	took := end.Sub(time.Unix(0, ns))
	t.Logf("the job ended %.2fs after rank 1 stopped (--dist-timeout %v, --grace %v): %v", took.Seconds(), timeout, grace, err)
	// Rank 0's watchdog times its collective from when rank 0 entered it,
	// which may be before rank 1 stopped (rank 1 stops on its way into
	// the same all-reduce): the end may come a little before a whole
	// timeout after the stop, but not at once.
	if took < timeout/2 || took > timeout+grace+10*time.Second {
		t.Errorf("the job ended %v after rank 1 stopped, want about the timeout %v (+ up to the grace %v)", took, timeout, grace)
	}
	if !strings.Contains(log, `"hung_ranks":[1]`) {
		t.Errorf("the log does not name rank 1:\n%s", log)
	}
	// mpirun continues the stopped rank (SIGCONT, SIGTERM) before it
	// kills it: if its watchdog fires meanwhile, it must say that it was
	// stopped itself.
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, `"rank":1,"collective"`) && !strings.Contains(line, "this rank itself was stopped") {
			t.Errorf("rank 1, continued by mpirun to be ended, does not say it was stopped:\n%s", line)
		}
	}
	if steps := metricSteps(t, out); len(steps) != 6 {
		t.Errorf("metrics of steps %v after rank 1 stopped in step 7, want 1..6", steps)
	}

	log, err, _ = run(nil, "--resume", out)
	if err != nil {
		t.Fatalf("resume: %v\n%s", err, log)
	}
	if !strings.Contains(log, `"step":4`) || !strings.Contains(log, `"message":"resuming"`) {
		t.Errorf("the resumed run does not say it resumed step 4:\n%s", log)
	}
	if steps := metricSteps(t, out); fmt.Sprint(steps) != "[1 2 3 4 5 6 7 8 9 10 11 12]" {
		t.Errorf("metrics of steps %v after the resume, want 1..12", steps)
	}
}

// metricSteps lists the steps of dir's metrics.jsonl records.
func metricSteps(t *testing.T, dir string) []int {
	t.Helper()
	f, err := os.Open(filepath.Join(dir, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var steps []int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Step int `json:"step"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("metrics.jsonl: %v", err)
		}
		steps = append(steps, rec.Step)
	}
	return steps
}
