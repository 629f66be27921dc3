//go:build cuda && !cudaemu

package cuda

/*
#cgo LDFLAGS: -ldl
#include <dlfcn.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

// cuBLASLt is loaded at run time like cuBLAS (cublas.go): the entry points
// used are declared here with cublasLt.h's C ABI, so the build needs
// neither its header nor the library. Handles and descriptors are
// pointers, enums are ints, status is an int (0 = success). The algorithm
// and heuristic-result structs are cublasLt.h's fixed-size public layouts.

typedef struct { uint64_t data[8]; } igo_lt_algo;
typedef struct {
	igo_lt_algo algo;
	size_t workspaceSize;
	int state;
	float wavesCount;
	int reserved[4];
} igo_lt_heuristic;

typedef int (*igo_ltCreate_t)(void **handle);
typedef int (*igo_ltDestroy_t)(void *handle);
typedef size_t (*igo_ltGetVersion_t)(void);
typedef int (*igo_ltDescCreate_t)(void **desc, int computeType, int scaleType);
typedef int (*igo_ltDescDestroy_t)(void *desc);
typedef int (*igo_ltDescSet_t)(void *desc, int attr, const void *buf, size_t size);
typedef int (*igo_ltLayoutCreate_t)(void **layout, int type, uint64_t rows, uint64_t cols, int64_t ld);
typedef int (*igo_ltLayoutDestroy_t)(void *layout);
typedef int (*igo_ltLayoutSet_t)(void *layout, int attr, const void *buf, size_t size);
typedef int (*igo_ltPrefCreate_t)(void **pref);
typedef int (*igo_ltPrefDestroy_t)(void *pref);
typedef int (*igo_ltPrefSet_t)(void *pref, int attr, const void *buf, size_t size);
typedef int (*igo_ltHeuristic_t)(void *handle, void *desc, void *a, void *b, void *c, void *d, void *pref,
	int requested, igo_lt_heuristic *results, int *count);
typedef int (*igo_ltMatmul_t)(void *handle, void *desc, const void *alpha, const void *A, void *Adesc,
	const void *B, void *Bdesc, const void *beta, const void *C, void *Cdesc, void *D, void *Ddesc,
	const igo_lt_algo *algo, void *workspace, size_t workspaceSize, void *stream);

typedef struct {
	void *lib;
	void *handle;
	size_t version;
	igo_ltDestroy_t destroy;
	igo_ltDescCreate_t descCreate;
	igo_ltDescDestroy_t descDestroy;
	igo_ltDescSet_t descSet;
	igo_ltLayoutCreate_t layoutCreate;
	igo_ltLayoutDestroy_t layoutDestroy;
	igo_ltLayoutSet_t layoutSet;
	igo_ltPrefCreate_t prefCreate;
	igo_ltPrefDestroy_t prefDestroy;
	igo_ltPrefSet_t prefSet;
	igo_ltHeuristic_t heuristic;
	igo_ltMatmul_t matmul;
} igo_lt;

// cublasLt.h attribute numbers (cublasLtMatmulDescAttributes_t,
// cublasLtMatrixLayoutAttribute_t, cublasLtMatmulPreferenceAttributes_t).
enum {
	IGO_DESC_TRANSA = 3, IGO_DESC_TRANSB = 4, IGO_DESC_EPILOGUE = 7, IGO_DESC_BIAS_POINTER = 8,
	IGO_DESC_AUX_POINTER = 11, IGO_DESC_AUX_LD = 12, IGO_DESC_AUX_BATCH_STRIDE = 13,
	IGO_DESC_BIAS_DATA_TYPE = 26,
	IGO_LAYOUT_BATCH_COUNT = 5, IGO_LAYOUT_STRIDED_BATCH_OFFSET = 6,
	IGO_PREF_MAX_WORKSPACE_BYTES = 1, IGO_PREF_MIN_ALIGNMENT_A = 5, IGO_PREF_MIN_ALIGNMENT_B = 6,
	IGO_PREF_MIN_ALIGNMENT_C = 7, IGO_PREF_MIN_ALIGNMENT_D = 8,
};

// igo_lt_open loads cuBLASLt from path and creates a handle. It returns 0,
// -1 with *err a dlerror or a fixed message, or cublasLtCreate's status.
static int igo_lt_open(igo_lt *l, const char *path, const char **err) {
	*err = NULL;
	l->lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (l->lib == NULL) {
		*err = dlerror();
		return -1;
	}
	igo_ltCreate_t create = (igo_ltCreate_t)dlsym(l->lib, "cublasLtCreate");
	igo_ltGetVersion_t getVersion = (igo_ltGetVersion_t)dlsym(l->lib, "cublasLtGetVersion");
	l->destroy = (igo_ltDestroy_t)dlsym(l->lib, "cublasLtDestroy");
	l->descCreate = (igo_ltDescCreate_t)dlsym(l->lib, "cublasLtMatmulDescCreate");
	l->descDestroy = (igo_ltDescDestroy_t)dlsym(l->lib, "cublasLtMatmulDescDestroy");
	l->descSet = (igo_ltDescSet_t)dlsym(l->lib, "cublasLtMatmulDescSetAttribute");
	l->layoutCreate = (igo_ltLayoutCreate_t)dlsym(l->lib, "cublasLtMatrixLayoutCreate");
	l->layoutDestroy = (igo_ltLayoutDestroy_t)dlsym(l->lib, "cublasLtMatrixLayoutDestroy");
	l->layoutSet = (igo_ltLayoutSet_t)dlsym(l->lib, "cublasLtMatrixLayoutSetAttribute");
	l->prefCreate = (igo_ltPrefCreate_t)dlsym(l->lib, "cublasLtMatmulPreferenceCreate");
	l->prefDestroy = (igo_ltPrefDestroy_t)dlsym(l->lib, "cublasLtMatmulPreferenceDestroy");
	l->prefSet = (igo_ltPrefSet_t)dlsym(l->lib, "cublasLtMatmulPreferenceSetAttribute");
	l->heuristic = (igo_ltHeuristic_t)dlsym(l->lib, "cublasLtMatmulAlgoGetHeuristic");
	l->matmul = (igo_ltMatmul_t)dlsym(l->lib, "cublasLtMatmul");
	if (!create || !getVersion || !l->destroy || !l->descCreate || !l->descDestroy || !l->descSet ||
			!l->layoutCreate || !l->layoutDestroy || !l->layoutSet || !l->prefCreate || !l->prefDestroy ||
			!l->prefSet || !l->heuristic || !l->matmul) {
		*err = "a cuBLASLt entry point is missing";
		dlclose(l->lib);
		l->lib = NULL;
		return -1;
	}
	l->version = getVersion();
	int st = create(&l->handle);
	if (st != 0) {
		*err = "cublasLtCreate";
		dlclose(l->lib);
		l->lib = NULL;
	}
	return st;
}

static void igo_lt_close(igo_lt *l) {
	if (l->handle != NULL) l->destroy(l->handle);
	l->handle = NULL;
	// The library stays mapped, as cuBLAS does (cublas.go).
}

// igo_lt_layout_in is one matrix of a plan, column-major (ltLayout in Go).
typedef struct {
	int dtype;
	uint64_t rows, cols;
	int64_t ld, stride;
} igo_lt_layout_in;

// igo_lt_plan_in is a plan (ltPlan in Go) plus what the heuristic needs:
// the addresses' alignments (bytes), the epilogue's pointers and the
// workspace size.
typedef struct {
	int transa, transb;
	igo_lt_layout_in a, b, c;
	int batch;
	unsigned epilogue;
	int64_t auxLD, auxStride;
	int biasF32;
	uint32_t alignA, alignB, alignC;
	uintptr_t bias, aux;
	uint64_t workspace;
} igo_lt_plan_in;

// igo_lt_plan is a descriptor, its layouts and the algorithm the heuristic
// chose, made once per shape and reused.
typedef struct {
	void *desc, *a, *b, *c;
	igo_lt_algo algo;
	size_t workspace;
	int hasBias, hasAux;
} igo_lt_plan;

static void igo_lt_plan_free(igo_lt *l, igo_lt_plan *p) {
	if (p->c) l->layoutDestroy(p->c);
	if (p->b) l->layoutDestroy(p->b);
	if (p->a) l->layoutDestroy(p->a);
	if (p->desc) l->descDestroy(p->desc);
	memset(p, 0, sizeof *p);
}

static int igo_lt_layout(igo_lt *l, void **out, const igo_lt_layout_in *m, int batch) {
	int st = l->layoutCreate(out, m->dtype, m->rows, m->cols, m->ld);
	if (st == 0 && batch > 1) {
		int32_t n = batch;
		st = l->layoutSet(*out, IGO_LAYOUT_BATCH_COUNT, &n, sizeof n);
		if (st == 0) st = l->layoutSet(*out, IGO_LAYOUT_STRIDED_BATCH_OFFSET, &m->stride, sizeof m->stride);
	}
	return st;
}

// igo_lt_plan_make builds p from in. It returns 0; or a cuBLASLt status
// with *err naming the call; or -2 when the heuristic has no algorithm
// (none found, or CUBLAS_STATUS_NOT_SUPPORTED: no heuristic for this
// configuration).
static int igo_lt_plan_make(igo_lt *l, const igo_lt_plan_in *in, igo_lt_plan *p, const char **err) {
	memset(p, 0, sizeof *p);
	int st;
#define IGO_TRY(call, what) do { st = (call); if (st != 0) { *err = what; igo_lt_plan_free(l, p); return st; } } while (0)
	IGO_TRY(l->descCreate(&p->desc, 68, 0), "cublasLtMatmulDescCreate"); // CUBLAS_COMPUTE_32F, CUDA_R_32F
	int32_t ta = in->transa, tb = in->transb;
	uint32_t epi = in->epilogue;
	IGO_TRY(l->descSet(p->desc, IGO_DESC_TRANSA, &ta, sizeof ta), "set TRANSA");
	IGO_TRY(l->descSet(p->desc, IGO_DESC_TRANSB, &tb, sizeof tb), "set TRANSB");
	IGO_TRY(l->descSet(p->desc, IGO_DESC_EPILOGUE, &epi, sizeof epi), "set EPILOGUE");
	p->hasBias = in->bias != 0;
	p->hasAux = in->auxLD != 0;
	if (p->hasBias) {
		void *bias = (void *)in->bias;
		IGO_TRY(l->descSet(p->desc, IGO_DESC_BIAS_POINTER, &bias, sizeof bias), "set BIAS_POINTER");
		if (in->biasF32) {
			int32_t t = 0; // CUDA_R_32F
			IGO_TRY(l->descSet(p->desc, IGO_DESC_BIAS_DATA_TYPE, &t, sizeof t), "set BIAS_DATA_TYPE");
		}
	}
	if (p->hasAux) {
		void *aux = (void *)in->aux;
		IGO_TRY(l->descSet(p->desc, IGO_DESC_AUX_POINTER, &aux, sizeof aux), "set EPILOGUE_AUX_POINTER");
		IGO_TRY(l->descSet(p->desc, IGO_DESC_AUX_LD, &in->auxLD, sizeof in->auxLD), "set EPILOGUE_AUX_LD");
		if (in->batch > 1)
			IGO_TRY(l->descSet(p->desc, IGO_DESC_AUX_BATCH_STRIDE, &in->auxStride, sizeof in->auxStride),
				"set EPILOGUE_AUX_BATCH_STRIDE");
	}
	IGO_TRY(igo_lt_layout(l, &p->a, &in->a, in->batch), "cublasLtMatrixLayoutCreate A");
	IGO_TRY(igo_lt_layout(l, &p->b, &in->b, in->batch), "cublasLtMatrixLayoutCreate B");
	IGO_TRY(igo_lt_layout(l, &p->c, &in->c, in->batch), "cublasLtMatrixLayoutCreate C");

	void *pref = NULL;
	IGO_TRY(l->prefCreate(&pref), "cublasLtMatmulPreferenceCreate");
	uint32_t al[4] = {in->alignA, in->alignB, in->alignC, in->alignC};
	st = l->prefSet(pref, IGO_PREF_MAX_WORKSPACE_BYTES, &in->workspace, sizeof in->workspace);
	for (int i = 0; st == 0 && i < 4; i++) st = l->prefSet(pref, IGO_PREF_MIN_ALIGNMENT_A + i, &al[i], sizeof al[i]);
	igo_lt_heuristic h;
	int count = 0;
	if (st == 0) st = l->heuristic(l->handle, p->desc, p->a, p->b, p->c, p->c, pref, 1, &h, &count);
	l->prefDestroy(pref);
	if (st == 15) st = 0, count = 0; // CUBLAS_STATUS_NOT_SUPPORTED: no heuristic for this configuration
	if (st != 0) {
		*err = "cublasLtMatmulAlgoGetHeuristic";
		igo_lt_plan_free(l, p);
		return st;
	}
	if (count < 1 || h.state != 0) {
		igo_lt_plan_free(l, p);
		return -2;
	}
	p->algo = h.algo;
	p->workspace = h.workspaceSize;
	return 0;
#undef IGO_TRY
}

// igo_lt_matmul runs a plan: D = C (in place) = epilogue(alpha·op(A)·op(B)
// + beta·C), with this call's bias and aux pointers.
static int igo_lt_matmul(igo_lt *l, igo_lt_plan *p, float alpha, uintptr_t A, uintptr_t B, float beta,
		uintptr_t C, uintptr_t bias, uintptr_t aux, uintptr_t ws, size_t wsSize, void *stream) {
	int st = 0;
	if (p->hasBias) {
		void *v = (void *)bias;
		st = l->descSet(p->desc, IGO_DESC_BIAS_POINTER, &v, sizeof v);
	}
	if (st == 0 && p->hasAux) {
		void *v = (void *)aux;
		st = l->descSet(p->desc, IGO_DESC_AUX_POINTER, &v, sizeof v);
	}
	if (st != 0) return st;
	return l->matmul(l->handle, p->desc, &alpha, (const void *)A, p->a, (const void *)B, p->b, &beta,
		(const void *)C, p->c, (void *)C, p->c, &p->algo, (void *)ws, wsSize, stream);
}
*/
import "C"

import (
	"errors"
	"fmt"
	"unsafe"

	"gorgonia.org/cu"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cuda/internal/cudalib"
)

// ltWorkspaceBytes is cuBLASLt's workspace, allocated once at the first
// call: 32 MiB, what cuBLAS itself asks for on Hopper.
const ltWorkspaceBytes = 32 << 20

// cublasLtLib is an open cuBLASLt handle with its plans, one per shape,
// transposes, dtypes, epilogue and alignment (ltKey).
type cublasLtLib struct {
	c       *C.igo_lt // C memory
	path    string
	version int // e.g. 120405 for 12.4.5
	plans   map[ltKey]*ltCached
}

// ltCached is a plan made once: a C plan, or why there is none (the
// heuristic had no algorithm, or a descriptor was refused); the product
// then takes our kernel, without asking again.
type ltCached struct {
	p   *C.igo_lt_plan // nil: no plan
	err error          // why not, wrapping errNoLtPlan
}

// errNoLtPlan: cuBLASLt cannot run a product (not bf16, an epilogue's
// shape rule, no algorithm, a refused descriptor); nothing was queued.
var errNoLtPlan = errors.New("no cuBLASLt plan")

// loadCublasLt opens the first cuBLASLt that loads (internal/cudalib's
// LtSearch order). Its error lists why each candidate failed.
func loadCublasLt(cublasPath string, cublasMajor int) (*cublasLtLib, error) {
	paths, err := cudalib.LtSearch(cublasPath, cublasMajor, cudalib.Host())
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, path := range paths {
		l, err := openCublasLt(path)
		if err == nil {
			return l, nil
		}
		errs = append(errs, err)
	}
	return nil, errors.Join(errs...)
}

func openCublasLt(path string) (*cublasLtLib, error) {
	c := (*C.igo_lt)(C.calloc(1, C.size_t(unsafe.Sizeof(C.igo_lt{}))))
	cpath := C.CString(path)
	defer C.free(unsafe.Pointer(cpath))
	var msg *C.char
	if st := C.igo_lt_open(c, cpath, &msg); st != 0 {
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
	return &cublasLtLib{c: c, path: path, version: int(c.version), plans: make(map[ltKey]*ltCached)}, nil
}

// versionString is e.g. "12.4.5".
func (l *cublasLtLib) versionString() string {
	v := l.version
	return fmt.Sprintf("%d.%d.%d", v/10000, v/100%100, v%100)
}

// ltCall is one product for cuBLASLt: the plan, its key, and the device
// addresses (ours: a, b, c; bias and aux of the epilogue, or 0).
type ltCall struct {
	key                ltKey
	plan               ltPlan
	a, b, c, bias, aux cu.DevicePtr
	alpha, beta        float32
}

// plan returns the cached plan of x, making it on first use. A product
// without one is cached as such; its error wraps errNoLtPlan.
func (l *cublasLtLib) plan(x *ltCall) (*ltCached, error) {
	if p, ok := l.plans[x.key]; ok {
		return p, p.err
	}
	layout := func(m ltLayout) C.igo_lt_layout_in {
		return C.igo_lt_layout_in{dtype: C.int(m.dtype), rows: C.uint64_t(m.rows), cols: C.uint64_t(m.cols),
			ld: C.int64_t(m.ld), stride: C.int64_t(m.stride)}
	}
	op := func(t bool) C.int {
		if t {
			return cublasOpT
		}
		return cublasOpN
	}
	pl := x.plan
	in := C.igo_lt_plan_in{
		transa: op(pl.transA), transb: op(pl.transB),
		a: layout(pl.a), b: layout(pl.b), c: layout(pl.c),
		batch: C.int(pl.batch), epilogue: C.uint(pl.epilogue),
		auxLD: C.int64_t(pl.auxLD), auxStride: C.int64_t(pl.auxStride),
		// cuBLASLt's A is our B and its B our A.
		alignA: C.uint32_t(1) << x.key.alignB, alignB: C.uint32_t(1) << x.key.alignA,
		alignC: C.uint32_t(1) << x.key.alignC,
		bias:   C.uintptr_t(x.bias), aux: C.uintptr_t(x.aux),
		workspace: ltWorkspaceBytes,
	}
	if pl.biasF32 {
		in.biasF32 = 1
	}
	p := (*C.igo_lt_plan)(C.calloc(1, C.size_t(unsafe.Sizeof(C.igo_lt_plan{}))))
	var msg *C.char
	c := &ltCached{p: p}
	switch st := C.igo_lt_plan_make(l.c, &in, p, &msg); {
	case st == -2:
		c.err = fmt.Errorf("%w: the heuristic has no algorithm", errNoLtPlan)
	case st != 0:
		c.err = fmt.Errorf("%w: %s: %s", errNoLtPlan, C.GoString(msg), cublasStatus(int(st)))
	}
	if c.err != nil {
		C.free(unsafe.Pointer(p))
		c.p = nil
	}
	l.plans[x.key] = c
	return c, c.err
}

// matmul queues x on stream with the workspace ws (ltWorkspaceBytes).
func (l *cublasLtLib) matmul(x *ltCall, ws cu.DevicePtr, stream cu.Stream) error {
	p, err := l.plan(x)
	if err != nil {
		return err
	}
	// cuBLASLt's A is our B, its B our A (ltPlan).
	st := C.igo_lt_matmul(l.c, p.p, C.float(x.alpha), C.uintptr_t(x.b), C.uintptr_t(x.a), C.float(x.beta),
		C.uintptr_t(x.c), C.uintptr_t(x.bias), C.uintptr_t(x.aux), C.uintptr_t(ws), C.size_t(ltWorkspaceBytes),
		unsafe.Pointer(stream.C()))
	if st != 0 {
		return fmt.Errorf("cublasLtMatmul: %s", cublasStatus(int(st)))
	}
	return nil
}

func (l *cublasLtLib) close() {
	if l == nil || l.c == nil {
		return
	}
	for k, p := range l.plans {
		if p.p != nil {
			C.igo_lt_plan_free(l.c, p.p)
			C.free(unsafe.Pointer(p.p))
		}
		delete(l.plans, k)
	}
	C.igo_lt_close(l.c)
	C.free(unsafe.Pointer(l.c))
	l.c = nil
}

// ltMatMul runs a product, with an epilogue, through cuBLASLt. When
// cuBLASLt cannot run it, it queues nothing and returns an error wrapping
// errNoLtPlan; a call that fails once queued is recorded as the backend's
// error.
func (b *Backend) ltMatMul(p gpu.MatMulDims, c, a, bm *gpu.Tensor, transA, transB bool, alpha, beta float32,
	epi gemmEpilogue, bias, aux *gpu.Tensor) error {
	pl, err := newLtPlan(p, transA, transB, epi)
	if err != nil {
		return fmt.Errorf("%w: %v", errNoLtPlan, err)
	}
	lt := b.gemm.lt
	if lt == nil {
		return fmt.Errorf("%w: no cuBLASLt (%s)", errNoLtPlan, b.gemm.whyLt)
	}
	if b.gemm.ltWS == nil {
		if b.gemm.ltWS, err = b.Alloc(gpu.Float32, ltWorkspaceBytes/4); err != nil {
			return fmt.Errorf("%w: workspace: %v", errNoLtPlan, err)
		}
	}
	x := &ltCall{plan: pl, a: b.ptr(a), b: b.ptr(bm), c: b.ptr(c), bias: b.ptr(bias), aux: b.ptr(aux),
		alpha: alpha, beta: beta}
	x.key = newLtKey(p, transA, transB, epi, uint64(x.a), uint64(x.b), uint64(x.c), uint64(x.bias)|uint64(x.aux))
	if err := lt.matmul(x, b.ptr(b.gemm.ltWS), b.stream); err != nil {
		if errors.Is(err, errNoLtPlan) {
			return err
		}
		b.failf("matmul C %v = A %v · B %v (%v): %w", c, a, bm, epi, err)
	}
	return nil
}
