//go:build cuda

package cuda

import (
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// The host side of a kernel launch. BenchmarkLaunchArgs times what launch
// does to an argument list before the driver call: the 12 arguments of an
// attention launch (7 pointers, 4 ints, a float) written into the launch
// storage. In the emulated build, BenchmarkLaunchArgs/per-call-malloc
// times the same values marshalled the way gorgonia.org/cu's
// Function.Launch does it on top of that (two C arrays malloc'd, filled
// and freed per call), the cost launchArgs removes. Neither includes
// cuLaunchKernel.
//
// BenchmarkLaunch times whole launches of a one-block kernel, queued back
// to back and synchronised at the end, per launch: on a GPU the host cost
// of our launch path and the driver's (or the GPU's, if a launch takes
// longer to run than to queue); in the emulated build mostly the
// emulator, which says nothing about a GPU.

// attentionLikeArgs are values of the types an attention launch passes.
func attentionLikeArgs(i int) (p [7]devicePtr, n [4]int32, f float32) {
	for k := range p {
		p[k] = devicePtr(0x7f0000000000 + uintptr(k)<<20 + uintptr(i))
	}
	for k := range n {
		n[k] = int32(1024*k + i)
	}
	return p, n, float32(i) * 0.125
}

func BenchmarkLaunchArgs(b *testing.B) {
	b.Run("launch-storage", func(b *testing.B) {
		a := newLaunchArgs()
		defer a.free()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p, n, f := attentionLikeArgs(i)
			if err := a.set([]any{p[0], p[1], p[2], p[3], p[4], p[5], p[6], n[0], n[1], n[2], n[3], f}); err != nil {
				b.Fatal(err)
			}
		}
	})
	if perCallMarshal == nil {
		return
	}
	b.Run("per-call-malloc", func(b *testing.B) {
		a := newLaunchArgs()
		defer a.free()
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p, n, f := attentionLikeArgs(i)
			if err := a.set([]any{p[0], p[1], p[2], p[3], p[4], p[5], p[6], n[0], n[1], n[2], n[3], f}); err != nil {
				b.Fatal(err)
			}
			perCallMarshal(a.vals[:12])
		}
	})
}

func BenchmarkLaunch(b *testing.B) {
	g := openTestBackend(b)
	x, err := g.Alloc(gpu.Float32, 256)
	if err != nil {
		b.Fatal(err)
	}
	p := g.ptr(x)
	g.launch("fill_f32", grid1(1), block1(256), 0, p, int64(256), float32(1))
	if err := g.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		g.launch("fill_f32", grid1(1), block1(256), 0, p, int64(256), float32(i))
	}
	if err := g.Sync(); err != nil {
		b.Fatal(err)
	}
}
