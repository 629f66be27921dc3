package model

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/gpu/cpu"
)

// testConfig is small enough for finite differences over every parameter
// yet exercises several heads, layers and a vocabulary wider than C.
func testConfig() Config {
	return Config{VocabSize: 11, MaxSeqLen: 7, NLayer: 2, NHead: 2, NEmbd: 8, Tokenizer: "byte"}
}

// randomParams draws parameters far from GPT-2's init so every path of the
// network carries signal: gains near 1, biases and weights of order 0.3.
func randomParams(cfg Config, rng *rand.Rand) []float32 {
	var out []float32
	for _, s := range cfg.layout() {
		for i := 0; i < s.size(); i++ {
			v := rng.NormFloat64() * 0.3
			if s.init == initOnes {
				v = 1 + 0.1*rng.NormFloat64()
			}
			out = append(out, float32(v))
		}
	}
	return out
}

func randomBatch(cfg Config, rng *rand.Rand, B, T int, padded bool) *Batch {
	in := &Batch{B: B, T: T, Tokens: make([]int32, B*T), Targets: make([]int32, B*T)}
	for i := range in.Tokens {
		in.Tokens[i] = int32(rng.IntN(cfg.VocabSize))
		in.Targets[i] = int32(rng.IntN(cfg.VocabSize))
	}
	in.Targets[1] = -1 // a masked (prompt) position
	if padded {
		in.ValidLen = make([]int32, B)
		for b := range in.ValidLen {
			in.ValidLen[b] = int32(T - b%T) // T, T−1, ...
			for t := int(in.ValidLen[b]); t < T; t++ {
				in.Targets[b*T+t] = -1
			}
		}
	}
	return in
}

func randVec(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

func upload(t *testing.T, b gpu.Backend, data []float32, shape ...int) *gpu.Tensor {
	t.Helper()
	x, err := b.Alloc(gpu.Float32, shape...)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Upload(x, data); err != nil {
		t.Fatal(err)
	}
	return x
}

// gradCase runs one model forward/backward against the float64 reference
// with finite differences over every parameter.
type gradCase struct {
	name    string
	cfg     Config // zero: testConfig()
	scalar  bool
	padded  bool
	dropout float32
	entropy bool
	lmLoss  bool // ForwardLM with dout as the loss weights, then Backward(nil, nil)
}

func TestGradientsMatchFloat64Reference(t *testing.T) {
	cases := []gradCase{
		{name: "lm"},
		{name: "lm-padded-entropy", padded: true, entropy: true},
		{name: "lm-dropout", dropout: 0.2},
		{name: "scalar-padded", scalar: true, padded: true},
		{name: "lm-loss-padded-dropout", padded: true, dropout: 0.2, lmLoss: true},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkGradients(t, tc, uint64(i+1)) })
	}
}

func checkGradients(t *testing.T, tc gradCase, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	cfg := tc.cfg
	if cfg.VocabSize == 0 {
		cfg = testConfig()
	}
	cfg.ScalarHead = tc.scalar
	cfg.Dropout = tc.dropout
	const B, T = 2, 6
	b := cpu.New(2)
	m, err := New(b, cfg, Options{MaxBatch: B, MaxSeq: T, Train: true})
	if err != nil {
		t.Fatal(err)
	}
	host := randomParams(cfg, rng)
	if err := b.Upload(m.Params.All, host); err != nil {
		t.Fatal(err)
	}
	in := randomBatch(cfg, rng, B, T, tc.padded)
	if tc.scalar {
		in.Targets = nil
	}
	dout := randVec(rng, B*T)
	var dent []float32
	if tc.entropy {
		dent = randVec(rng, B*T)
	}
	const dropSeedValue = 1234

	// Model: forward, compare outputs, backward.
	if tc.lmLoss {
		err = m.ForwardLM(in, dropSeedValue, upload(t, b, dout, B*T))
	} else {
		err = m.Forward(in, true, dropSeedValue)
	}
	if err != nil {
		t.Fatal(err)
	}
	params64 := make([]float64, len(host))
	for i, v := range host {
		params64[i] = float64(v)
	}
	ref := newRefNet(cfg, params64)
	want := ref.forward(in, tc.dropout, dropSeedValue)
	out := make([]float32, B*T)
	if tc.scalar {
		mustDownload(t, b, out, m.Values())
		assertRel(t, "values", out, want.values, 1e-5)
	} else {
		mustDownload(t, b, out, m.LogProbs())
		assertRel(t, "logp", out, want.logp, 1e-5)
		if !tc.lmLoss {
			mustDownload(t, b, out, m.Entropy())
			assertRel(t, "entropy", out, want.entropy, 1e-5)
		}
	}
	b.Fill(m.Grads.All, 0)
	var doutT, dentT *gpu.Tensor
	if dent != nil {
		dentT = upload(t, b, dent, B*T)
	}
	if !tc.lmLoss {
		doutT = upload(t, b, dout, B*T)
	}
	if err := m.Backward(doutT, dentT); err != nil {
		t.Fatal(err)
	}
	grads := make([]float32, m.Grads.All.Len())
	mustDownload(t, b, grads, m.Grads.All)

	// Reference gradients: central differences of the float64 loss
	// L = Σ dout·(logp or values) + Σ dent·entropy over every parameter.
	loss := func() float64 {
		o := ref.forward(in, tc.dropout, dropSeedValue)
		s := 0.0
		y := o.logp
		if tc.scalar {
			y = o.values
		}
		for i := range y {
			s += float64(dout[i]) * y[i]
			if dent != nil {
				s += float64(dent[i]) * o.entropy[i]
			}
		}
		return s
	}
	fd := make([]float64, len(params64))
	for i := range params64 {
		old := params64[i]
		h := 1e-5
		params64[i] = old + h
		fp := loss()
		params64[i] = old - h
		fm := loss()
		params64[i] = old
		fd[i] = (fp - fm) / (2 * h)
	}
	off := 0
	for _, s := range cfg.layout() {
		n := s.size()
		assertRel(t, "grad "+s.name, grads[off:off+n], fd[off:off+n], 1e-4)
		off += n
	}

	// Spot check of the float32 model against its own finite differences,
	// on the coordinates with the largest gradients (float32 noise makes
	// small ones meaningless).
	idx := make([]int, len(grads))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(x, y int) bool { return math.Abs(float64(grads[idx[x]])) > math.Abs(float64(grads[idx[y]])) })
	modelLoss := func(p []float32) float64 {
		if err := b.Upload(m.Params.All, p); err != nil {
			t.Fatal(err)
		}
		if err := m.Forward(in, true, dropSeedValue); err != nil {
			t.Fatal(err)
		}
		y := make([]float32, B*T)
		e := make([]float32, B*T)
		if tc.scalar {
			mustDownload(t, b, y, m.Values())
		} else {
			mustDownload(t, b, y, m.LogProbs())
			mustDownload(t, b, e, m.Entropy())
		}
		s := 0.0
		for i := range y {
			s += float64(dout[i]) * float64(y[i])
			if dent != nil {
				s += float64(dent[i]) * float64(e[i])
			}
		}
		return s
	}
	p := append([]float32(nil), host...)
	for _, i := range idx[:8] {
		h := float32(1e-2)
		old := p[i]
		p[i] = old + h
		fp := modelLoss(p)
		p[i] = old - h
		fm := modelLoss(p)
		p[i] = old
		num := (fp - fm) / float64(2*h)
		if d := math.Abs(num - float64(grads[i])); d > 2e-2*math.Abs(float64(grads[i]))+1e-3 {
			t.Errorf("spot check param %d: analytic %.6g, finite difference %.6g", i, grads[i], num)
		}
	}
}

func mustDownload(t *testing.T, b gpu.Backend, dst []float32, x *gpu.Tensor) {
	t.Helper()
	if err := b.Download(dst, x); err != nil {
		t.Fatal(err)
	}
}

// assertRel checks max|got−want| ≤ tol·max|want|.
func assertRel(t *testing.T, what string, got []float32, want []float64, tol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	var maxDiff, maxRef float64
	for i := range want {
		maxDiff = math.Max(maxDiff, math.Abs(float64(got[i])-want[i]))
		maxRef = math.Max(maxRef, math.Abs(want[i]))
	}
	if maxRef == 0 {
		t.Fatalf("%s: reference is all zeros; the check would be vacuous", what)
	}
	if e := maxDiff / maxRef; !(e <= tol) {
		t.Errorf("%s: relative error %.3g > %.3g", what, e, tol)
	}
}
