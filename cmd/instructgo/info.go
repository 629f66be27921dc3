package main

import (
	"fmt"
	"runtime"
	"strings"
	"text/tabwriter"

	"github.com/instructgo/instructgo/gpu/cpu"
	"github.com/urfave/cli/v2"
)

// infoReport is what `instructgo info` prints: the backend --device resolves
// to, and the machine.
type infoReport struct {
	Backend      string `json:"backend"`       // the backend's Name
	Device       string `json:"device"`        // "cpu" or "cuda:N"
	DeviceReason string `json:"device_reason"` // why --device resolved to it
	Threads      int    `json:"threads"`       // cpu worker threads in use
	// CPUKernels are the cpu backend's micro-kernels on this machine
	// (matmul, vector math): what its speed comes from.
	CPUKernels   string `json:"cpu_kernels"`
	CUDACompiled bool   `json:"cuda_compiled"`
	// GEMM is a GPU backend's matrix-product paths: the cuBLAS and
	// cuBLASLt it loaded and from which files, or why it runs its own GEMM
	// kernels; empty on the cpu.
	GEMM string `json:"gemm,omitempty"`
	MachineInfo
}

func infoCommand() *cli.Command {
	return &cli.Command{
		Name:  "info",
		Usage: "describe the backend --device resolves to and the machine (CPU, SIMD, cores, memory, Go)",
		Flags: []cli.Flag{
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of text"},
		},
		Action: runInfo,
	}
}

func runInfo(c *cli.Context) (err error) {
	if err := noArgs(c); err != nil {
		return err
	}
	b, choice, err := openDevice(c)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := b.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close %s backend: %w", choice.Device, cerr)
		}
	}()

	r := infoReport{
		Backend:      b.Name(),
		Device:       choice.Device,
		DeviceReason: choice.Reason,
		Threads:      threadsInUse(b, c.Int(flagThreads)),
		CPUKernels:   fmt.Sprintf("matmul %s, vector math %s", cpu.MatMulKernel(), cpu.VecKernel()),
		CUDACompiled: cudaCompiled(),
		MachineInfo:  DescribeMachine(),
	}
	if g, ok := b.(interface{ GEMM() string }); ok {
		r.GEMM = g.GEMM()
	}
	if c.Bool("json") {
		return writeJSON(c, r)
	}
	return writeInfoText(c, r)
}

// threadsInUse is the backend's worker count when it reports one, else what
// --threads asked for (0: all logical cores).
func threadsInUse(b any, flagValue int) int {
	if t, ok := b.(interface{ Threads() int }); ok {
		return t.Threads()
	}
	if flagValue > 0 {
		return flagValue
	}
	return runtime.NumCPU()
}

func writeInfoText(c *cli.Context, r infoReport) error {
	simd := strings.Join(r.SIMD, " ")
	if simd == "" {
		simd = "none detected"
	}
	mem := "unknown"
	if r.MemTotalBytes > 0 {
		mem = formatBytes(r.MemTotalBytes)
	}
	tw := tabwriter.NewWriter(c.App.Writer, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "backend\t%s\n", r.Backend)
	fmt.Fprintf(tw, "device\t%s (%s)\n", r.Device, r.DeviceReason)
	fmt.Fprintf(tw, "cpu\t%s\n", r.CPUModel)
	fmt.Fprintf(tw, "logical cores\t%d\n", r.LogicalCores)
	fmt.Fprintf(tw, "simd\t%s\n", simd)
	fmt.Fprintf(tw, "threads\t%d\n", r.Threads)
	fmt.Fprintf(tw, "cpu kernels\t%s\n", r.CPUKernels)
	fmt.Fprintf(tw, "GOMAXPROCS\t%d\n", r.GOMAXPROCS)
	fmt.Fprintf(tw, "memory\t%s\n", mem)
	fmt.Fprintf(tw, "go\t%s %s/%s\n", r.GoVersion, r.GOOS, r.GOARCH)
	fmt.Fprintf(tw, "cuda backend\t%s\n", cudaStatus(r.CUDACompiled))
	if r.GEMM != "" {
		fmt.Fprintf(tw, "gemm\t%s\n", r.GEMM)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write info: %w", err)
	}
	return nil
}
