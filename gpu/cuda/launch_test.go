//go:build cuda

package cuda

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unsafe"

	"github.com/instructgo/instructgo/gpu"
)

// TestLaunchArgsSet checks the launch storage's layout: the pointer array
// aims at the value slots, each Go type lands in the low bytes of its slot
// with its C size, and a Go int or too many arguments are refused.
func TestLaunchArgsSet(t *testing.T) {
	a := newLaunchArgs()
	defer a.free()
	rng := rand.New(rand.NewPCG(5, 6))
	ptr, i32v, u32, i64, u64 := devicePtr(rng.Uint64()), int32(-rng.Int32()), rng.Uint32(), -rng.Int64(), rng.Uint64()
	f32, f64 := float32(rng.NormFloat64()), rng.NormFloat64()
	if err := a.set([]any{ptr, i32v, u32, i64, u64, f32, f64}); err != nil {
		t.Fatal(err)
	}
	want := []struct {
		bits uint64
		size int
	}{
		{uint64(ptr), 8}, {uint64(uint32(i32v)), 4}, {uint64(u32), 4}, {uint64(i64), 8}, {u64, 8},
		{uint64(math.Float32bits(f32)), 4}, {math.Float64bits(f64), 8},
	}
	params := unsafe.Slice(a.params(), maxKernelArgs)
	for i, w := range want {
		got := *(*uint64)(params[i])
		if got != w.bits || int(a.sizes[i]) != w.size {
			t.Errorf("argument %d: slot %#x size %d, want %#x size %d", i, got, a.sizes[i], w.bits, w.size)
		}
	}
	for i := range params {
		if params[i] != unsafe.Pointer(&a.vals[i]) {
			t.Fatalf("params[%d] does not point at slot %d", i, i)
		}
	}
	if err := a.set([]any{ptr, 3}); err == nil || !strings.Contains(err.Error(), "argument 1 has type int") {
		t.Errorf("a Go int: error %v", err)
	}
	if err := a.set(make([]any, maxKernelArgs+1)); err == nil {
		t.Error("too many arguments accepted")
	}
}

// TestLaunchPassesArguments launches fill_f32 (pointer, long long, float)
// and fill_bf16 (pointer, long long, unsigned int) with random values
// through launch and reads the results back: the values reach the kernel
// and the launch allocates nothing on the Go heap.
func TestLaunchPassesArguments(t *testing.T) {
	b := openTestBackend(t)
	rng := rand.New(rand.NewPCG(7, 8))
	n := 1000 + rng.IntN(1000)
	x, err := b.Alloc(gpu.Float32, n+7)
	if err != nil {
		t.Fatal(err)
	}
	v := float32(rng.NormFloat64())
	b.launch("fill_f32", ewGrid(n, 256), block1(256), 0, b.ptr(x), int64(n), v)
	got := download(t, b, x)
	for i, g := range got {
		if want := map[bool]float32{true: v, false: 0}[i < n]; g != want {
			t.Fatalf("fill_f32: x[%d] = %v, want %v", i, g, want)
		}
	}

	h, err := b.Alloc(gpu.BF16, n+7)
	if err != nil {
		t.Fatal(err)
	}
	bits := uint32(gpu.BF16Bits(float32(rng.NormFloat64())))
	b.launch("fill_bf16", ewGrid(n, 256), block1(256), 0, b.ptr(h), int64(n), bits)
	got = download(t, b, h)
	for i, g := range got {
		want := float32(0)
		if i < n {
			want = gpu.BF16Float(uint16(bits))
		}
		if g != want {
			t.Fatalf("fill_bf16: x[%d] = %v, want %v", i, g, want)
		}
	}

	p := b.ptr(x)
	allocs := testing.AllocsPerRun(50, func() {
		v += 1
		b.launch("fill_f32", ewGrid(n, 256), block1(256), 0, p, int64(n), v)
	})
	if err := b.Sync(); err != nil {
		t.Fatal(err)
	}
	if allocs != 0 {
		t.Errorf("a launch allocates %v times on the Go heap, want 0", allocs)
	}
}
