package cpu

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// TestBF16Storage: a bf16 tensor holds each uploaded value rounded to
// nearest even and downloads it exactly; Convert rounds and widens the
// same way; Fill rounds once; Copy copies bits; AdamW's bf16 copy is the
// updated params rounded.
func TestBF16Storage(t *testing.T) {
	b := New(2)
	rng := rand.New(rand.NewPCG(3, 9))
	const n = 1000
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(rng.NormFloat64() * 5)
	}
	round := func(xs []float32) []float32 {
		out := make([]float32, len(xs))
		for i, x := range xs {
			out[i] = gpu.RoundBF16(x)
		}
		return out
	}
	want := round(vals)
	bt, err := b.Alloc(gpu.BF16, n)
	if err != nil {
		t.Fatal(err)
	}
	if bt.DType() != gpu.BF16 || bt.DType().Size() != 2 {
		t.Fatalf("dtype %v of size %d", bt.DType(), bt.DType().Size())
	}
	if err := b.Upload(bt, vals); err != nil {
		t.Fatal(err)
	}
	got := make([]float32, n)
	if err := b.Download(got, bt); err != nil {
		t.Fatal(err)
	}
	equal := func(what string, got, want []float32) {
		t.Helper()
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%s[%d] = %g, want %g", what, i, got[i], want[i])
			}
		}
	}
	equal("download", got, want)
	for i, x := range got {
		if math.Abs(float64(x-vals[i])) > math.Abs(float64(vals[i]))/256 {
			t.Fatalf("value %d: %g rounded to %g, more than half a bf16 ulp", i, vals[i], x)
		}
	}

	ft, _ := b.Alloc(gpu.Float32, n)
	copy(F32(ft), vals)
	ct, _ := b.Alloc(gpu.BF16, n)
	b.Convert(ct, ft)
	b.Convert(ft, ct)
	equal("convert there and back", F32(ft), want)

	b.Copy(bt, ct)
	b.Fill(ct, 0.1)
	if err := b.Download(got, bt); err != nil {
		t.Fatal(err)
	}
	equal("copy", got, want)
	if err := b.Download(got, ct); err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != gpu.RoundBF16(0.1) {
			t.Fatalf("fill[%d] = %g", i, got[i])
		}
	}

	p, _ := b.Alloc(gpu.Float32, n)
	g, _ := b.Alloc(gpu.Float32, n)
	m, _ := b.Alloc(gpu.Float32, n)
	v, _ := b.Alloc(gpu.Float32, n)
	copy(F32(p), vals)
	for i := range F32(g) {
		F32(g)[i] = float32(rng.NormFloat64())
	}
	b.AdamW(p, ct, g, m, v, nil, gpu.AdamW{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, Step: 1})
	if err := b.Download(got, ct); err != nil {
		t.Fatal(err)
	}
	equal("adamw bf16 copy", got, round(F32(p)))
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
}

// TestBF16ConversionKernels: every kernel set's widening gives
// gpu.BF16Float of each of the 65536 bf16 patterns, and its rounding
// gpu.BF16Bits of every float32 whose low half is at or next to a rounding
// boundary (ties to even and odd, just below and above), of every sign,
// exponent and NaN payload in the high half, and of random patterns; the
// lengths leave tails past the vector width.
func TestBF16ConversionKernels(t *testing.T) {
	src := make([]uint16, 1<<16+7)
	for i := range src {
		src[i] = uint16(i)
	}
	var xs []float32
	for hi := range 1 << 16 {
		for _, lo := range []uint32{0, 1, 0x7fff, 0x8000, 0x8001, 0xffff} {
			xs = append(xs, math.Float32frombits(uint32(hi)<<16|lo))
		}
	}
	rng := rand.New(rand.NewPCG(5, 6))
	for range 100003 {
		xs = append(xs, math.Float32frombits(rng.Uint32()))
	}
	for _, k := range vecKernels() {
		wide := make([]float32, len(src))
		k.widenBF16(wide, src)
		for i, b := range src {
			if math.Float32bits(wide[i]) != math.Float32bits(gpu.BF16Float(b)) {
				t.Fatalf("%s: widen %#04x = %#08x, want %#08x", k.name, b, math.Float32bits(wide[i]), math.Float32bits(gpu.BF16Float(b)))
			}
		}
		bits := make([]uint16, len(xs))
		k.roundBF16(bits, xs)
		for i, x := range xs {
			if bits[i] != gpu.BF16Bits(x) {
				t.Fatalf("%s: round %#08x = %#04x, want %#04x", k.name, math.Float32bits(x), bits[i], gpu.BF16Bits(x))
			}
		}
	}
}
