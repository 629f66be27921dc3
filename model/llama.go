package model

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
)

// The Llama family's network (Llama, Qwen2, Mistral): token embedding, then
// per block
//
//	x += o_proj(attention(rope(qkv_proj(rmsnorm₁(x)))))
//	x += down_proj(silu(gate)·up),  [gate, up] = gate_up_proj(rmsnorm₂(x))
//
// then a final RMSNorm and the head (head.go). Attention is grouped-query
// (KVHeads key/value heads) and causal; rotary embeddings rotate the
// queries and keys in place after the projection, so the attention and
// the KV cache hold rotated keys. Dropout, when a training config asks for
// it, sits where GPT-2 has it (embedding and both branch outputs; Hugging
// Face's Llama has none).

// llamaState is a Llama-family model's constant tensors.
type llamaState struct {
	invFreq *gpu.Tensor // float32 [hs/2], the rotary inverse frequencies
	// The embedding op adds a position row; the Llama family has no
	// position embedding, so it reads row 0 of a zero [1,C] table at
	// position 0 everywhere.
	zeroWPE *gpu.Tensor // [1,C], activation dtype
	zeroPos *gpu.Tensor // Int32 [maxB·maxT], zeros
	eps     float32     // rms_norm_eps
}

func (s *llamaState) init(m *Model) error {
	b, c := m.b, m.Cfg
	inv, err := c.ropeInvFreq()
	if err != nil {
		return fmt.Errorf("model: %w", err)
	}
	if s.invFreq, err = b.Alloc(gpu.Float32, len(inv)); err != nil {
		return fmt.Errorf("rope frequencies: %w", err)
	}
	if err := b.Upload(s.invFreq, inv); err != nil {
		return fmt.Errorf("rope frequencies: %w", err)
	}
	if s.zeroWPE, err = b.Alloc(m.prec.ActDType(), 1, c.NEmbd); err != nil {
		return fmt.Errorf("zero position table: %w", err)
	}
	b.Fill(s.zeroWPE, 0)
	if s.zeroPos, err = b.Alloc(gpu.Int32, m.maxB*m.maxT); err != nil {
		return fmt.Errorf("zero positions: %w", err)
	}
	if err := b.UploadInt32(s.zeroPos, make([]int32, m.maxB*m.maxT)); err != nil {
		return fmt.Errorf("zero positions: %w", err)
	}
	s.eps = float32(c.RMSNormEps)
	return b.Err()
}

// embed writes the token embeddings of tokens [B,T] into out [B,T,C].
func (s *llamaState) embed(b gpu.Backend, out, tokens, wte *gpu.Tensor) {
	pos := s.zeroPos.MustView(0, tokens.Dim(0), tokens.Dim(1))
	b.EmbeddingForward(out, tokens, pos, wte, s.zeroWPE)
}

// llamaBody is body for the Llama family: embeddings to the final RMSNorm
// (a.lnf).
func (m *Model) llamaBody(a *acts, validLen *gpu.Tensor, drop float32, seed uint64) {
	b, c, p, ls := m.b, m.Cfg, m.w, &m.llama
	H, KVH := c.NHead, c.KVHeads
	ls.embed(b, a.encoded3, a.tokens, p.WTE)
	if drop > 0 {
		b.Dropout(a.encoded, a.encoded, drop, dropSeed(seed, 0))
	}
	residual := a.encoded
	for l := range p.Layers {
		w, s := &p.Layers[l], &a.layers[l]
		b.RMSNormForward(s.ln1, s.ln1Rstd, residual, w.AttnNorm, ls.eps)
		b.MatMul(s.qkv, s.ln1, w.QKVW, false, true, 1, 0)
		if w.QKVB != nil {
			b.AddBias(s.qkv, w.QKVB)
		}
		b.RoPEForward(s.qkv3, ls.invFreq, nil, H, KVH)
		b.AttentionForward(s.atty3, s.lse, s.qkv3, validLen, H, KVH)
		b.MatMul(s.attProj, s.atty, w.OW, false, true, 1, 0)
		if drop > 0 {
			b.Dropout(s.attProj, s.attProj, drop, dropSeed(seed, 2*l+1))
		}
		b.Add(s.res2, residual, s.attProj)
		b.RMSNormForward(s.ln2, s.ln2Rstd, s.res2, w.MLPNorm, ls.eps)
		b.MatMul(s.fch, s.ln2, w.GateUpW, false, true, 1, 0)
		b.SwiGLUForward(s.fchGelu, s.fch)
		b.MatMul(s.fcProj, s.fchGelu, w.DownW, false, true, 1, 0)
		if drop > 0 {
			b.Dropout(s.fcProj, s.fcProj, drop, dropSeed(seed, 2*l+2))
		}
		b.Add(s.res3, s.res2, s.fcProj)
		residual = s.res3
	}
	b.RMSNormForward(a.lnf, a.lnfRstd, residual, p.Norm, ls.eps)
}

// llamaBackward is Backward through the Llama family's body, from
// ∂L/∂lnf in a.dNormOut.
func (m *Model) llamaBackward(a *acts, validLen *gpu.Tensor) {
	b, c, ls := m.b, m.Cfg, &m.llama
	p, g := m.w, m.Grads
	H, KVH := c.NHead, c.KVHeads
	drop := c.Dropout
	dres := a.dResidual
	b.Fill(dres, 0)
	last := a.encoded
	if n := len(a.layers); n > 0 {
		last = a.layers[n-1].res3
	}
	b.RMSNormBackward(dres, g.Norm, a.dNormOut, last, p.Norm, a.lnfRstd)
	for l := len(p.Layers) - 1; l >= 0; l-- {
		w, gw, s := &p.Layers[l], &g.Layers[l], &a.layers[l]
		residual := a.encoded
		if l > 0 {
			residual = a.layers[l-1].res3
		}
		// res3 = res2 + dropout(down_proj(swiglu)): dres is ∂L/∂res2's
		// direct term.
		b.DropoutBackward(a.dBranch, dres, drop, dropSeed(a.seed, 2*l+2))
		b.MatMul(gw.DownW, a.dBranch, s.fchGelu, true, false, 1, 1)
		b.MatMul(a.dMLPAct, a.dBranch, w.DownW, false, false, 1, 0)
		b.SwiGLUBackward(a.dMLPHidden, s.fch, a.dMLPAct)
		b.MatMul(gw.GateUpW, a.dMLPHidden, s.ln2, true, false, 1, 1)
		b.MatMul(a.dNormOut, a.dMLPHidden, w.GateUpW, false, false, 1, 0)
		b.RMSNormBackward(dres, gw.MLPNorm, a.dNormOut, s.res2, w.MLPNorm, s.ln2Rstd)
		// res2 = residual + dropout(o_proj(attention)).
		b.DropoutBackward(a.dBranch, dres, drop, dropSeed(a.seed, 2*l+1))
		b.MatMul(gw.OW, a.dBranch, s.atty, true, false, 1, 1)
		b.MatMul(a.dAttnOut, a.dBranch, w.OW, false, false, 1, 0)
		b.AttentionBackward(a.dQKV3, a.dAttnOut3, s.qkv3, s.atty3, s.lse, validLen, H, KVH)
		// The attention read rotated queries and keys: rotate their
		// gradient back to the projection's output.
		b.RoPEBackward(a.dQKV3, ls.invFreq, nil, H, KVH)
		b.MatMul(gw.QKVW, a.dQKV, s.ln1, true, false, 1, 1)
		if gw.QKVB != nil {
			b.BiasBackward(gw.QKVB, a.dQKV)
		}
		b.MatMul(a.dNormOut, a.dQKV, w.QKVW, false, false, 1, 0)
		b.RMSNormBackward(dres, gw.AttnNorm, a.dNormOut, residual, w.AttnNorm, s.ln1Rstd)
		m.gradsReady(l)
	}
	b.DropoutBackward(dres, dres, drop, dropSeed(a.seed, 0))
	b.EmbeddingBackward(g.WTE, nil, a.dResidual3, a.tokens, nil)
	m.gradsReady(-1)
}

// llamaDecode is DecodeStep's network for the Llama family: the step's
// tokens in d, each rotated to its own position (d.start; −1 skips an
// inactive sequence), through every block, appending the rotated keys to
// the cache, to the logits.
func (m *Model) llamaDecode(d *decodeViews) {
	b, c, p, ls := m.b, m.Cfg, m.w, &m.llama
	H, KVH := c.NHead, c.KVHeads
	ls.embed(b, d.x3, d.tokens, p.WTE)
	for l := range p.Layers {
		w := &p.Layers[l]
		b.RMSNormForward(d.ln, nil, d.x, w.AttnNorm, ls.eps)
		b.MatMul(d.qkv, d.ln, w.QKVW, false, true, 1, 0)
		if w.QKVB != nil {
			b.AddBias(d.qkv, w.QKVB)
		}
		b.RoPEForward(d.qkv3, ls.invFreq, d.start, H, KVH)
		b.KVCacheWrite(d.k[l], d.v[l], d.qkv3, d.start, H, KVH)
		b.AttentionDecode(d.att, d.qkv, d.k[l], d.v[l], d.lens, H, KVH)
		b.MatMul(d.proj, d.att, w.OW, false, true, 1, 0)
		b.Add(d.x, d.x, d.proj)
		b.RMSNormForward(d.ln, nil, d.x, w.MLPNorm, ls.eps)
		b.MatMul(d.fc, d.ln, w.GateUpW, false, true, 1, 0)
		b.SwiGLUForward(d.act, d.fc)
		b.MatMul(d.proj, d.act, w.DownW, false, true, 1, 0)
		b.Add(d.x, d.x, d.proj)
	}
	b.RMSNormForward(d.ln, nil, d.x, p.Norm, ls.eps)
	b.MatMul(d.logits, d.ln, p.LMHead, false, true, 1, 0)
}
