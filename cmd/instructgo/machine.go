package main

import (
	"bufio"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/cpu"
)

// MachineInfo describes the host a command runs on: what `instructgo info`
// prints, and what benchmark results record next to their timings.
type MachineInfo struct {
	CPUModel      string   `json:"cpu_model"`     // "unknown" when the OS does not say
	LogicalCores  int      `json:"logical_cores"` // runtime.NumCPU
	SIMD          []string `json:"simd"`          // vector extensions the CPU and OS support
	GoVersion     string   `json:"go_version"`    // runtime.Version
	GOOS          string   `json:"goos"`
	GOARCH        string   `json:"goarch"`
	GOMAXPROCS    int      `json:"gomaxprocs"`      // current value
	MemTotalBytes uint64   `json:"mem_total_bytes"` // physical memory; 0 when unknown
}

// DescribeMachine gathers MachineInfo for this process. It reads
// /proc/cpuinfo and /proc/meminfo on Linux; elsewhere those fields stay
// "unknown" and 0.
func DescribeMachine() MachineInfo {
	m := MachineInfo{
		CPUModel:     "unknown",
		LogicalCores: runtime.NumCPU(),
		SIMD:         simdFeatures(),
		GoVersion:    runtime.Version(),
		GOOS:         runtime.GOOS,
		GOARCH:       runtime.GOARCH,
		GOMAXPROCS:   runtime.GOMAXPROCS(0),
	}
	if runtime.GOOS == "linux" {
		if f, err := os.Open("/proc/cpuinfo"); err == nil {
			if name := cpuModelName(f); name != "" {
				m.CPUModel = name
			}
			f.Close()
		}
		if f, err := os.Open("/proc/meminfo"); err == nil {
			m.MemTotalBytes = memTotalBytes(f)
			f.Close()
		}
	}
	return m
}

// cpuModelName returns the first "model name" in /proc/cpuinfo text, or "".
func cpuModelName(cpuinfo io.Reader) string {
	sc := bufio.NewScanner(cpuinfo)
	for sc.Scan() {
		key, value, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(key) == "model name" {
			return strings.Join(strings.Fields(value), " ")
		}
	}
	return ""
}

// memTotalBytes returns MemTotal from /proc/meminfo text, or 0.
func memTotalBytes(meminfo io.Reader) uint64 {
	sc := bufio.NewScanner(meminfo)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || fields[0] != "MemTotal:" {
			continue
		}
		n, err := strconv.ParseUint(fields[1], 10, 64)
		if err != nil {
			return 0
		}
		if len(fields) >= 3 && strings.EqualFold(fields[2], "kB") {
			n *= 1024
		}
		return n
	}
	return 0
}

// feature is one named CPU capability.
type feature struct {
	name string
	has  bool
}

// simdFeatures lists the vector extensions relevant to the cpu backend's
// kernels that this CPU (and OS) support, in a fixed order; empty, not
// nil, when there are none or the architecture is not covered.
func simdFeatures() []string {
	var table []feature
	switch runtime.GOARCH {
	case "amd64", "386":
		x := &cpu.X86
		table = []feature{
			{"sse2", x.HasSSE2}, {"sse3", x.HasSSE3}, {"ssse3", x.HasSSSE3},
			{"sse4.1", x.HasSSE41}, {"sse4.2", x.HasSSE42}, {"popcnt", x.HasPOPCNT},
			{"avx", x.HasAVX}, {"avx2", x.HasAVX2}, {"fma", x.HasFMA}, {"f16c", x.HasF16C},
			{"bmi1", x.HasBMI1}, {"bmi2", x.HasBMI2},
			{"avx512f", x.HasAVX512F}, {"avx512dq", x.HasAVX512DQ},
			{"avx512bw", x.HasAVX512BW}, {"avx512vl", x.HasAVX512VL},
			{"avx512vnni", x.HasAVX512VNNI}, {"avx512bf16", x.HasAVX512BF16},
			{"avxvnni", x.HasAVXVNNI},
			{"amx-tile", x.HasAMXTile}, {"amx-int8", x.HasAMXInt8}, {"amx-bf16", x.HasAMXBF16},
		}
	case "arm64":
		a := &cpu.ARM64
		table = []feature{
			{"fp", a.HasFP}, {"asimd", a.HasASIMD}, {"fphp", a.HasFPHP},
			{"asimdhp", a.HasASIMDHP}, {"asimddp", a.HasASIMDDP},
			{"asimdfhm", a.HasASIMDFHM}, {"i8mm", a.HasI8MM},
			{"sve", a.HasSVE}, {"sve2", a.HasSVE2},
		}
	}
	out := []string{}
	for _, f := range table {
		if f.has {
			out = append(out, f.name)
		}
	}
	return out
}
