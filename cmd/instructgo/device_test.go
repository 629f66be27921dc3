package main

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

func TestParseDevice(t *testing.T) {
	good := map[string]deviceSpec{
		"auto":    {kind: deviceAuto},
		"cpu":     {kind: deviceCPU},
		"cuda":    {kind: deviceCUDA},
		"cuda:0":  {kind: deviceCUDA},
		"cuda:3":  {kind: deviceCUDA, ordinal: 3},
		"cuda:12": {kind: deviceCUDA, ordinal: 12},
	}
	for in, want := range good {
		got, err := parseDevice(in)
		if err != nil || got != want {
			t.Errorf("parseDevice(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "tpu", "gpu", "CPU", "cpu:0", "cuda:", "cuda:x", "cuda:-1", "cuda:+1", "cuda:1.5", "cuda0"} {
		if _, err := parseDevice(in); err == nil || !strings.Contains(err.Error(), "invalid --device") {
			t.Errorf("parseDevice(%q) error = %v, want an invalid --device error", in, err)
		}
	}
}

// fakeGPU stands in for the cuda backend; only Name and Close are called.
type fakeGPU struct{ gpu.Backend }

func (fakeGPU) Name() string { return "fake cuda:0" }
func (fakeGPU) Close() error { return nil }

// withCUDA plugs open in as the cuda backend for one test.
func withCUDA(t *testing.T, open func(int) (gpu.Backend, error)) {
	old := cudaBackend
	t.Cleanup(func() { cudaBackend = old })
	cudaBackend = open
}

func TestAutoPrefersCUDAWhenAGPUAnswers(t *testing.T) {
	withCUDA(t, func(ordinal int) (gpu.Backend, error) { return fakeGPU{}, nil })
	out, stderr, code := runCLI(t, "info", "--json")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	if !strings.Contains(out, `"device": "cuda:0"`) || !strings.Contains(out, `"backend": "fake cuda:0"`) {
		t.Errorf("auto did not pick cuda:\n%s", out)
	}
	if !strings.Contains(stderr, "device: cuda:0") {
		t.Errorf("auto did not log its choice: %q", stderr)
	}
}

func TestAutoFallsBackToCPUWhenNoGPUAnswers(t *testing.T) {
	withCUDA(t, func(ordinal int) (gpu.Backend, error) { return nil, errors.New("no CUDA device found") })
	out, stderr, code := runCLI(t, "info", "--json")
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	if !strings.Contains(out, `"device": "cpu"`) {
		t.Errorf("auto did not fall back to cpu:\n%s", out)
	}
	if !strings.Contains(stderr, "WRN") || !strings.Contains(stderr, "device: cpu (no usable GPU: no CUDA device found)") {
		t.Errorf("fallback not logged as a warning: %q", stderr)
	}
}

func TestExplicitCUDAOrdinal(t *testing.T) {
	var asked int
	withCUDA(t, func(ordinal int) (gpu.Backend, error) {
		asked = ordinal
		if ordinal > 0 {
			return nil, errors.New("invalid device ordinal")
		}
		return fakeGPU{}, nil
	})
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"instructgo", "--device", "cuda:2", "info"}, &out, &errOut)
	if asked != 2 || code != exitFailure || errOut.String() != "instructgo: open cuda:2: invalid device ordinal\n" {
		t.Errorf("--device cuda:2: asked ordinal %d, exit %d, stderr %q", asked, code, errOut.String())
	}
}
