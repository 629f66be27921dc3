package main

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
)

// A training command runs data parallel when the environment says it is
// one rank of several: mpirun's (OMPI_COMM_WORLD_SIZE, for the mpi build)
// or torchrun's (WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR, MASTER_PORT,
// as `instructgo launch` sets it, for NCCL on the cuda backend). Without
// either it runs in one process as always.

// mpiComm and ncclComm open the communicators the binary was built with:
// set by launch_comm_mpi.go (build tag mpi) and launch_comm_cuda.go
// (build tag cuda); nil in the default build.
var (
	mpiComm  func(b gpu.Backend, heartbeats bool) (engine, error)
	ncclComm func(b gpu.Backend, w world, heartbeats bool) (engine, error)
)

// engine is an opened communicator and, when heartbeats were asked for,
// the rank's connection to the watchdog's heartbeats (launch_watch.go) or
// why it has none (it then runs without).
type engine struct {
	comm     gpu.Comm
	pulse    *gpu.Pulse
	pulseErr error
}

// dataParallelCommands are the commands whose training runs data parallel;
// the others refuse to start as one rank of several.
var dataParallelCommands = map[string]bool{"pretrain": true, "sft": true, "rm": true, "dpo": true, "ppo": true, "grpo": true, "rloo": true, "rs": true, "pipeline": true}

// world is a rank's place in a torchrun-style launch.
type world struct {
	Rank, Size, LocalRank int
	MasterAddr            string
	MasterPort            int
}

// torchrunWorld reads RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
// MASTER_PORT; ok is false when WORLD_SIZE is unset or 1.
func torchrunWorld(getenv func(string) string) (w world, ok bool, err error) {
	size := getenv("WORLD_SIZE")
	if size == "" || size == "1" {
		return w, false, nil
	}
	num := func(name, def string) (int, error) {
		v := getenv(name)
		if v == "" {
			v = def
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return 0, fmt.Errorf("%s=%q is not a number of 0 or more", name, v)
		}
		return n, nil
	}
	if w.Size, err = num("WORLD_SIZE", ""); err != nil {
		return w, false, err
	}
	if w.Rank, err = num("RANK", ""); err != nil {
		return w, false, err
	}
	if w.LocalRank, err = num("LOCAL_RANK", strconv.Itoa(w.Rank)); err != nil {
		return w, false, err
	}
	if w.MasterPort, err = num("MASTER_PORT", "29500"); err != nil {
		return w, false, err
	}
	if w.MasterAddr = getenv("MASTER_ADDR"); w.MasterAddr == "" {
		w.MasterAddr = "127.0.0.1"
	}
	if w.Rank >= w.Size {
		return w, false, fmt.Errorf("RANK=%d is not below WORLD_SIZE=%d", w.Rank, w.Size)
	}
	return w, true, nil
}

// underMPIRun reports whether mpirun started this process as one of
// several ranks.
func underMPIRun(getenv func(string) string) bool {
	n, _ := strconv.Atoi(getenv("OMPI_COMM_WORLD_SIZE"))
	return n > 1
}

// openComm opens the communicator the environment asks for on backend b,
// watched (--dist-timeout): nil for a run in one process.
func openComm(c *cli.Context, b gpu.Backend) (gpu.Comm, error) {
	w, torchrun, err := torchrunWorld(os.Getenv)
	if err != nil {
		return nil, err
	}
	mpirun := underMPIRun(os.Getenv)
	if !mpirun && !torchrun {
		return nil, nil
	}
	name := c.Command.Name
	if !dataParallelCommands[name] {
		return nil, fmt.Errorf("%s does not run data parallel (pretrain, sft, rm, dpo, ppo, grpo, rloo, rs and pipeline do); run it in one process", name)
	}
	var (
		e          engine
		timeout    = c.Duration(flagDistTimeout)
		heartbeats = timeout > 0
	)
	switch {
	case mpirun && mpiComm == nil:
		return nil, fmt.Errorf("started by mpirun, but this binary has no MPI: build it with make build-mpi")
	case mpirun:
		e, err = mpiComm(b, heartbeats)
	case ncclComm == nil:
		return nil, fmt.Errorf("WORLD_SIZE=%d asks for data parallel, which needs NCCL (the cuda build on GPUs) or, on the cpu backend, the mpi build under mpirun", w.Size)
	default:
		e, err = ncclComm(b, w, heartbeats)
	}
	if err != nil {
		return nil, err
	}
	return watchComm(c, e, timeout)
}

// rankView makes a rank other than 0 quiet: its log at warnings and above,
// each line naming the rank, and its printed results discarded (rank 0
// prints them).
func rankView(c *cli.Context, comm gpu.Comm, log zerolog.Logger) zerolog.Logger {
	if comm == nil {
		return log
	}
	log = log.With().Int("rank", comm.Rank()).Logger()
	if comm.Rank() != 0 {
		c.App.Writer = io.Discard
		log = log.Level(max(zerolog.WarnLevel, log.GetLevel()))
	}
	return log
}
