//go:build cuda

package cuda

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Where the CUDA math libraries (cuBLAS, cuBLASLt) are looked for. They are
// loaded with dlopen at run time, so one binary serves CUDA 12 and 13
// machines and builds without them; this file only lists the files to try,
// in order, so that the search is tested without a GPU (cudalib_test.go).
// cublas.go and cublaslt.go open them.

// libEnv is what the search reads of the machine: environment variables
// and which files exist. Tests give it a made-up machine.
type libEnv struct {
	getenv func(string) string
	glob   func(pattern string) ([]string, error)
}

func hostLibEnv() libEnv { return libEnv{getenv: os.Getenv, glob: filepath.Glob} }

// cudaMajors are the CUDA major versions tried, newest first: a CUDA 13
// library needs a CUDA 13 driver, and when its handle cannot be created on
// an older one the next candidate is tried.
var cudaMajors = []int{13, 12}

// Environment variables that override the search: a path to the library
// file, or "none" (or "off") to go without it. INSTRUCTGO_CUBLAS=none
// disables cuBLASLt as well (both are cuBLAS); INSTRUCTGO_CUBLASLT=none
// disables cuBLASLt only, so bf16 products take our tensor-core kernel.
const (
	cublasEnv   = "INSTRUCTGO_CUBLAS"
	cublasLtEnv = "INSTRUCTGO_CUBLASLT"
)

// pythonNvidiaLibDirs are where NVIDIA's Python wheels put their shared
// libraries inside site-packages: nvidia/cublas/lib for the CUDA 12
// wheels (nvidia-cublas-cu12), nvidia/cu13/lib for CUDA 13's.
var pythonNvidiaLibDirs = []string{"nvidia/cu13/lib", "nvidia/cublas/lib"}

// pythonSiteDirs lists the site-packages (and dist-packages) folders of the
// machine's Python installations that exist: $PYTHONPATH's entries, the
// active virtual environment and conda environment, the user's, and the
// system's.
func pythonSiteDirs(env libEnv) []string {
	var patterns []string
	for _, p := range filepath.SplitList(env.getenv("PYTHONPATH")) {
		if p != "" {
			patterns = append(patterns, p)
		}
	}
	for _, v := range []string{"VIRTUAL_ENV", "CONDA_PREFIX"} {
		if root := env.getenv(v); root != "" {
			patterns = append(patterns, filepath.Join(root, "lib", "python3*", "site-packages"))
		}
	}
	if home := env.getenv("HOME"); home != "" {
		patterns = append(patterns, filepath.Join(home, ".local", "lib", "python3*", "site-packages"))
	}
	patterns = append(patterns,
		"/usr/local/lib/python3*/dist-packages", "/usr/local/lib/python3*/site-packages",
		"/usr/lib/python3/dist-packages", "/usr/lib/python3*/site-packages",
		"/opt/conda/lib/python3*/site-packages")
	var dirs []string
	for _, pat := range patterns {
		m, _ := env.glob(pat) // a malformed pattern matches nothing
		dirs = append(dirs, m...)
	}
	return dedupe(dirs)
}

// cudaLibSearch lists the files to dlopen, in order, for the library
// lib<stem>.so.<major> ("cublas", "cublasLt") of the given CUDA majors,
// newest first. For each major: the soname (the dynamic loader's search:
// LD_LIBRARY_PATH, the ld.so cache), the toolkit's default folder, then
// every Python site-packages folder's NVIDIA wheel folders where the file
// exists. envVar, when set, replaces the list with its path, or disables
// the library ("none", "off": an error saying so).
func cudaLibSearch(stem, envVar string, majors []int, env libEnv) ([]string, error) {
	if v := strings.TrimSpace(env.getenv(envVar)); v != "" {
		if v == "none" || v == "off" {
			return nil, fmt.Errorf("disabled by %s=%s", envVar, v)
		}
		return []string{v}, nil
	}
	sites := pythonSiteDirs(env)
	var out []string
	for _, major := range majors {
		so := fmt.Sprintf("lib%s.so.%d", stem, major)
		out = append(out, so, "/usr/local/cuda/lib64/"+so)
		for _, site := range sites {
			for _, sub := range pythonNvidiaLibDirs {
				m, _ := env.glob(filepath.Join(site, sub, so))
				out = append(out, m...)
			}
		}
	}
	return dedupe(out), nil
}

// cublasLtSearch lists the cuBLASLt files to try. With cuBLAS loaded from
// cublasPath (major version cublasMajor), only cuBLASLt of that major, the
// one beside it first (libcublas depends on it, so that is the copy the
// process already has); without cuBLAS (cublasPath ""), every major. cuBLAS
// disabled by its variable disables cuBLASLt too.
func cublasLtSearch(cublasPath string, cublasMajor int, env libEnv) ([]string, error) {
	if v := strings.TrimSpace(env.getenv(cublasEnv)); v == "none" || v == "off" {
		return nil, fmt.Errorf("disabled by %s=%s", cublasEnv, v)
	}
	if cublasPath == "" {
		return cudaLibSearch("cublasLt", cublasLtEnv, cudaMajors, env)
	}
	found, err := cudaLibSearch("cublasLt", cublasLtEnv, []int{cublasMajor}, env)
	if err != nil || env.getenv(cublasLtEnv) != "" {
		return found, err
	}
	var out []string
	if strings.Contains(cublasPath, "/") {
		out = append(out, filepath.Join(filepath.Dir(cublasPath), fmt.Sprintf("libcublasLt.so.%d", cublasMajor)))
	}
	return dedupe(append(out, found...)), nil
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
