package cpu

import (
	"math"
	"slices"
	"testing"

	"github.com/instructgo/instructgo/gpu"
)

// The argument rules live in gpu.Checker and are tested in package gpu
// (shapes*_test.go). These tests check the cpu backend's side of them: every
// op and transfer consults the checker, an op it rejects records exactly
// the checker's error (rules on Int32 contents run on the host data), writes
// nothing and does not panic, the error is sticky, and the first one stays.

// rejected is one op call with a bad argument.
type rejected struct {
	run  func()        // the call
	want error         // the checker's verdict on the same arguments
	outs []*gpu.Tensor // tensors the call may write; none may change
}

// indexErr is the error a cpu op records for a checker verdict: err, else
// the first failing rule on Int32 contents.
func indexErr(err error, checks []gpu.IndexCheck) error {
	if err != nil {
		return err
	}
	return gpu.HostAll(checks, I32)
}

// contents copies a tensor's values as float64 (nil for nil).
func contents(x *gpu.Tensor) []float64 {
	switch {
	case x == nil:
		return nil
	case x.DType() == gpu.Int32:
		v := make([]float64, x.Len())
		for i, id := range I32(x) {
			v[i] = float64(id)
		}
		return v
	}
	return to64(F32(x))
}

func TestOpsRejectWithTheChecker(t *testing.T) {
	nan := float32(math.NaN())
	// rnd is a tensor of normal draws, ids an Int32 tensor of vals.
	type mk struct {
		rnd func(shape ...int) *gpu.Tensor
		ids func(vals []int32, shape ...int) *gpu.Tensor
	}
	h := gpu.AdamW{LR: 1e-3, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, Step: 1}
	cases := []struct {
		name string
		call func(b *Backend, m mk) rejected
	}{
		{"fill int32", func(b *Backend, m mk) rejected {
			x := m.ids([]int32{1, 2}, 2)
			return rejected{func() { b.Fill(x, 1) }, checker.Fill(x), []*gpu.Tensor{x}}
		}},
		{"copy length", func(b *Backend, m mk) rejected {
			d, s := m.rnd(3), m.rnd(4)
			return rejected{func() { b.Copy(d, s) }, checker.Copy(d, s), []*gpu.Tensor{d}}
		}},
		{"scale nil", func(b *Backend, m mk) rejected {
			return rejected{func() { b.Scale(nil, 2) }, checker.Scale(nil), nil}
		}},
		{"axpy overlap", func(b *Backend, m mk) rejected {
			w := m.rnd(8)
			y, x := w.MustView(0, 4), w.MustView(2, 4)
			return rejected{func() { b.Axpy(y, 1, x) }, checker.Axpy(y, x), []*gpu.Tensor{w}}
		}},
		{"add partial alias", func(b *Backend, m mk) rejected {
			w, c := m.rnd(8), m.rnd(4)
			o, a := w.MustView(1, 4), w.MustView(0, 4)
			return rejected{func() { b.Add(o, a, c) }, checker.Add(o, a, c), []*gpu.Tensor{w}}
		}},
		{"lerp alias", func(b *Backend, m mk) rejected {
			x := m.rnd(4)
			return rejected{func() { b.Lerp(x, x, 0.5) }, checker.Lerp(x, x), []*gpu.Tensor{x}}
		}},
		{"sum squares out", func(b *Backend, m mk) rejected {
			o, x := m.rnd(2), m.rnd(4)
			return rejected{func() { b.SumSquares(o, x) }, checker.SumSquares(o, x), []*gpu.Tensor{o}}
		}},
		{"dot length", func(b *Backend, m mk) rejected {
			o, x, y := m.rnd(1), m.rnd(4), m.rnd(5)
			return rejected{func() { b.Dot(o, x, y) }, checker.Dot(o, x, y), []*gpu.Tensor{o}}
		}},
		{"add bias width", func(b *Backend, m mk) rejected {
			o, bias := m.rnd(4, 3), m.rnd(4)
			_, _, err := checker.AddBias(o, bias)
			return rejected{func() { b.AddBias(o, bias) }, err, []*gpu.Tensor{o}}
		}},
		{"bias backward width", func(b *Backend, m mk) rejected {
			db, dout := m.rnd(4), m.rnd(4, 3)
			_, _, err := checker.BiasBackward(db, dout)
			return rejected{func() { b.BiasBackward(db, dout) }, err, []*gpu.Tensor{db}}
		}},
		{"gelu length", func(b *Backend, m mk) rejected {
			o, x := m.rnd(4), m.rnd(5)
			return rejected{func() { b.GeluForward(o, x) }, checker.GeluForward(o, x), []*gpu.Tensor{o}}
		}},
		{"gelu backward dinp aliases inp", func(b *Backend, m mk) rejected {
			x, dy := m.rnd(4), m.rnd(4)
			return rejected{func() { b.GeluBackward(x, x, dy) }, checker.GeluBackward(x, x, dy), []*gpu.Tensor{x}}
		}},
		{"dropout p 1", func(b *Backend, m mk) rejected {
			o, x := m.rnd(4), m.rnd(4)
			return rejected{func() { b.Dropout(o, x, 1, 3) }, checker.Dropout(o, x, 1), []*gpu.Tensor{o}}
		}},
		{"dropout backward NaN p", func(b *Backend, m mk) rejected {
			dx, dy := m.rnd(4), m.rnd(4)
			return rejected{func() { b.DropoutBackward(dx, dy, nan, 3) }, checker.DropoutBackward(dx, dy, nan), []*gpu.Tensor{dx}}
		}},
		{"layernorm out aliases inp", func(b *Backend, m mk) rejected {
			x, mean, rstd, w, bias := m.rnd(4, 6), m.rnd(4), m.rnd(4), m.rnd(6), m.rnd(6)
			_, _, err := checker.LayerNormForward(x, mean, rstd, x, w, bias)
			return rejected{func() { b.LayerNormForward(x, mean, rstd, x, w, bias) }, err, []*gpu.Tensor{x, mean, rstd}}
		}},
		{"add layernorm resOut aliases a", func(b *Backend, m mk) rejected {
			a, c, o, mean, rstd, w, bias := m.rnd(4, 6), m.rnd(4, 6), m.rnd(4, 6), m.rnd(4), m.rnd(4), m.rnd(6), m.rnd(6)
			_, _, err := checker.AddLayerNormForward(a, o, mean, rstd, a, c, w, bias)
			return rejected{func() { b.AddLayerNormForward(a, o, mean, rstd, a, c, w, bias) }, err, []*gpu.Tensor{a, o, mean, rstd}}
		}},
		{"layernorm backward nil rstd", func(b *Backend, m mk) rejected {
			dx, dw, db, dy, x, w, mean := m.rnd(4, 6), m.rnd(6), m.rnd(6), m.rnd(4, 6), m.rnd(4, 6), m.rnd(6), m.rnd(4)
			_, _, err := checker.LayerNormBackward(dx, dw, db, dy, x, w, mean, nil)
			return rejected{func() { b.LayerNormBackward(dx, dw, db, dy, x, w, mean, nil) }, err, []*gpu.Tensor{dx, dw, db}}
		}},
		{"embedding token past the vocabulary", func(b *Backend, m mk) rejected {
			o, tok, wte, wpe := m.rnd(2, 3, 4), m.ids([]int32{0, 1, 2, 3, 5, 0}, 2, 3), m.rnd(5, 4), m.rnd(6, 4)
			_, checks, err := checker.EmbeddingForward(o, tok, nil, wte, wpe)
			return rejected{func() { b.EmbeddingForward(o, tok, nil, wte, wpe) }, indexErr(err, checks), []*gpu.Tensor{o}}
		}},
		{"embedding backward negative position", func(b *Backend, m mk) rejected {
			dwte, dwpe, dy := m.rnd(5, 4), m.rnd(6, 4), m.rnd(2, 3, 4)
			tok, pos := m.ids([]int32{0, 1, 2, 3, 4, 0}, 2, 3), m.ids([]int32{0, 1, 2, 0, -1, 2}, 2, 3)
			_, checks, _, err := checker.EmbeddingBackward(dwte, dwpe, dy, tok, pos)
			return rejected{func() { b.EmbeddingBackward(dwte, dwpe, dy, tok, pos) }, indexErr(err, checks), []*gpu.Tensor{dwte, dwpe}}
		}},
		{"attention validLen past T", func(b *Backend, m mk) rejected {
			o, lse, qkv, vl := m.rnd(2, 4, 8), m.rnd(2, 2, 4), m.rnd(2, 4, 24), m.ids([]int32{4, 5}, 2)
			_, checks, err := checker.AttentionForward(o, lse, qkv, vl, 2, 2)
			return rejected{func() { b.AttentionForward(o, lse, qkv, vl, 2, 2) }, indexErr(err, checks), []*gpu.Tensor{o, lse}}
		}},
		{"attention backward heads", func(b *Backend, m mk) rejected {
			dqkv, dy, qkv, o, lse := m.rnd(2, 4, 24), m.rnd(2, 4, 8), m.rnd(2, 4, 24), m.rnd(2, 4, 8), m.rnd(2, 2, 4)
			_, checks, err := checker.AttentionBackward(dqkv, dy, qkv, o, lse, nil, 3, 3)
			return rejected{func() { b.AttentionBackward(dqkv, dy, qkv, o, lse, nil, 3, 3) }, indexErr(err, checks), []*gpu.Tensor{dqkv}}
		}},
		{"kv-cache write past the cache", func(b *Backend, m mk) rejected {
			kc, vc, qkv, start := m.rnd(2, 2, 4, 3), m.rnd(2, 2, 4, 3), m.rnd(2, 2, 18), m.ids([]int32{0, 3}, 2)
			_, checks, err := checker.KVCacheWrite(kc, vc, qkv, start, 2, 2)
			return rejected{func() { b.KVCacheWrite(kc, vc, qkv, start, 2, 2) }, indexErr(err, checks), []*gpu.Tensor{kc, vc}}
		}},
		{"attention decode lens past S", func(b *Backend, m mk) rejected {
			o, qkv, kc, vc, lens := m.rnd(2, 6), m.rnd(2, 18), m.rnd(2, 2, 4, 3), m.rnd(2, 2, 4, 3), m.ids([]int32{1, 5}, 2)
			_, checks, err := checker.AttentionDecode(o, qkv, kc, vc, lens, 2, 2)
			return rejected{func() { b.AttentionDecode(o, qkv, kc, vc, lens, 2, 2) }, indexErr(err, checks), []*gpu.Tensor{o}}
		}},
		{"grouped attention kvHeads not dividing", func(b *Backend, m mk) rejected {
			o, lse, qkv := m.rnd(2, 4, 12), m.rnd(2, 4, 4), m.rnd(2, 4, 30)
			_, checks, err := checker.AttentionForward(o, lse, qkv, nil, 4, 3)
			return rejected{func() { b.AttentionForward(o, lse, qkv, nil, 4, 3) }, indexErr(err, checks), []*gpu.Tensor{o, lse}}
		}},
		{"grouped decode caches of H heads", func(b *Backend, m mk) rejected {
			o, qkv, kc, vc, lens := m.rnd(2, 12), m.rnd(2, 24), m.rnd(2, 4, 4, 3), m.rnd(2, 4, 4, 3), m.ids([]int32{1, 2}, 2)
			_, checks, err := checker.AttentionDecode(o, qkv, kc, vc, lens, 4, 2)
			return rejected{func() { b.AttentionDecode(o, qkv, kc, vc, lens, 4, 2) }, indexErr(err, checks), []*gpu.Tensor{o}}
		}},
		{"rmsnorm eps 0", func(b *Backend, m mk) rejected {
			o, rstd, x, w := m.rnd(4, 6), m.rnd(4), m.rnd(4, 6), m.rnd(6)
			_, _, err := checker.RMSNormForward(o, rstd, x, w, 0)
			return rejected{func() { b.RMSNormForward(o, rstd, x, w, 0) }, err, []*gpu.Tensor{o, rstd}}
		}},
		{"rmsnorm backward dweight length", func(b *Backend, m mk) rejected {
			dx, dw, dy, x, w, rstd := m.rnd(4, 6), m.rnd(5), m.rnd(4, 6), m.rnd(4, 6), m.rnd(6), m.rnd(4)
			_, _, err := checker.RMSNormBackward(dx, dw, dy, x, w, rstd)
			return rejected{func() { b.RMSNormBackward(dx, dw, dy, x, w, rstd) }, err, []*gpu.Tensor{dx, dw}}
		}},
		{"rope invFreq length", func(b *Backend, m mk) rejected {
			qkv, inv := m.rnd(2, 3, 32), m.rnd(3)
			_, err := checker.RoPE(false, qkv, inv, nil, 4, 2)
			return rejected{func() { b.RoPEForward(qkv, inv, nil, 4, 2) }, err, []*gpu.Tensor{qkv}}
		}},
		{"rope backward start shape", func(b *Backend, m mk) rejected {
			dqkv, inv, st := m.rnd(2, 3, 32), m.rnd(2), m.ids([]int32{0, 1, 2}, 3)
			_, err := checker.RoPE(true, dqkv, inv, st, 4, 2)
			return rejected{func() { b.RoPEBackward(dqkv, inv, st, 4, 2) }, err, []*gpu.Tensor{dqkv}}
		}},
		{"swiglu odd input width", func(b *Backend, m mk) rejected {
			o, x := m.rnd(3, 4), m.rnd(3, 7)
			_, _, err := checker.SwiGLUForward(o, x)
			return rejected{func() { b.SwiGLUForward(o, x) }, err, []*gpu.Tensor{o}}
		}},
		{"swiglu backward dinp aliases inp", func(b *Backend, m mk) rejected {
			x, dy := m.rnd(3, 8), m.rnd(3, 4)
			_, _, err := checker.SwiGLUBackward(x, x, dy)
			return rejected{func() { b.SwiGLUBackward(x, x, dy) }, err, []*gpu.Tensor{x}}
		}},
		{"log-softmax target past V", func(b *Backend, m mk) rejected {
			lp, ent, lse, z, tg := m.rnd(4), m.rnd(4), m.rnd(4), m.rnd(4, 9), m.ids([]int32{1, -1, 9, 0}, 4)
			_, _, checks, err := checker.LogSoftmaxForward(lp, ent, lse, z, tg)
			return rejected{func() { b.LogSoftmaxForward(lp, ent, lse, z, tg) }, indexErr(err, checks), []*gpu.Tensor{lp, ent, lse}}
		}},
		{"log-softmax backward dentropy without entropy", func(b *Backend, m mk) rejected {
			z, lse, dlp, dent, tg := m.rnd(4, 9), m.rnd(4), m.rnd(4), m.rnd(4), m.ids([]int32{1, -1, 8, 0}, 4)
			_, _, checks, err := checker.LogSoftmaxBackward(z, lse, nil, tg, dlp, dent)
			return rejected{func() { b.LogSoftmaxBackward(z, lse, nil, tg, dlp, dent) }, indexErr(err, checks), []*gpu.Tensor{z}}
		}},
		{"cross-entropy target past V", func(b *Backend, m mk) rejected {
			lp, lse, z, dlp, tg := m.rnd(4), m.rnd(4), m.rnd(4, 9), m.rnd(4), m.ids([]int32{1, -1, 9, 0}, 4)
			_, _, checks, err := checker.CrossEntropy(lp, nil, lse, z, tg, dlp)
			return rejected{func() { b.CrossEntropy(lp, nil, lse, z, tg, dlp) }, indexErr(err, checks), []*gpu.Tensor{lp, lse, z}}
		}},
		{"gather idx = T", func(b *Backend, m mk) rejected {
			o, x, idx := m.rnd(2, 3), m.rnd(2, 4, 3), m.ids([]int32{0, 4}, 2)
			_, _, _, checks, err := checker.GatherRows(o, x, idx)
			return rejected{func() { b.GatherRows(o, x, idx) }, indexErr(err, checks), []*gpu.Tensor{o}}
		}},
		{"scatter-add dout shape", func(b *Backend, m mk) rejected {
			dx, dy, idx := m.rnd(2, 4, 3), m.rnd(3, 3), m.ids([]int32{1, 0}, 2)
			_, _, _, checks, err := checker.ScatterAddRows(dx, dy, idx)
			return rejected{func() { b.ScatterAddRows(dx, dy, idx) }, indexErr(err, checks), []*gpu.Tensor{dx}}
		}},
		{"matmul inner mismatch", func(b *Backend, m mk) rejected {
			c, a, bm := m.rnd(4, 5), m.rnd(4, 3), m.rnd(2, 5)
			_, err := checker.MatMul(c, a, bm, false, false)
			return rejected{func() { b.MatMul(c, a, bm, false, false, 1, 0) }, err, []*gpu.Tensor{c}}
		}},
		{"sample top-p", func(b *Backend, m mk) rejected {
			tok, z := m.ids([]int32{7, 7, 7}, 3), m.rnd(3, 11)
			s := gpu.Sampling{Temperature: 1, TopP: 1.5}
			_, _, err := checker.Sample(tok, z, s)
			return rejected{func() { b.Sample(tok, z, s, 1) }, err, []*gpu.Tensor{tok}}
		}},
		{"adamw step 0", func(b *Backend, m mk) rejected {
			p, g, mm, v := m.rnd(5), m.rnd(5), m.rnd(5), m.rnd(5)
			h := h
			h.Step = 0
			_, err := checker.AdamW(p, nil, g, mm, v, nil, h)
			return rejected{func() { b.AdamW(p, nil, g, mm, v, nil, h) }, err, []*gpu.Tensor{p, mm, v}}
		}},
		{"ppo policy NaN clipEps", func(b *Backend, m mk) rejected {
			d, st, lp, old, adv, mask := m.rnd(6), m.rnd(4), m.rnd(6), m.rnd(6), m.rnd(6), m.rnd(2, 3)
			_, err := checker.PPOPolicyLoss(d, st, lp, old, adv, mask, nan, 1)
			return rejected{func() { b.PPOPolicyLoss(d, st, lp, old, adv, mask, nan, 1) }, err, []*gpu.Tensor{d, st}}
		}},
		{"ppo value stats overlap values", func(b *Backend, m mk) rejected {
			d, v, old, ret, mask := m.rnd(6), m.rnd(6), m.rnd(6), m.rnd(6), m.rnd(2, 3)
			st := v.MustView(0, 3)
			_, err := checker.PPOValueLoss(d, st, v, old, ret, mask, 0.2, 1)
			return rejected{func() { b.PPOValueLoss(d, st, v, old, ret, mask, 0.2, 1) }, err, []*gpu.Tensor{d, v}}
		}},
		{"kl lastIdx = T", func(b *Backend, m mk) rejected {
			rw, kl, lp, ref, mask, score, last := m.rnd(2, 3), m.rnd(2, 3), m.rnd(2, 3), m.rnd(2, 3), m.rnd(2, 3), m.rnd(2), m.ids([]int32{1, 3}, 2)
			_, _, checks, err := checker.KLPenalizedRewards(rw, kl, lp, ref, mask, score, last, 0.1, gpu.KLK1)
			return rejected{func() { b.KLPenalizedRewards(rw, kl, lp, ref, mask, score, last, 0.1, gpu.KLK1) }, indexErr(err, checks), []*gpu.Tensor{rw, kl}}
		}},
		{"gae adv is returns", func(b *Backend, m mk) rejected {
			x, rw, v, mask := m.rnd(2, 3), m.rnd(2, 3), m.rnd(2, 3), m.rnd(2, 3)
			_, _, err := checker.GAE(x, x, rw, v, mask, 1, 0.95)
			return rejected{func() { b.GAE(x, x, rw, v, mask, 1, 0.95) }, err, []*gpu.Tensor{x}}
		}},
		{"whiten mask short", func(b *Backend, m mk) rejected {
			x, mask := m.rnd(6), m.rnd(5)
			_, err := checker.MaskedWhiten(x, mask)
			return rejected{func() { b.MaskedWhiten(x, mask, true) }, err, []*gpu.Tensor{x}}
		}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := New(2)
			r := testRNG(uint64(700 + i))
			c := tc.call(b, mk{
				rnd: func(shape ...int) *gpu.Tensor { return tensorOf(t, b, randn(r, elems(shape), 1), shape...) },
				ids: func(vals []int32, shape ...int) *gpu.Tensor { return int32Of(t, b, vals, shape...) },
			})
			if c.want == nil {
				t.Fatal("the checker accepts the call: the case is wrong")
			}
			before := make([][]float64, len(c.outs))
			for j, x := range c.outs {
				before[j] = contents(x)
			}
			func() {
				defer func() {
					if p := recover(); p != nil {
						t.Fatalf("panicked: %v", p)
					}
				}()
				c.run()
			}()
			err := b.Err()
			if err == nil || err.Error() != c.want.Error() {
				t.Fatalf("recorded %v, want the checker's %v", err, c.want)
			}
			for j, x := range c.outs {
				if !slices.Equal(contents(x), before[j]) {
					t.Errorf("output %d (%v) written by the rejected call", j, x)
				}
			}
			// Sticky: a valid op later does nothing, and the error stays.
			y := tensorOf(t, b, []float32{1, 2, 3}, 3)
			b.Fill(y, 5)
			if F32(y)[0] != 1 {
				t.Error("an op ran after the error")
			}
			if b.Err() != err || b.Sync() != err {
				t.Errorf("error not sticky: %v, then %v", err, b.Err())
			}
		})
	}
}

// elems is the element count of a shape.
func elems(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// TestFirstErrorStays: a second rejected op does not replace the first
// error.
func TestFirstErrorStays(t *testing.T) {
	b := New(1)
	r := testRNG(720)
	x3, x4 := tensorOf(t, b, randn(r, 3, 1), 3), tensorOf(t, b, randn(r, 4, 1), 4)
	b.Copy(x3, x4)
	first := b.Err()
	if first == nil {
		t.Fatal("copy of mismatched lengths: no error")
	}
	b.Dot(x3, x4, x4)
	if b.Err() != first {
		t.Errorf("second error replaced the first: %v", b.Err())
	}
}

// TestTransfersCheck: Alloc, the uploads and the downloads return the
// checker's error and touch nothing.
func TestTransfersCheck(t *testing.T) {
	b := New(1)
	_, err := b.Alloc(gpu.Float32, 2, -1)
	if want := func() error { _, err := checker.Alloc(gpu.Float32, []int{2, -1}); return err }(); err == nil || err.Error() != want.Error() {
		t.Errorf("alloc: %v, want %v", err, want)
	}
	if _, err := b.Alloc(gpu.DType(9), 2); err == nil {
		t.Error("alloc of an unknown dtype: no error")
	}
	r := testRNG(721)
	vals := randn(r, 6, 1)
	x := tensorOf(t, b, vals, 2, 3)
	ids, _ := b.Alloc(gpu.Int32, 0)
	if ids.DType() != gpu.Int32 || ids.Len() != 0 {
		t.Errorf("empty Int32 tensor: %v", ids)
	}
	foreign, err := gpu.NewTensor(foreignStorage{}, 0, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name      string
		got, want error
	}{
		{"upload length", b.Upload(x, make([]float32, 5)), checker.Upload(x, gpu.Float32, 5)},
		{"upload int32 into float32", b.UploadInt32(x, make([]int32, 6)), checker.Upload(x, gpu.Int32, 6)},
		{"download length", b.Download(make([]float32, 7), x), checker.Download(x, gpu.Float32, 7)},
		{"download foreign", b.Download(make([]float32, 6), foreign), checker.Download(foreign, gpu.Float32, 6)},
		{"download int32 of nil", b.DownloadInt32(nil, nil), checker.Download(nil, gpu.Int32, 0)},
	} {
		if c.want == nil || c.got == nil || c.got.Error() != c.want.Error() {
			t.Errorf("%s: %v, want the checker's %v", c.name, c.got, c.want)
		}
	}
	if !slices.Equal(F32(x), vals) {
		t.Error("a rejected upload wrote the tensor")
	}
	if err := b.Err(); err != nil {
		t.Errorf("a rejected transfer recorded an op error: %v", err)
	}
}

// foreignStorage belongs to no cpu backend.
type foreignStorage struct{}

func (foreignStorage) Elems() int       { return 6 }
func (foreignStorage) DType() gpu.DType { return gpu.Float32 }
