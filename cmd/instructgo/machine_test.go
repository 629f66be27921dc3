package main

import (
	"runtime"
	"strings"
	"testing"
)

func TestCPUModelName(t *testing.T) {
	cpuinfo := "processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R)  Platinum 8480+\nflags\t\t: fpu sse\n\nprocessor\t: 1\nmodel name\t: other\n"
	if got, want := cpuModelName(strings.NewReader(cpuinfo)), "Intel(R) Xeon(R) Platinum 8480+"; got != want {
		t.Errorf("cpuModelName = %q, want %q", got, want)
	}
	if got := cpuModelName(strings.NewReader("processor\t: 0\nBogoMIPS\t: 50.00\n")); got != "" {
		t.Errorf("cpuModelName without a model name = %q, want empty", got)
	}
}

func TestMemTotalBytes(t *testing.T) {
	meminfo := "MemTotal:       32768000 kB\nMemFree:         1000 kB\n"
	if got, want := memTotalBytes(strings.NewReader(meminfo)), uint64(32768000*1024); got != want {
		t.Errorf("memTotalBytes = %d, want %d", got, want)
	}
	if got := memTotalBytes(strings.NewReader("MemFree: 1 kB\n")); got != 0 {
		t.Errorf("memTotalBytes without MemTotal = %d, want 0", got)
	}
}

func TestFormatBytes(t *testing.T) {
	for n, want := range map[uint64]string{
		0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB",
		32768000 * 1024: "31.2 GiB", 1 << 40: "1.0 TiB",
	} {
		if got := formatBytes(n); got != want {
			t.Errorf("formatBytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestDescribeMachine(t *testing.T) {
	m := DescribeMachine()
	if m.LogicalCores < 1 || m.GOMAXPROCS < 1 || m.CPUModel == "" || m.SIMD == nil {
		t.Errorf("DescribeMachine = %+v", m)
	}
	if m.GoVersion != runtime.Version() || m.GOOS != runtime.GOOS || m.GOARCH != runtime.GOARCH {
		t.Errorf("DescribeMachine Go fields = %s %s/%s", m.GoVersion, m.GOOS, m.GOARCH)
	}
	if runtime.GOOS == "linux" && m.MemTotalBytes == 0 {
		t.Errorf("no MemTotal from /proc/meminfo on linux")
	}
}
