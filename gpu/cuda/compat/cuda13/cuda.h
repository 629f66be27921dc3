/*
 * compat/cuda13/cuda.h: compiles gorgonia.org/cu v0.9.6 against the CUDA 13
 * driver API headers.
 *
 * cu v0.9.6 calls five driver functions in their CUDA 12 form. CUDA 13's
 * cuda.h maps each of these names to a newer entry point with another
 * signature, so cu's calls no longer compile:
 *
 *   cuCtxCreate             -> cuCtxCreate_v4: adds CUctxCreateParams *
 *   cuMemAdvise             -> cuMemAdvise_v2: CUdevice becomes CUmemLocation
 *   cuMemPrefetchAsync      -> cuMemPrefetchAsync_v2: CUmemLocation + flags
 *   cuGraphAddDependencies  -> cuGraphAddDependencies_v2: adds edge data
 *   cuGraphGetEdges         -> cuGraphGetEdges_v2: adds edge data
 *
 This file stands in for cuda.h: the Makefile puts its directory first on
 * the include path (CGO_CFLAGS="-I gpu/cuda/compat/cuda13 -I CUDA13/include")
 * when the headers are 13.x, so every `#include <cuda.h>` of cu (and of
 * ours) gets it. It includes the real cuda.h (#include_next), then defines a
 * static inline function with the old signature for each of the five that
 * calls the new entry point with the arguments that mean the same thing,
 * and redefines the name to it:
 *
 *   - no context-creation parameters (NULL: "a regular CUDA context");
 *   - a CUdevice d becomes the location {DEVICE, d}, and CU_DEVICE_CPU the
 *     location {HOST}, which is how the 12.x functions read that argument;
 *     prefetch flags 0;
 *   - no edge data (NULL: default, zeroed edges, which is all the 12.x
 *     forms could express; a lossy query is reported as an error by the
 *     driver, CUDA_ERROR_LOSSY_QUERY).
 *
 * With 12.x headers (CUDA_VERSION < 13000) it adds nothing to cuda.h. It
 * is our code, not NVIDIA's.
 *
 * Why not `gcc -include` in CGO_CFLAGS: those flags reach every cgo
 * package, runtime/cgo's C and assembly files included, and a forced
 * cuda.h (with its stdlib.h) before runtime/cgo's own _GNU_SOURCE breaks
 * that build. The include path reaches only files that include cuda.h.
 */
#ifndef INSTRUCTGO_CUDA13_COMPAT_H
#define INSTRUCTGO_CUDA13_COMPAT_H

#include_next <cuda.h>

#if defined(CUDA_VERSION) && CUDA_VERSION >= 13000

static inline CUmemLocation instructgo_compat_location(CUdevice dev) {
	CUmemLocation loc;
	if (dev == CU_DEVICE_CPU) {
		loc.type = CU_MEM_LOCATION_TYPE_HOST;
		loc.id = 0;
	} else {
		loc.type = CU_MEM_LOCATION_TYPE_DEVICE;
		loc.id = (int)dev;
	}
	return loc;
}

/* Each wrapper is defined while the name still expands to the 13.x entry
 * point (including the per-thread-stream variants the header selects), then
 * the name is pointed at the wrapper. */

static inline CUresult instructgo_compat_cuCtxCreate(CUcontext *pctx, unsigned int flags, CUdevice dev) {
	return cuCtxCreate(pctx, (CUctxCreateParams *)0, flags, dev);
}
#undef cuCtxCreate
#define cuCtxCreate instructgo_compat_cuCtxCreate

static inline CUresult instructgo_compat_cuMemAdvise(CUdeviceptr devPtr, size_t count, CUmem_advise advice, CUdevice device) {
	return cuMemAdvise(devPtr, count, advice, instructgo_compat_location(device));
}
#undef cuMemAdvise
#define cuMemAdvise instructgo_compat_cuMemAdvise

static inline CUresult instructgo_compat_cuMemPrefetchAsync(CUdeviceptr devPtr, size_t count, CUdevice dstDevice, CUstream hStream) {
	return cuMemPrefetchAsync(devPtr, count, instructgo_compat_location(dstDevice), 0, hStream);
}
#undef cuMemPrefetchAsync
#define cuMemPrefetchAsync instructgo_compat_cuMemPrefetchAsync

static inline CUresult instructgo_compat_cuGraphAddDependencies(CUgraph hGraph, const CUgraphNode *from, const CUgraphNode *to, size_t numDependencies) {
	return cuGraphAddDependencies(hGraph, from, to, (const CUgraphEdgeData *)0, numDependencies);
}
#undef cuGraphAddDependencies
#define cuGraphAddDependencies instructgo_compat_cuGraphAddDependencies

static inline CUresult instructgo_compat_cuGraphGetEdges(CUgraph hGraph, CUgraphNode *from, CUgraphNode *to, size_t *numEdges) {
	return cuGraphGetEdges(hGraph, from, to, (CUgraphEdgeData *)0, numEdges);
}
#undef cuGraphGetEdges
#define cuGraphGetEdges instructgo_compat_cuGraphGetEdges

#endif /* CUDA_VERSION >= 13000 */
#endif /* INSTRUCTGO_CUDA13_COMPAT_H */
