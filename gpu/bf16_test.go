package gpu

import (
	"math"
	"math/big"
	"math/rand/v2"
	"testing"
)

// refBF16 rounds x to bfloat16 by comparing distances exactly: the two
// bfloat16 neighbours of x (truncation and the next value up in
// magnitude), the nearer one, the one with an even last bit on a tie.
func refBF16(x float32) float32 {
	if math.IsNaN(float64(x)) {
		return float32(math.NaN())
	}
	u := math.Float32bits(x)
	lo := math.Float32frombits(u &^ 0xffff)
	hi := math.Float32frombits((u &^ 0xffff) + 0x10000) // next bf16 away from zero (may be Inf)
	dLo := new(big.Float).Sub(big.NewFloat(float64(x)), big.NewFloat(float64(lo)))
	dLo.Abs(dLo)
	var dHi *big.Float
	if math.IsInf(float64(hi), 0) {
		// Past the largest finite bf16 the next value is taken as 2^128
		// (IEEE rounds to infinity from the midpoint to it on).
		dHi = new(big.Float).Sub(new(big.Float).SetMantExp(big.NewFloat(1), 128), big.NewFloat(math.Abs(float64(x))))
		dHi.Abs(dHi)
	} else {
		dHi = new(big.Float).Sub(big.NewFloat(float64(hi)), big.NewFloat(float64(x)))
		dHi.Abs(dHi)
	}
	switch dLo.Cmp(dHi) {
	case -1:
		return lo
	case 1:
		return hi
	}
	if (u>>16)&1 == 0 {
		return lo
	}
	return hi
}

func TestBF16RoundsToNearestEven(t *testing.T) {
	cases := []struct {
		in   uint32
		want uint16
	}{
		{0x3f800000, 0x3f80}, // 1
		{0x3f808000, 0x3f80}, // 1 + half an ulp: tie, to even (down)
		{0x3f818000, 0x3f82}, // odd kept bit: tie rounds up
		{0x3f808001, 0x3f81}, // just above the tie
		{0xbf808001, 0xbf81}, // negative
		{0x7f7fffff, 0x7f80}, // the largest float32 overflows to +Inf
		{0xff7fffff, 0xff80},
		{0x00008000, 0x0000}, // a subnormal tie, to even
		{0x00018000, 0x0002},
		{0x80000000, 0x8000}, // −0 keeps its sign
		{0x7f800000, 0x7f80}, // +Inf
		{0x7fc00001, 0x7fff}, // NaN payloads become the quiet NaN
		{0xff800001, 0x7fff},
	}
	for _, c := range cases {
		if got := BF16Bits(math.Float32frombits(c.in)); got != c.want {
			t.Errorf("BF16Bits(%#08x) = %#04x, want %#04x", c.in, got, c.want)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 200000; i++ {
		x := math.Float32frombits(rng.Uint32())
		if math.IsNaN(float64(x)) {
			continue
		}
		got, want := RoundBF16(x), refBF16(x)
		if math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("RoundBF16(%g = %#08x) = %g, want %g", x, math.Float32bits(x), got, want)
		}
	}
}

func TestBF16WidensExactly(t *testing.T) {
	for b := 0; b < 1<<16; b++ {
		f := BF16Float(uint16(b))
		if math.IsNaN(float64(f)) {
			continue
		}
		if back := BF16Bits(f); back != uint16(b) {
			t.Fatalf("bits %#04x widen to %g and round back to %#04x", b, f, back)
		}
	}
}
