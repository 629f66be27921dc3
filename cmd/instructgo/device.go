package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// cudaBackend opens the cuda backend on the GPU with the given ordinal. It
// is nil in the default build; a file built with the tag cuda sets it in an
// init function. It returns an error when no such GPU answers.
var cudaBackend func(ordinal int) (gpu.Backend, error)

// errNoCUDA is the answer to --device cuda in a build without the backend.
var errNoCUDA = errors.New("this instructgo was built without the cuda backend (build with -tags cuda, see README)")

// cudaCompiled reports whether this binary has the cuda backend.
func cudaCompiled() bool { return cudaBackend != nil }

// deviceKind is what --device names.
type deviceKind int

const (
	deviceAuto deviceKind = iota
	deviceCPU
	deviceCUDA
)

// deviceSpec is a parsed --device value.
type deviceSpec struct {
	kind    deviceKind
	ordinal int // GPU ordinal, for deviceCUDA
}

func (d deviceSpec) String() string {
	switch d.kind {
	case deviceCPU:
		return "cpu"
	case deviceCUDA:
		return "cuda:" + strconv.Itoa(d.ordinal)
	default:
		return "auto"
	}
}

// parseDevice parses a --device value: auto, cpu, cuda (GPU 0) or cuda:N.
func parseDevice(s string) (deviceSpec, error) {
	switch s {
	case "auto":
		return deviceSpec{kind: deviceAuto}, nil
	case "cpu":
		return deviceSpec{kind: deviceCPU}, nil
	case "cuda":
		return deviceSpec{kind: deviceCUDA}, nil
	}
	if n, ok := strings.CutPrefix(s, "cuda:"); ok {
		ordinal, err := strconv.Atoi(n)
		if err != nil || ordinal < 0 || strings.HasPrefix(n, "+") {
			return deviceSpec{}, fmt.Errorf("invalid --%s %q: the GPU ordinal after cuda: must be a whole number 0 or more, e.g. cuda:0", flagDevice, s)
		}
		return deviceSpec{kind: deviceCUDA, ordinal: ordinal}, nil
	}
	return deviceSpec{}, fmt.Errorf("invalid --%s %q: want auto, cpu, cuda or cuda:N", flagDevice, s)
}

// deviceChoice says which device a --device value resolved to and why.
type deviceChoice struct {
	Device string // "cpu" or "cuda:N"
	Reason string // e.g. "binary built without the cuda backend"
}

// openBackend opens the backend the global --device and --threads flags
// ask for, logging which device it chose and why. The caller closes it.
func openBackend(c *cli.Context) (gpu.Backend, error) {
	b, _, err := openDevice(c)
	return b, err
}

// openDevice is openBackend that also returns the choice it made.
func openDevice(c *cli.Context) (gpu.Backend, deviceChoice, error) {
	spec, err := parseDevice(c.String(flagDevice))
	if err != nil {
		return nil, deviceChoice{}, &usageError{err: err}
	}
	threads := c.Int(flagThreads)
	if threads < 0 {
		return nil, deviceChoice{}, usageErrorf("invalid --%s %d: want 0 (all cores) or a positive count", flagThreads, threads)
	}
	b, choice, cudaErr, err := resolveBackend(spec, threads)
	if err != nil {
		return nil, choice, err
	}
	ev := logger(c).Info()
	if cudaErr != nil {
		// The binary has the cuda backend but no GPU answered: running on
		// the cpu is legitimate, yet far slower than the user may expect.
		ev = logger(c).Warn()
	}
	ev.Str("backend", b.Name()).Msgf("device: %s (%s)", choice.Device, choice.Reason)
	return b, choice, nil
}

// resolveBackend opens the backend for spec. For auto it tries cuda (GPU 0)
// when compiled in and falls back to cpu; cudaErr is why cuda was passed
// over, if it failed.
func resolveBackend(spec deviceSpec, threads int) (b gpu.Backend, choice deviceChoice, cudaErr, err error) {
	switch spec.kind {
	case deviceCPU:
		return cpu.New(threads), deviceChoice{Device: "cpu", Reason: "--device cpu"}, nil, nil
	case deviceCUDA:
		choice = deviceChoice{Device: spec.String(), Reason: "--device " + spec.String()}
		if !cudaCompiled() {
			return nil, choice, nil, errNoCUDA
		}
		b, err := cudaBackend(spec.ordinal)
		if err != nil {
			return nil, choice, nil, fmt.Errorf("open %s: %w", spec, err)
		}
		return b, choice, nil, nil
	}
	// auto
	if !cudaCompiled() {
		return cpu.New(threads), deviceChoice{Device: "cpu", Reason: "binary built without the cuda backend"}, nil, nil
	}
	gpuBackend, cudaErr := cudaBackend(0)
	if cudaErr != nil {
		return cpu.New(threads), deviceChoice{Device: "cpu", Reason: "no usable GPU: " + cudaErr.Error()}, cudaErr, nil
	}
	return gpuBackend, deviceChoice{Device: "cuda:0", Reason: "cuda backend compiled in and GPU 0 answered"}, nil, nil
}
