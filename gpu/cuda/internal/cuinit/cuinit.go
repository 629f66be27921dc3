//go:build cuda

// Package cuinit initialises the CUDA driver before gorgonia.org/cu does, so
// that a machine without a working driver or GPU gets a readable message.
//
// cu calls cuInit in its package init and, when that fails, prints a bare
// error code to standard output and exits the process: nothing in a program
// that imports cu runs after that, so a cuda build cannot fall back to the
// cpu backend when no GPU answers. Go initialises packages in import-path
// order among those whose imports are ready (the Go 1.21 rule), and this
// package imports only what cu imports too, so its init runs first: it
// calls cuInit itself (through dlsym, independent of the headers) and, when
// that fails, writes what failed and what to do to standard error and exits
// with status 1, the status cu would have used.
//
// A missing libcuda.so.1 stops the program earlier still: the dynamic
// loader refuses to start it ("error while loading shared libraries:
// libcuda.so.1"). Both are the honest behaviour of a cuda build: it needs
// the NVIDIA driver and a GPU; the default build runs everywhere.
package cuinit

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>

typedef int (*igo_cuInit_t)(unsigned int);
typedef int (*igo_cuErr_t)(int, const char **);

// igo_cuinit loads libcuda.so.1 (already mapped: the binary links it) and
// calls cuInit(0). It returns the CUresult, or -1 when the library or the
// symbol is missing; name and desc describe the failure.
static int igo_cuinit(const char **name, const char **desc) {
	*name = NULL;
	*desc = NULL;
	void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_GLOBAL);
	if (h == NULL) {
		*desc = dlerror();
		return -1;
	}
	igo_cuInit_t init = (igo_cuInit_t)dlsym(h, "cuInit");
	if (init == NULL) {
		*desc = "libcuda.so.1 has no cuInit";
		return -1;
	}
	int rc = init(0);
	if (rc != 0) {
		igo_cuErr_t n = (igo_cuErr_t)dlsym(h, "cuGetErrorName");
		igo_cuErr_t s = (igo_cuErr_t)dlsym(h, "cuGetErrorString");
		if (n != NULL && n(rc, name) != 0) *name = NULL;
		if (s != NULL && s(rc, desc) != 0) *desc = NULL;
	}
	return rc;
}
*/
import "C"

import (
	"fmt"
	"os"
)

func init() {
	var name, desc *C.char
	rc := int(C.igo_cuinit(&name, &desc))
	if rc == 0 {
		return
	}
	why := fmt.Sprintf("CUresult %d", rc)
	if name != nil {
		why = C.GoString(name)
	} else if n, ok := knownResults[rc]; ok {
		why = n
	}
	if desc != nil {
		why += " (" + C.GoString(desc) + ")"
	}
	fmt.Fprintf(os.Stderr, "%s: this program was built with the cuda backend (-tags cuda) and needs a working NVIDIA driver and GPU, "+
		"but cuInit failed: %s. Use a build without -tags cuda on machines without a GPU.\n", progName(), why)
	os.Exit(1)
}

// knownResults names the CUresults cuInit commonly returns, for drivers (or
// stubs) whose cuGetErrorName does not answer.
var knownResults = map[int]string{
	-1:  "libcuda.so.1 unusable",
	3:   "CUDA_ERROR_NOT_INITIALIZED",
	34:  "CUDA_ERROR_STUB_LIBRARY (the link-time stub libcuda.so.1 was loaded instead of the NVIDIA driver)",
	35:  "CUDA_ERROR_INSUFFICIENT_DRIVER",
	46:  "CUDA_ERROR_DEVICES_UNAVAILABLE",
	100: "CUDA_ERROR_NO_DEVICE",
	101: "CUDA_ERROR_INVALID_DEVICE",
	803: "CUDA_ERROR_SYSTEM_DRIVER_MISMATCH",
	804: "CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE",
	999: "CUDA_ERROR_UNKNOWN",
}

func progName() string {
	if len(os.Args) > 0 && os.Args[0] != "" {
		return os.Args[0]
	}
	return "instructgo"
}
