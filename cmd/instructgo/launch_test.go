package main

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// When a rank fails, superviseRanks ends the others (one ignores SIGTERM
// and must be killed after the grace period), names the failed rank and
// exits with its status.
func TestSuperviseRanksEndsTheOthers(t *testing.T) {
	cmds := []*exec.Cmd{
		exec.Command("sleep", "30"),
		exec.Command("sh", "-c", "sleep 0.3; exit 3"),
		exec.Command("sh", "-c", "trap '' TERM; sleep 30 & wait; sleep 30"),
	}
	log := zerolog.Nop()
	start := time.Now()
	err := superviseRanks(cmds, nil, time.Second, &log)
	took := time.Since(start)
	var exit cli.ExitCoder
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(err.Error(), "rank 1 failed") {
		t.Fatalf("error %v, want rank 1 named and status 3", err)
	}
	if took > 5*time.Second {
		t.Errorf("the ranks ended %v after the start; want about 0.3 s + the 1 s grace", took)
	}
	for r, cmd := range cmds {
		if cmd.ProcessState == nil {
			t.Errorf("rank %d was not reaped", r)
		}
	}
	if ws := cmds[2].ProcessState.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("the rank that ignores SIGTERM ended with %v, want SIGKILL", cmds[2].ProcessState)
	}
}

// Ranks that all succeed end the launch without error; a signal is passed
// to every rank.
func TestSuperviseRanksPassesSignals(t *testing.T) {
	log := zerolog.Nop()
	if err := superviseRanks([]*exec.Cmd{exec.Command("true"), exec.Command("true")}, nil, time.Second, &log); err != nil {
		t.Fatal(err)
	}
	sigs := make(chan os.Signal, 1)
	cmds := []*exec.Cmd{exec.Command("sleep", "30"), exec.Command("sleep", "30")}
	go func() { time.Sleep(200 * time.Millisecond); sigs <- syscall.SIGINT }()
	err := superviseRanks(cmds, sigs, time.Minute, &log)
	if err == nil || !strings.Contains(err.Error(), "interrupt") {
		t.Fatalf("error %v, want the ranks ended by the interrupt", err)
	}
}

// rankEnv sets torchrun's variables and gives rank r the r-th visible GPU.
func TestRankEnv(t *testing.T) {
	env := rankEnv(1, 2, "10.0.0.1", 29500, "4,6")
	for _, want := range []string{"RANK=1", "WORLD_SIZE=2", "LOCAL_RANK=1", "MASTER_ADDR=10.0.0.1", "MASTER_PORT=29500", "CUDA_VISIBLE_DEVICES=6"} {
		if !slices.Contains(env, want) {
			t.Errorf("%s missing from %q", want, env)
		}
	}
	if env := rankEnv(1, 2, "h", 1, ""); !slices.Contains(env, "CUDA_VISIBLE_DEVICES=1") {
		t.Errorf("no visible list: %q", env)
	}
	w, ok, err := torchrunWorld(func(k string) string {
		return map[string]string{"WORLD_SIZE": "4", "RANK": "3", "MASTER_PORT": "1234"}[k]
	})
	if err != nil || !ok || w != (world{Rank: 3, Size: 4, LocalRank: 3, MasterAddr: "127.0.0.1", MasterPort: 1234}) {
		t.Errorf("torchrunWorld: %+v %v %v", w, ok, err)
	}
	if _, _, err := torchrunWorld(func(k string) string { return map[string]string{"WORLD_SIZE": "2", "RANK": "2"}[k] }); err == nil {
		t.Error("RANK=2 of WORLD_SIZE=2: no error")
	}
}

// Data parallel needs an engine: the default build, started as a rank of
// several, refuses with a message saying what to use; and a command
// that does not run data parallel refuses too.
func TestLaunchEnvWithoutEngine(t *testing.T) {
	if mpiComm != nil || ncclComm != nil {
		t.Skip("this build has an engine")
	}
	t.Setenv("WORLD_SIZE", "2")
	t.Setenv("RANK", "0")
	dir := t.TempDir()
	text := filepath.Join(dir, "text.txt")
	if err := os.WriteFile(text, []byte(strings.Repeat("the cat sees a dog.\n", 200)), 0o644); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := runCLI(t, "pretrain", "--data", text, "--out", filepath.Join(dir, "run"), "--steps", "1", "--seq", "16")
	if code == 0 || !strings.Contains(stderr, "mpirun") {
		t.Errorf("pretrain as rank 0 of 2 without an engine: exit %d\n%s", code, stderr)
	}
	c := cli.NewContext(newApp(), nil, nil)
	c.Command = &cli.Command{Name: "not-data-parallel"} // every command that trains is data parallel
	if _, err := openComm(c, nil); err == nil || !strings.Contains(err.Error(), "not-data-parallel does not run data parallel") {
		t.Errorf("a command that is not data parallel, as rank 0 of 2: %v", err)
	}
}
