package cudalib

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// The search on made-up machines: a temporary folder stands for /, holding
// stub .so files in the layouts GPU machines have; Glob is confined to it
// and PythonPath answers what the machine's python3 would, so the machine
// the test runs on does not matter.

type fakeMachine struct {
	t       *testing.T
	root    string
	env     map[string]string
	sysPath []string
}

func newFakeMachine(t *testing.T, files ...string) *fakeMachine {
	t.Helper()
	m := &fakeMachine{t: t, root: t.TempDir(), env: map[string]string{}}
	for _, f := range files {
		m.touch(f)
	}
	return m
}

// touch creates an empty file at rel (a path under the fake root).
func (m *fakeMachine) touch(rel string) {
	m.t.Helper()
	p := m.path(rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		m.t.Fatal(err)
	}
}

func (m *fakeMachine) path(rel string) string { return filepath.Join(m.root, rel) }

// env maps the fixed absolute folders of the search (/usr/local/cuda,
// /usr/lib/python3..., /opt/conda) into the fake root.
func (m *fakeMachine) Env() Env {
	return Env{
		Getenv: func(k string) string { return m.env[k] },
		Glob: func(p string) ([]string, error) {
			if !strings.HasPrefix(p, m.root) {
				p = filepath.Join(m.root, p)
			}
			return filepath.Glob(p)
		},
		PythonPath: func() []string { return m.sysPath },
	}
}

func TestSearchLayouts(t *testing.T) {
	torchVenv := "opt/torch/.venv/lib/python3.12/site-packages"
	for _, tc := range []struct {
		name    string
		files   []string
		env     map[string]string
		sysPath []string // under the fake root
		want    []string // the files found on disk, in order (sonames aside)
	}{
		{
			name:    "CUDA 13 wheel in a venv only python3 names",
			files:   []string{torchVenv + "/nvidia/cu13/lib/libcublas.so.13", torchVenv + "/nvidia/cu13/lib/libcublasLt.so.13"},
			sysPath: []string{"usr/lib/python312.zip", "opt/torch/.venv/lib/python3.12/lib-dynload", torchVenv},
			want:    []string{torchVenv + "/nvidia/cu13/lib/libcublas.so.13"},
		},
		{
			name:  "CUDA 12 wheel (nvidia-cublas-cu12) in the active venv",
			files: []string{"venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublas.so.12"},
			env:   map[string]string{"VIRTUAL_ENV": "venv"},
			want:  []string{"venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublas.so.12"},
		},
		{
			name:  "user site-packages and the system's dist-packages",
			files: []string{"home/.local/lib/python3.10/site-packages/nvidia/cu13/lib/libcublas.so.13", "usr/local/lib/python3.10/dist-packages/nvidia/cublas/lib/libcublas.so.12"},
			env:   map[string]string{"HOME": "home"},
			want: []string{"home/.local/lib/python3.10/site-packages/nvidia/cu13/lib/libcublas.so.13",
				"usr/local/lib/python3.10/dist-packages/nvidia/cublas/lib/libcublas.so.12"},
		},
		{
			name:  "a later wheel layout nvidia/cuNN/lib",
			files: []string{"opt/conda/lib/python3.12/site-packages/nvidia/cu14/lib/libcublas.so.13"},
			want:  []string{"opt/conda/lib/python3.12/site-packages/nvidia/cu14/lib/libcublas.so.13"},
		},
		{
			name: "toolkits before wheels: CUDA_HOME, /usr/local/cuda, a versioned one, targets/",
			files: []string{"cuda-home/lib64/libcublas.so.13", "usr/local/cuda/lib64/libcublas.so.12",
				"usr/local/cuda-12.4/targets/x86_64-linux/lib/libcublas.so.12",
				"usr/lib/python3.12/site-packages/nvidia/cublas/lib/libcublas.so.12"},
			env: map[string]string{"CUDA_HOME": "cuda-home"},
			want: []string{"cuda-home/lib64/libcublas.so.13", "usr/local/cuda/lib64/libcublas.so.12",
				"usr/local/cuda-12.4/targets/x86_64-linux/lib/libcublas.so.12",
				"usr/lib/python3.12/site-packages/nvidia/cublas/lib/libcublas.so.12"},
		},
		{
			name:  "PYTHONPATH entries come first among the sites",
			files: []string{"extra/nvidia/cublas/lib/libcublas.so.12", "venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublas.so.12"},
			env:   map[string]string{"PYTHONPATH": "extra:missing", "VIRTUAL_ENV": "venv"},
			want:  []string{"extra/nvidia/cublas/lib/libcublas.so.12", "venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublas.so.12"},
		},
		{
			name:  "nothing installed",
			files: []string{"venv/lib/python3.11/site-packages/numpy/__init__.py"},
			env:   map[string]string{"VIRTUAL_ENV": "venv"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newFakeMachine(t, tc.files...)
			for k, v := range tc.env {
				if k == "PYTHONPATH" {
					var ps []string
					for _, p := range strings.Split(v, ":") {
						ps = append(ps, m.path(p))
					}
					v = strings.Join(ps, ":")
				} else {
					v = m.path(v)
				}
				m.env[k] = v
			}
			for _, p := range tc.sysPath {
				m.sysPath = append(m.sysPath, m.path(p))
			}
			got, err := Search("cublas", CublasEnv, Majors, m.Env())
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, w := range tc.want {
				want = append(want, m.path(w))
			}
			// The sonames come first in each major's part, CUDA 13 before 12.
			i13, i12 := slices.Index(got, "libcublas.so.13"), slices.Index(got, "libcublas.so.12")
			if i13 != 0 || i12 < 0 {
				t.Fatalf("sonames at %d and %d in %q", i13, i12, got)
			}
			var files []string
			for _, g := range got {
				if filepath.IsAbs(g) {
					files = append(files, g)
				}
			}
			if !slices.Equal(files, want) {
				t.Errorf("found\n %q\nwant\n %q", files, want)
			}
			for _, f := range files {
				if strings.HasSuffix(f, ".so.13") && slices.Index(got, f) > i12 {
					t.Errorf("%s comes after the CUDA 12 soname", f)
				}
			}
		})
	}
}

func TestSearchOverrides(t *testing.T) {
	m := newFakeMachine(t, "venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublas.so.12")
	m.env["VIRTUAL_ENV"] = m.path("venv")
	m.env[CublasEnv] = "/opt/my/libcublas.so.12"
	got, err := Search("cublas", CublasEnv, Majors, m.Env())
	if err != nil || !slices.Equal(got, []string{"/opt/my/libcublas.so.12"}) {
		t.Errorf("with %s set: %q, %v", CublasEnv, got, err)
	}
	for _, off := range []string{"none", "off"} {
		m.env[CublasEnv] = off
		if _, err := Search("cublas", CublasEnv, Majors, m.Env()); err == nil || !strings.Contains(err.Error(), "disabled") {
			t.Errorf("%s=%s: error %v, want disabled", CublasEnv, off, err)
		}
		// cuBLAS off turns cuBLASLt off too.
		if _, err := LtSearch("", 0, m.Env()); err == nil || !strings.Contains(err.Error(), CublasEnv) {
			t.Errorf("%s=%s: cuBLASLt search error %v, want disabled by it", CublasEnv, off, err)
		}
	}
	delete(m.env, CublasEnv)
	m.env[CublasLtEnv] = "none"
	if _, err := LtSearch("libcublas.so.12", 12, m.Env()); err == nil || !strings.Contains(err.Error(), CublasLtEnv) {
		t.Errorf("%s=none: error %v", CublasLtEnv, err)
	}
	m.env[CublasLtEnv] = "/x/libcublasLt.so.12"
	if got, err := LtSearch("/y/libcublas.so.12", 12, m.Env()); err != nil || !slices.Equal(got, []string{"/x/libcublasLt.so.12"}) {
		t.Errorf("%s set: %q, %v", CublasLtEnv, got, err)
	}
}

// TestLtBesideCublas: with cuBLAS loaded, cuBLASLt comes from the same
// folder first and is of the same major version only.
func TestLtBesideCublas(t *testing.T) {
	site := "venv/lib/python3.11/site-packages"
	m := newFakeMachine(t, site+"/nvidia/cublas/lib/libcublas.so.12", site+"/nvidia/cublas/lib/libcublasLt.so.12",
		"extra/nvidia/cublas/lib/libcublasLt.so.12", "home/.local/lib/python3.12/site-packages/nvidia/cu13/lib/libcublasLt.so.13")
	m.env["VIRTUAL_ENV"], m.env["PYTHONPATH"], m.env["HOME"] = m.path("venv"), m.path("extra"), m.path("home")
	blas := m.path(site + "/nvidia/cublas/lib/libcublas.so.12")
	got, err := LtSearch(blas, 12, m.Env())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		m.path(site + "/nvidia/cublas/lib/libcublasLt.so.12"),
		"libcublasLt.so.12",
		m.path("extra/nvidia/cublas/lib/libcublasLt.so.12"),
	}
	if !slices.Equal(got, want) {
		t.Errorf("beside %s:\n got %q\nwant %q", blas, got, want)
	}
	// Loaded by soname: the soname of the same major first, no CUDA 13.
	got, err = LtSearch("libcublas.so.12", 12, m.Env())
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "libcublasLt.so.12" || slices.ContainsFunc(got, func(s string) bool { return strings.HasSuffix(s, ".so.13") }) {
		t.Errorf("beside libcublas.so.12: %q", got)
	}
	// No cuBLAS: every major, newest first.
	got, err = LtSearch("", 0, m.Env())
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != "libcublasLt.so.13" || !slices.Contains(got, m.path("home/.local/lib/python3.12/site-packages/nvidia/cu13/lib/libcublasLt.so.13")) {
		t.Errorf("without cuBLAS: %q", got)
	}
}

// TestPythonSysPath asks a stand-in interpreter (a shell script printing a
// sys.path with a relative entry and a blank line) and the real python3
// where there is one; "none" asks nothing.
func TestPythonSysPath(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("the stand-in interpreter is a shell script")
	}
	dir := t.TempDir()
	fake := filepath.Join(dir, "python")
	script := "#!/bin/sh\nprintf '%s\\n' '' /usr/lib/python312.zip /opt/torch/.venv/lib/python3.12/site-packages/ relative\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	got, err := PythonSysPath(context.Background(), fake)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/usr/lib/python312.zip", "/opt/torch/.venv/lib/python3.12/site-packages"}; !slices.Equal(got, want) {
		t.Errorf("sys.path %q, want %q", got, want)
	}
	if got, err := PythonSysPath(context.Background(), "none"); got != nil || err != nil {
		t.Errorf("none: %q, %v", got, err)
	}
	if _, err := PythonSysPath(context.Background(), filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing interpreter gave no error")
	}
	if py, err := exec.LookPath("python3"); err == nil {
		got, err := PythonSysPath(context.Background(), py)
		if err != nil || len(got) == 0 {
			t.Errorf("%s: sys.path %q, %v", py, got, err)
		}
	}
}

// TestSearchNCCL: NCCL (libnccl.so.2) is found by soname, in a toolkit and
// in nvidia-nccl-cu12's wheel folder nvidia/nccl/lib, in that order, and
// INSTRUCTGO_NCCL overrides the search.
func TestSearchNCCL(t *testing.T) {
	site := "venv/lib/python3.11/site-packages"
	m := newFakeMachine(t, site+"/nvidia/nccl/lib/libnccl.so.2", "usr/local/cuda/lib64/libnccl.so.2", site+"/nvidia/cublas/lib/libcublas.so.12")
	m.env["VIRTUAL_ENV"] = m.path("venv")
	got, err := Search("nccl", NcclEnv, []int{2}, m.Env())
	want := []string{"libnccl.so.2", m.path("usr/local/cuda/lib64/libnccl.so.2"), m.path(site + "/nvidia/nccl/lib/libnccl.so.2")}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("found %q, %v; want %q", got, err, want)
	}
	m.env[NcclEnv] = "none"
	if _, err := Search("nccl", NcclEnv, []int{2}, m.Env()); err == nil || !strings.Contains(err.Error(), NcclEnv) {
		t.Errorf("%s=none: error %v", NcclEnv, err)
	}
}
