//go:build cuda && cudaemu

package cuda

import (
	"errors"
	"fmt"

	"github.com/instructgo/instructgo/gpu"
)

// Graphs in the emulated build: a capture records each launch (kernel,
// shapes and argument values) instead of running it, as a CUDA stream
// capture does, and Launch runs the records in order. What the emulator can
// check is what matters on the GPU: that the captured ops read whatever
// varies from device memory, and that nothing transfers or syncs while
// capturing.

// emuLaunch is one recorded kernel launch.
type emuLaunch struct {
	kernel      string
	grid, block [3]int
	sharedMem   int
	args        argSnapshot
}

// emuGraph is a recorded sequence of launches; scratch keeps the capture's
// scratch buffer alive (see graph.go).
type emuGraph struct {
	b        *Backend
	launches []emuLaunch
	scratch  *gpu.Tensor
	closed   bool
}

// BeginCapture implements gpu.Graphs.
func (b *Backend) BeginCapture() error {
	if b.err != nil {
		return b.err
	}
	if b.capturing {
		return errors.New("cuda begin capture: already capturing")
	}
	b.capturing, b.recorded = true, nil
	return nil
}

// EndCapture implements gpu.Graphs.
func (b *Backend) EndCapture() (gpu.Graph, error) {
	if !b.capturing {
		return nil, errors.New("cuda end capture: not capturing")
	}
	b.capturing = false
	rec := b.recorded
	b.recorded = nil
	if b.err != nil {
		return nil, fmt.Errorf("cuda capture: %w", b.err)
	}
	return &emuGraph{b: b, launches: rec, scratch: b.ops().scratch}, nil
}

// Launch implements gpu.Graph.
func (g *emuGraph) Launch() error {
	if g.closed {
		return errors.New("cuda graph launch: the graph is closed")
	}
	b := g.b
	if b.capturing {
		b.fail(errCapturing("graph launch"))
	}
	for _, l := range g.launches {
		if b.err != nil {
			break
		}
		b.run(l.kernel, l.grid, l.block, l.sharedMem, b.largs.restore(l.args))
	}
	return b.err
}

// Close implements gpu.Graph.
func (g *emuGraph) Close() error {
	g.closed, g.launches, g.scratch = true, nil, nil
	return nil
}

var _ gpu.Graphs = (*Backend)(nil)
