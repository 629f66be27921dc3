package bench

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// MemBandwidth is the machine's measured memory bandwidth, in GB/s.
type MemBandwidth struct {
	// Copy counts one read and one write of every byte copied (the STREAM
	// convention: the write-allocate traffic a cached store may add is not
	// counted; Go's copy of large blocks uses non-temporal stores, which
	// have none).
	Copy float64 `json:"copy_gbs"`
	// Read counts every byte read by a loop that only loads.
	Read float64 `json:"read_gbs"`
	// Bytes is the size of each buffer, Threads the goroutines sharing it.
	Bytes   int64 `json:"bytes"`
	Threads int   `json:"threads"`
}

// Best is the higher of the two rates: the ceiling memory-bound ops are
// measured against.
func (m MemBandwidth) Best() float64 { return max(m.Copy, m.Read) }

// MeasureMemBandwidth measures the host memory bandwidth with threads
// goroutines (0: all CPUs) each locked to an OS thread and working on its
// own slice of two buffers of bytes each (make them several times the
// last-level cache), spending about d in total. It returns the best round
// of each kind, as cpu.PeakFMA does: other load on a shared machine only
// ever slows a round down.
func MeasureMemBandwidth(threads int, bytes int64, d time.Duration) MemBandwidth {
	if threads <= 0 {
		threads = runtime.NumCPU()
	}
	words := int(max(bytes/8, int64(threads)*512))
	src, dst := make([]uint64, words), make([]uint64, words)
	// Write every page first: an untouched page reads as the shared zero
	// page, which sits in the cache.
	for i := range src {
		src[i] = uint64(i)*0x9e3779b97f4a7c15 | 1
	}
	copy(dst, src)
	chunk := words / threads
	part := func(s []uint64, t int) []uint64 { return s[t*chunk : (t+1)*chunk] }
	copyPass := func(t int) int64 {
		copy(part(dst, t), part(src, t))
		return int64(16 * chunk)
	}
	readPass := func(t int) int64 {
		memSink.Add(xorRead(part(src, t)))
		return int64(8 * chunk)
	}
	half := d / 2
	return MemBandwidth{
		Copy:    bestRound(threads, half, copyPass),
		Read:    bestRound(threads, half, readPass),
		Bytes:   int64(words) * 8,
		Threads: threads,
	}
}

// memSink keeps the read loop's result alive.
var memSink atomic.Uint64

// xorRead loads every word of s (four independent chains, so the loop is
// bound by the loads, not by the XOR latency).
func xorRead(s []uint64) uint64 {
	var a, b, c, e uint64
	i := 0
	for ; i+8 <= len(s); i += 8 {
		a ^= s[i] ^ s[i+4]
		b ^= s[i+1] ^ s[i+5]
		c ^= s[i+2] ^ s[i+6]
		e ^= s[i+3] ^ s[i+7]
	}
	for ; i < len(s); i++ {
		a ^= s[i]
	}
	return a ^ b ^ c ^ e
}

// bestRound runs pass on threads goroutines in rounds that start together
// and returns the best round's rate in GB/s: bytes moved by all threads
// over the longest thread's time. A round lasts at least one pass per
// thread and about d/rounds.
func bestRound(threads int, d time.Duration, pass func(t int) int64) float64 {
	rounds := max(1, min(10, int(d/(20*time.Millisecond))))
	round := d / time.Duration(rounds)
	best := 0.0
	for r := -1; r < rounds; r++ { // round −1 warms up
		var (
			moved   atomic.Int64
			maxSpan atomic.Int64
			ready   sync.WaitGroup
			done    sync.WaitGroup
			start   = make(chan struct{})
		)
		for t := range threads {
			ready.Add(1)
			done.Add(1)
			go func() {
				defer done.Done()
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				ready.Done()
				<-start
				t0 := time.Now()
				var n int64
				for n == 0 || time.Since(t0) < round {
					n += pass(t)
				}
				span := int64(time.Since(t0))
				moved.Add(n)
				for {
					old := maxSpan.Load()
					if span <= old || maxSpan.CompareAndSwap(old, span) {
						break
					}
				}
			}()
		}
		ready.Wait()
		close(start)
		done.Wait()
		if secs := time.Duration(maxSpan.Load()).Seconds(); r >= 0 && secs > 0 {
			best = max(best, float64(moved.Load())/secs/1e9)
		}
	}
	return best
}

// DefaultCacheBytes is assumed for the last-level cache when the OS does
// not say.
const DefaultCacheBytes = 32 << 20

// LastLevelCache returns the size in bytes of CPU 0's largest cache as
// Linux reports it in /sys/devices/system/cpu/cpu0/cache, or
// DefaultCacheBytes when it cannot be read.
func LastLevelCache() int64 {
	return lastLevelCache("/sys/devices/system/cpu/cpu0/cache")
}

func lastLevelCache(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return DefaultCacheBytes
	}
	best, bestLevel := int64(0), 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "index") {
			continue
		}
		read := func(f string) string {
			b, err := os.ReadFile(filepath.Join(dir, e.Name(), f))
			if err != nil {
				return ""
			}
			return strings.TrimSpace(string(b))
		}
		if read("type") == "Instruction" {
			continue
		}
		level, err := strconv.Atoi(read("level"))
		if err != nil {
			continue
		}
		size := parseCacheSize(read("size"))
		if size > 0 && (level > bestLevel || (level == bestLevel && size > best)) {
			best, bestLevel = size, level
		}
	}
	if best <= 0 {
		return DefaultCacheBytes
	}
	return best
}

// parseCacheSize reads sysfs sizes such as "32768K", "1M" or "512"; 0 when
// it cannot.
func parseCacheSize(s string) int64 {
	mult := int64(1)
	switch {
	case strings.HasSuffix(s, "K"):
		mult, s = 1<<10, strings.TrimSuffix(s, "K")
	case strings.HasSuffix(s, "M"):
		mult, s = 1<<20, strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		mult, s = 1<<30, strings.TrimSuffix(s, "G")
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n * mult
}

// loadAverage is the 1-minute load average from /proc/loadavg, or −1 where
// there is none.
func loadAverage() float64 {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}
