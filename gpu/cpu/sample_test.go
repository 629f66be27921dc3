package cpu

import (
	"math"
	"slices"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// sampleN runs Sample on rows of logits [n,v] and returns the tokens.
func sampleN(t *testing.T, b *Backend, logits []float32, n, v int, s gpu.Sampling, seed uint64) []int32 {
	t.Helper()
	tok := int32Of(t, b, make([]int32, n), n)
	b.Sample(tok, tensorOf(t, b, logits, n, v), s, seed)
	assertNoErr(t, b)
	return append([]int32(nil), I32(tok)...)
}

// repeatRow returns n copies of row.
func repeatRow(row []float32, n int) []float32 {
	out := make([]float32, 0, n*len(row))
	for i := 0; i < n; i++ {
		out = append(out, row...)
	}
	return out
}

// refProbs is the float64 softmax of z/temp restricted to the ids in keep
// (all when nil).
func refProbs(z []float32, temp float64, keep []int) []float64 {
	p := make([]float64, len(z))
	if keep == nil {
		for i := range z {
			keep = append(keep, i)
		}
	}
	m := math.Inf(-1)
	for _, i := range keep {
		m = math.Max(m, float64(z[i])/temp)
	}
	var sum float64
	for _, i := range keep {
		p[i] = math.Exp(float64(z[i])/temp - m)
		sum += p[i]
	}
	for i := range p {
		p[i] /= sum
	}
	return p
}

// refOrder lists ids by descending logit, ties to the lower id.
func refOrder(z []float32) []int {
	ids := make([]int, len(z))
	for i := range ids {
		ids[i] = i
	}
	slices.SortStableFunc(ids, func(a, b int) int {
		switch {
		case z[a] > z[b]:
			return -1
		case z[a] < z[b]:
			return 1
		}
		return 0
	})
	return ids
}

// refNucleus is the shortest prefix of ids (by descending probability)
// whose probabilities add up to at least p.
func refNucleus(prob []float64, ids []int, p float64) []int {
	var c float64
	for n, id := range ids {
		c += prob[id]
		if c >= p {
			return ids[:n+1]
		}
	}
	return ids
}

// checkFrequencies draws n tokens and checks every id's frequency against
// want within 5 standard errors (and ids of probability 0 never drawn).
func checkFrequencies(t *testing.T, got []int32, want []float64) {
	t.Helper()
	counts := make([]float64, len(want))
	for _, id := range got {
		counts[id]++
	}
	n := float64(len(got))
	for i, p := range want {
		f := counts[i] / n
		if p == 0 {
			if counts[i] != 0 {
				t.Errorf("id %d drawn %d times, want never", i, int(counts[i]))
			}
			continue
		}
		se := math.Sqrt(p * (1 - p) / n)
		if math.Abs(f-p) > 5*se {
			t.Errorf("id %d: frequency %.4f, want %.4f ± %.4f (5 SE)", i, f, p, 5*se)
		}
	}
}

func TestSampleGreedyIsArgmax(t *testing.T) {
	r := testRNG(10)
	const n, v = 37, 301
	z := randn(r, n*v, 2)
	inf := float32(math.Inf(-1))
	z[0*v+5], z[0*v+17] = 50, 50     // tie: the lower id wins
	z[1*v+0], z[1*v+299] = 40, inf   // -Inf entries are fine
	for i := 2*v + 1; i < 3*v; i++ { // row 2: only id 0 finite
		z[i] = inf
	}
	for _, threads := range []int{1, 2} {
		// TopK and TopP are ignored at temperature 0.
		got := sampleN(t, New(threads), z, n, v, gpu.Sampling{TopK: 3, TopP: 0.5}, 99)
		for i := 0; i < n; i++ {
			want := refOrder(z[i*v : (i+1)*v])[0]
			if int(got[i]) != want {
				t.Fatalf("row %d: got %d, want argmax %d", i, got[i], want)
			}
		}
		if got[0] != 5 || got[2] != 0 {
			t.Fatalf("tie row → %d (want 5), single finite row → %d (want 0)", got[0], got[2])
		}
	}
}

func TestSampleMatchesSoftmaxAtTemperature(t *testing.T) {
	z := []float32{1.5, -0.3, 0.2, 2.1, -1.7, math.Float32frombits(0xff800000), 0.9}
	const n = 40000
	for _, temp := range []float32{1, 0.6, 2.5} {
		var got []int32
		// Many rows of one call and several seeds both vary the draw.
		for seed := uint64(0); seed < 4; seed++ {
			got = append(got, sampleN(t, New(2), repeatRow(z, n/4), n/4, len(z), gpu.Sampling{Temperature: temp}, seed)...)
		}
		checkFrequencies(t, got, refProbs(z, float64(temp), []int{0, 1, 2, 3, 4, 6}))
	}
}

func TestSampleTopKStaysInTopK(t *testing.T) {
	r := testRNG(11)
	const n, v, k = 500, 97, 5
	z := randn(r, n*v, 1)
	for i := 0; i < n; i += 7 {
		z[i*v+3] = z[i*v+4] // ties at random places, sometimes inside the top k
	}
	for _, s := range []gpu.Sampling{{Temperature: 1, TopK: k}, {Temperature: 3, TopK: k, TopP: 0.9}} {
		got := sampleN(t, New(2), z, n, v, s, 5)
		for i := 0; i < n; i++ {
			top := refOrder(z[i*v : (i+1)*v])[:k]
			if !slices.Contains(top, int(got[i])) {
				t.Fatalf("%+v row %d: %d is not among the top %d %v", s, i, got[i], k, top)
			}
		}
	}

	// Frequencies: the softmax renormalised over the top k.
	row := []float32{0.3, 1.2, -0.4, 0.9, 1.2, 0.1}
	const draws = 30000
	got := sampleN(t, New(2), repeatRow(row, draws), draws, len(row), gpu.Sampling{Temperature: 0.8, TopK: 3}, 17)
	checkFrequencies(t, got, refProbs(row, 0.8, []int{1, 4, 3}))
	// A tie at the k-th place keeps the lower id, also when the later id
	// meets the earlier one at the root of the heap.
	row = []float32{0, 1, 2, 1, 3}
	got = sampleN(t, New(1), repeatRow(row, 2000), 2000, len(row), gpu.Sampling{Temperature: 1, TopK: 3}, 1)
	checkFrequencies(t, got, refProbs(row, 1, []int{4, 2, 1}))
	row = []float32{3, 1, 2, 1, 0}
	got = sampleN(t, New(1), repeatRow(row, 2000), 2000, len(row), gpu.Sampling{Temperature: 1, TopK: 3}, 1)
	checkFrequencies(t, got, refProbs(row, 1, []int{0, 2, 1}))
}

func TestSampleTopPKeepsExactlyTheNucleus(t *testing.T) {
	// Probabilities 0.4, 0.25, 0.15, 0.1, 0.06, 0.04: p = 0.75 keeps
	// {0.4, 0.25, 0.15} (0.8 ≥ 0.75; 0.65 falls short).
	probs := []float64{0.1, 0.4, 0.04, 0.15, 0.25, 0.06}
	row := make([]float32, len(probs))
	for i, p := range probs {
		row[i] = float32(math.Log(p))
	}
	const draws = 30000
	got := sampleN(t, New(2), repeatRow(row, draws), draws, len(row), gpu.Sampling{Temperature: 1, TopP: 0.75}, 3)
	checkFrequencies(t, got, refProbs(row, 1, []int{1, 4, 3}))
	// p = 0.6 keeps two tokens (0.65 ≥ 0.6).
	got = sampleN(t, New(2), repeatRow(row, draws), draws, len(row), gpu.Sampling{Temperature: 1, TopP: 0.6}, 4)
	checkFrequencies(t, got, refProbs(row, 1, []int{1, 4}))
	// 0.8 just reaches p = 0.79: still three tokens.
	got = sampleN(t, New(2), repeatRow(row, draws), draws, len(row), gpu.Sampling{Temperature: 1, TopP: 0.79}, 5)
	checkFrequencies(t, got, refProbs(row, 1, []int{1, 4, 3}))
	// A tiny p keeps the most probable token only.
	got = sampleN(t, New(1), repeatRow(row, 100), 100, len(row), gpu.Sampling{Temperature: 1, TopP: 1e-6}, 4)
	checkFrequencies(t, got, refProbs(row, 1, []int{1}))

	// Wide rows exercise the candidate filter: every draw lies in the
	// reference nucleus, and over many rows the nucleus is used whole.
	r := testRNG(12)
	const n, v = 200, 3000
	z := randn(r, n*v, 2.5)
	for _, s := range []gpu.Sampling{{Temperature: 0.7, TopP: 0.9}, {Temperature: 1.3, TopP: 0.5}, {Temperature: 1, TopP: 0.99, TopK: 40}} {
		got := sampleN(t, New(2), z, n, v, s, 8)
		for i := 0; i < n; i++ {
			zi := z[i*v : (i+1)*v]
			ids := refOrder(zi)
			keep := ids
			if s.TopK > 0 {
				keep = ids[:s.TopK]
			}
			nuc := refNucleus(refProbs(zi, float64(s.Temperature), keep), keep, float64(s.TopP))
			if !slices.Contains(nuc, int(got[i])) {
				t.Fatalf("%+v row %d: %d outside the nucleus of %d tokens", s, i, got[i], len(nuc))
			}
		}
	}
}

// TestSampleFollowsTheDocumentedDraw recomputes the procedure the contract
// states, in float64 with the same uniform draw per row, and expects the
// very same tokens: the cuda backend is held to the same rule.
func TestSampleFollowsTheDocumentedDraw(t *testing.T) {
	r := testRNG(15)
	const n, v, seed = 300, 41, 77
	z := randn(r, n*v, 1.5)
	z[5*v+3] = float32(math.Inf(-1))
	for _, s := range []gpu.Sampling{{Temperature: 0.8}, {Temperature: 1.2, TopK: 6}, {Temperature: 1, TopP: 0.7}, {Temperature: 0.5, TopK: 9, TopP: 0.8}} {
		got := sampleN(t, New(2), z, n, v, s, seed)
		for i := 0; i < n; i++ {
			zi := z[i*v : (i+1)*v]
			ids := refOrder(zi)
			if s.TopK > 0 {
				ids = ids[:s.TopK]
			}
			prob := refProbs(zi, float64(s.Temperature), ids)
			if s.TopP > 0 && s.TopP < 1 {
				ids = refNucleus(prob, ids, float64(s.TopP))
			}
			ids = slices.Clone(ids)
			slices.Sort(ids)
			var sum float64
			for _, id := range ids {
				sum += prob[id]
			}
			u := float64(gpu.Mix64(seed, uint64(i))>>11) / (1 << 53)
			want, c := -1, 0.0
			for _, id := range ids {
				if c += prob[id]; u*sum < c {
					want = id
					break
				}
			}
			if int(got[i]) != want {
				t.Fatalf("%+v row %d: drew %d, the documented procedure gives %d", s, i, got[i], want)
			}
		}
	}
}

func TestSampleIsReproducible(t *testing.T) {
	r := testRNG(13)
	const n, v = 64, 500
	z := randn(r, n*v, 1)
	for _, s := range []gpu.Sampling{{Temperature: 1}, {Temperature: 0.9, TopK: 20}, {Temperature: 1.1, TopP: 0.8}, {Temperature: 1, TopK: 50, TopP: 0.7}} {
		a := sampleN(t, New(1), z, n, v, s, 42)
		b := sampleN(t, New(3), z, n, v, s, 42)
		c := sampleN(t, New(2), z, n, v, s, 43)
		if !slices.Equal(a, b) {
			t.Errorf("%+v: same seed, different tokens across thread counts", s)
		}
		if slices.Equal(a, c) {
			t.Errorf("%+v: seeds 42 and 43 drew identical tokens for %d rows", s, n)
		}
	}
}

// TestSampleRejectsNonFiniteRows: a row without a finite maximum, the one
// rule the backend checks itself (the argument rules are gpu.Checker's),
// is reported with gpu.SampleRowError for the lowest such row, greedy or
// not.
func TestSampleRejectsNonFiniteRows(t *testing.T) {
	const n, v = 3, 4
	inf := float32(math.Inf(1))
	good := []float32{1, 2, 3, 4, 0.5, -1, 0.25, 2, -1, 5, 2, 2}
	withRow1 := func(row ...float32) []float32 {
		z := append([]float32(nil), good...)
		copy(z[v:2*v], row)
		return z
	}
	cases := []struct {
		name   string
		logits []float32
		s      gpu.Sampling
	}{
		{"all -Inf", withRow1(-inf, -inf, -inf, -inf), gpu.Sampling{Temperature: 1}},
		{"all -Inf greedy", withRow1(-inf, -inf, -inf, -inf), gpu.Sampling{}},
		{"NaN", withRow1(0, float32(math.NaN()), 1, 2), gpu.Sampling{Temperature: 1, TopK: 2}},
		{"NaN greedy", withRow1(float32(math.NaN()), 0, 1, 2), gpu.Sampling{}},
		{"+Inf", withRow1(0, inf, 1, 2), gpu.Sampling{Temperature: 1, TopP: 0.5}},
	}
	want := gpu.SampleRowError(1).Error()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := New(2)
			tok := int32Of(t, b, make([]int32, n), n)
			b.Sample(tok, tensorOf(t, b, tc.logits, n, v), tc.s, 1)
			if err := b.Err(); err == nil || err.Error() != want {
				t.Fatalf("error %v, want %q", err, want)
			}
		})
	}
}

// BenchmarkSample measures one decoding step's sampling for a batch of 16
// rows of GPT-2's vocabulary.
func BenchmarkSample(bm *testing.B) {
	r := testRNG(14)
	const n, v = 16, 50257
	b := New(0)
	z := tensorOf(bm, b, randn(r, n*v, 3), n, v)
	tok := int32Of(bm, b, make([]int32, n), n)
	for _, s := range []struct {
		name string
		s    gpu.Sampling
	}{
		{"greedy", gpu.Sampling{}},
		{"t1", gpu.Sampling{Temperature: 1}},
		{"topk50", gpu.Sampling{Temperature: 1, TopK: 50}},
		{"topp0.9", gpu.Sampling{Temperature: 1, TopP: 0.9}},
	} {
		bm.Run(s.name, func(bm *testing.B) {
			for i := 0; i < bm.N; i++ {
				b.Sample(tok, z, s.s, uint64(i))
			}
			if err := b.Err(); err != nil {
				bm.Fatal(err)
			}
		})
	}
}
