package main

import (
	"strings"
	"testing"
)

func TestParseTestOutput(t *testing.T) {
	out := `=== RUN   TestMatMulParity
    matmul_parity_test.go:200: cuda:0 (NVIDIA H100 80GB HBM3, sm_90, cuBLAS 12.4.5 TF32)
--- PASS: TestMatMulParity (1.25s)
=== RUN   TestAttention
=== RUN   TestAttention/hs64
    --- FAIL: TestAttention/hs64 (0.01s)
--- FAIL: TestAttention (0.02s)
--- SKIP: TestSomething (0.00s)
FAIL
`
	rs := parseTestOutput(out)
	want := []TestResult{{"TestMatMulParity", "PASS", 1.25}, {"TestAttention/hs64", "FAIL", 0.01}, {"TestAttention", "FAIL", 0.02}, {"TestSomething", "SKIP", 0}}
	if len(rs) != len(want) {
		t.Fatalf("got %v, want %v", rs, want)
	}
	for i := range want {
		if rs[i] != want[i] {
			t.Errorf("result %d = %v, want %v", i, rs[i], want[i])
		}
	}
	s := summarize(&Report{Tests: []TestBinary{{Results: rs}}})
	if s.TestsPassed != 1 || s.TestsFailed != 1 || s.TestsSkipped != 1 || s.OK {
		t.Errorf("summary %+v", s)
	}
}

func TestParseBenchOutput(t *testing.T) {
	out := `goos: linux
BenchmarkMatMul/cublas_tf32/qkv_fwd_8192x2304x768-16         	1000000000	         0.2500 ns/op	    412345 ns/matmul	       351.2 TFLOP/s
BenchmarkAdd-16   	     20	     51234 ns/op	  1024 B/op	       2 allocs/op
PASS
`
	bs := parseBenchOutput(out)
	if len(bs) != 2 {
		t.Fatalf("got %+v", bs)
	}
	if bs[0].Name != "BenchmarkMatMul/cublas_tf32/qkv_fwd_8192x2304x768" || bs[0].Iterations != 1000000000 ||
		bs[0].Metrics["TFLOP/s"] != 351.2 || bs[0].Metrics["ns/matmul"] != 412345 {
		t.Errorf("first = %+v", bs[0])
	}
	if bs[1].Name != "BenchmarkAdd" || bs[1].Metrics["allocs/op"] != 2 {
		t.Errorf("second = %+v", bs[1])
	}
}

func TestParseNvidiaSMI(t *testing.T) {
	g := parseNvidiaSMI("NVIDIA H100 80GB HBM3, 550.54.15, 81559, 9.0, 1980, 700.00\n")
	if len(g) != 1 || g[0]["name"] != "NVIDIA H100 80GB HBM3" || g[0]["driver_version"] != "550.54.15" ||
		g[0]["memory_total_mib"] != 81559.0 || g[0]["compute_cap"] != "9.0" {
		t.Errorf("got %v", g)
	}
}

func TestSmokeText(t *testing.T) {
	s := smokeText(10_000)
	if len(s) < 10_000 || !strings.Contains(s, ".\n") || s != smokeText(10_000) {
		t.Errorf("smoke text: %d bytes, deterministic %v", len(s), s == smokeText(10_000))
	}
}

func TestLastJSONObject(t *testing.T) {
	got := lastJSONObject("12:00 INF device: cuda:0\n{\"backend\": \"cuda:0\"}")
	if got != `{"backend": "cuda:0"}` {
		t.Errorf("got %q", got)
	}
}
