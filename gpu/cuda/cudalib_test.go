//go:build cuda

package cuda

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The library search of cudalib.go on a made-up machine: a temporary
// folder with a virtual environment holding CUDA 12 wheels, a user
// site-packages holding CUDA 13's, and a PYTHONPATH entry; globbing is
// confined to it, so the machine the test runs on does not matter.

type fakeMachine struct {
	root string
	env  map[string]string
}

func newFakeMachine(t *testing.T) *fakeMachine {
	t.Helper()
	m := &fakeMachine{root: t.TempDir(), env: map[string]string{}}
	m.env["VIRTUAL_ENV"] = filepath.Join(m.root, "venv")
	m.env["HOME"] = filepath.Join(m.root, "home")
	m.env["PYTHONPATH"] = filepath.Join(m.root, "extra") + ":" + filepath.Join(m.root, "missing")
	for _, f := range []string{
		"venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublas.so.12",
		"venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublasLt.so.12",
		"home/.local/lib/python3.12/site-packages/nvidia/cu13/lib/libcublas.so.13",
		"home/.local/lib/python3.12/site-packages/nvidia/cu13/lib/libcublasLt.so.13",
		"extra/nvidia/cublas/lib/libcublasLt.so.12",
	} {
		p := filepath.Join(m.root, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func (m *fakeMachine) libEnv() libEnv {
	return libEnv{
		getenv: func(k string) string { return m.env[k] },
		glob: func(p string) ([]string, error) {
			if !strings.HasPrefix(p, m.root) {
				return nil, nil // the real machine's folders are not there
			}
			return filepath.Glob(p)
		},
	}
}

func (m *fakeMachine) path(rel string) string { return filepath.Join(m.root, rel) }

func TestCUDALibSearchOrder(t *testing.T) {
	m := newFakeMachine(t)
	got, err := cudaLibSearch("cublas", cublasEnv, cudaMajors, m.libEnv())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"libcublas.so.13", "/usr/local/cuda/lib64/libcublas.so.13",
		m.path("home/.local/lib/python3.12/site-packages/nvidia/cu13/lib/libcublas.so.13"),
		"libcublas.so.12", "/usr/local/cuda/lib64/libcublas.so.12",
		m.path("venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublas.so.12"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("cuBLAS search:\n got %q\nwant %q", got, want)
	}
	// The same function finds cuBLASLt, PYTHONPATH's copy included, and
	// comes before the virtual environment's.
	got, err = cudaLibSearch("cublasLt", cublasLtEnv, []int{12}, m.libEnv())
	if err != nil {
		t.Fatal(err)
	}
	want = []string{
		"libcublasLt.so.12", "/usr/local/cuda/lib64/libcublasLt.so.12",
		m.path("extra/nvidia/cublas/lib/libcublasLt.so.12"),
		m.path("venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublasLt.so.12"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("cuBLASLt search:\n got %q\nwant %q", got, want)
	}
}

func TestCUDALibSearchOverrides(t *testing.T) {
	m := newFakeMachine(t)
	m.env[cublasEnv] = "/opt/my/libcublas.so.12"
	got, err := cudaLibSearch("cublas", cublasEnv, cudaMajors, m.libEnv())
	if err != nil || !slices.Equal(got, []string{"/opt/my/libcublas.so.12"}) {
		t.Errorf("with %s set: %q, %v", cublasEnv, got, err)
	}
	for _, off := range []string{"none", "off"} {
		m.env[cublasEnv] = off
		if _, err := cudaLibSearch("cublas", cublasEnv, cudaMajors, m.libEnv()); err == nil || !strings.Contains(err.Error(), "disabled") {
			t.Errorf("%s=%s: error %v, want disabled", cublasEnv, off, err)
		}
		// cuBLAS off turns cuBLASLt off too.
		if _, err := cublasLtSearch("", 0, m.libEnv()); err == nil || !strings.Contains(err.Error(), cublasEnv) {
			t.Errorf("%s=%s: cuBLASLt search error %v, want disabled by it", cublasEnv, off, err)
		}
	}
	delete(m.env, cublasEnv)
	m.env[cublasLtEnv] = "none"
	if _, err := cublasLtSearch("libcublas.so.12", 12, m.libEnv()); err == nil || !strings.Contains(err.Error(), cublasLtEnv) {
		t.Errorf("%s=none: error %v", cublasLtEnv, err)
	}
	m.env[cublasLtEnv] = "/x/libcublasLt.so.12"
	if got, err := cublasLtSearch("/y/libcublas.so.12", 12, m.libEnv()); err != nil || !slices.Equal(got, []string{"/x/libcublasLt.so.12"}) {
		t.Errorf("%s set: %q, %v", cublasLtEnv, got, err)
	}
}

// TestCUBLASLtBesideCUBLAS: with cuBLAS loaded, cuBLASLt comes from the
// same folder first and is of the same major version only.
func TestCUBLASLtBesideCUBLAS(t *testing.T) {
	m := newFakeMachine(t)
	blas := m.path("venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublas.so.12")
	got, err := cublasLtSearch(blas, 12, m.libEnv())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		m.path("venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublasLt.so.12"),
		"libcublasLt.so.12", "/usr/local/cuda/lib64/libcublasLt.so.12",
		m.path("extra/nvidia/cublas/lib/libcublasLt.so.12"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("beside %s:\n got %q\nwant %q", blas, got, want)
	}
	// Loaded by soname: the soname of the same major first, no CUDA 13.
	got, err = cublasLtSearch("libcublas.so.12", 12, m.libEnv())
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "libcublasLt.so.12" || slices.ContainsFunc(got, func(s string) bool { return strings.HasSuffix(s, ".so.13") }) {
		t.Errorf("beside libcublas.so.12: %q", got)
	}
	// No cuBLAS: every major, newest first.
	got, err = cublasLtSearch("", 0, m.libEnv())
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "libcublasLt.so.13" || !slices.Contains(got, "libcublasLt.so.12") {
		t.Errorf("without cuBLAS: %q", got)
	}
}
