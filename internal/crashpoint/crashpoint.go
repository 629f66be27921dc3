// Package crashpoint lets the crash tests kill a process at an exact file
// operation, as kill -9 or a power cut would: with INSTRUCTGO_CRASH_AT=N in
// the environment, the N-th call of Hit (counting from 1, over the whole
// process) sends the process SIGKILL before the operation it marks.
// Without the variable, Hit only counts. The code that writes a run's
// state calls Hit before every operation whose interruption matters
// (creating, writing, syncing, renaming, linking and removing files).
//
// It imports only the standard library.
package crashpoint

import (
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
)

// EnvVar names the environment variable that arms the crash.
const EnvVar = "INSTRUCTGO_CRASH_AT"

var (
	at   = armed()
	hits atomic.Int64
)

func armed() int64 {
	n, err := strconv.ParseInt(os.Getenv(EnvVar), 10, 64)
	if err != nil || n < 1 {
		return 0
	}
	return n
}

// Hit marks the file operation about to happen (op names it, for
// debugging); it kills the process when this is the armed one.
func Hit(op string) {
	if hits.Add(1) == at {
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // the signal is on its way
	}
}

// Count is the number of Hit calls so far in this process.
func Count() int64 { return hits.Load() }
