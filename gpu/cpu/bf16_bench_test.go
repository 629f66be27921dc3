package cpu

import (
	"runtime"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// What bf16 activations cost on the cpu backend: the tiny GPT's products
// and layer norm in float32 and in bf16 (widening, the float32 kernel,
// rounding), side by side.

func BenchmarkBF16MatMul(b *testing.B) {
	cases := append(gptShapes("tiny", 2048, 128, 258),
		mmBench{"decode/tiny_qkv_m4", 4, 384, 128, false, false, 0})
	for _, tc := range cases {
		for _, act := range []gpu.DType{gpu.Float32, gpu.BF16} {
			b.Run(tc.name+"/"+act.String(), func(b *testing.B) { benchMatMul(b, tc, runtime.NumCPU(), act) })
		}
	}
}

func BenchmarkBF16LayerNormForward(tb *testing.B) {
	for _, s := range lnBenchShapes {
		for _, act := range []gpu.DType{gpu.Float32, gpu.BF16} {
			tb.Run(s.name+"/"+act.String(), func(tb *testing.B) { benchLayerNormForward(tb, s.n, s.c, act) })
		}
	}
}
