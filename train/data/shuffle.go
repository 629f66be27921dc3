package data

import (
	"math/bits"
	"math/rand/v2"
)

// permutation returns a seeded random permutation of 0..n−1: a
// Fisher–Yates shuffle driven by PCG (math/rand/v2's PCG-DXSM, seeded with
// (seed, stream)). The algorithm is spelled out here rather than taken
// from rand.Perm so that a saved data position means the same order in
// every build.
func permutation(n int, seed, stream uint64) []int {
	p := make([]int, n)
	for i := range p {
		p[i] = i
	}
	rng := rand.NewPCG(seed, stream)
	for i := n - 1; i > 0; i-- {
		j := int(below(rng, uint64(i)+1))
		p[i], p[j] = p[j], p[i]
	}
	return p
}

// below returns a uniform integer in [0, n), n > 0, by Lemire's
// multiply-and-reject method.
func below(rng *rand.PCG, n uint64) uint64 {
	hi, lo := bits.Mul64(rng.Uint64(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(rng.Uint64(), n)
		}
	}
	return hi
}
