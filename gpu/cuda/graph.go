//go:build cuda && !cudaemu

package cuda

/*
#cgo linux CFLAGS: -I/usr/local/cuda/include
#include <cuda.h>
*/
import "C"

import (
	"errors"
	"fmt"
	"os"

	"github.com/instructgo/instructgo/gpu"
)

// CUDA graphs through the driver API (cgo; gorgonia.org/cu has no stream
// capture): BeginCapture starts a relaxed-mode capture of the backend's
// stream, EndCapture instantiates what was queued, Launch replays it.

// graph is a captured and instantiated CUDA graph. scratch keeps the ops'
// scratch buffer of the capture alive: a later op may grow the scratch, and
// the graph still points at this one.
type graph struct {
	b       *Backend
	g       C.CUgraph
	exec    C.CUgraphExec
	scratch *gpu.Tensor
}

// graphsOff is INSTRUCTGO_CUDA_GRAPHS=0: BeginCapture then refuses (and
// the model runs each decoding step's ops directly), the way out should a
// driver or cuBLAS fail to capture.
var graphsOff = os.Getenv("INSTRUCTGO_CUDA_GRAPHS") == "0"

// BeginCapture implements gpu.Graphs.
func (b *Backend) BeginCapture() error {
	if !b.onOwnerThread("begin capture") || b.err != nil {
		return b.err
	}
	if graphsOff {
		return errors.New("cuda begin capture: graphs are off (INSTRUCTGO_CUDA_GRAPHS=0)")
	}
	if b.capturing {
		return errors.New("cuda begin capture: already capturing")
	}
	if r := C.cuStreamBeginCapture(C.CUstream(b.streamC), C.CU_STREAM_CAPTURE_MODE_RELAXED); r != C.CUDA_SUCCESS {
		return fmt.Errorf("cuda begin capture: CUresult %d", int(r))
	}
	b.capturing = true
	return nil
}

// EndCapture implements gpu.Graphs.
func (b *Backend) EndCapture() (gpu.Graph, error) {
	if !b.onOwnerThread("end capture") {
		return nil, b.err
	}
	if !b.capturing {
		return nil, errors.New("cuda end capture: not capturing")
	}
	b.capturing = false
	var g C.CUgraph
	if r := C.cuStreamEndCapture(C.CUstream(b.streamC), &g); r != C.CUDA_SUCCESS {
		b.failf("cuda end capture: CUresult %d", int(r))
		return nil, b.err
	}
	if b.err != nil {
		C.cuGraphDestroy(g)
		return nil, fmt.Errorf("cuda capture: %w", b.err)
	}
	var exec C.CUgraphExec
	if r := C.cuGraphInstantiateWithFlags(&exec, g, 0); r != C.CUDA_SUCCESS {
		C.cuGraphDestroy(g)
		b.failf("cuda instantiate graph: CUresult %d", int(r))
		return nil, b.err
	}
	return &graph{b: b, g: g, exec: exec, scratch: b.ops().scratch}, nil
}

// Launch implements gpu.Graph.
func (g *graph) Launch() error {
	b := g.b
	if g.exec == nil {
		return errors.New("cuda graph launch: the graph is closed")
	}
	if !b.onOwnerThread("graph launch") || b.err != nil {
		return b.err
	}
	if r := C.cuGraphLaunch(g.exec, C.CUstream(b.streamC)); r != C.CUDA_SUCCESS {
		b.failf("cuda graph launch: CUresult %d", int(r))
		return b.err
	}
	return nil
}

// Close implements gpu.Graph.
func (g *graph) Close() error {
	if g.exec == nil {
		return nil
	}
	C.cuGraphExecDestroy(g.exec)
	C.cuGraphDestroy(g.g)
	g.exec, g.scratch = nil, nil
	return nil
}

var _ gpu.Graphs = (*Backend)(nil)
