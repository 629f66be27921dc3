package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
)

// --dist-timeout refuses a negative duration and takes 0.
func TestDistTimeoutFlag(t *testing.T) {
	if _, stderr, code := runCLI(t, "--dist-timeout", "-1s", "version"); code != exitUsage || !strings.Contains(stderr, "--dist-timeout") {
		t.Errorf("--dist-timeout -1s: exit %d, %q", code, stderr)
	}
	if _, stderr, code := runCLI(t, "--dist-timeout", "0", "version"); code != 0 {
		t.Errorf("--dist-timeout 0: exit %d, %q", code, stderr)
	}
}

// launch passes its own --dist-timeout to the ranks unless their command
// line sets one.
func TestWithDistTimeout(t *testing.T) {
	got := withDistTimeout([]string{"--threads", "1", "pretrain", "--steps", "3"}, 90*time.Second)
	if strings.Join(got, " ") != "--dist-timeout 1m30s --threads 1 pretrain --steps 3" {
		t.Errorf("added: %q", got)
	}
	for _, own := range [][]string{{"--dist-timeout", "5s", "pretrain"}, {"-dist-timeout=5s", "pretrain"}} {
		if got := withDistTimeout(own, time.Minute); strings.Join(got, " ") != strings.Join(own, " ") {
			t.Errorf("%q became %q", own, got)
		}
	}
}

// The store test's ranks are this test binary started again by
// superviseRanks with storeChildEnv set to "timeout,stop-file".
const storeChildEnv = "INSTRUCTGO_TEST_STORE_RANK"

func init() {
	if spec := os.Getenv(storeChildEnv); spec != "" {
		os.Exit(storeRank(spec))
	}
}

// storeComm is a Comm of only the host collectives, through the
// launch's TCP store (what NCCL's barrier and all-gather use).
type storeComm struct {
	*gpu.Store
	rank, size int
}

func (s storeComm) Rank() int { return s.rank }
func (s storeComm) Size() int { return s.size }
func (s storeComm) AllReduceSum(*gpu.Tensor) error {
	return errors.New("the store test's comm has no all-reduce")
}
func (s storeComm) Broadcast(*gpu.Tensor, int) error {
	return errors.New("the store test's comm has no broadcast")
}

// storeRank is one rank of TestLaunchStoreRankStopped: it joins the
// torchrun environment's store and heartbeats, watched as a training
// command's communicator is, passes three barriers, and then rank 1 stops
// itself (writing the time to the stop file first) while rank 0 waits in
// the fourth.
func storeRank(spec string) int {
	timeoutText, stopFile, _ := strings.Cut(spec, ",")
	timeout, err := time.ParseDuration(timeoutText)
	w, ok, werr := torchrunWorld(os.Getenv)
	if err = errors.Join(err, werr); err != nil || !ok {
		fmt.Fprintln(os.Stderr, "store rank:", err, ok)
		return 1
	}
	addr := net.JoinHostPort(w.MasterAddr, strconv.Itoa(w.MasterPort))
	store, err := gpu.OpenStore(addr, w.Rank, w.Size, 10*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "store rank:", err)
		return 1
	}
	e := engine{comm: storeComm{store, w.Rank, w.Size}}
	e.pulse, e.pulseErr = gpu.DialPulse(addr, w.Rank, w.Size, 10*time.Second)
	app := newApp()
	app.ErrWriter = os.Stderr
	c := cli.NewContext(app, nil, nil)
	c.Context = zerolog.New(os.Stderr).WithContext(context.Background())
	comm, err := watchComm(c, e, timeout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "store rank:", err)
		return 1
	}
	for i := 0; i < 3; i++ {
		if err := comm.Barrier(); err != nil {
			fmt.Fprintln(os.Stderr, "store rank:", err)
			return 1
		}
	}
	if w.Rank == 1 {
		os.WriteFile(stopFile, []byte(strconv.FormatInt(time.Now().UnixNano(), 10)), 0o644)
		syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	}
	comm.Barrier()
	fmt.Fprintf(os.Stderr, "store rank %d: the barrier after rank 1 stopped returned\n", w.Rank)
	return 0
}

// lockedBuffer is a buffer both ranks write their logs to.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLaunchStoreRankStopped is launch's own path (the one NCCL ranks
// take): two ranks with torchrun's environment, the TCP store and its
// heartbeats; rank 1 stops (SIGSTOP). Rank 0's watchdog must end it with
// exitHang and a log line naming rank 1, and superviseRanks must kill the
// stopped rank after the grace period, all within the timeout, the grace
// and a few seconds.
func TestLaunchStoreRankStopped(t *testing.T) {
	const timeout, grace = 1500 * time.Millisecond, time.Second
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	stopFile := filepath.Join(t.TempDir(), "stopped")
	var logs lockedBuffer
	cmds := make([]*exec.Cmd, 2)
	for r := range cmds {
		cmd := exec.Command(os.Args[0], "-test.run", "^$")
		cmd.Env = append(os.Environ(), rankEnv(r, 2, "127.0.0.1", port, "")...)
		cmd.Env = append(cmd.Env, storeChildEnv+"="+timeout.String()+","+stopFile)
		cmd.Stdout, cmd.Stderr = &logs, &logs
		cmds[r] = cmd
	}
	log := zerolog.Nop()
	err = superviseRanks(cmds, nil, grace, &log)
	end := time.Now()
	var exit cli.ExitCoder
	if !errors.As(err, &exit) || exit.ExitCode() != exitHang || !strings.Contains(err.Error(), "rank 0 failed (exit status 3): its watchdog found a rank that hung") {
		t.Fatalf("launch: %v, want exit status %d\n%s", err, exitHang, logs.String())
	}
	raw, err := os.ReadFile(stopFile)
	if err != nil {
		t.Fatalf("rank 1 did not stop: %v\n%s", err, logs.String())
	}
	ns, _ := strconv.ParseInt(string(raw), 10, 64)
	took := end.Sub(time.Unix(0, ns))
	t.Logf("launch ended %.2fs after rank 1 stopped (timeout %v, grace %v)", took.Seconds(), timeout, grace)
	if took < timeout+grace || took > timeout+grace+5*time.Second {
		t.Errorf("launch ended %v after rank 1 stopped, want just after the timeout and the grace %v", took, timeout+grace)
	}
	out := logs.String()
	if !strings.Contains(out, "rank 1 has sent no heartbeat") || !strings.Contains(out, `"hung_ranks":[1]`) || !strings.Contains(out, `"rank":0`) {
		t.Errorf("rank 0's log does not name rank 1:\n%s", out)
	}
	if ws, ok := cmds[1].ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("the stopped rank ended with %v, want SIGKILL", cmds[1].ProcessState)
	}
}
