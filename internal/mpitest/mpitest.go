//go:build mpi

// Package mpitest runs a Go test again as the ranks of an mpirun job: the
// test calls Ranks first; in the test process it starts `mpirun -np N`
// on the test binary running just that test and checks the job's exit
// status, and in a rank it returns true so the test goes on as that rank.
// It imports only the standard library and testing, and builds with the
// tag mpi.
package mpitest

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// InRank reports whether this process is a rank of an mpirun job.
func InRank() bool { return os.Getenv("OMPI_COMM_WORLD_SIZE") != "" }

// Ranks runs the calling test as np ranks under mpirun with the extra
// environment env (NAME=value) and returns false in the test process,
// which fails the test when the job does; in a rank it returns true. The
// job must end within limit.
func Ranks(t *testing.T, np int, limit time.Duration, env ...string) bool {
	t.Helper()
	if InRank() {
		return true
	}
	out, err := Run(t, np, limit, env...)
	if err != nil {
		t.Fatalf("mpirun -np %d %s: %v\n%s", np, t.Name(), err, out)
	}
	return false
}

// Run runs the calling test as np ranks under mpirun and returns the
// job's output and error (an *exec.ExitError when a rank failed).
func Run(t *testing.T, np int, limit time.Duration, env ...string) ([]byte, error) {
	t.Helper()
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		t.Fatalf("the mpi build's tests need mpirun (make mpi-tools): %v", err)
	}
	args := []string{"-np", strconv.Itoa(np), "--oversubscribe", os.Args[0],
		"-test.run", "^" + t.Name() + "$", "-test.count", "1", "-test.timeout", limit.String()}
	if testing.Verbose() {
		args = append(args, "-test.v")
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, mpirun, args...)
	cmd.Env = append(os.Environ(), env...)
	if os.Geteuid() == 0 {
		cmd.Env = append(cmd.Env, "OMPI_ALLOW_RUN_AS_ROOT=1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1")
	}
	cmd.WaitDelay = 10 * time.Second
	return cmd.CombinedOutput()
}

// StopSelf stops this process (SIGSTOP), as a rank that hangs, and stops
// it again whenever it is continued within d: under mpirun on a loaded
// machine a stopped rank was seen to be continued at once (by whom is not
// known), which would end a hang scenario before any watchdog could see
// it. After d it returns (the test has decided by then).
func StopSelf(d time.Duration) {
	for end := time.Now().Add(d); time.Now().Before(end); {
		syscall.Kill(os.Getpid(), syscall.SIGSTOP)
	}
}
