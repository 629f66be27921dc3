package gpu

import (
	"strings"
	"testing"
)

// testStorage is a bare Storage for shape tests.
type testStorage struct {
	n int
	d DType
}

func (s *testStorage) Elems() int   { return s.n }
func (s *testStorage) DType() DType { return s.d }

func newT(t *testing.T, d DType, shape ...int) *Tensor {
	t.Helper()
	n := 1
	for _, x := range shape {
		n *= x
	}
	x, err := NewTensor(&testStorage{n: n, d: d}, 0, shape...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func f32(t *testing.T, shape ...int) *Tensor { return newT(t, Float32, shape...) }
func i32(t *testing.T, shape ...int) *Tensor { return newT(t, Int32, shape...) }

// wantErr fails unless err is non-nil and mentions every fragment.
func wantErr(t *testing.T, what string, err error, frags ...string) {
	t.Helper()
	if err == nil {
		t.Errorf("%s: no error", what)
		return
	}
	for _, f := range frags {
		if !strings.Contains(err.Error(), f) {
			t.Errorf("%s: error %q does not mention %q", what, err, f)
		}
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

var k = Checker{Backend: "test"}

func TestCheckerOwnership(t *testing.T) {
	x := f32(t, 4)
	own := Checker{Backend: "cuda", Owns: func(Storage) bool { return false }}
	wantErr(t, "foreign", own.Fill(x), "not a cuda tensor")
	wantErr(t, "nil", k.Fill(nil), "is nil")
	wantErr(t, "dtype", k.Fill(i32(t, 4)), "int32, want float32")
	noErr(t, "ok", k.Fill(x))
}

func TestCheckerAllocAndTransfers(t *testing.T) {
	if n, err := k.Alloc(Float32, []int{2, 3}); err != nil || n != 6 {
		t.Errorf("alloc [2,3]: %d %v", n, err)
	}
	if n, err := k.Alloc(Int32, nil); err != nil || n != 1 {
		t.Errorf("alloc scalar: %d %v", n, err)
	}
	if n, err := k.Alloc(Float32, []int{4, 0}); err != nil || n != 0 {
		t.Errorf("alloc empty: %d %v", n, err)
	}
	_, err := k.Alloc(DType(7), []int{2})
	wantErr(t, "dtype", err, "test alloc: unsupported dtype")
	_, err = k.Alloc(Float32, []int{2, -1})
	wantErr(t, "negative", err, "test alloc: negative dimension in [2 -1]")
	_, err = k.Alloc(Float32, []int{1 << 21, 1 << 20})
	wantErr(t, "past the bound", err, "too large")
	_, err = k.Alloc(Float32, []int{1 << 40, 1 << 40})
	wantErr(t, "overflow", err, "too large")
	noErr(t, "alloc at the bound", func() error { _, err := k.Alloc(Float32, []int{1 << 20, 1 << 20}); return err }())

	x := f32(t, 2, 3)
	noErr(t, "upload", k.Upload(x, Float32, 6))
	wantErr(t, "upload length", k.Upload(x, Float32, 5), "upload: 5 values into float32[2,3]")
	wantErr(t, "upload dtype", k.Upload(x, Int32, 6), "upload: tensor is float32, want int32")
	noErr(t, "download", k.Download(i32(t, 4), Int32, 4))
	wantErr(t, "download length", k.Download(x, Float32, 7), "download: float32[2,3] into 7 values")
	wantErr(t, "download nil", k.Download(nil, Float32, 0), "download: tensor is nil")
}

func TestCheckerElementwise(t *testing.T) {
	a, b := f32(t, 2, 3), f32(t, 6)
	noErr(t, "copy views of equal length", k.Copy(a, b))
	wantErr(t, "copy length", k.Copy(a, f32(t, 5)), "want 5 elements")
	wantErr(t, "copy self", k.Copy(a, a), "overlaps")
	// Views of one storage: [0,4) and [2,6) overlap partly.
	whole := f32(t, 8)
	lo, hi, far := whole.MustView(0, 4), whole.MustView(2, 4), whole.MustView(4, 4)
	wantErr(t, "axpy overlap", k.Axpy(lo, hi), "overlaps")
	noErr(t, "axpy disjoint views", k.Axpy(lo, far))
	noErr(t, "add in place", k.Add(lo, lo, far))
	wantErr(t, "add partial", k.Add(lo, hi, far), "partly overlaps")
	noErr(t, "lerp", k.Lerp(a, b))
	wantErr(t, "sum squares out", k.SumSquares(f32(t, 2), a), "want 1 elements")
	noErr(t, "dot", k.Dot(f32(t, 1), a, b))
	wantErr(t, "dot y", k.Dot(f32(t, 1), a, f32(t, 7)), "y is")
	wantErr(t, "gelu partial", k.GeluForward(lo, hi), "partly overlaps")
	noErr(t, "gelu in place", k.GeluForward(lo, lo))
	wantErr(t, "gelu backward dinp=inp", k.GeluBackward(lo, lo, far), "overlaps inp")
	noErr(t, "gelu backward dinp=dout", k.GeluBackward(lo, far, lo))
	wantErr(t, "dropout p", k.Dropout(a, b, 1), "outside [0,1)")
	noErr(t, "dropout in place", k.Dropout(a, a, 0.5))
	wantErr(t, "dropout backward NaN", k.DropoutBackward(a, b, float32(nan())), "outside")
	wantErr(t, "dropout p > 1", k.Dropout(a, b, 1.5), "probability 1.5 outside [0,1)")
	wantErr(t, "dropout p < 0", k.DropoutBackward(a, b, -0.1), "probability -0.1 outside")
	wantErr(t, "dropout length", k.Dropout(a, f32(t, 5), 0.1), "out is float32[2,3] (6 elements), want 5")
	wantErr(t, "dropout partial", k.Dropout(hi, lo, 0.1), "partly overlaps")
	wantErr(t, "dropout backward partial", k.DropoutBackward(hi, lo, 0.1), "dinp float32[4] partly overlaps dout")
	noErr(t, "dropout backward in place", k.DropoutBackward(a, a, 0.5))
	wantErr(t, "gelu length", k.GeluForward(f32(t, 4), f32(t, 5)), "out is float32[4]")
	wantErr(t, "gelu backward length", k.GeluBackward(f32(t, 4), f32(t, 4), f32(t, 3)), "dout is float32[3]")
	wantErr(t, "axpy dtype", k.Axpy(a, i32(t, 6)), "axpy: x is int32, want float32")
	wantErr(t, "axpy nil", k.Axpy(a, nil), "axpy: x is nil")
	wantErr(t, "add length", k.Add(f32(t, 3), f32(t, 3), f32(t, 2)), "add: b is float32[2]")
	wantErr(t, "sum squares alias", k.SumSquares(whole.MustView(0, 1), whole), "overlaps")
	wantErr(t, "dot length", k.Dot(f32(t, 1), f32(t, 4), f32(t, 5)), "dot: y is float32[5]")
	wantErr(t, "dot out alias", k.Dot(whole.MustView(0, 1), whole, f32(t, 8)), "out float32[1] overlaps x")
	wantErr(t, "scale dtype", k.Scale(i32(t, 2)), "scale: t is int32")
}

func zero() float64 { return 0 }
func nan() float64  { return zero() / zero() }

func TestCheckerBias(t *testing.T) {
	n, c, err := k.AddBias(f32(t, 2, 5, 3), f32(t, 3))
	if err != nil || n != 10 || c != 3 {
		t.Errorf("add bias: %d %d %v", n, c, err)
	}
	_, _, err = k.AddBias(f32(t, 2, 4), f32(t, 3))
	wantErr(t, "add bias width", err, "want last dimension 3")
	n, c, err = k.BiasBackward(f32(t, 4), f32(t, 7, 4))
	if err != nil || n != 7 || c != 4 {
		t.Errorf("bias backward: %d %d %v", n, c, err)
	}
	n, _, err = k.BiasBackward(f32(t, 0), f32(t, 7, 0))
	if err != nil || n != 0 {
		t.Errorf("zero width: %d %v", n, err)
	}
	_, _, err = k.BiasBackward(f32(t, 4), f32(t, 4, 3))
	wantErr(t, "bias backward width", err, "dout is float32[4,3], want last dimension 4")
	_, _, err = k.AddBias(f32(t), f32(t, 1))
	wantErr(t, "rank 0", err, "want last dimension 1")
	whole := f32(t, 8)
	_, _, err = k.AddBias(whole.MustView(0, 2, 3), whole.MustView(5, 3))
	wantErr(t, "bias alias", err, "out float32[2,3] overlaps bias")
}

func TestCheckerEmbedding(t *testing.T) {
	out, tok, wte, wpe := f32(t, 2, 3, 4), i32(t, 2, 3), f32(t, 10, 4), f32(t, 5, 4)
	d, checks, err := k.EmbeddingForward(out, tok, nil, wte, wpe)
	if err != nil || d != (EmbedDims{B: 2, T: 3, C: 4, V: 10, MaxT: 5}) || len(checks) != 1 {
		t.Fatalf("forward: %+v %d %v", d, len(checks), err)
	}
	wantErr(t, "token check", checks[0].Host([]int32{0, 1, 2, 10, 3, 4}), "token id 10 at position 3", "[0,10)")
	wantErr(t, "negative token", checks[0].Host([]int32{0, -1, 2, 3, 3, 4}), "token id -1 at position 1")
	noErr(t, "tokens in range", checks[0].Host([]int32{0, 9, 2, 3, 3, 4}))
	pos := i32(t, 2, 3)
	_, checks, err = k.EmbeddingForward(out, tok, pos, wte, wpe)
	if err != nil || len(checks) != 2 {
		t.Fatalf("forward with positions: %d %v", len(checks), err)
	}
	wantErr(t, "position check", checks[1].Host([]int32{0, 5, 0, 0, 0, 0}), "position 5 at index 1 outside [0,5)")
	_, _, err = k.EmbeddingForward(out, i32(t, 2, 6), nil, f32(t, 10, 4), f32(t, 5, 4))
	wantErr(t, "too long", err, "activations")
	_, _, err = k.EmbeddingForward(f32(t, 2, 6, 4), i32(t, 2, 6), nil, f32(t, 10, 4), f32(t, 5, 4))
	wantErr(t, "past wpe", err, "sequence length 6 exceeds the 5 positions")
	_, _, err = k.EmbeddingForward(out, tok, nil, wte, nil)
	wantErr(t, "wpe nil", err, "required")
	_, _, err = k.EmbeddingForward(out, tok, nil, wte, f32(t, 5, 3))
	wantErr(t, "widths", err, "as wide as the other")
	_, _, err = k.EmbeddingForward(out, tok, i32(t, 3, 2), wte, wpe)
	wantErr(t, "positions shape", err, "positions is")

	_, _, skip, err := k.EmbeddingBackward(nil, nil, out, tok, nil)
	if !skip || err != nil {
		t.Errorf("both nil: skip %v err %v", skip, err)
	}
	d, checks, skip, err = k.EmbeddingBackward(nil, wpe, out, tok, nil)
	if skip || err != nil || len(checks) != 0 || d.V != 0 || d.MaxT != 5 {
		t.Errorf("dwpe only: %+v %d %v %v", d, len(checks), skip, err)
	}
	_, _, _, err = k.EmbeddingBackward(wte, wte, out, tok, nil)
	wantErr(t, "dwte = dwpe", err, "overlaps")
	_, _, err = k.EmbeddingForward(out, out, nil, wte, wpe)
	wantErr(t, "float tokens", err, "tokens is float32, want int32")
	_, _, err = k.EmbeddingForward(f32(t, 2, 4, 4), tok, nil, wte, wpe)
	wantErr(t, "out shape", err, "activations are float32[2,4,4], want [2,3,4]")
	noErr(t, "flat activations", func() error { _, _, err := k.EmbeddingForward(f32(t, 6, 4), tok, nil, wte, wpe); return err }())
	_, _, _, err = k.EmbeddingBackward(nil, wpe, out, tok, i32(t, 6))
	wantErr(t, "backward positions shape", err, "positions is int32[6], want the shape of tokens")
}

func TestCheckerLayerNorm(t *testing.T) {
	out, inp, w, b := f32(t, 3, 4), f32(t, 3, 4), f32(t, 4), f32(t, 4)
	n, c, err := k.LayerNormForward(out, nil, nil, inp, w, b)
	if err != nil || n != 3 || c != 4 {
		t.Errorf("forward: %d %d %v", n, c, err)
	}
	_, _, err = k.LayerNormForward(out, f32(t, 2), nil, inp, w, b)
	wantErr(t, "mean length", err, "mean")
	_, _, err = k.LayerNormForward(inp, nil, nil, inp, w, b)
	wantErr(t, "in place", err, "overlaps")
	mean, rstd := f32(t, 3), f32(t, 3)
	_, _, err = k.LayerNormBackward(f32(t, 3, 4), f32(t, 4), f32(t, 4), f32(t, 3, 4), inp, w, mean, rstd)
	noErr(t, "backward", err)
	_, _, err = k.LayerNormBackward(f32(t, 3, 4), f32(t, 4), f32(t, 4), f32(t, 3, 4), inp, w, mean, nil)
	wantErr(t, "backward rstd", err, "rstd is nil")
	_, _, err = k.LayerNormBackward(f32(t, 3, 4), f32(t, 5), f32(t, 4), f32(t, 3, 4), inp, w, mean, rstd)
	wantErr(t, "backward dweight", err, "dweight")
	_, _, err = k.LayerNormForward(out, nil, nil, inp, f32(t, 5), b)
	wantErr(t, "weight width", err, "inp is float32[3,4], want last dimension 5")
	_, _, err = k.LayerNormForward(f32(t, 2, 4), nil, nil, inp, w, b)
	wantErr(t, "out length", err, "out is float32[2,4] (8 elements), want 12")
	_, _, err = k.LayerNormForward(out, nil, f32(t, 4), inp, w, b)
	wantErr(t, "rstd length", err, "rstd is float32[4]")
	_, _, err = k.LayerNormForward(out, nil, nil, inp, w, f32(t, 3))
	wantErr(t, "bias length", err, "bias is float32[3]")
	dinp := f32(t, 3, 4)
	_, _, err = k.LayerNormBackward(dinp, f32(t, 4), f32(t, 4), dinp, inp, w, mean, rstd)
	wantErr(t, "backward dinp = dout", err, "dinp float32[3,4] overlaps dout")
	_, _, err = k.LayerNormBackward(f32(t, 3, 4), f32(t, 4), f32(t, 3), f32(t, 3, 4), inp, w, mean, rstd)
	wantErr(t, "backward dbias", err, "dbias is float32[3]")
}

func TestCheckerAddLayerNorm(t *testing.T) {
	res, out, a, b, w, bias := f32(t, 3, 4), f32(t, 3, 4), f32(t, 3, 4), f32(t, 12), f32(t, 4), f32(t, 4)
	n, c, err := k.AddLayerNormForward(res, out, f32(t, 3), f32(t, 3), a, b, w, bias)
	if err != nil || n != 3 || c != 4 {
		t.Errorf("forward: %d %d %v", n, c, err)
	}
	_, _, err = k.AddLayerNormForward(res, out, nil, nil, a, b, w, bias)
	noErr(t, "no statistics", err)
	_, _, err = k.AddLayerNormForward(res, out, nil, nil, a, f32(t, 11), w, bias)
	wantErr(t, "b length", err, "b is float32[11] (11 elements), want 12")
	_, _, err = k.AddLayerNormForward(res, f32(t, 2, 4), nil, nil, a, b, w, bias)
	wantErr(t, "lnOut length", err, "lnOut is float32[2,4]")
	_, _, err = k.AddLayerNormForward(f32(t, 4, 3), out, nil, nil, a, b, w, bias)
	wantErr(t, "resOut width", err, "resOut is float32[4,3], want last dimension 4")
	_, _, err = k.AddLayerNormForward(res, out, f32(t, 4), nil, a, b, w, bias)
	wantErr(t, "mean length", err, "mean is float32[4]")
	_, _, err = k.AddLayerNormForward(res, out, nil, nil, a, b, w, f32(t, 5))
	wantErr(t, "bias length", err, "bias is float32[5]")
	_, _, err = k.AddLayerNormForward(a, out, nil, nil, a, b, w, bias)
	wantErr(t, "resOut = a", err, "resOut float32[3,4] overlaps a")
	_, _, err = k.AddLayerNormForward(res, res, nil, nil, a, b, w, bias)
	wantErr(t, "lnOut = resOut", err, "resOut float32[3,4] overlaps lnOut")
	_, _, err = k.AddLayerNormForward(res, out, nil, nil, a, b.MustView(0, 3, 4), w, bias)
	noErr(t, "a view of b's shape", err)
	st := f32(t, 6)
	_, _, err = k.AddLayerNormForward(res, out, st.MustView(0, 3), st.MustView(2, 3), a, b, w, bias)
	wantErr(t, "mean overlaps rstd", err, "mean float32[3] overlaps rstd")
}

func TestCheckerAttention(t *testing.T) {
	qkv, out, lse := f32(t, 2, 5, 12), f32(t, 2, 5, 4), f32(t, 2, 2, 5)
	d, checks, err := k.AttentionForward(out, lse, qkv, nil, 2, 2)
	if err != nil || d != (AttnDims{B: 2, T: 5, C: 4, H: 2, KVH: 2, HS: 2}) || len(checks) != 0 {
		t.Fatalf("forward: %+v %d %v", d, len(checks), err)
	}
	vl := i32(t, 2)
	_, checks, err = k.AttentionForward(out, lse, qkv, vl, 2, 2)
	if err != nil || len(checks) != 1 {
		t.Fatalf("forward with lengths: %d %v", len(checks), err)
	}
	noErr(t, "lengths 0 and T", checks[0].Host([]int32{0, 5}))
	wantErr(t, "length 6", checks[0].Host([]int32{1, 6}), "validLen[1] = 6 outside [0,5]")
	_, _, err = k.AttentionForward(out, lse, qkv, nil, 3, 3)
	wantErr(t, "heads", err, "qkv is float32[2,5,12], want rows of (H+2·KVH)·hs = 9·hs elements")
	_, _, err = k.AttentionForward(out, f32(t, 2, 5, 2), qkv, nil, 2, 2)
	wantErr(t, "lse shape", err, "lse is")
	_, _, err = k.AttentionForward(out, lse, f32(t, 2, 5, 13), nil, 2, 2)
	wantErr(t, "qkv width", err, "(H+2·KVH)·hs")
	_, _, err = k.AttentionForward(out, lse, qkv, i32(t, 3), 2, 2)
	wantErr(t, "validLen shape", err, "validLen is")
	_, _, err = k.AttentionBackward(f32(t, 2, 5, 12), f32(t, 2, 5, 4), qkv, out, lse, nil, 2, 2)
	noErr(t, "backward", err)
	_, _, err = k.AttentionBackward(qkv, f32(t, 2, 5, 4), qkv, out, lse, nil, 2, 2)
	wantErr(t, "backward dqkv = qkv", err, "overlaps")
	wantErr(t, "negative length", checks[0].Host([]int32{-1, 2}), "validLen[0] = -1")
	shared := f32(t, 30)
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"zero heads", attnErr(k.AttentionForward(out, lse, qkv, nil, 0, 0)), "0 query heads cannot share 0 key/value heads"},
		{"qkv rank 2", attnErr(k.AttentionForward(out, lse, f32(t, 10, 12), nil, 2, 2)), "qkv is float32[10,12], want [B,T,(H+2·KVH)·hs]"},
		{"qkv int32", attnErr(k.AttentionForward(out, lse, i32(t, 2, 5, 12), nil, 2, 2)), "qkv is int32, want float32"},
		{"qkv empty width", attnErr(k.AttentionForward(out, lse, f32(t, 2, 5, 0), nil, 2, 2)), "hs > 0"},
		{"out shape", attnErr(k.AttentionForward(f32(t, 2, 4, 5), lse, qkv, nil, 2, 2)), "out is float32[2,4,5], want [2 5 4]"},
		{"lse nil", attnErr(k.AttentionForward(out, nil, qkv, nil, 2, 2)), "lse is nil"},
		{"out overlaps lse", attnErr(k.AttentionForward(shared.MustView(0, 2, 5, 2), shared.MustView(10, 2, 1, 5), f32(t, 2, 5, 6), nil, 1, 1)), "out float32[2,5,2] overlaps lse"},
		{"validLen float32", attnErr(k.AttentionForward(out, lse, qkv, f32(t, 2), 2, 2)), "validLen is float32, want int32"},
		{"backward dqkv shape", attnErr(k.AttentionBackward(f32(t, 2, 12, 5), f32(t, 2, 5, 4), qkv, out, lse, nil, 2, 2)), "dqkv is float32[2,12,5]"},
		{"backward dout shape", attnErr(k.AttentionBackward(f32(t, 2, 5, 12), f32(t, 5, 2, 4), qkv, out, lse, nil, 2, 2)), "dout is float32[5,2,4]"},
		{"backward lse shape", attnErr(k.AttentionBackward(f32(t, 2, 5, 12), f32(t, 2, 5, 4), qkv, out, f32(t, 2, 10), nil, 2, 2)), "lse is float32[2,10]"},
		{"backward heads", attnErr(k.AttentionBackward(f32(t, 2, 5, 12), f32(t, 2, 5, 4), qkv, out, lse, nil, 5, 5)), "want rows of (H+2·KVH)·hs = 15·hs"},
	} {
		wantErr(t, c.name, c.err, "attention ", c.want)
	}
}

// attnErr keeps the error of an attention check.
func attnErr(_ AttnDims, _ []IndexCheck, err error) error { return err }

// decodeErr keeps the error of a KV-cache check.
func decodeErr(_ DecodeDims, _ []IndexCheck, err error) error { return err }

func TestCheckerDecode(t *testing.T) {
	kc, vc := f32(t, 2, 2, 8, 3), f32(t, 2, 2, 8, 3)
	d, checks, err := k.KVCacheWrite(kc, vc, f32(t, 2, 3, 18), nil, 2, 2)
	if err != nil || d.S != 8 || d.T != 3 || d.HS != 3 || len(checks) != 0 {
		t.Fatalf("write: %+v %v", d, err)
	}
	_, _, err = k.KVCacheWrite(kc, vc, f32(t, 2, 9, 18), nil, 2, 2)
	wantErr(t, "too many positions", err, "9 positions outside the cache of 8")
	_, checks, err = k.KVCacheWrite(kc, vc, f32(t, 2, 3, 18), i32(t, 2), 2, 2)
	if err != nil || len(checks) != 1 {
		t.Fatalf("write with start: %v", err)
	}
	noErr(t, "inactive and last fit", checks[0].Host([]int32{-7, 5}))
	wantErr(t, "past the end", checks[0].Host([]int32{6, 0}), "sequence 0: positions 6..8 outside the cache of 8")
	_, _, err = k.KVCacheWrite(kc, kc, f32(t, 2, 3, 18), nil, 2, 2)
	wantErr(t, "kc = vc", err, "overlap")
	_, _, err = k.KVCacheWrite(kc, f32(t, 2, 2, 7, 3), f32(t, 2, 3, 18), nil, 2, 2)
	wantErr(t, "vc shape", err, "vc is")

	d, checks, err = k.AttentionDecode(f32(t, 2, 6), f32(t, 2, 18), kc, vc, i32(t, 2), 2, 2)
	if err != nil || d.S != 8 || len(checks) != 1 {
		t.Fatalf("decode: %+v %v", d, err)
	}
	noErr(t, "lens 0 and S", checks[0].Host([]int32{0, 8}))
	wantErr(t, "lens past S", checks[0].Host([]int32{9, 0}), "lens[0] = 9 outside [0,8]")
	_, _, err = k.AttentionDecode(f32(t, 2, 6), f32(t, 2, 18), kc, vc, nil, 2, 2)
	wantErr(t, "lens nil", err, "lens is nil")
	wantErr(t, "negative lens", checks[0].Host([]int32{-1, 0}), "lens[0] = -1 outside [0,8]")

	// With more new positions than the cache holds, only inactive
	// (negative) starts pass.
	_, checks, err = k.KVCacheWrite(kc, vc, f32(t, 2, 10, 18), i32(t, 2), 2, 2)
	if err != nil || len(checks) != 1 {
		t.Fatalf("write past the cache with start: %v", err)
	}
	noErr(t, "T > S, inactive", checks[0].Host([]int32{-1, -3}))
	wantErr(t, "T > S, active", checks[0].Host([]int32{-1, 0}), "sequence 1: positions 0..9 outside the cache of 8")

	whole := f32(t, 2*2*8*3+10)
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"write heads", decodeErr(k.KVCacheWrite(kc, vc, f32(t, 2, 3, 18), nil, 4, 4)), "want rows of (H+2·KVH)·hs = 12·hs"},
		{"write float start", decodeErr(k.KVCacheWrite(kc, vc, f32(t, 2, 3, 18), f32(t, 2), 2, 2)), "start is float32, want int32"},
		{"write start length", decodeErr(k.KVCacheWrite(kc, vc, f32(t, 2, 3, 18), i32(t, 3), 2, 2)), "start is int32[3], want [2]"},
		{"write rank-2 qkv", decodeErr(k.KVCacheWrite(kc, vc, f32(t, 2, 18), nil, 2, 2)), "want [B,T,(H+2·KVH)·hs]"},
		{"write kc rank 3", decodeErr(k.KVCacheWrite(f32(t, 2, 2, 24), vc, f32(t, 2, 3, 18), nil, 2, 2)), "kc is float32[2,2,24], want [2,2,S,3]"},
		{"write kc = qkv", decodeErr(k.KVCacheWrite(whole.MustView(0, 2, 2, 8, 3), vc, whole.MustView(10, 2, 1, 18), nil, 2, 2)), "kc float32[2,2,8,3] overlaps qkv"},
		{"decode rank-3 qkv", decodeErr(k.AttentionDecode(f32(t, 2, 6), f32(t, 2, 1, 18), kc, vc, i32(t, 2), 2, 2)), "want [B,(H+2·KVH)·hs]"},
		{"decode out shape", decodeErr(k.AttentionDecode(f32(t, 2, 5), f32(t, 2, 18), kc, vc, i32(t, 2), 2, 2)), "out is float32[2,5], want [2 6]"},
		{"decode lens length", decodeErr(k.AttentionDecode(f32(t, 2, 6), f32(t, 2, 18), kc, vc, i32(t, 1), 2, 2)), "lens is int32[1], want [2]"},
		{"decode out = kc", decodeErr(k.AttentionDecode(whole.MustView(0, 2, 6), f32(t, 2, 18), whole.MustView(0, 2, 2, 8, 3), vc, i32(t, 2), 2, 2)), "out float32[2,6] overlaps kc"},
	} {
		wantErr(t, c.name, c.err, c.want)
	}
}

func TestCheckerCrossEntropy(t *testing.T) {
	logits, targets := f32(t, 2, 3, 7), i32(t, 2, 3)
	logp, lse, dlogp := f32(t, 2, 3), f32(t, 2, 3), f32(t, 2, 3)
	n, v, checks, err := k.CrossEntropy(logp, nil, lse, logits, targets, dlogp)
	if err != nil || n != 6 || v != 7 || len(checks) != 1 {
		t.Fatalf("cross-entropy: %d %d %v", n, v, err)
	}
	wantErr(t, "target V", checks[0].Host([]int32{0, 7, 0, 0, 0, 0}), "cross-entropy: targets[1] = 7 outside the vocabulary of 7")
	_, _, _, err = k.CrossEntropy(logp, nil, lse, logits, targets, nil)
	wantErr(t, "dlogp nil", err, "dlogp is nil")
	_, _, _, err = k.CrossEntropy(logp, nil, lse, logits, targets, f32(t, 6))
	wantErr(t, "dlogp shape", err, "dlogp is float32[6], want [2 3]")
	_, _, _, err = k.CrossEntropy(logp, nil, newT(t, BF16, 2, 3), logits, targets, dlogp)
	wantErr(t, "bf16 lse", err, "lse is bf16, want float32")
	_, _, _, err = k.CrossEntropy(logp, nil, lse, logits, targets, logp)
	wantErr(t, "dlogp = logp", err, "logp float32[2,3] overlaps dlogp")
	_, _, _, err = k.CrossEntropy(logits.MustView(0, 2, 3), nil, lse, logits, targets, dlogp)
	wantErr(t, "logp in the logits", err, "logits float32[2,3,7] overlaps logp")
	_, _, _, err = k.CrossEntropy(logp, nil, lse, newT(t, BF16, 2, 3, 7), targets, dlogp)
	noErr(t, "bf16 logits", err)
	_, _, _, err = k.CrossEntropy(logp, f32(t, 2, 3), lse, logits, targets, dlogp)
	noErr(t, "entropy", err)
	_, _, _, err = k.CrossEntropy(logp, f32(t, 5), lse, logits, targets, dlogp)
	wantErr(t, "entropy shape", err, "entropy is float32[5], want [2 3]")
	_, _, _, err = k.CrossEntropy(logp, newT(t, BF16, 2, 3), lse, logits, targets, dlogp)
	wantErr(t, "bf16 entropy", err, "entropy is bf16, want float32")
	_, _, _, err = k.CrossEntropy(logp, lse, lse, logits, targets, dlogp)
	wantErr(t, "entropy = lse", err, "entropy float32[2,3] overlaps lse")
	_, _, _, err = k.CrossEntropy(logp, logits.MustView(7, 2, 3), lse, logits, targets, dlogp)
	wantErr(t, "entropy in the logits", err, "logits float32[2,3,7] overlaps entropy")
}

func TestCheckerLogSoftmax(t *testing.T) {
	logits, targets := f32(t, 2, 3, 7), i32(t, 2, 3)
	logp, lse, ent := f32(t, 2, 3), f32(t, 2, 3), f32(t, 2, 3)
	n, v, checks, err := k.LogSoftmaxForward(logp, ent, lse, logits, targets)
	if err != nil || n != 6 || v != 7 || len(checks) != 1 {
		t.Fatalf("forward: %d %d %v", n, v, err)
	}
	noErr(t, "ignored rows", checks[0].Host([]int32{-1, -100, 0, 6, 3, 2}))
	wantErr(t, "target V", checks[0].Host([]int32{0, 7, 0, 0, 0, 0}), "targets[1] = 7 outside the vocabulary of 7")
	_, _, _, err = k.LogSoftmaxForward(f32(t, 6), nil, lse, logits, targets)
	wantErr(t, "logp shape", err, "logp is")
	_, _, _, err = k.LogSoftmaxForward(logp, nil, lse, f32(t, 7), i32(t))
	wantErr(t, "rank 1 logits", err, "[N,V]")
	_, _, _, err = k.LogSoftmaxBackward(logits, lse, nil, targets, logp, ent)
	wantErr(t, "dentropy without entropy", err, "needs the entropy")
	_, _, _, err = k.LogSoftmaxBackward(logits, lse, ent, targets, logp, f32(t, 2, 3))
	noErr(t, "backward", err)
	_, _, _, err = k.LogSoftmaxForward(logp, ent, lse, logits, f32(t, 2, 3))
	wantErr(t, "float targets", err, "targets is float32, want int32")
	_, _, _, err = k.LogSoftmaxForward(logp, ent, nil, logits, targets)
	wantErr(t, "lse nil", err, "lse is nil")
	_, _, _, err = k.LogSoftmaxForward(logp, f32(t, 6, 1), lse, logits, targets)
	wantErr(t, "entropy shape", err, "entropy is float32[6,1], want [2 3]")
	_, _, _, err = k.LogSoftmaxForward(logp, nil, lse, f32(t, 2, 3, 0), targets)
	wantErr(t, "empty vocabulary", err, "with V > 0")
	_, _, _, err = k.LogSoftmaxForward(logits.MustView(0, 2, 3), nil, lse, logits, targets)
	wantErr(t, "logp = logits", err, "logp float32[2,3] overlaps logits")
	_, _, _, err = k.LogSoftmaxBackward(logits, lse, ent, targets, nil, nil)
	wantErr(t, "backward dlogp nil", err, "dlogp is nil")
	_, _, _, err = k.LogSoftmaxBackward(logits, f32(t, 3, 2), ent, targets, logp, nil)
	wantErr(t, "backward lse shape", err, "lse is float32[3,2]")
	_, _, _, err = k.LogSoftmaxBackward(logits, logits.MustView(0, 2, 3), nil, targets, logp, nil)
	wantErr(t, "backward logits = lse", err, "logits float32[2,3,7] overlaps lse")
}

func TestCheckerGatherSampleAdamW(t *testing.T) {
	b, tt, c, checks, err := k.GatherRows(f32(t, 2, 4), f32(t, 2, 5, 4), i32(t, 2))
	if err != nil || b != 2 || tt != 5 || c != 4 || len(checks) != 1 {
		t.Fatalf("gather: %v", err)
	}
	wantErr(t, "idx", checks[0].Host([]int32{4, 5}), "idx[1] = 5 outside [0,5)")
	_, _, _, _, err = k.ScatterAddRows(f32(t, 2, 5, 4), f32(t, 2, 3), i32(t, 2))
	wantErr(t, "scatter dout", err, "dout is")
	wantErr(t, "negative idx", checks[0].Host([]int32{-1, 0}), "idx[0] = -1 outside [0,5)")
	_, _, _, _, err = k.GatherRows(f32(t, 4, 2), f32(t, 2, 5, 4), i32(t, 2))
	wantErr(t, "gather out shape", err, "out is float32[4,2], want [2,4]")
	_, _, _, _, err = k.GatherRows(f32(t, 2, 4), f32(t, 10, 4), i32(t, 2))
	wantErr(t, "gather inp rank 2", err, "inp is float32[10,4], want [B,T,C]")
	_, _, _, _, err = k.GatherRows(f32(t, 2, 4), f32(t, 2, 5, 4), f32(t, 2))
	wantErr(t, "gather idx float32", err, "idx is float32, want int32")
	_, _, _, _, err = k.GatherRows(f32(t, 2, 4), f32(t, 2, 5, 4), i32(t, 3))
	wantErr(t, "gather idx length", err, "idx is int32[3], want [2]")
	_, _, _, _, err = k.ScatterAddRows(nil, f32(t, 2, 4), i32(t, 2))
	wantErr(t, "scatter dinp nil", err, "dinp is nil")
	whole := f32(t, 48)
	_, _, _, _, err = k.GatherRows(whole.MustView(36, 2, 4), whole.MustView(0, 2, 5, 4), i32(t, 2))
	wantErr(t, "gather out = inp", err, "out float32[2,4] overlaps inp")

	n, v, err := k.Sample(i32(t, 3), f32(t, 3, 11), Sampling{Temperature: 1, TopK: 5, TopP: 0.9})
	if err != nil || n != 3 || v != 11 {
		t.Errorf("sample: %d %d %v", n, v, err)
	}
	_, _, err = k.Sample(i32(t, 3), f32(t, 3, 11), Sampling{TopP: 1.5})
	wantErr(t, "top-p", err, "top-p")
	_, _, err = k.Sample(i32(t, 2), f32(t, 3, 11), Sampling{})
	wantErr(t, "tokens", err, "tokens is")
	for _, c := range []struct {
		name string
		s    Sampling
		want string
	}{
		{"negative temperature", Sampling{Temperature: -1}, "temperature"},
		{"NaN temperature", Sampling{Temperature: float32(nan())}, "temperature"},
		{"infinite temperature", Sampling{Temperature: float32(1 / zero())}, "temperature"},
		{"negative top-k", Sampling{Temperature: 1, TopK: -1}, "top-k -1"},
		{"negative top-p", Sampling{Temperature: 1, TopP: -0.1}, "top-p -0.1"},
	} {
		_, _, err = k.Sample(i32(t, 3), f32(t, 3, 11), c.s)
		wantErr(t, c.name, err, "sample: sampling: ", c.want)
	}
	_, _, err = k.Sample(f32(t, 3), f32(t, 3, 11), Sampling{})
	wantErr(t, "float tokens", err, "tokens is float32, want int32")
	_, _, err = k.Sample(i32(t, 3), f32(t, 3, 0), Sampling{})
	wantErr(t, "empty vocabulary", err, "logits is float32[3,0], want [N,V] with V > 0")
	wantErr(t, "row error", SampleRowError(2), "sample: row 2 of the logits has no finite maximum")

	p, g, m, vv := f32(t, 5), f32(t, 5), f32(t, 5), f32(t, 5)
	h := AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: 1}
	if n, err := k.AdamW(p, nil, g, m, vv, f32(t, 1), h); err != nil || n != 5 {
		t.Errorf("adamw: %d %v", n, err)
	}
	_, err = k.AdamW(p, nil, g, m, vv, nil, AdamW{Beta1: 0.9, Beta2: 0.999})
	wantErr(t, "step 0", err, "step 0")
	_, err = k.AdamW(p, nil, g, m, vv, nil, AdamW{Beta1: 1, Beta2: 0.999, Step: 1})
	wantErr(t, "beta 1", err, "betas")
	_, err = k.AdamW(p, nil, p, m, vv, nil, h)
	wantErr(t, "params = grads", err, "overlaps")
	_, err = k.AdamW(p, nil, g, m, vv, f32(t, 2), h)
	wantErr(t, "normSq length", err, "normSq")
	_, err = k.AdamW(p, nil, g, f32(t, 4), vv, nil, h)
	wantErr(t, "lengths", err, "adamw: m is float32[4] (4 elements), want 5")
	_, err = k.AdamW(p, nil, g, m, m, nil, h)
	wantErr(t, "m = v", err, "m float32[5] overlaps v")
	_, err = k.AdamW(p, nil, g, m, vv, nil, AdamW{Beta1: 0.9, Beta2: float32(nan()), Step: 1})
	wantErr(t, "NaN beta", err, "betas")
}

func TestHostAll(t *testing.T) {
	a, b := i32(t, 2), i32(t, 3)
	checks := []IndexCheck{
		{T: a, Lo: 0, Hi: 4, Err: func(i int, v int32) error { return errorString("a") }},
		{T: b, Lo: 0, Hi: 4, Err: func(i int, v int32) error { return errorString("b") }},
	}
	data := map[*Tensor][]int32{a: {0, 3}, b: {1, 4, 9}}
	err := HostAll(checks, func(t *Tensor) []int32 { return data[t] })
	wantErr(t, "second fails", err, "b")
	data[b][1] = 2
	data[b][2] = 0
	noErr(t, "all pass", HostAll(checks, func(t *Tensor) []int32 { return data[t] }))
}

type errorString string

func (e errorString) Error() string { return string(e) }
