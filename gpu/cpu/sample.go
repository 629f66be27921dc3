package cpu

import (
	"math"
	"slices"
	"sync"

	"github.com/instructgo/instructgo/gpu"
)

// Token sampling, one row of logits per worker at a time, following the
// procedure gpu.Backend.Sample defines. Top-k selects with a bounded heap
// (O(V log k)). Top-p sorts only the candidates that can be in the nucleus:
// one pass files every weight into a histogram of quarter-octave buckets
// (the top bits of its float64 representation, monotone in the weight),
// the buckets are summed from the top until they hold p of the mass, and
// only the tokens in those buckets are sorted (if rounding leaves the
// nucleus unfinished, every token of positive weight is). Scratch is O(V)
// per worker, reused across calls through a pool.

// sampleScratch is one worker's reusable memory for rows of V logits.
type sampleScratch struct {
	w    []float64 // unnormalised probabilities, by id
	idx  []int32   // candidate ids
	mass [sampleBuckets]float64
}

// sampleBuckets covers the histogram keys of weights in (0, 1]: the
// float64 bits shifted right by 50 (11 exponent bits and 2 mantissa bits)
// are at most 1023<<2 for 1.0.
const sampleBuckets = 1024 << 2

// sampleKey is the histogram bucket of a weight w in (0, 1].
func sampleKey(w float64) int { return int(math.Float64bits(w) >> 50) }

var samplePool = sync.Pool{New: func() any { return new(sampleScratch) }}

// Sample implements gpu.Backend.
func (b *Backend) Sample(tokens, logits *gpu.Tensor, s gpu.Sampling, seed uint64) {
	if b.err != nil {
		return
	}
	n, v, err := checker.Sample(tokens, logits, s)
	if b.fail(err) {
		return
	}
	t := float64(s.Temperature)
	defer b.actFlush()
	z, out := b.actIn(logits), I32(tokens)
	b.parallelFor(n, max(1, 32768/v), func(lo, hi int) {
		var sc *sampleScratch
		if t > 0 {
			sc = samplePool.Get().(*sampleScratch)
			defer samplePool.Put(sc)
			if cap(sc.w) < v {
				sc.w, sc.idx = make([]float64, v), make([]int32, v)
			}
		}
		for i := lo; i < hi; i++ {
			zi := z[i*v : (i+1)*v]
			if t == 0 {
				out[i] = sampleArgmax(zi)
				continue
			}
			out[i] = sampleRow(zi, t, s.TopK, float64(s.TopP), sampleUniform(seed, i), sc)
		}
	})
	for i, id := range out {
		if id < 0 {
			b.fail(gpu.SampleRowError(i))
			return
		}
	}
}

// sampleUniform is the draw of row i: the top 53 bits of Mix64(seed, i) as
// a float64 in [0, 1).
func sampleUniform(seed uint64, i int) float64 {
	return float64(gpu.Mix64(seed, uint64(i))>>11) * 0x1p-53
}

// sampleScan returns the largest logit of z and its lowest index, or −1
// when z holds a NaN or +Inf or only −Inf.
func sampleScan(z []float32) (best int, m float32) {
	best, m = -1, float32(math.Inf(-1))
	for i, x := range z {
		if x > m {
			if x > math.MaxFloat32 {
				return -1, m // +Inf
			}
			best, m = i, x
		} else if x != x {
			return -1, m // NaN
		}
	}
	return best, m
}

// sampleArgmax is greedy decoding: the lowest id of the largest logit, or
// −1 for an invalid row.
func sampleArgmax(z []float32) int32 {
	best, _ := sampleScan(z)
	return int32(best)
}

// sampleRow draws one token from z at temperature t > 0 with top-k k
// (0: none) and top-p p (0 or 1: none) using the uniform draw u; −1 for an
// invalid row.
func sampleRow(z []float32, t float64, k int, p, u float64, sc *sampleScratch) int32 {
	best, zmax := sampleScan(z)
	if best < 0 {
		return -1
	}
	v := len(z)
	w := sc.w[:v]
	xmax := float64(zmax) / t
	weight := func(i int32) float64 { return math.Exp(float64(z[i])/t - xmax) }
	nucleus := p > 0 && p < 1

	var kept []int32
	if k > 0 && k < v {
		// Top-k by logit, ties to the lower id: a heap of the best k
		// seen so far with the worst of them at the root.
		heap := sc.idx[:0]
		for i, x := range z {
			if math.IsInf(float64(x), -1) {
				continue
			}
			id := int32(i)
			if len(heap) < k {
				heap = append(heap, id)
				sampleSiftUp(heap, z, len(heap)-1)
			} else if x > z[heap[0]] { // equal logits keep the lower id already held
				heap[0] = id
				sampleSiftDown(heap, z, 0)
			}
		}
		for _, id := range heap {
			w[id] = weight(id)
		}
		kept = heap
		if nucleus {
			kept = sampleNucleus(kept, w, p, -1)
		}
	} else {
		var sum float64
		for i, x := range z {
			if math.IsInf(float64(x), -1) {
				w[i] = 0
				continue
			}
			w[i] = math.Exp(float64(x)/t - xmax)
			sum += w[i]
		}
		if !nucleus {
			return sampleInverseCDF(w, sum, u)
		}
		// Candidates for the nucleus: the tokens in the heaviest buckets
		// that together hold p of the mass.
		lowest := sampleBuckets
		for _, wi := range w {
			if wi > 0 {
				k := sampleKey(wi)
				sc.mass[k] += wi
				lowest = min(lowest, k)
			}
		}
		cut, c := lowest, 0.0
		for k := sampleBuckets - 1; k >= lowest; k-- {
			if c += sc.mass[k]; c >= p*sum {
				cut = k
				break
			}
		}
		clear(sc.mass[lowest:])
		cand := sc.idx[:0]
		for i, wi := range w {
			if wi > 0 && sampleKey(wi) >= cut {
				cand = append(cand, int32(i))
			}
		}
		kept = sampleNucleus(cand, w, p, sum)
		if kept == nil { // rounding left the nucleus unfinished: use every token
			cand = cand[:0]
			for i, wi := range w {
				if wi > 0 {
					cand = append(cand, int32(i))
				}
			}
			if kept = sampleNucleus(cand, w, p, sum); kept == nil {
				kept = cand
			}
		}
	}
	// Inverse CDF over the kept tokens in ascending id order.
	slices.Sort(kept)
	var sum float64
	for _, id := range kept {
		sum += w[id]
	}
	target, c := u*sum, 0.0
	last := int32(-1)
	for _, id := range kept {
		c += w[id]
		if w[id] > 0 {
			last = id
		}
		if target < c {
			return id
		}
	}
	return last // only reached through rounding
}

// sampleInverseCDF picks the first id whose cumulative weight exceeds
// u·sum, walking w in id order.
func sampleInverseCDF(w []float64, sum, u float64) int32 {
	target, c := u*sum, 0.0
	last := int32(-1)
	for i, wi := range w {
		c += wi
		if wi > 0 {
			last = int32(i)
		}
		if target < c {
			return int32(i)
		}
	}
	return last // only reached through rounding
}

// sampleNucleus sorts cand by descending weight (ties: lower id first) and
// returns its shortest prefix whose weights add up to at least p·total,
// where total < 0 means the sum of cand's weights. It returns nil when the
// whole of cand falls short.
func sampleNucleus(cand []int32, w []float64, p, total float64) []int32 {
	slices.SortFunc(cand, func(a, b int32) int {
		switch {
		case w[a] > w[b]:
			return -1
		case w[a] < w[b]:
			return 1
		}
		return int(a - b)
	})
	if total < 0 {
		total = 0
		for _, id := range cand {
			total += w[id]
		}
	}
	threshold, c := p*total, 0.0
	for n, id := range cand {
		c += w[id]
		if c >= threshold {
			return cand[:n+1]
		}
	}
	return nil
}

// sampleWorse orders heap entries: a is worse than b when its logit is
// lower, or equal with a higher id.
func sampleWorse(z []float32, a, b int32) bool {
	return z[a] < z[b] || (z[a] == z[b] && a > b)
}

func sampleSiftUp(h []int32, z []float32, i int) {
	for i > 0 {
		parent := (i - 1) / 2
		if !sampleWorse(z, h[i], h[parent]) {
			return
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func sampleSiftDown(h []int32, z []float32, i int) {
	for {
		l := 2*i + 1
		if l >= len(h) {
			return
		}
		worst := l
		if r := l + 1; r < len(h) && sampleWorse(z, h[r], h[l]) {
			worst = r
		}
		if !sampleWorse(z, h[worst], h[i]) {
			return
		}
		h[i], h[worst] = h[worst], h[i]
		i = worst
	}
}
