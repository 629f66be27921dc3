package gpu

// Counter-based randomness shared by every backend: a value depends only on
// (seed, counter), so the cpu and cuda backends draw identical dropout masks
// and samples without sharing state, and a backward pass regenerates the
// forward pass's mask instead of storing it.

// Mix64 is the SplitMix64 finaliser applied to seed + counter·φ, where φ is
// the 64-bit golden ratio. It is a bijection of its input with good
// avalanche, cheap enough to call once per element.
func Mix64(seed, counter uint64) uint64 {
	z := seed + (counter+1)*0x9E3779B97F4A7C15
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
	z = (z ^ (z >> 27)) * 0x94D049BB133111EB
	return z ^ (z >> 31)
}

// Uniform returns a float32 in [0, 1) from the top 24 bits of
// Mix64(seed, counter); every value is exactly representable.
func Uniform(seed, counter uint64) float32 {
	return float32(Mix64(seed, counter)>>40) * (1.0 / (1 << 24))
}

// DropoutUniform is the uniform draw that decides whether element i of a
// Dropout call with this seed is dropped (draw < p).
func DropoutUniform(seed uint64, i int) float32 { return Uniform(seed, uint64(i)) }
