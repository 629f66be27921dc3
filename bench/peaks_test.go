package bench

import (
	"testing"

	"github.com/instructgo/instructgo/model"
)

// TestLookupPeak matches device names as the CUDA driver reports them to
// the datasheet figures, and leaves unknown or unconfirmed cards without
// one.
func TestLookupPeak(t *testing.T) {
	for _, tc := range []struct {
		device           string
		card             string // "" for no match
		bf16, tf32, fp32 float64
	}{
		{"NVIDIA H100 80GB HBM3", "H100 SXM5", 989.5, 494.5, 67},
		{"NVIDIA H100 PCIe", "H100 PCIe", 756.5, 378, 51},
		{"NVIDIA H100 NVL", "H100 NVL", 835.5, 0, 0},
		{"NVIDIA H200", "H200", 989.5, 494.5, 67},
		{"NVIDIA A100-SXM4-80GB", "A100", 312, 156, 19.5},
		{"NVIDIA A100-SXM4-40GB", "A100", 312, 156, 19.5},
		{"NVIDIA A100-PCIE-40GB", "A100", 312, 156, 19.5},
		{"NVIDIA A100 80GB PCIe", "A100", 312, 156, 19.5},
		{"NVIDIA A10", "A10", 125, 62.5, 31.2},
		{"NVIDIA L4", "L4", 121, 60, 30.3},
		{"NVIDIA L40S", "L40S", 362, 183, 91.6},
		{"NVIDIA GeForce RTX 4090", "GeForce RTX 4090", 165.2, 82.6, 82.6},
		{"  nvidia h100 80gb hbm3  ", "H100 SXM5", 989.5, 494.5, 67}, // case and spaces
		// Not confirmed, or another card whose name contains a known one.
		{"NVIDIA H200 NVL", "", 0, 0, 0},
		{"NVIDIA GH200 480GB", "", 0, 0, 0},
		{"NVIDIA A10G", "", 0, 0, 0},
		{"NVIDIA L40", "", 0, 0, 0},
		{"NVIDIA H100", "", 0, 0, 0}, // variant unknown
		{"NVIDIA GeForce RTX 4090 D", "", 0, 0, 0},
		{"Tesla V100-SXM2-16GB", "", 0, 0, 0},
		{"cuda (CPU emulator)", "", 0, 0, 0},
		{"", "", 0, 0, 0},
	} {
		p, ok := LookupPeak(tc.device)
		if ok != (tc.card != "") || p.Card != tc.card {
			t.Errorf("LookupPeak(%q) = %q, %v; want %q", tc.device, p.Card, ok, tc.card)
			continue
		}
		if !ok {
			continue
		}
		if p.BF16 != tc.bf16 || p.TF32 != tc.tf32 || p.FP32 != tc.fp32 || p.Source == "" {
			t.Errorf("%s: bf16 %v tf32 %v fp32 %v TFLOP/s (source %q); want %v, %v, %v", tc.device, p.BF16, p.TF32, p.FP32, p.Source, tc.bf16, tc.tf32, tc.fp32)
		}
		// For picks the precision's figure, in GFLOP/s.
		if p.For(model.BF16) != tc.bf16*1e3 || p.For(model.TF32) != tc.tf32*1e3 || p.For(model.FP32) != tc.fp32*1e3 {
			t.Errorf("%s: For gives %v, %v, %v GFLOP/s", tc.device, p.For(model.BF16), p.For(model.TF32), p.For(model.FP32))
		}
	}
}

// TestPublishedFractions: a GPU run's published ceiling is the card's
// figure for the run's precision, and every FLOP rate, not a memory rate,
// gets a fraction of it beside its fraction of the measured ceiling.
func TestPublishedFractions(t *testing.T) {
	g, src := publishedCeiling("NVIDIA H100 PCIe", model.BF16)
	if g != 756500 || src != "H100 PCIe, bf16 dense: NVIDIA H100 datasheet (BF16 1,513, TF32 756 TFLOP/s with sparsity)" {
		t.Errorf("H100 PCIe bf16: %v GFLOP/s, %q", g, src)
	}
	if g, src := publishedCeiling("NVIDIA H100 NVL", model.TF32); g != 0 || src != "" {
		t.Errorf("H100 NVL tf32 (not published here): %v, %q; want none", g, src)
	}
	if g, _ := publishedCeiling("", model.FP32); g != 0 {
		t.Errorf("no GPU: %v GFLOP/s", g)
	}
	e := &env{ceil: Ceilings{ComputeGFLOPs: 800000, MemoryGBs: 2000, PublishedGFLOPs: 1e6}}
	if m, p := e.fractions(CeilCompute, 400e12); m != 0.5 || p != 0.4 {
		t.Errorf("400 TFLOP/s: %v of measured, %v of published; want 0.5 and 0.4", m, p)
	}
	if m, p := e.fractions(CeilMemory, 1000e9); m != 0.5 || p != 0 {
		t.Errorf("1000 GB/s: %v of measured, %v of published; want 0.5 and none", m, p)
	}
	// A step: the model FLOP rate, 2e12 FLOPs per call at 10 ms.
	r := e.result("step", "x", "s", "tokens/s", 1000, 1, CeilCompute, 2e12, measured{stats: Summarize([]float64{0.01})})
	if r.Value != 1e5 || r.OfMeasured != 0.25 || r.OfPublished != 0.2 {
		t.Errorf("step result %+v: want 100,000 tokens/s, 0.25 of measured, 0.2 of published", r)
	}
}
