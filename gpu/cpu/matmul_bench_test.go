package cpu

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/instructgo/instructgo/gpu"
)

// peakCache holds PeakFMA per thread count, measured once per test binary.
var peakCache sync.Map

func cachedPeak(threads int) float64 {
	if v, ok := peakCache.Load(threads); ok {
		return v.(float64)
	}
	g := PeakFMA(threads, 300*time.Millisecond)
	peakCache.Store(threads, g)
	return g
}

func BenchmarkPeakFMA(b *testing.B) {
	for _, threads := range []int{1, runtime.NumCPU()} {
		b.Run(fmt.Sprintf("threads=%d", threads), func(b *testing.B) {
			var g float64
			for i := 0; i < b.N; i++ {
				g = PeakFMA(threads, 200*time.Millisecond)
			}
			b.ReportMetric(g, "GFLOP/s")
		})
	}
}

type mmBench struct {
	name           string
	m, n, k        int
	transA, transB bool
	beta           float32
}

// gptShapes are the products of one training step of a GPT with width c,
// vocabulary v and rows = batch·sequence tokens (weights stored [in, out],
// the LM head tied to wte [v, c]).
func gptShapes(model string, rows, c, v int) []mmBench {
	return []mmBench{
		{model + "/qkv_fwd", rows, 3 * c, c, false, false, 0},
		{model + "/attproj_fwd", rows, c, c, false, false, 0},
		{model + "/fc_fwd", rows, 4 * c, c, false, false, 0},
		{model + "/fcproj_fwd", rows, c, 4 * c, false, false, 0},
		{model + "/fc_dinp", rows, c, 4 * c, false, true, 0},
		{model + "/fc_dweight", c, 4 * c, rows, true, false, 1},
		{model + "/qkv_dweight", c, 3 * c, rows, true, false, 1},
		{model + "/lmhead_fwd", rows, v, c, false, true, 0},
		{model + "/lmhead_dinp", rows, c, v, false, false, 0},
		{model + "/lmhead_dweight", v, c, rows, true, false, 1},
	}
}

func BenchmarkMatMul(b *testing.B) {
	cases := []mmBench{
		{"square/256", 256, 256, 256, false, false, 0},
		{"square/512", 512, 512, 512, false, false, 0},
		{"square/1024", 1024, 1024, 1024, false, false, 0},
		{"square/512_tA", 512, 512, 512, true, false, 0},
		{"square/512_tB", 512, 512, 512, false, true, 0},
	}
	cases = append(cases, gptShapes("tiny", 2048, 128, 258)...)
	cases = append(cases, gptShapes("gpt2", 1024, 768, 50257)...)
	for _, m := range []int{1, 2, 4, 8, 16} { // decoding: m sequences, one token each
		cases = append(cases,
			mmBench{fmt.Sprintf("decode/tiny_qkv_m%d", m), m, 384, 128, false, false, 0},
			mmBench{fmt.Sprintf("decode/tiny_lmhead_m%d", m), m, 258, 128, false, true, 0},
			mmBench{fmt.Sprintf("decode/gpt2_fc_m%d", m), m, 3072, 768, false, false, 0},
		)
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			benchMatMul(b, tc, runtime.NumCPU(), gpu.Float32)
		})
	}
}

// benchMatMul times tc with A and B of the activation dtype act and C of
// act, or float32 where tc accumulates (beta = 1: a parameter gradient).
func benchMatMul(b *testing.B, tc mmBench, threads int, act gpu.DType) {
	be := New(threads)
	r := testRNG(1)
	aShape, bShape := []int{tc.m, tc.k}, []int{tc.k, tc.n}
	if tc.transA {
		aShape = []int{tc.k, tc.m}
	}
	if tc.transB {
		bShape = []int{tc.n, tc.k}
	}
	A := benchTensor(b, be, act, randn(r, tc.m*tc.k, 1), aShape...)
	B := benchTensor(b, be, act, randn(r, tc.k*tc.n, 1), bShape...)
	cType := act
	if tc.beta != 0 {
		cType = gpu.Float32
	}
	C, err := be.Alloc(cType, tc.m, tc.n)
	if err != nil {
		b.Fatal(err)
	}
	peak := cachedPeak(threads)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		be.MatMul(C, A, B, tc.transA, tc.transB, 1, tc.beta)
	}
	b.StopTimer()
	assertNoErr(b, be)
	gflops := 2 * float64(tc.m) * float64(tc.n) * float64(tc.k) * float64(b.N) / b.Elapsed().Seconds() / 1e9
	b.ReportMetric(gflops, "GFLOP/s")
	b.ReportMetric(gflops/peak, "of_peak")
}
