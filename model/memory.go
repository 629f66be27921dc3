package model

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// fitsMemory refuses an allocation of n bytes on the host that exceeds the
// memory the machine has available (Linux's MemAvailable), so that a
// config asking for more fails with a message instead of the process
// being killed. Where the figure is unknown it accepts.
func fitsMemory(what string, n int64) error {
	avail, ok := hostMemAvailable()
	if ok && n > avail {
		return fmt.Errorf("%s: needs %.1f GiB of memory, %.1f GiB are available", what, float64(n)/(1<<30), float64(avail)/(1<<30))
	}
	return nil
}

// hostMemAvailable reads MemAvailable from /proc/meminfo.
func hostMemAvailable() (int64, bool) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemAvailable:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			return kb << 10, err == nil
		}
	}
	return 0, false
}
