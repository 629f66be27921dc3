//go:build cuda && !cudaemu

package cuda

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"
	"gorgonia.org/cu"

	"github.com/instructgo/instructgo/gpu"
	_ "github.com/instructgo/instructgo/gpu/cuda/internal/cuinit" // readable message when cu's init would exit
)

// Backend is gpu.Backend on one NVIDIA GPU. Create it with New and use it
// from the goroutine that called New only (see the package doc).
type Backend struct {
	ordinal int
	dev     cu.Device
	ctx     cu.CUContext
	stream  cu.Stream
	devName string
	ccMajor int
	ccMinor int
	tid     int // the OS thread New locked; memory entry points check it

	err    error // first error of any op; later ops do nothing
	closed bool
	syncs  int64 // host synchronisations: Sync and Download calls that wait for the stream

	capturing bool // between BeginCapture and EndCapture (graph.go)

	// checker validates op arguments with the contract's rules (package
	// gpu's shared Checker); it accepts only this backend's tensors.
	checker gpu.Checker

	mem     *allocator
	staging *stagingRing

	mod     cu.Module
	fns     map[string]*kernelFunc
	largs   *launchArgs    // every launch's argument storage, made once
	streamC unsafe.Pointer // the CUstream inside stream, for our own launch call

	gemm gemmEngine

	// syncChecks run, in order, after every completed synchronisation of
	// Sync and Download, on the owner thread; the first error is recorded.
	// The device error flag of the kernels' data checks registers one.
	syncChecks []func() error
}

var _ gpu.Backend = (*Backend)(nil)

// New opens GPU ordinal: it locks the calling goroutine to its OS thread,
// retains the device's primary context and makes it current there, creates
// the stream, loads the embedded kernels and loads cuBLAS (or selects the
// fallback GEMM kernel). The Backend must then be used from this goroutine
// only, and closed with Close.
func New(ordinal int) (*Backend, error) {
	runtime.LockOSThread()
	b, err := open(ordinal)
	if err != nil {
		runtime.UnlockOSThread()
		return nil, fmt.Errorf("cuda:%d: %w", ordinal, err)
	}
	return b, nil
}

// open does New's work on the locked thread. On failure it releases what
// it made.
func open(ordinal int) (_ *Backend, err error) {
	n, err := cu.NumDevices()
	if err != nil {
		return nil, fmt.Errorf("count devices: %w", err)
	}
	if ordinal < 0 || ordinal >= n {
		return nil, fmt.Errorf("no such GPU: %d device(s) visible", n)
	}
	b := &Backend{ordinal: ordinal, tid: unix.Gettid(), fns: make(map[string]*kernelFunc)}
	b.checker = newChecker(b.owns)
	if b.dev, err = cu.GetDevice(ordinal); err != nil {
		return nil, fmt.Errorf("get device: %w", err)
	}
	if b.devName, err = b.dev.Name(); err != nil {
		return nil, fmt.Errorf("device name: %w", err)
	}
	b.devName = strings.TrimSpace(b.devName)
	if b.ccMajor, b.ccMinor, err = b.dev.ComputeCapability(); err != nil {
		return nil, fmt.Errorf("compute capability: %w", err)
	}
	if b.ccMajor < 8 {
		return nil, fmt.Errorf("%s has compute capability %d.%d; the kernels need 8.0 (Ampere) or newer", b.devName, b.ccMajor, b.ccMinor)
	}
	if b.ctx, err = b.dev.RetainPrimaryCtx(); err != nil {
		return nil, fmt.Errorf("retain primary context: %w", err)
	}
	// From here on, a failure releases what was made.
	defer func() {
		if err != nil {
			b.release()
		}
	}()
	if err = cu.SetCurrentContext(b.ctx); err != nil {
		return nil, fmt.Errorf("set current context: %w", err)
	}
	if b.stream, err = cu.MakeStream(cu.NonBlocking); err != nil {
		return nil, fmt.Errorf("create stream: %w", err)
	}
	b.streamC = unsafe.Pointer(b.stream.C())
	b.largs = newLaunchArgs()
	b.mem = newAllocator()
	if b.staging, err = newStagingRing(); err != nil {
		return nil, err
	}
	if err = b.loadModule(); err != nil {
		return nil, err
	}
	b.gemm = openGEMM(b)
	return b, nil
}

// Name implements gpu.Backend, e.g.
// "cuda:0 (NVIDIA H100 80GB HBM3, sm_90, cuBLAS 12.4.5 FP32, cuBLASLt 12.4.5 bf16)".
func (b *Backend) Name() string {
	return fmt.Sprintf("cuda:%d (%s, sm_%d%d, %s)", b.ordinal, b.devName, b.ccMajor, b.ccMinor, b.gemm.describe())
}

// Device is the GPU's name as the driver reports it.
func (b *Backend) Device() string { return b.devName }

// ComputeCapability is the GPU's compute capability, e.g. 9, 0.
func (b *Backend) ComputeCapability() (major, minor int) { return b.ccMajor, b.ccMinor }

// Sync implements gpu.Backend: it waits for every queued op and returns Err.
func (b *Backend) Sync() error {
	if !b.onOwnerThread("sync") {
		return b.err
	}
	b.syncs++
	if b.capturing {
		b.fail(errCapturing("sync"))
		return b.err
	}
	if b.err == nil && !b.fail(wrapCU("sync", b.stream.Synchronize())) {
		b.runSyncChecks()
	}
	return b.err
}

// addSyncCheck registers f to run after every completed synchronisation
// (Sync, Download); an error it returns becomes the backend's error.
func (b *Backend) addSyncCheck(f func() error) { b.syncChecks = append(b.syncChecks, f) }

// runSyncChecks runs the registered checks until one fails.
func (b *Backend) runSyncChecks() {
	for _, f := range b.syncChecks {
		if b.fail(f()) {
			return
		}
	}
}

// Err implements gpu.Backend.
func (b *Backend) Err() error { return b.err }

// Close implements gpu.Backend: it waits for the stream, frees all device
// and pinned memory, unloads the kernels, releases the primary context and
// unlocks the goroutine from its OS thread. It returns an error of the
// teardown only (Err still has the first error of the ops); after Close,
// Err reports that the backend is closed unless an op failed before.
func (b *Backend) Close() error {
	if b.closed {
		return nil
	}
	if tid := unix.Gettid(); tid != b.tid {
		return fmt.Errorf("cuda close: called on OS thread %d, but the backend belongs to thread %d: close it from the goroutine that called New", tid, b.tid)
	}
	var errs []error
	if err := b.stream.Synchronize(); err != nil && b.err == nil {
		errs = append(errs, wrapCU("close: sync", err))
	}
	errs = append(errs, b.release())
	b.closed = true
	b.fail(errClosed)
	opStates.Delete(b) // else the map keeps every closed backend alive
	runtime.UnlockOSThread()
	return errors.Join(errs...)
}

var errClosed = errors.New("cuda: backend is closed")

// release frees everything open made, in reverse order, and returns the
// first error.
func (b *Backend) release() error {
	var errs []error
	add := func(what string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
		}
	}
	b.gemm.close()
	if b.mod != (cu.Module{}) {
		add("unload module", b.mod.Unload())
		b.mod = cu.Module{}
	}
	if b.staging != nil {
		add("free staging buffers", b.staging.free())
		b.staging = nil
	}
	if b.mem != nil {
		add("free device memory", b.mem.releaseAll())
	}
	if b.stream != (cu.Stream{}) {
		add("destroy stream", b.stream.Destroy())
	}
	b.largs.free()
	if b.ctx != (cu.CUContext{}) {
		add("release primary context", b.dev.ReleasePrimaryCtx())
		b.ctx = cu.CUContext{}
	}
	return errors.Join(errs...)
}

// fail records err as the backend's error unless one is recorded already.
// It returns true when an error is recorded (this one or an earlier one):
// the op must then do nothing.
func (b *Backend) fail(err error) bool {
	if err != nil && b.err == nil {
		b.err = err
	}
	return b.err != nil
}

// failf records a formatted error (see fail) and returns true.
func (b *Backend) failf(format string, args ...any) bool {
	return b.fail(fmt.Errorf(format, args...))
}

// onOwnerThread records an error and returns false when called from an OS
// thread other than the one New locked (the context is not current there).
func (b *Backend) onOwnerThread(op string) bool {
	if tid := unix.Gettid(); tid != b.tid {
		b.failf("cuda %s: called on OS thread %d, but the backend belongs to thread %d: use a cuda Backend only from the goroutine that called New", op, tid, b.tid)
		return false
	}
	return true
}

// owns reports whether s is device memory of this backend.
func (b *Backend) owns(s gpu.Storage) bool {
	st, ok := s.(*storage)
	return ok && st.b == b
}

// wrapCU prefixes a driver error with what was being done, or returns nil.
func wrapCU(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("cuda %s: %w", what, err)
}

// FreeMemory implements gpu.MemoryReporter: the device's free memory as the
// driver reports it (memory our allocator holds for reuse counts as used).
func (b *Backend) FreeMemory() (int64, error) {
	if !b.onOwnerThread("free memory") {
		return 0, b.err
	}
	free, _, err := cu.MemInfo()
	if err != nil {
		return 0, wrapCU("memory info", err)
	}
	return free, nil
}

var _ gpu.MemoryReporter = (*Backend)(nil)
