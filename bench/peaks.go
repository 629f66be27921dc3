package bench

import (
	"strings"

	"github.com/instructgo/instructgo/model"
)

// PublishedPeak is a card's dense matrix peak as its vendor publishes it,
// in TFLOP/s per precision mode: BF16 is bf16 inputs with fp32
// accumulation on tensor cores (what the bf16 mode's products do), TF32
// the TF32 tensor-core rate, FP32 the non-tensor float32 rate (what the
// fp32 mode's cuBLAS products run at, TF32 off). 0 is a figure that is not
// published or that we could not confirm: no fraction is printed against it.
type PublishedPeak struct {
	Card             string // which card the figures are for
	BF16, TF32, FP32 float64
	Source           string // where they come from
	// match reports whether a device name, split into upper-case tokens,
	// names this card.
	match func(tok map[string]bool) bool
}

// For is the peak in GFLOP/s for a precision mode (0: none published).
func (p PublishedPeak) For(prec model.Precision) float64 {
	switch prec {
	case model.BF16:
		return p.BF16 * 1e3
	case model.TF32:
		return p.TF32 * 1e3
	}
	return p.FP32 * 1e3
}

// publishedPeaks are the cards whose dense peaks we could confirm, matched
// by the name the CUDA driver reports (cuDeviceGetName: "NVIDIA H100 80GB
// HBM3", "NVIDIA H100 PCIe", "NVIDIA A100-SXM4-80GB", ...). Vendors print
// the tensor-core figures "with sparsity" (2:4 structured), twice the dense
// rate; where a datasheet gives only those, the dense figure here is half
// of it. A card absent here, or a variant whose figures we could not
// confirm (H200 NVL, A10G, GH200, H100 NVL's TF32 and FP32), gets no
// published fraction rather than a guess. Sources:
//
//   - H100: NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100):
//     SXM5 BF16 1,979 and TF32 989 TFLOP/s with sparsity, FP32 67; PCIe
//     1,513, 756 and 51; NVL BF16 1,671 with sparsity. The SXM5 board
//     reports itself as "H100 80GB HBM3" (llm.c's llmc/mfu.h table of
//     driver names; PyTorch Lightning's throughput utilities read "HBM3"
//     the same way).
//   - H200: NVIDIA H200 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h200):
//     the H100 SXM5's compute, BF16 1,979 and TF32 989 with sparsity, FP32 67.
//   - A100 (every variant, SXM4 and PCIe, 40 and 80 GB): NVIDIA A100
//     datasheet (nvidia-a100-datasheet-us-nvidia-1758950-r4-web.pdf): BF16
//     312, TF32 156, FP32 19.5 dense.
//   - A10: NVIDIA A10 datasheet (a10-datasheet.pdf): BF16 125, TF32 62.5,
//     FP32 31.2 dense.
//   - L4: NVIDIA L4 datasheet (resources.nvidia.com, l4-gpu-datasheet): BF16
//     242 and TF32 120 with sparsity, FP32 30.3.
//   - L40S: NVIDIA L40S datasheet (resources.nvidia.com, l40s-datasheet-28413):
//     BF16 362, TF32 183, FP32 91.6 dense.
//   - GeForce RTX 4090: NVIDIA Ada GPU Architecture whitepaper, appendix:
//     "Peak BF16 Tensor TFLOPS with FP32 Accumulate" 165.2 dense (330.4
//     with sparsity), TF32 82.6, FP32 82.6. GeForce cards run fp16 at twice
//     that rate only with fp16 accumulation (330.3); bf16 accumulates in
//     fp32 only, as our products do, so 165.2 is the figure.
var publishedPeaks = []PublishedPeak{
	{Card: "H100 NVL", BF16: 1671.0 / 2, Source: "NVIDIA H100 datasheet (BF16 1,671 TFLOP/s with sparsity)",
		match: func(t map[string]bool) bool { return t["H100"] && t["NVL"] }},
	{Card: "H100 PCIe", BF16: 1513.0 / 2, TF32: 756.0 / 2, FP32: 51, Source: "NVIDIA H100 datasheet (BF16 1,513, TF32 756 TFLOP/s with sparsity)",
		match: func(t map[string]bool) bool { return t["H100"] && (t["PCIE"] || t["HBM2E"]) }},
	{Card: "H100 SXM5", BF16: 1979.0 / 2, TF32: 989.0 / 2, FP32: 67, Source: "NVIDIA H100 datasheet (BF16 1,979, TF32 989 TFLOP/s with sparsity)",
		match: func(t map[string]bool) bool { return t["H100"] && (t["HBM3"] || t["SXM"] || t["SXM5"]) }},
	{Card: "H200", BF16: 1979.0 / 2, TF32: 989.0 / 2, FP32: 67, Source: "NVIDIA H200 datasheet (BF16 1,979, TF32 989 TFLOP/s with sparsity)",
		match: func(t map[string]bool) bool { return t["H200"] && !t["NVL"] }},
	{Card: "A100", BF16: 312, TF32: 156, FP32: 19.5, Source: "NVIDIA A100 datasheet",
		match: func(t map[string]bool) bool { return t["A100"] }},
	{Card: "A10", BF16: 125, TF32: 62.5, FP32: 31.2, Source: "NVIDIA A10 datasheet",
		match: func(t map[string]bool) bool { return t["A10"] }},
	{Card: "L4", BF16: 242.0 / 2, TF32: 120.0 / 2, FP32: 30.3, Source: "NVIDIA L4 datasheet (BF16 242, TF32 120 TFLOP/s with sparsity)",
		match: func(t map[string]bool) bool { return t["L4"] }},
	{Card: "L40S", BF16: 362, TF32: 183, FP32: 91.6, Source: "NVIDIA L40S datasheet",
		match: func(t map[string]bool) bool { return t["L40S"] }},
	{Card: "GeForce RTX 4090", BF16: 165.2, TF32: 82.6, FP32: 82.6, Source: "NVIDIA Ada GPU Architecture whitepaper (BF16 with FP32 accumulate)",
		match: func(t map[string]bool) bool { return t["RTX"] && t["4090"] && !t["D"] }},
}

// LookupPeak finds the published peak of the card a device name (as the
// CUDA driver reports it) names. Tokens are compared whole, so "A10" is
// not "A100" or "A10G", "L4" not "L40S", "H200" not "GH200".
func LookupPeak(device string) (PublishedPeak, bool) {
	tok := map[string]bool{}
	for _, f := range strings.FieldsFunc(strings.ToUpper(device), func(r rune) bool { return r == ' ' || r == '-' || r == '_' }) {
		tok[f] = true
	}
	if len(tok) == 0 {
		return PublishedPeak{}, false
	}
	for _, p := range publishedPeaks {
		if p.match(tok) {
			return p, true
		}
	}
	return PublishedPeak{}, false
}
