package gpu

import "testing"

// The argument rules of grouped-query attention and of the Llama family's
// ops (shapes_llama.go).

func TestCheckerGroupedQueryAttention(t *testing.T) {
	// H = 4 query heads of hs = 3 on KVH = 2 key/value heads: rows of
	// (4+2·2)·3 = 24.
	qkv, out, lse := f32(t, 2, 5, 24), f32(t, 2, 5, 12), f32(t, 2, 4, 5)
	d, _, err := k.AttentionForward(out, lse, qkv, nil, 4, 2)
	if err != nil || d != (AttnDims{B: 2, T: 5, C: 12, H: 4, KVH: 2, HS: 3}) || d.QKVWidth() != 24 {
		t.Fatalf("forward: %+v %v", d, err)
	}
	d, _, err = k.AttentionForward(f32(t, 2, 5, 8), f32(t, 2, 4, 5), f32(t, 2, 5, 12), nil, 4, 1)
	if err != nil || d.HS != 2 || d.KVH != 1 {
		t.Fatalf("one key/value head: %+v %v", d, err)
	}
	_, _, err = k.AttentionBackward(f32(t, 2, 5, 24), f32(t, 2, 5, 12), qkv, out, lse, nil, 4, 2)
	noErr(t, "backward", err)
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"kvHeads not dividing", attnErr(k.AttentionForward(out, lse, f32(t, 2, 5, 30), nil, 4, 3)), "4 query heads cannot share 3 key/value heads"},
		{"kvHeads above nHead", attnErr(k.AttentionForward(out, lse, qkv, nil, 2, 4)), "2 query heads cannot share 4"},
		{"zero kvHeads", attnErr(k.AttentionForward(out, lse, qkv, nil, 4, 0)), "cannot share 0"},
		{"width of another grouping", attnErr(k.AttentionForward(out, lse, f32(t, 2, 5, 21), nil, 4, 2)), "want rows of (H+2·KVH)·hs = 8·hs"},
		// [2,5,24] read as multi-head attention: hs 2, C 8.
		{"out of another grouping", attnErr(k.AttentionForward(out, lse, qkv, nil, 4, 4)), "out is float32[2,5,12], want [2 5 8]"},
		{"backward dqkv of multi-head width", attnErr(k.AttentionBackward(f32(t, 2, 5, 36), f32(t, 2, 5, 12), qkv, out, lse, nil, 4, 2)), "dqkv is float32[2,5,36], want [2 5 24]"},
		{"lse per key/value head", attnErr(k.AttentionForward(out, f32(t, 2, 2, 5), qkv, nil, 4, 2)), "lse is float32[2,2,5], want [2 4 5]"},
	} {
		wantErr(t, c.name, c.err, "attention ", c.want)
	}

	// Caches hold the KVH key/value heads.
	kc, vc := f32(t, 2, 2, 8, 3), f32(t, 2, 2, 8, 3)
	dd, _, err := k.KVCacheWrite(kc, vc, f32(t, 2, 3, 24), nil, 4, 2)
	if err != nil || dd.H != 4 || dd.KVH != 2 || dd.HS != 3 || dd.C != 12 || dd.S != 8 || dd.QKVWidth() != 24 {
		t.Fatalf("write: %+v %v", dd, err)
	}
	dd, _, err = k.AttentionDecode(f32(t, 2, 12), f32(t, 2, 24), kc, vc, i32(t, 2), 4, 2)
	if err != nil || dd.H != 4 || dd.KVH != 2 || dd.S != 8 {
		t.Fatalf("decode: %+v %v", dd, err)
	}
	hk, hv := f32(t, 2, 4, 8, 3), f32(t, 2, 4, 8, 3)
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"write caches of H heads", decodeErr(k.KVCacheWrite(hk, hv, f32(t, 2, 3, 24), nil, 4, 2)), "kc is float32[2,4,8,3], want [2 2 8 3]"},
		{"decode caches of H heads", decodeErr(k.AttentionDecode(f32(t, 2, 12), f32(t, 2, 24), hk, hv, i32(t, 2), 4, 2)), "kc is float32[2,4,8,3], want [2 2 8 3]"},
		{"decode out", decodeErr(k.AttentionDecode(f32(t, 2, 6), f32(t, 2, 24), kc, vc, i32(t, 2), 4, 2)), "out is float32[2,6], want [2 12]"},
		{"write heads", decodeErr(k.KVCacheWrite(kc, vc, f32(t, 2, 3, 24), nil, 4, 3)), "4 query heads cannot share 3"},
	} {
		wantErr(t, c.name, c.err, c.want)
	}
}

func TestCheckerRMSNorm(t *testing.T) {
	out, inp, w, rstd := f32(t, 3, 4), f32(t, 3, 4), f32(t, 4), f32(t, 3)
	n, c, err := k.RMSNormForward(out, rstd, inp, w, 1e-5)
	if err != nil || n != 3 || c != 4 {
		t.Fatalf("forward: %d %d %v", n, c, err)
	}
	_, _, err = k.RMSNormForward(out, nil, inp, w, 1e-6)
	noErr(t, "no statistic", err)
	n, c, err = k.RMSNormBackward(f32(t, 3, 4), f32(t, 4), f32(t, 3, 4), inp, w, rstd)
	if err != nil || n != 3 || c != 4 {
		t.Fatalf("backward: %d %d %v", n, c, err)
	}
	shared := f32(t, 20)
	bf := func(shape ...int) *Tensor { return newT(t, BF16, shape...) }
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"eps 0", rows(k.RMSNormForward(out, rstd, inp, w, 0)), "eps 0, want finite > 0"},
		{"eps NaN", rows(k.RMSNormForward(out, rstd, inp, w, float32(nan()))), "eps NaN"},
		{"weight width", rows(k.RMSNormForward(out, rstd, inp, f32(t, 5), 1e-5)), "inp is float32[3,4], want last dimension 5"},
		{"out length", rows(k.RMSNormForward(f32(t, 2, 4), rstd, inp, w, 1e-5)), "out is float32[2,4] (8 elements), want 12"},
		{"rstd length", rows(k.RMSNormForward(out, f32(t, 4), inp, w, 1e-5)), "rstd is float32[4] (4 elements), want 3"},
		{"rstd bf16", rows(k.RMSNormForward(bf(3, 4), bf(3), bf(3, 4), bf(4), 1e-5)), "rstd is bf16, want float32"},
		{"mixed activations", rows(k.RMSNormForward(bf(3, 4), nil, bf(3, 4), w, 1e-5)), "weight is float32, want bf16"},
		{"in place", rows(k.RMSNormForward(inp, rstd, inp, w, 1e-5)), "out float32[3,4] overlaps inp"},
		{"out overlaps rstd", rows(k.RMSNormForward(shared.MustView(0, 3, 4), shared.MustView(10, 3), inp, w, 1e-5)), "out float32[3,4] overlaps rstd"},
		{"backward rstd nil", rows(k.RMSNormBackward(f32(t, 3, 4), f32(t, 4), f32(t, 3, 4), inp, w, nil)), "rstd is nil"},
		{"backward dweight length", rows(k.RMSNormBackward(f32(t, 3, 4), f32(t, 5), f32(t, 3, 4), inp, w, rstd)), "dweight is float32[5]"},
		{"backward dweight bf16", rows(k.RMSNormBackward(bf(3, 4), bf(4), bf(3, 4), bf(3, 4), bf(4), rstd)), "dweight is bf16, want float32"},
		{"backward dinp = dout", rows(k.RMSNormBackward(inp, f32(t, 4), inp, f32(t, 3, 4), w, rstd)), "dinp float32[3,4] overlaps dout"},
		{"backward dout length", rows(k.RMSNormBackward(f32(t, 3, 4), f32(t, 4), f32(t, 2, 4), inp, w, rstd)), "dout is float32[2,4]"},
	} {
		wantErr(t, c.name, c.err, "rmsnorm ", c.want)
	}
}

func TestCheckerRoPE(t *testing.T) {
	qkv, inv := f32(t, 2, 5, 24), f32(t, 2) // H 4, KVH 2, hs 3: odd
	_, err := k.RoPE(false, qkv, inv, nil, 4, 2)
	wantErr(t, "odd head size", err, "rope forward: invFreq is float32[2], want [hs/2] for an even head size hs = 3")
	qkv = f32(t, 2, 5, 32) // hs 4
	d, err := k.RoPE(false, qkv, inv, i32(t, 2), 4, 2)
	if err != nil || d != (RoPEDims{B: 2, T: 5, H: 4, KVH: 2, HS: 4, Act: Float32}) || d.QKVWidth() != 32 {
		t.Fatalf("forward: %+v %v", d, err)
	}
	_, err = k.RoPE(true, qkv, inv, nil, 4, 4)
	wantErr(t, "backward heads", err, "rope backward: dqkv is float32[2,5,32], want rows of (H+2·KVH)·hs = 12·hs")
	whole := f32(t, 2*5*32+4)
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"rank 2", rope(k.RoPE(false, f32(t, 10, 32), inv, nil, 4, 2)), "qkv is float32[10,32], want [B,T,(H+2·KVH)·hs]"},
		{"heads", rope(k.RoPE(false, qkv, inv, nil, 4, 3)), "4 query heads cannot share 3"},
		{"invFreq length", rope(k.RoPE(false, qkv, f32(t, 4), nil, 4, 2)), "invFreq is float32[4], want [hs/2]"},
		{"invFreq nil", rope(k.RoPE(false, qkv, nil, nil, 4, 2)), "invFreq is nil"},
		{"invFreq bf16", rope(k.RoPE(false, newT(t, BF16, 2, 5, 32), newT(t, BF16, 2), nil, 4, 2)), "invFreq is bf16, want float32"},
		{"start float", rope(k.RoPE(false, qkv, inv, f32(t, 2), 4, 2)), "start is float32, want int32"},
		{"start length", rope(k.RoPE(false, qkv, inv, i32(t, 3), 4, 2)), "start is int32[3], want [2]"},
		{"qkv int32", rope(k.RoPE(false, i32(t, 2, 5, 32), inv, nil, 4, 2)), "qkv is int32, want float32"},
		{"qkv overlaps invFreq", rope(k.RoPE(false, whole.MustView(0, 2, 5, 32), whole.MustView(318, 2), nil, 4, 2)), "qkv float32[2,5,32] overlaps invFreq"},
	} {
		wantErr(t, c.name, c.err, c.want)
	}
}

func TestCheckerSwiGLU(t *testing.T) {
	out, inp := f32(t, 3, 4), f32(t, 3, 8)
	n, f, err := k.SwiGLUForward(out, inp)
	if err != nil || n != 3 || f != 4 {
		t.Fatalf("forward: %d %d %v", n, f, err)
	}
	n, f, err = k.SwiGLUForward(f32(t, 2, 3, 4), f32(t, 6, 8))
	if err != nil || n != 6 || f != 4 {
		t.Fatalf("forward of [B,T,F]: %d %d %v", n, f, err)
	}
	n, f, err = k.SwiGLUBackward(f32(t, 3, 8), inp, out)
	if err != nil || n != 3 || f != 4 {
		t.Fatalf("backward: %d %d %v", n, f, err)
	}
	whole := f32(t, 40)
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"inp width", rows(k.SwiGLUForward(out, f32(t, 3, 6))), "inp is float32[3,6], want last dimension 8"},
		{"out rows", rows(k.SwiGLUForward(f32(t, 2, 4), inp)), "out is float32[2,4] (8 elements), want 12"},
		{"out empty width", rows(k.SwiGLUForward(f32(t, 3, 0), inp)), "want [N,F] and [N,2F] with F > 0"},
		{"out rank 0", rows(k.SwiGLUForward(f32(t), inp)), "want [N,F] and [N,2F]"},
		{"mixed", rows(k.SwiGLUForward(newT(t, BF16, 3, 4), inp)), "inp is float32, want bf16"},
		{"out inside inp", rows(k.SwiGLUForward(whole.MustView(0, 3, 4), whole.MustView(8, 3, 8))), "out float32[3,4] overlaps inp"},
		{"backward dinp length", rows(k.SwiGLUBackward(f32(t, 3, 4), inp, out)), "dinp is float32[3,4] (12 elements), want 24"},
		{"backward dout rows", rows(k.SwiGLUBackward(f32(t, 3, 8), inp, f32(t, 4, 4))), "dout is float32[4,4] (16 elements), want 12"},
		{"backward in place", rows(k.SwiGLUBackward(inp, inp, out)), "dinp float32[3,8] overlaps inp"},
		{"backward dinp over dout", rows(k.SwiGLUBackward(whole.MustView(0, 3, 8), inp, whole.MustView(20, 3, 4))), "dinp float32[3,8] overlaps dout"},
	} {
		wantErr(t, c.name, c.err, "swiglu ", c.want)
	}
}

// rows keeps the error of a row-wise check.
func rows(_, _ int, err error) error { return err }

// rope keeps the error of a rotary embedding check.
func rope(_ RoPEDims, err error) error { return err }
