package main

import (
	"os"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
)

// defaultDistTimeout is --dist-timeout's default, PyTorch's: generous,
// because the other ranks wait in a collective while rank 0 alone
// evaluates and saves, which takes minutes at large sizes.
const defaultDistTimeout = 10 * time.Minute

// watchComm wraps a data-parallel communicator in the watchdog
// (gpu.Watched) unless timeout is 0: a collective that waits longer than
// timeout, or a rank whose heartbeat stops for as long, ends this process
// with exitHang after one error line naming the rank that hangs; mpirun
// or launch then end the others. A rank without heartbeats (e.pulseErr)
// is warned about: its watchdog fires without naming a rank.
func watchComm(c *cli.Context, e engine, timeout time.Duration) (gpu.Comm, error) {
	comm := e.comm
	log := logger(c).With().Int("rank", comm.Rank()).Logger()
	if e.pulseErr != nil {
		log.Warn().Err(e.pulseErr).Msg("no heartbeats: the watchdog cannot name a rank that hangs")
	}
	errOut := c.App.ErrWriter
	w, err := gpu.Watched(comm, gpu.WatchOptions{Timeout: timeout, Pulse: e.pulse, OnHang: func(h gpu.Hang) {
		ev := log.Error().Str("collective", h.Op).Int64("seq", h.Seq).Dur("waited", h.Waited).
			Dur("timeout", h.Timeout).Ints("hung_ranks", h.Suspects)
		ev.Msg("a rank hangs: ending this rank so that the launcher ends the run. " + h.Error())
		// The log line is written by now (zerolog writes each event at
		// once); a file behind it is synced before the exit.
		if f, ok := errOut.(*os.File); ok {
			f.Sync()
		}
		os.Exit(exitHang)
	}})
	if err != nil {
		comm.Close()
		return nil, err
	}
	return w, nil
}

// withDistTimeout gives the ranks' command line (global flags, command,
// its flags) the --dist-timeout given to launch itself, unless it sets
// its own: the flag configures the ranks' communicators, not launch.
func withDistTimeout(args []string, d time.Duration) []string {
	for _, a := range args {
		name, _, _ := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && name == flagDistTimeout {
			return args
		}
	}
	return append([]string{"--" + flagDistTimeout, d.String()}, args...)
}
