//go:build cuda && !cudaemu

package cuda

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>

// cuBLAS is loaded at run time so that one binary serves CUDA 12 and 13
// machines and builds without the cuBLAS headers or libraries. Only the few
// entry points used are declared here, with cuBLAS's C ABI: handles and
// streams are pointers, enums are ints, status is an int (0 = success).

typedef int (*igo_cublasCreate_t)(void **handle);
typedef int (*igo_cublasDestroy_t)(void *handle);
typedef int (*igo_cublasSetStream_t)(void *handle, void *stream);
typedef int (*igo_cublasSetMathMode_t)(void *handle, int mode);
typedef int (*igo_cublasGetVersion_t)(void *handle, int *version);
typedef int (*igo_cublasSgemmStridedBatched_t)(void *handle, int transa, int transb,
	int m, int n, int k, const float *alpha,
	const float *A, int lda, long long strideA,
	const float *B, int ldb, long long strideB,
	const float *beta, float *C, int ldc, long long strideC, int batchCount);

typedef struct {
	void *lib;
	void *handle;
	igo_cublasDestroy_t destroy;
	igo_cublasSetMathMode_t setMathMode;
	igo_cublasSgemmStridedBatched_t sgemm;
	int version;
} igo_cublas;

// igo_cublas_open loads the library at path, creates a handle bound to
// stream and fills c. It returns 0, or -1 with *err set (a dlerror or a
// fixed message), or the failing cuBLAS status with *err naming the call.
static int igo_cublas_open(igo_cublas *c, const char *path, void *stream, const char **err) {
	*err = NULL;
	c->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (c->lib == NULL) {
		*err = dlerror();
		return -1;
	}
	igo_cublasCreate_t create = (igo_cublasCreate_t)dlsym(c->lib, "cublasCreate_v2");
	igo_cublasSetStream_t setStream = (igo_cublasSetStream_t)dlsym(c->lib, "cublasSetStream_v2");
	igo_cublasGetVersion_t getVersion = (igo_cublasGetVersion_t)dlsym(c->lib, "cublasGetVersion_v2");
	c->destroy = (igo_cublasDestroy_t)dlsym(c->lib, "cublasDestroy_v2");
	c->setMathMode = (igo_cublasSetMathMode_t)dlsym(c->lib, "cublasSetMathMode");
	c->sgemm = (igo_cublasSgemmStridedBatched_t)dlsym(c->lib, "cublasSgemmStridedBatched");
	if (!create || !setStream || !getVersion || !c->destroy || !c->setMathMode || !c->sgemm) {
		*err = "a cuBLAS entry point is missing (cublasCreate_v2, cublasSetStream_v2, cublasGetVersion_v2, cublasDestroy_v2, cublasSetMathMode, cublasSgemmStridedBatched)";
		dlclose(c->lib);
		c->lib = NULL;
		return -1;
	}
	int st = create(&c->handle);
	if (st != 0) {
		*err = "cublasCreate";
		dlclose(c->lib);
		c->lib = NULL;
		return st;
	}
	st = setStream(c->handle, stream);
	if (st == 0) st = getVersion(c->handle, &c->version);
	if (st != 0) {
		*err = "cublasSetStream/cublasGetVersion";
		c->destroy(c->handle);
		dlclose(c->lib);
		c->lib = NULL;
		return st;
	}
	return 0;
}

static int igo_cublas_set_math(igo_cublas *c, int mode) {
	return c->setMathMode(c->handle, mode);
}

static int igo_cublas_sgemm(igo_cublas *c, int transa, int transb, int m, int n, int k,
		float alpha, uintptr_t A, int lda, long long strideA,
		uintptr_t B, int ldb, long long strideB,
		float beta, uintptr_t C, int ldc, long long strideC, int batch) {
	return c->sgemm(c->handle, transa, transb, m, n, k, &alpha,
		(const float *)A, lda, strideA, (const float *)B, ldb, strideB,
		&beta, (float *)C, ldc, strideC, batch);
}

static void igo_cublas_close(igo_cublas *c) {
	if (c->handle != NULL) c->destroy(c->handle);
	c->handle = NULL;
	// The library stays mapped: cuBLAS registers process-wide state, and
	// unloading it while the process lives gains nothing.
}
*/
import "C"

import (
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/instructgo/instructgo/gpu/cuda/internal/cudalib"
)

// cuBLAS enum values (cublas_api.h).
const (
	cublasOpN             = 0
	cublasOpT             = 1
	cublasDefaultMath     = 0
	cublasTF32TensorOpMth = 3
)

// cublasLib is an open cuBLAS handle bound to the backend's stream.
type cublasLib struct {
	c       *C.igo_cublas // C memory
	path    string
	version int // e.g. 120405 for 12.4.5
}

// loadCublas opens the first cuBLAS that loads (internal/cudalib's order:
// CUDA 13's, then 12's) and creates a handle. Its error lists why each
// candidate failed.
func loadCublas(stream cu.Stream) (*cublasLib, error) {
	candidates, err := cudalib.Search("cublas", cudalib.CublasEnv, cudalib.Majors, cudalib.Host())
	if err != nil {
		return nil, err
	}
	var errs []string
	for _, path := range candidates {
		l, err := openCublas(path, stream)
		if err == nil {
			return l, nil
		}
		errs = append(errs, err.Error())
	}
	return nil, errors.New(strings.Join(errs, "; "))
}

func openCublas(path string, stream cu.Stream) (*cublasLib, error) {
	c := (*C.igo_cublas)(C.calloc(1, C.size_t(unsafe.Sizeof(C.igo_cublas{}))))
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var msg *C.char
	st := C.igo_cublas_open(c, cpath, unsafe.Pointer(stream.C()), &msg)
	if st != 0 {
		C.free(unsafe.Pointer(c))
		what := "?"
		if msg != nil {
			what = C.GoString(msg)
		}
		if st == -1 {
			return nil, fmt.Errorf("%s: %s", path, what)
		}
		return nil, fmt.Errorf("%s: %s: %s", path, what, cublasStatus(int(st)))
	}
	return &cublasLib{c: c, path: path, version: int(c.version)}, nil
}

// versionString is e.g. "12.4.5".
func (l *cublasLib) versionString() string {
	v := l.version
	return fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
}

// setTF32 selects CUBLAS_TF32_TENSOR_OP_MATH (on) or CUBLAS_DEFAULT_MATH
// (off), in which single-precision products are computed in FP32: TF32 is
// used only when asked for.
func (l *cublasLib) setTF32(on bool) error {
	mode := cublasDefaultMath
	if on {
		mode = cublasTF32TensorOpMth
	}
	if st := C.igo_cublas_set_math(l.c, C.int(mode)); st != 0 {
		return fmt.Errorf("cublasSetMathMode(%d): %s", mode, cublasStatus(int(st)))
	}
	return nil
}

// sgemm is cublasSgemmStridedBatched (column-major) with host alpha, beta.
func (l *cublasLib) sgemm(transa, transb, m, n, k int, alpha float32, a cu.DevicePtr, lda int, strideA int64,
	b cu.DevicePtr, ldb int, strideB int64, beta float32, c cu.DevicePtr, ldc int, strideC int64, batch int) error {
	st := C.igo_cublas_sgemm(l.c, C.int(transa), C.int(transb), C.int(m), C.int(n), C.int(k),
		C.float(alpha), C.uintptr_t(a), C.int(lda), C.longlong(strideA),
		C.uintptr_t(b), C.int(ldb), C.longlong(strideB),
		C.float(beta), C.uintptr_t(c), C.int(ldc), C.longlong(strideC), C.int(batch))
	if st != 0 {
		return fmt.Errorf("cublasSgemmStridedBatched: %s", cublasStatus(int(st)))
	}
	return nil
}

func (l *cublasLib) close() {
	if l == nil || l.c == nil {
		return
	}
	C.igo_cublas_close(l.c)
	C.free(unsafe.Pointer(l.c))
	l.c = nil
}

// cublasStatus names a cublasStatus_t.
func cublasStatus(st int) string {
	names := map[int]string{
		1: "CUBLAS_STATUS_NOT_INITIALIZED", 3: "CUBLAS_STATUS_ALLOC_FAILED",
		7: "CUBLAS_STATUS_INVALID_VALUE", 8: "CUBLAS_STATUS_ARCH_MISMATCH",
		11: "CUBLAS_STATUS_MAPPING_ERROR", 13: "CUBLAS_STATUS_EXECUTION_FAILED",
		14: "CUBLAS_STATUS_INTERNAL_ERROR", 15: "CUBLAS_STATUS_NOT_SUPPORTED",
		16: "CUBLAS_STATUS_LICENSE_ERROR",
	}
	if s, ok := names[st]; ok {
		return s
	}
	return fmt.Sprintf("cublasStatus %d", st)
}
