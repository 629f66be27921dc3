package bench

import "github.com/instructgo/instructgo/model"

// The FLOP counts behind every FLOP rate and MFU figure (a multiply-add
// counts two), and the byte count of the cross-entropy figure.

// MatMulFLOPs is the cost of one [m,k]·[k,n] product: 2·m·n·k.
func MatMulFLOPs(m, n, k int) float64 {
	return 2 * float64(m) * float64(n) * float64(k)
}

// AttentionFLOPs is fused attention's FLOP count in FlashAttention's
// convention, so that its rates read like the published FlashAttention
// figures: the forward pass over B sequences of T tokens with nHead heads
// of size hs counts 4·B·nHead·T²·hs (two products of T×T×hs per head),
// halved for causal attention, which forms about half of the scores; the
// backward pass counts 2.5 times the forward (five products against two,
// the scores recomputed). This is the count of the FlashAttention-2 paper
// (Dao 2023, arXiv 2307.08691, section 4.1) and of its repository's
// benchmarks/benchmark_flash_attention.py.
func AttentionFLOPs(B, T, nHead, hs int, backward bool) float64 {
	f := 4 * float64(B) * float64(nHead) * float64(hs) * float64(T) * float64(T) / 2
	if backward {
		f *= 2.5
	}
	return f
}

// DecodeAttentionFLOPs is one single-query attention step per sequence over
// S cached positions: scores and weighted values, 4·B·nHead·S·hs.
func DecodeAttentionFLOPs(B, S, nHead, hs int) float64 {
	return 4 * float64(B) * float64(nHead) * float64(S) * float64(hs)
}

// TrainFLOPsPerToken is the cost of training on one token of a sequence of
// T tokens with llm.c's count: 6·N for the products with the N parameters
// (forward 2·N, backward 4·N) and 6·L·C·T for causal attention. N counts
// every parameter as llm.c does (the position table too). A scalar-head
// model (reward model, value function) never multiplies by the token
// table: its V·C embedding parameters are left out of N there.
func TrainFLOPsPerToken(cfg model.Config, T int) float64 {
	return 6*productParams(cfg) + 6*float64(cfg.NLayer*cfg.NEmbd*T)
}

// ForwardFLOPsPerToken is the forward third of TrainFLOPsPerToken:
// 2·N + 2·L·C·T.
func ForwardFLOPsPerToken(cfg model.Config, T int) float64 {
	return 2*productParams(cfg) + 2*float64(cfg.NLayer*cfg.NEmbd*T)
}

// productParams is N of the FLOP counts: every parameter, less the token
// table of a scalar-head model (a lookup there, never a product).
func productParams(cfg model.Config) float64 {
	n := float64(cfg.NumParams())
	if cfg.ScalarHead {
		n -= float64(cfg.VocabSize * cfg.NEmbd)
	}
	return n
}

// GenerateFLOPs is the forward cost of generating newTokens tokens after a
// prompt of promptLen tokens for one sequence, the way model.Generate does
// it: a prefill of the prompt (the body over every prompt token, the LM
// head at its last token only), then newTokens−1 decoding steps (the last
// sampled token is never fed back), step j attending over promptLen+j
// cached positions: 2·N + 4·L·C·(promptLen+j) each.
func GenerateFLOPs(cfg model.Config, promptLen, newTokens int) float64 {
	L, C := float64(cfg.NLayer), float64(cfg.NEmbd)
	N := float64(cfg.NumParams())
	head := float64(cfg.VocabSize) * C
	p := float64(promptLen)
	f := p*(2*(N-head)+2*L*C*p) + 2*head
	for j := 1; j < newTokens; j++ {
		f += 2*N + 4*L*C*float64(promptLen+j)
	}
	return f
}

// CrossEntropyBytes is the memory the cross-entropy of N rows of V logits
// must move at the least, whatever the kernels: one read of the logits and
// one write of their gradient, elemSize bytes each (the activation
// dtype's). The unfused log-softmax pair moves more (the backward reads
// the logits again), which shows as a lower fraction of the memory
// ceiling, not as more bytes.
func CrossEntropyBytes(N, V, elemSize int) float64 {
	return 2 * float64(N) * float64(V) * float64(elemSize)
}
