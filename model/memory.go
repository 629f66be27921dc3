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

// footprint is the bytes a model of c takes: parameters (and their bf16
// copy), gradients when training, and the activation buffers for maxB×maxT
// tokens (see actSpecs).
func footprint(c Config, prec Precision, maxB, maxT int, train bool) int64 {
	params := int64(c.NumParams())
	n := 4 * params
	if prec == BF16 {
		n += 2 * params
	}
	if train {
		n += 4 * params
	}
	act := int64(prec.ActDType().Size())
	rows := int64(maxB) * int64(maxT)
	n += 4 * (2*rows + int64(maxB)) // tokens, targets, lengths
	for _, s := range actSpecs(c) {
		if s.train && !train {
			continue
		}
		size, count := act, int64(1)
		if s.f32 {
			size = 4
		}
		if s.perLayer {
			count = int64(c.NLayer)
		}
		n += count * rows * int64(s.perRow) * size
	}
	return n
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
