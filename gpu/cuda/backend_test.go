//go:build cuda && !cudaemu

package cuda

import (
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// Tests of what only the GPU build has: the allocator, the OS-thread
// binding, the GEMM kernel across the grid-z limit (slow to emulate), and
// the MatMul benchmark.

// TestMatMulLargeBatch crosses the kernel's 65535 grid-z limit.
func TestMatMulLargeBatch(t *testing.T) {
	g := openTestBackend(t)
	h := cpu.New(2)
	g.UseGEMMKernel(true)
	rng := rand.New(rand.NewPCG(3, 4))
	checkMatMul(t, g, h, rng, matmulCase{a: []int{70000, 2, 3}, b: []int{70000, 3, 2}, c: []int{70000, 2, 2}, alpha: 1}, tolFP32, "tiled kernel")
}

// TestAllocatorReuse: a block whose tensor is unreachable returns to the
// free list and serves the next allocation of its class, zero-filled.
func TestAllocatorReuse(t *testing.T) {
	g := openTestBackend(t)
	const n = 300_000 // 1.2 MB: a large class
	first, err := g.Alloc(gpu.Float32, n)
	if err != nil {
		t.Fatal(err)
	}
	ones := make([]float32, n)
	for i := range ones {
		ones[i] = 1
	}
	if err := g.Upload(first, ones); err != nil {
		t.Fatal(err)
	}
	if err := g.Sync(); err != nil {
		t.Fatal(err)
	}
	addr := g.ptr(first)
	before := g.MemStats()
	first = nil
	deadline := time.Now().Add(10 * time.Second)
	for g.MemStats().CachedBytes == before.CachedBytes && time.Now().Before(deadline) {
		runtime.GC()
		time.Sleep(time.Millisecond)
	}
	if g.MemStats().CachedBytes == before.CachedBytes {
		t.Fatal("the dropped tensor's block never reached the free list")
	}
	second, err := g.Alloc(gpu.Float32, n-100) // same class
	if err != nil {
		t.Fatal(err)
	}
	after := g.MemStats()
	if g.ptr(second) != addr || after.MemAllocs != before.MemAllocs || after.Reuses != before.Reuses+1 {
		t.Fatalf("no reuse: address %v (was %v), stats before %+v after %+v", g.ptr(second), addr, before, after)
	}
	for i, v := range download(t, g, second) {
		if v != 0 {
			t.Fatalf("reused block not zeroed: element %d = %v", i, v)
		}
	}
	t.Logf("allocator: %+v", after)
}

// TestOtherGoroutine: a Backend used from another goroutine (another OS
// thread, without the context) records an error instead of misbehaving.
func TestOtherGoroutine(t *testing.T) {
	g := openTestBackend(t)
	done := make(chan error)
	go func() { done <- g.Sync() }()
	if err := <-done; err == nil || !strings.Contains(err.Error(), "goroutine that called New") {
		t.Fatalf("Sync from another goroutine = %v, want the thread error", err)
	}
}

// BenchmarkMatMul measures the GEMM shapes of a GPT-2 (124M) step with
// B·T = 8192 tokens, on each path, in TFLOP/s: float32 on our kernel and
// cuBLAS (TF32 and FP32), bf16 on our tensor-core kernel and cuBLASLt. The
// weight-gradient shape accumulates bf16 products into a float32 C (beta =
// 1), as the bf16 precision mode does.
func BenchmarkMatMul(bm *testing.B) {
	g := openTestBackend(bm)
	shapes := []struct {
		name           string
		m, n, k        int
		transA, transB bool
		beta           float32
	}{
		{"qkv_fwd_8192x2304x768", 8192, 2304, 768, false, false, 0},
		{"fc_fwd_8192x3072x768", 8192, 3072, 768, false, false, 0},
		{"proj_fwd_8192x768x3072", 8192, 768, 3072, false, false, 0},
		{"lmhead_fwd_8192x50304x768", 8192, 50304, 768, false, true, 0},
		{"fc_wgrad_768x3072x8192", 768, 3072, 8192, true, false, 1},
	}
	type path struct {
		name   string
		kernel bool
		tf32   bool
		in     gpu.DType
	}
	paths := []path{{"kernel", true, false, gpu.Float32}, {"kernel_bf16", true, false, gpu.BF16}}
	if g.CuBLASLoaded() {
		paths = append(paths, path{"cublas_tf32", false, true, gpu.Float32}, path{"cublas_fp32", false, false, gpu.Float32})
	}
	if g.CuBLASLtLoaded() {
		paths = append(paths, path{"cublaslt_bf16", false, false, gpu.BF16})
	}
	for _, p := range paths {
		for _, s := range shapes {
			// b.Run runs on another goroutine; the backend belongs to this
			// one, so time by hand and report with b.ReportMetric there.
			g.UseGEMMKernel(p.kernel)
			if !p.kernel && p.in == gpu.Float32 {
				if err := g.SetTF32(p.tf32); err != nil {
					bm.Fatal(err)
				}
			}
			ashape, bshape := []int{s.m, s.k}, []int{s.k, s.n}
			if s.transA {
				ashape = []int{s.k, s.m}
			}
			if s.transB {
				bshape = []int{s.n, s.k}
			}
			cdt := p.in
			if s.beta != 0 {
				cdt = gpu.Float32 // a parameter gradient
			}
			a, _ := g.Alloc(p.in, ashape...)
			b, _ := g.Alloc(p.in, bshape...)
			c, _ := g.Alloc(cdt, s.m, s.n)
			g.MatMul(c, a, b, s.transA, s.transB, 1, s.beta) // warm up
			if err := g.Sync(); err != nil {
				bm.Fatal(err)
			}
			const reps = 20
			start := time.Now()
			for i := 0; i < reps; i++ {
				g.MatMul(c, a, b, s.transA, s.transB, 1, s.beta)
			}
			if err := g.Sync(); err != nil {
				bm.Fatal(err)
			}
			per := time.Since(start) / reps
			tflops := 2 * float64(s.m) * float64(s.n) * float64(s.k) / per.Seconds() / 1e12
			bm.Run(p.name+"/"+s.name, func(b *testing.B) {
				b.ReportMetric(float64(per.Nanoseconds()), "ns/matmul")
				b.ReportMetric(tflops, "TFLOP/s")
			})
		}
	}
}
