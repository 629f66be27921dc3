// Package cudalib lists where the CUDA libraries (cuBLAS, cuBLASLt, NCCL)
// are looked for, in order: the one search rule of the cuda backend, which
// dlopens the files it lists, and of the GPU bundle's runner, which reports
// what the backend will find. It only lists paths; it loads nothing.
//
// The order, for each CUDA major version (13, then 12): the soname (the
// dynamic loader's search: LD_LIBRARY_PATH, the ld.so cache), the CUDA
// toolkits ($CUDA_HOME, $CUDA_PATH, /usr/local/cuda, /usr/local/cuda-*), then
// every Python site-packages folder's NVIDIA wheel folders: nvidia/cu13/lib
// (CUDA 13's nvidia-cublas), nvidia/cublas/lib (CUDA 12's
// nvidia-cublas-cu12), nvidia/nccl/lib (nvidia-nccl-cu12) and any other
// nvidia/cu*/lib. The site-packages
// folders are those of $PYTHONPATH, the active virtual and conda
// environments, the user's and the system's, and those the machine's
// python3 reports (sys.path), since GPU machines often keep PyTorch and its
// NVIDIA wheels in a virtual environment of their own that no variable
// names. Variables override the search: INSTRUCTGO_CUBLAS,
// INSTRUCTGO_CUBLASLT and INSTRUCTGO_NCCL name a file, or "none" to go
// without it.
//
// It is plain Go with no build tag, so the search is tested everywhere
// (cudalib_test.go, on made-up machines) and the bundle's runner, built
// without cgo, uses it. It imports the standard library only.
package cudalib

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Environment variables that override the search: a path to the library
// file, or "none" (or "off") to go without it. CublasEnv=none disables
// cuBLASLt as well (both are cuBLAS); CublasLtEnv=none disables cuBLASLt
// only. PythonEnv names the interpreter asked for its sys.path (default
// python3 on $PATH; "none" asks none).
const (
	CublasEnv   = "INSTRUCTGO_CUBLAS"
	CublasLtEnv = "INSTRUCTGO_CUBLASLT"
	NcclEnv     = "INSTRUCTGO_NCCL"
	PythonEnv   = "INSTRUCTGO_PYTHON"
)

// Majors are the CUDA major versions tried, newest first: a CUDA 13 library
// needs a CUDA 13 driver, and when it cannot be used on an older one the
// loader tries the next candidate.
var Majors = []int{13, 12}

// wheelLibDirs are where NVIDIA's Python wheels put their shared libraries
// inside site-packages, most specific first.
var wheelLibDirs = []string{"nvidia/cu13/lib", "nvidia/cublas/lib", "nvidia/nccl/lib", "nvidia/cu*/lib"}

// Env is what the search reads of a machine: environment variables, which
// files exist, and the folders a Python interpreter searches. Host is the
// real machine; tests make up others.
type Env struct {
	Getenv func(string) string
	Glob   func(pattern string) ([]string, error)
	// PythonPath returns the interpreter's sys.path (nil when there is
	// none); called at most once per search.
	PythonPath func() []string
}

// Host is the running machine: os.Getenv, filepath.Glob, and python3's
// sys.path, asked once per process (HostPythonPath).
func Host() Env {
	return Env{Getenv: os.Getenv, Glob: filepath.Glob, PythonPath: HostPythonPath}
}

var hostPython struct {
	once sync.Once
	path []string
}

// HostPythonPath is the sys.path of $INSTRUCTGO_PYTHON (default python3),
// asked once per process with a 10-second limit; nil when it is "none" or
// the interpreter does not answer.
func HostPythonPath() []string {
	hostPython.once.Do(func() {
		hostPython.path, _ = PythonSysPath(context.Background(), os.Getenv(PythonEnv))
	})
	return hostPython.path
}

// PythonSysPath runs python (python3 when "") and returns the folders of
// its sys.path.
func PythonSysPath(ctx context.Context, python string) ([]string, error) {
	switch strings.TrimSpace(python) {
	case "none", "off":
		return nil, nil
	case "":
		python = "python3"
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, "-c", "import sys\nfor p in sys.path:\n    print(p)")
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("ask %s for its sys.path: %w", python, err)
	}
	var dirs []string
	for _, line := range strings.Split(string(out), "\n") {
		if line = strings.TrimSpace(line); filepath.IsAbs(line) {
			dirs = append(dirs, filepath.Clean(line))
		}
	}
	return dirs, nil
}

// SiteDirs lists the Python folders the wheels are looked for in, existing
// ones only: $PYTHONPATH's entries, the active virtual environment and
// conda environment, the user's and the system's site-packages (and
// dist-packages), then the interpreter's sys.path.
func SiteDirs(env Env) []string {
	var patterns []string
	for _, p := range filepath.SplitList(env.Getenv("PYTHONPATH")) {
		if p != "" {
			patterns = append(patterns, p)
		}
	}
	for _, v := range []string{"VIRTUAL_ENV", "CONDA_PREFIX"} {
		if root := env.Getenv(v); root != "" {
			patterns = append(patterns, filepath.Join(root, "lib", "python3*", "site-packages"))
		}
	}
	if home := env.Getenv("HOME"); home != "" {
		patterns = append(patterns, filepath.Join(home, ".local", "lib", "python3*", "site-packages"))
	}
	patterns = append(patterns,
		"/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
		"/usr/lib/python3/dist-packages", "/usr/lib/python3*/site-packages",
		"/opt/conda/lib/python3*/site-packages")
	var dirs []string
	for _, pat := range patterns {
		m, _ := env.Glob(pat) // a malformed pattern matches nothing
		dirs = append(dirs, m...)
	}
	if env.PythonPath != nil {
		for _, p := range env.PythonPath() {
			m, _ := env.Glob(globQuote(p))
			dirs = append(dirs, m...)
		}
	}
	return dedupe(dirs)
}

// toolkitLibDirs lists the library folders of the CUDA toolkits that
// exist: $CUDA_HOME's and $CUDA_PATH's, /usr/local/cuda's, then any
// /usr/local/cuda-X.Y's, each lib64 then targets/<arch>/lib.
func toolkitLibDirs(env Env) []string {
	var roots []string
	for _, v := range []string{"CUDA_HOME", "CUDA_PATH"} {
		if r := env.Getenv(v); r != "" {
			roots = append(roots, globQuote(r))
		}
	}
	roots = append(roots, "/usr/local/cuda", "/usr/local/cuda-*")
	var dirs []string
	for _, r := range roots {
		for _, sub := range []string{"lib64", "targets/*/lib"} {
			m, _ := env.Glob(filepath.Join(r, sub))
			dirs = append(dirs, m...)
		}
	}
	return dedupe(dirs)
}

// Search lists the files to dlopen, in order, for the library
// lib<stem>.so.<major> ("cublas", "cublasLt") of the given majors, newest
// first: for each major the soname, then the file in each toolkit folder
// and each site-packages wheel folder where it exists. envVar, when set,
// replaces the list with its path, or disables the library ("none", "off":
// an error saying so).
func Search(stem, envVar string, majors []int, env Env) ([]string, error) {
	if v := strings.TrimSpace(env.Getenv(envVar)); v != "" {
		if v == "none" || v == "off" {
			return nil, fmt.Errorf("disabled by %s=%s", envVar, v)
		}
		return []string{v}, nil
	}
	toolkits, sites := toolkitLibDirs(env), SiteDirs(env)
	var out []string
	for _, major := range majors {
		so := fmt.Sprintf("lib%s.so.%d", stem, major)
		out = append(out, so)
		for _, dir := range toolkits {
			m, _ := env.Glob(filepath.Join(globQuote(dir), so))
			out = append(out, m...)
		}
		for _, site := range sites {
			for _, sub := range wheelLibDirs {
				m, _ := env.Glob(filepath.Join(globQuote(site), sub, so))
				out = append(out, m...)
			}
		}
	}
	return dedupe(out), nil
}

// LtSearch lists the cuBLASLt files to try. With cuBLAS loaded from
// cublasPath (major version cublasMajor), only cuBLASLt of that major, the
// one beside it first (libcublas depends on it, so that is the copy the
// process already has); without cuBLAS (cublasPath ""), every major. cuBLAS
// disabled by its variable disables cuBLASLt too.
func LtSearch(cublasPath string, cublasMajor int, env Env) ([]string, error) {
	if v := strings.TrimSpace(env.Getenv(CublasEnv)); v == "none" || v == "off" {
		return nil, fmt.Errorf("disabled by %s=%s", CublasEnv, v)
	}
	if cublasPath == "" {
		return Search("cublasLt", CublasLtEnv, Majors, env)
	}
	found, err := Search("cublasLt", CublasLtEnv, []int{cublasMajor}, env)
	if err != nil || env.Getenv(CublasLtEnv) != "" {
		return found, err
	}
	var out []string
	if strings.Contains(cublasPath, "/") {
		out = append(out, filepath.Join(filepath.Dir(cublasPath), fmt.Sprintf("libcublasLt.so.%d", cublasMajor)))
	}
	return dedupe(append(out, found...)), nil
}

// globQuote escapes the glob metacharacters of a literal path.
func globQuote(p string) string {
	var b strings.Builder
	for _, r := range p {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// dedupe keeps the first of each string, in order.
func dedupe(xs []string) []string {
	seen := make(map[string]bool, len(xs))
	out := xs[:0:0]
	for _, x := range xs {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
