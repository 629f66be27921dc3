package cpu

// decodeScoresAVX2 sets s[j] = scale·(q·k_j) for the n contiguous key rows
// k_j of hs floats, hs a multiple of 8 (decode_amd64.s).
//
//go:noescape
func decodeScoresAVX2(s, q, k *float32, n, hs int, scale float32)

// decodeMixAVX2 sets o = Σ_j w[j]·v_j over the n ≥ 1 contiguous value rows
// v_j of hs floats, hs a multiple of 8 (decode_amd64.s).
//
//go:noescape
func decodeMixAVX2(o, w, v *float32, n, hs int)

// decodeAVX2 is the decoding loops on AVX2+FMA.
var decodeAVX2 = &decodeKernel{
	scores: func(s, q, k []float32, scale float32) {
		hs := len(q)
		_ = k[len(s)*hs-1]
		decodeScoresAVX2(&s[0], &q[0], &k[0], len(s), hs, scale)
	},
	mix: func(o, w, v []float32) {
		hs := len(o)
		_ = v[len(w)*hs-1]
		decodeMixAVX2(&o[0], &w[0], &v[0], len(w), hs)
	},
}

// bestDecode returns the decoding loops of this CPU, or nil.
func bestDecode() *decodeKernel {
	if hasAVX2FMA {
		return decodeAVX2
	}
	return nil
}
