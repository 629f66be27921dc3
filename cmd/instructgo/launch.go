package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"
)

// defaultGrace is how long the other ranks get to end after one fails,
// before they are killed.
const defaultGrace = 10 * time.Second

func launchCommand() *cli.Command {
	return &cli.Command{
		Name:      "launch",
		Usage:     "run an instructgo command as N data-parallel ranks on this machine (pretrain, sft, rm)",
		ArgsUsage: "-- [GLOBAL FLAGS] COMMAND [FLAGS]",
		Description: "Starts N copies of this binary with the command after --, each with torchrun's environment\n" +
			"(RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) and, on GPUs, its own\n" +
			"CUDA_VISIBLE_DEVICES (the LOCAL_RANK-th of the visible GPUs), so --device cuda is each rank's GPU.\n" +
			"The cuda build's ranks talk through NCCL. The mpi build hands the ranks to mpirun instead.\n" +
			"Ctrl-C and SIGTERM are passed to every rank (each saves and stops). When a rank fails, the\n" +
			"others get SIGTERM and, --grace later, SIGKILL; launch names the rank and exits with its status.\n" +
			"A rank that hangs is ended by the others' watchdogs (global flag --dist-timeout, exit status 3).\n\n" +
			"Example: instructgo launch --nproc 2 -- --device cuda pretrain --data text.txt --out runs/pt",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "nproc", Value: 2, Usage: "ranks to start"},
			&cli.StringFlag{Name: "master-addr", Value: "127.0.0.1", Usage: "address of rank 0's rendezvous store"},
			&cli.IntFlag{Name: "master-port", Usage: "port of rank 0's rendezvous store (0: a free one)"},
			&cli.DurationFlag{Name: "grace", Value: defaultGrace, Usage: "time the other ranks get to stop after one fails, before SIGKILL"},
		},
		Action: runLaunch,
	}
}

func runLaunch(c *cli.Context) error {
	n := c.Int("nproc")
	if n < 1 {
		return usageErrorf("--nproc %d must be at least 1", n)
	}
	args := c.Args().Slice()
	if len(args) == 0 {
		return usageErrorf("launch needs the command to run after --, e.g. launch --nproc 2 -- pretrain --data text.txt --out run")
	}
	if c.IsSet(flagDistTimeout) {
		args = withDistTimeout(args, c.Duration(flagDistTimeout))
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("launch: find this binary: %w", err)
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	log := logger(c)
	if mpiComm != nil {
		return launchMPI(c, self, n, args, sigs, log)
	}
	port := c.Int("master-port")
	if port == 0 {
		if port, err = freePort(); err != nil {
			return fmt.Errorf("launch: %w", err)
		}
	}
	cmds := make([]*exec.Cmd, n)
	for r := range cmds {
		cmd := exec.Command(self, args...)
		cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, c.App.Writer, c.App.ErrWriter
		cmd.Env = append(os.Environ(), rankEnv(r, n, c.String("master-addr"), port, os.Getenv("CUDA_VISIBLE_DEVICES"))...)
		cmds[r] = cmd
	}
	log.Info().Int("ranks", n).Str("master", net.JoinHostPort(c.String("master-addr"), strconv.Itoa(port))).
		Str("command", strings.Join(args, " ")).Msg("launching")
	return superviseRanks(cmds, sigs, c.Duration("grace"), log)
}

// rankEnv is rank r's torchrun environment, and its GPU: the r-th of the
// visible ones (visible "": GPU r).
func rankEnv(r, n int, addr string, port int, visible string) []string {
	env := []string{
		"RANK=" + strconv.Itoa(r), "WORLD_SIZE=" + strconv.Itoa(n),
		"LOCAL_RANK=" + strconv.Itoa(r), "LOCAL_WORLD_SIZE=" + strconv.Itoa(n),
		"MASTER_ADDR=" + addr, "MASTER_PORT=" + strconv.Itoa(port),
	}
	gpu := strconv.Itoa(r)
	if visible != "" {
		list := strings.Split(visible, ",")
		gpu = list[r%len(list)]
	}
	return append(env, "CUDA_VISIBLE_DEVICES="+gpu)
}

// launchMPI runs the ranks under mpirun, which supervises them.
func launchMPI(c *cli.Context, self string, n int, args []string, sigs <-chan os.Signal, log *zerolog.Logger) error {
	mpirun, err := exec.LookPath("mpirun")
	if err != nil {
		return fmt.Errorf("launch: the mpi build runs its ranks with mpirun, which is not installed (make mpi-tools): %w", err)
	}
	cmd := exec.Command(mpirun, append([]string{"-np", strconv.Itoa(n), "--oversubscribe", self}, args...)...)
	cmd.Stdout, cmd.Stderr = c.App.Writer, c.App.ErrWriter
	log.Info().Int("ranks", n).Str("command", strings.Join(args, " ")).Msg("launching under mpirun")
	return superviseRanks([]*exec.Cmd{cmd}, sigs, c.Duration("grace"), log)
}

// freePort asks the kernel for a free TCP port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// rankExit is how rank ended.
type rankExit struct {
	rank int
	err  error
}

// superviseRanks starts the ranks' commands and waits for them. Signals
// from sigs go to every rank still running. When a rank fails (non-zero
// status or killed), the others get SIGTERM and, grace later, SIGKILL; the
// error names the first failed rank and carries its exit status.
func superviseRanks(cmds []*exec.Cmd, sigs <-chan os.Signal, grace time.Duration, log *zerolog.Logger) error {
	exits := make(chan rankExit, len(cmds))
	running := 0
	for r, cmd := range cmds {
		if err := cmd.Start(); err != nil {
			signalAll(cmds, syscall.SIGKILL)
			return fmt.Errorf("launch: start rank %d: %w", r, err)
		}
		running++
		go func() { exits <- rankExit{r, cmd.Wait()} }()
	}
	var first *rankExit
	var kill <-chan time.Time
	for running > 0 {
		select {
		case s := <-sigs:
			log.Warn().Str("signal", s.String()).Msg("passing the signal to every rank")
			signalAll(cmds, s)
		case <-kill:
			log.Error().Dur("grace", grace).Msg("ranks still running after the grace period: killing them")
			signalAll(cmds, syscall.SIGKILL)
			kill = nil
		case e := <-exits:
			running--
			if e.err == nil || first != nil {
				continue
			}
			first = &e
			if running > 0 {
				log.Error().Int("rank", e.rank).Err(e.err).Dur("grace", grace).Msg("a rank failed: stopping the others")
				signalAll(cmds, syscall.SIGTERM)
				kill = time.After(grace)
			}
		}
	}
	if first == nil {
		return nil
	}
	code := 1
	var exit *exec.ExitError
	if errors.As(first.err, &exit) && exit.ExitCode() > 0 {
		code = exit.ExitCode()
	}
	why := ""
	if code == exitHang {
		why = ": its watchdog found a rank that hung (its log names it)"
	}
	return cli.Exit(fmt.Sprintf("launch: rank %d failed (%v)%s; the run stopped on every rank", first.rank, first.err, why), code)
}

// signalAll sends s to every started command (one that has ended
// ignores it: os.Process knows).
func signalAll(cmds []*exec.Cmd, s os.Signal) {
	for _, cmd := range cmds {
		if cmd.Process != nil {
			cmd.Process.Signal(s)
		}
	}
}
