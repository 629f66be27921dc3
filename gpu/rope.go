package gpu

import (
	"fmt"
	"math"
)

// The inverse frequencies of rotary position embeddings (Backend.RoPEForward
// reads them as a float32 tensor): computed once on the host, in float64,
// from a model's rope_theta and rope_scaling, and rounded once to float32.
// The scalings change only these numbers, so one kernel serves them all.

// RoPEScaling is a model's rope_scaling (Hugging Face config.json): Type
// "" or "default" (none), "linear" (every frequency divided by Factor), or
// "llama3" (Llama 3.1's: long wavelengths divided by Factor, short ones
// kept, a smooth blend between). Types that also scale the attention
// logits (YaRN, LongRoPE) or depend on the sequence length (dynamic NTK)
// are not supported.
type RoPEScaling struct {
	Type   string
	Factor float64
	// The llama3 type's: wavelengths above OriginalMaxPositions/
	// LowFreqFactor are divided by Factor, those below
	// OriginalMaxPositions/HighFreqFactor kept.
	LowFreqFactor, HighFreqFactor float64
	OriginalMaxPositions          int
}

// RoPEInvFreq returns the hs/2 inverse frequencies of a head of size hs:
// invFreq[i] = theta^(−2i/hs), then scaled as s says (nil: no scaling).
//
// llama3 follows transformers' _compute_llama3_parameters: with wavelength
// λ = 2π/f, low = L/LowFreqFactor and high = L/HighFreqFactor
// (L = OriginalMaxPositions), f is kept where λ < high, divided by Factor
// where λ > low, and otherwise (1−s)·f/Factor + s·f with
// s = (L/λ − LowFreqFactor)/(HighFreqFactor − LowFreqFactor).
func RoPEInvFreq(hs int, theta float64, s *RoPEScaling) ([]float32, error) {
	if hs <= 0 || hs%2 != 0 {
		return nil, fmt.Errorf("rope: head size %d, want an even size > 0", hs)
	}
	if !(theta > 1) || math.IsInf(theta, 0) {
		return nil, fmt.Errorf("rope: rope_theta %g, want a finite base > 1", theta)
	}
	scale, err := ropeScaler(s)
	if err != nil {
		return nil, err
	}
	inv := make([]float32, hs/2)
	for i := range inv {
		f := math.Pow(theta, -float64(2*i)/float64(hs))
		inv[i] = float32(scale(f))
	}
	return inv, nil
}

// ropeScaler validates a scaling and returns its map of one frequency.
func ropeScaler(s *RoPEScaling) (func(f float64) float64, error) {
	if s == nil || s.Type == "" || s.Type == "default" {
		return func(f float64) float64 { return f }, nil
	}
	if !(s.Factor >= 1) || math.IsInf(s.Factor, 0) {
		return nil, fmt.Errorf("rope: %s scaling factor %g, want finite ≥ 1", s.Type, s.Factor)
	}
	factor := s.Factor
	switch s.Type {
	case "linear":
		return func(f float64) float64 { return f / factor }, nil
	case "llama3":
		lo, hi := s.LowFreqFactor, s.HighFreqFactor
		if !(lo > 0 && hi > lo) || math.IsInf(hi, 0) || s.OriginalMaxPositions <= 0 {
			return nil, fmt.Errorf("rope: llama3 scaling with low_freq_factor %g, high_freq_factor %g, "+
				"original_max_position_embeddings %d: want 0 < low < high and a positive length", lo, hi, s.OriginalMaxPositions)
		}
		L := float64(s.OriginalMaxPositions)
		return func(f float64) float64 {
			wavelen := 2 * math.Pi / f
			switch {
			case wavelen < L/hi:
				return f
			case wavelen > L/lo:
				return f / factor
			}
			smooth := (L/wavelen - lo) / (hi - lo)
			return (1-smooth)*f/factor + smooth*f
		}, nil
	}
	return nil, fmt.Errorf("rope: rope_scaling type %q is not supported (default, linear, llama3)", s.Type)
}
