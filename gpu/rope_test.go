package gpu

import (
	"math"
	"testing"
)

// RoPEInvFreq's frequencies, against their definitions written out here.

func TestRoPEInvFreqDefault(t *testing.T) {
	for _, hs := range []int{2, 32, 64, 128} {
		for _, theta := range []float64{10000, 500000, 1e6} {
			got, err := RoPEInvFreq(hs, theta, nil)
			if err != nil || len(got) != hs/2 {
				t.Fatalf("hs %d theta %g: %d values, %v", hs, theta, len(got), err)
			}
			for i, g := range got {
				// 1/theta^(2i/hs), as exp(−(2i/hs)·ln theta).
				want := float32(math.Exp(-float64(2*i) / float64(hs) * math.Log(theta)))
				if d := math.Abs(float64(g-want)) / float64(want); d > 0x1p-23 {
					t.Fatalf("hs %d theta %g: invFreq[%d] = %v, want %v", hs, theta, i, g, want)
				}
			}
		}
	}
	same, _ := RoPEInvFreq(64, 10000, &RoPEScaling{Type: "default", Factor: 3})
	base, _ := RoPEInvFreq(64, 10000, nil)
	for i := range base {
		if same[i] != base[i] {
			t.Fatalf("type default changed invFreq[%d]", i)
		}
	}
}

func TestRoPEInvFreqLinear(t *testing.T) {
	base, _ := RoPEInvFreq(64, 10000, nil)
	got, err := RoPEInvFreq(64, 10000, &RoPEScaling{Type: "linear", Factor: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if math.Abs(float64(got[i])*4-float64(base[i])) > 0x1p-23*float64(base[i]) {
			t.Fatalf("invFreq[%d] = %v, want %v/4", i, got[i], base[i])
		}
	}
}

// TestRoPEInvFreqLlama3 checks Llama 3.2 1B's scaling (rope_theta 500000,
// head size 64, factor 32, low 1, high 4, 8192 original positions): the
// wavelengths below 8192/4 keep their frequency, those above 8192/1 are
// divided by the factor, and between them the frequency moves smoothly from
// the one to the other (the blend meets both ends), never increasing with i.
func TestRoPEInvFreqLlama3(t *testing.T) {
	s := &RoPEScaling{Type: "llama3", Factor: 32, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 8192}
	const hs, theta = 64, 500000.0
	got, err := RoPEInvFreq(hs, theta, s)
	if err != nil {
		t.Fatal(err)
	}
	kept, divided, blended := 0, 0, 0
	for i, g := range got {
		f := math.Pow(theta, -float64(2*i)/hs)
		wl := 2 * math.Pi / f
		var want float64
		switch {
		case wl < 8192/4.0:
			want, kept = f, kept+1
		case wl > 8192/1.0:
			want, divided = f/32, divided+1
		default:
			// The weight of the unscaled frequency grows linearly in
			// 8192/λ from 0 at λ = 8192 to 1 at λ = 2048.
			w := (8192/wl - 1) / 3
			want, blended = f*w+f/32*(1-w), blended+1
			if !(f/32 <= want && want <= f) {
				t.Fatalf("invFreq[%d]: blend %g outside [f/32, f] = [%g, %g]", i, want, f/32, f)
			}
		}
		if d := math.Abs(float64(g)-want) / want; d > 0x1p-23 {
			t.Fatalf("invFreq[%d] = %v, want %v", i, g, want)
		}
		if i > 0 && g > got[i-1] {
			t.Fatalf("invFreq[%d] = %v > invFreq[%d] = %v", i, g, i-1, got[i-1])
		}
	}
	if kept == 0 || divided == 0 || blended == 0 {
		t.Fatalf("the case covers %d kept, %d divided and %d blended frequencies, want some of each", kept, divided, blended)
	}
	// The blend is continuous: at the two boundary wavelengths it gives the
	// neighbouring rules' values.
	scale, _ := ropeScaler(s)
	for _, c := range []struct{ wl, want float64 }{{2048, 1}, {8192, 1.0 / 32}} {
		f := 2 * math.Pi / c.wl
		if g := scale(f) / f; math.Abs(g-c.want) > 1e-12 {
			t.Errorf("wavelength %g: scaled by %g, want %g", c.wl, g, c.want)
		}
	}
}

func TestRoPEInvFreqRejects(t *testing.T) {
	for _, c := range []struct {
		name  string
		hs    int
		theta float64
		s     *RoPEScaling
		want  string
	}{
		{"odd head", 63, 10000, nil, "head size 63"},
		{"zero head", 0, 10000, nil, "head size 0"},
		{"theta 1", 64, 1, nil, "rope_theta 1"},
		{"theta NaN", 64, nan(), nil, "rope_theta NaN"},
		{"unknown type", 64, 10000, &RoPEScaling{Type: "yarn", Factor: 4}, `type "yarn" is not supported`},
		{"factor below 1", 64, 10000, &RoPEScaling{Type: "linear", Factor: 0.5}, "factor 0.5"},
		{"llama3 factors", 64, 10000, &RoPEScaling{Type: "llama3", Factor: 8, LowFreqFactor: 4, HighFreqFactor: 1, OriginalMaxPositions: 8192}, "want 0 < low < high"},
		{"llama3 length", 64, 10000, &RoPEScaling{Type: "llama3", Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4}, "original_max_position_embeddings 0"},
	} {
		_, err := RoPEInvFreq(c.hs, c.theta, c.s)
		wantErr(t, c.name, err, "rope: ", c.want)
	}
}
