//go:build cuda

// Package cuda is the NVIDIA GPU implementation of gpu.Backend, built only
// with the build tag cuda. It drives the CUDA driver API through
// gorgonia.org/cu package-level functions, runs the handwritten kernels of
// kernels/*.cu (compiled by `make kernels` into one fatbin that this package
// embeds), and multiplies matrices with cuBLAS (float32) and cuBLASLt
// (bf16), loaded at run time with dlopen, or with GEMM kernels of ours
// (tiled fp32, bf16 tensor cores) when they are missing.
//
// # One goroutine, one OS thread
//
// A CUDA context is current per OS thread. New locks the calling goroutine
// to its OS thread (runtime.LockOSThread), makes the device's primary
// context current there, and creates one stream. From then on the Backend
// must be used from that goroutine only; Close unlocks it. A call from
// another goroutine runs on a thread without the context: the entry points
// that take the memory path (Alloc, Upload, Download, Sync) detect it and
// record an error. cu.Ctx is deliberately not used: it hands every call to a
// dedicated thread through a channel, which costs microseconds per call and
// a training step makes thousands of launches.
//
// # Asynchrony and errors
//
// Ops are queued on the one stream and return at once. Download and Sync
// wait. The first failure of any op, launch or copy, including a kernel
// fault that only surfaces at the next synchronisation, is kept (Err) and
// every later op does nothing, as the contract says.
//
// # Memory
//
// Tensors are views into device allocations made by a caching allocator:
// freed blocks (when the garbage collector finds a storage unreachable) go
// to free lists by size class and are reused in stream order; cuMemFree runs
// only on an out-of-memory retry and in Close. Upload and Download go
// through pinned host staging buffers with asynchronous copies on the
// stream.
//
// # Requirements at run time
//
// The binary links libcuda.so.1, so it does not start where the NVIDIA
// driver is missing; and gorgonia.org/cu initialises the driver in its
// package init and exits the process when that fails (no GPU, a broken
// driver). Package internal/cuinit, initialised just before cu, turns that
// exit into a readable message. The fatbin holds SASS for sm_80, sm_86,
// sm_89 and sm_90 and compute_80 PTX, so it needs an Ampere or newer GPU.
// cuBLAS is looked up as $INSTRUCTGO_CUBLAS (a path; "none" disables it),
// then libcublas.so.13 and libcublas.so.12 (by soname, in the CUDA
// toolkits, and in the NVIDIA wheels of Python's site-packages, python3's
// sys.path included), and cuBLASLt beside it: internal/cudalib has the one
// search rule, which the GPU bundle's runner shares.
//
// # The emulated build
//
// With the build tags cuda and cudaemu, the driver-facing files (backend,
// memory, module, cuBLAS, events) give way to emu_backend.go: the same op
// wrappers against host memory, every kernel (MatMul's GEMM kernels
// included) run by the CPU emulator of CUDA in emu/ (make cuda-emu-test builds it and runs the parity tests, in
// CI). It checks the kernels and their launches against the CPU backend
// without a GPU; it measures no speed and cannot show what only hardware
// does. EMU_ORDER=reverse or random changes the order the threads of a
// block run in between barriers: a kernel without races gives the same
// result in every order.
//
// INTERNALS.md beside this file describes the helpers kernel wrappers use
// (ptr, launch, fail, checker).
//
// It imports gpu, gpu/cuda/internal/cuinit, gpu/cuda/internal/cudalib, gorgonia.org/cu,
// golang.org/x/sys/unix and the standard library (the emulated build: gpu
// and the standard library); its tests also gpu/cpu and model.
package cuda
