//go:build cuda && !cudaemu

package cuda

import (
	"testing"
	"unsafe"

	"github.com/instructgo/instructgo/gpu"
)

// perCallMarshal is the emulated build's baseline of BenchmarkLaunchArgs;
// on a GPU, BenchmarkLaunchCu times cu's Function.Launch itself.
var perCallMarshal func([]uint64)

// BenchmarkLaunchCu times the launches of BenchmarkLaunch through
// gorgonia.org/cu's Function.Launch (two C arrays malloc'd and freed per
// call), the path launch replaced: the difference to BenchmarkLaunch is
// what the launch storage saves per launch on this machine.
func BenchmarkLaunchCu(b *testing.B) {
	g := openTestBackend(b)
	x, err := g.Alloc(gpu.Float32, 256)
	if err != nil {
		b.Fatal(err)
	}
	k, err := g.function("fill_f32")
	if err != nil {
		b.Fatal(err)
	}
	vals := [3]uint64{uint64(g.ptr(x)), 256, 0}
	params := []unsafe.Pointer{unsafe.Pointer(&vals[0]), unsafe.Pointer(&vals[1]), unsafe.Pointer(&vals[2])}
	launch := func() error { return k.fn.Launch(1, 1, 1, 256, 1, 1, 0, g.stream, params) }
	if err := launch(); err != nil {
		b.Fatal(err)
	}
	if err := g.Sync(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		vals[2] = uint64(uint32(i)) // the float's bits do not matter here
		if err := launch(); err != nil {
			b.Fatal(err)
		}
	}
	if err := wrapCU("sync", g.stream.Synchronize()); err != nil {
		b.Fatal(err)
	}
}
