//go:build cuda

package cuda

import "github.com/instructgo/instructgo/gpu"

// bf16Ops are the ops whose kernels run with a bf16 activation dtype; the
// Checker refuses bf16 activations for the others, with a message that
// says so, until their kernels have it.
var bf16Ops = map[string]bool{
	"copy": true, "add": true, "add bias": true, "bias backward": true, "matmul": true,
	"matmul bias": true, "matmul bias gelu": true, "matmul dgelu": true,
	"gelu forward": true, "gelu backward": true, "dropout": true, "dropout backward": true,
	"embedding forward": true, "embedding backward": true,
	"layernorm forward": true, "layernorm backward": true, "add layernorm forward": true,
	"log-softmax forward": true, "log-softmax backward": true, "cross-entropy": true, "sample": true,
	"gather rows": true, "scatter-add rows": true,
	"attention forward": true, "attention backward": true,
	"kv-cache write": true, "attention decode": true,
	"rmsnorm forward": true, "rmsnorm backward": true, "rope forward": true, "rope backward": true,
	"swiglu forward": true, "swiglu backward": true,
}

// newChecker is the shared gpu.Checker of a cuda backend whose storages
// owns recognises.
func newChecker(owns func(gpu.Storage) bool) gpu.Checker {
	return gpu.Checker{Backend: "cuda", Owns: owns, BF16Ops: func(op string) bool { return bf16Ops[op] }}
}
