//go:build cuda && cudaemu

package cuda

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// What only the emulator promises about the tensor-core helpers: its
// rounding of mma.sync (emu/emu_tensorcore.cpp) and its checks of misuse,
// through the kernels of emu/testkernels, which are built into the
// emulator only.

// TestEmulatedMmaRounding: the emulator rounds D = A·B + C once from the
// exact sum, so it is within half an fp32 ulp of the float64 reference
// (double's own rounding of at most 17 terms is far below that).
func TestEmulatedMmaRounding(t *testing.T) {
	b := openTestBackend(t)
	rng := rand.New(rand.NewPCG(14, 11))
	for _, k := range []int{16, 8} {
		cases := make([]mmaCase, 4)
		for z := range cases {
			cases[z] = newMmaCase(rng, k, k)
		}
		for z, d := range runMmaProbe(t, b, cases) {
			for i, g := range d {
				want := cases[z].ref[i]
				halfUlp := math.Abs(float64(math.Nextafter32(float32(want), float32(math.Inf(1)))-float32(want))) / 2
				if diff := math.Abs(float64(g) - want); diff > halfUlp*(1+1e-6) {
					t.Errorf("m16n8k%d case %d D[%d]: %.9g, want %.9g within half an ulp (%.3g)", k, z, i, g, want, halfUlp)
				}
			}
		}
	}
}

// TestEmulatedAsyncCopyOrder: a copy lands only when its thread waits for
// its group; before that its destination reads as NaN (0xFF bytes).
func TestEmulatedAsyncCopyOrder(t *testing.T) {
	src := randVals(rand.New(rand.NewPCG(14, 12)), 128)
	for _, c := range []struct {
		mode    int32
		landed  int // floats 0..landed-1 arrive, the rest read NaN
		explain string
	}{
		{0, 128, "waited for: every float arrives"},
		{1, 0, "read before the wait: nothing arrived"},
		{2, 64, "wait_group 1 after two groups: only the first arrived"},
	} {
		b := openTestBackend(t)
		s, out := tcUploadF32(t, b, src), tcAlloc(t, b, gpu.Float32, 128)
		tcLaunch(t, b, "emu_tc_misuse", 1, b.ptr(s), b.ptr(out), c.mode)
		got := download(t, b, out)
		for i, v := range got {
			if arrived := i < c.landed; arrived && v != src[i] || !arrived && !math.IsNaN(float64(v)) {
				t.Errorf("mode %d (%s): float %d reads %g (source %g)", c.mode, c.explain, i, v, src[i])
				break
			}
		}
	}
}

// TestEmulatedTensorCoreMisuse: each misuse fails the launch with a message
// that says what went wrong.
func TestEmulatedTensorCoreMisuse(t *testing.T) {
	for _, c := range []struct {
		mode int32
		want string
	}{
		{3, "cp.async copies not waited for"},
		{4, "exited lanes"},
		{5, "different shapes or qualifiers"},
		{6, "different ops"},
		{7, "not 16-byte aligned"},
		{8, "not 16-byte aligned"},
	} {
		b := openTestBackend(t)
		s, out := tcAlloc(t, b, gpu.Float32, 128), tcAlloc(t, b, gpu.Float32, 128)
		b.launch("emu_tc_misuse", [3]int{1, 1, 1}, [3]int{32, 1, 1}, 0, b.ptr(s), b.ptr(out), c.mode)
		if err := b.Sync(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("mode %d: error %v, want one saying %q", c.mode, err, c.want)
		}
	}
}
