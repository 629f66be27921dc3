package model

import (
	"fmt"

	"github.com/instructgo/instructgo/gpu"
)

// KVCache holds what incremental decoding keeps between steps: every
// layer's keys and values for up to maxB sequences of up to maxS tokens,
// laid out [maxB,KVH,maxS,hs] so one head's keys are contiguous (KVH is
// the number of key/value heads: n_head in GPT-2, fewer with grouped-query
// attention), and the activations of one decoding step. Everything is allocated once by
// NewKVCache; Prefill and DecodeStep allocate no device memory.
//
// A cache serves one batch at a time: Prefill starts a batch (forgetting the
// previous one) and DecodeStep extends it by one token per sequence.
type KVCache struct {
	m          *Model
	maxB, maxS int
	k, v       []*gpu.Tensor // per layer [maxB,KVH,maxS,hs]

	// The current batch: its size, each sequence's cached length, and views
	// of the buffers shaped for it.
	nb   int
	lens []int
	cur  decodeViews

	ids                   *gpu.Tensor // Int32 [4·maxB]: tokens, positions, write starts, lengths
	sampled               *gpu.Tensor // Int32 [maxB]: Generate's sampled tokens
	gen                   *gpu.Tensor // Int32 [1+3·maxB+maxB·maxS]: Generate's live count, state and tokens
	x, ln, att, proj, hid *gpu.Tensor // [maxB,C]
	qkv, fc, logits       *gpu.Tensor // [maxB,W], [maxB,hidden], [maxB,V]
	act                   *gpu.Tensor // [maxB,F]: SwiGLU's output (Llama family; nil for GPT-2)
	host                  []int32     // staging for ids

	// On a gpu.Graphs backend a decoding step of a batch of graphB
	// sequences is recorded once as graph and replayed per token; warmB
	// is the batch size of the last step run without it.
	graph         gpu.Graph
	graphB, warmB int
	noGraph       bool // the backend refused to capture: every step runs its ops
}

// decodeViews are the cache's buffers shaped for a batch of B sequences.
type decodeViews struct {
	k, v                  []*gpu.Tensor // per layer [B,KVH,maxS,hs]
	ids                   *gpu.Tensor   // Int32 [4·B]
	tokens, positions     *gpu.Tensor   // Int32 [B,1]
	start, lens, sampled  *gpu.Tensor   // Int32 [B]
	x, ln, att, proj, hid *gpu.Tensor   // [B,C]
	x3                    *gpu.Tensor   // [B,1,C]
	qkv, qkv3, fc, logits *gpu.Tensor   // [B,W], [B,1,W], [B,hidden], [B,V]
	act                   *gpu.Tensor   // [B,F] (Llama family)
}

// The widths of a decoding step's rows: W = QKVWidth; hidden = the MLP's
// first projection (GPT-2: 4C, GELU in place; Llama family: 2F, gate and
// up, then SwiGLU into act [F]).
func decodeHidden(c Config) int {
	if c.IsLlama() {
		return 2 * c.MLPWidth()
	}
	return c.MLPWidth()
}

// NewKVCache allocates a cache for up to maxB sequences of up to maxS
// tokens each (prompt and generated tokens together; at most the model's
// context, Cfg.MaxSeqLen). Prefill also needs each batch to fit the model's
// own buffers (MaxBatch, MaxSeq).
func (m *Model) NewKVCache(maxB, maxS int) (*KVCache, error) {
	c := m.Cfg
	if c.ScalarHead {
		return nil, fmt.Errorf("kv cache: a scalar-head model has no language-model head to decode with")
	}

	if maxB <= 0 || maxS <= 0 || maxS > c.MaxSeqLen {
		return nil, fmt.Errorf("kv cache: %d sequences × %d tokens out of range (tokens at most the context of %d)", maxB, maxS, c.MaxSeqLen)
	}
	b := m.b
	kv := &KVCache{m: m, maxB: maxB, maxS: maxS, host: make([]int32, 4*maxB)}
	alloc := func(dt gpu.DType, shape ...int) (*gpu.Tensor, error) {
		t, err := b.Alloc(dt, shape...)
		if err != nil {
			return nil, fmt.Errorf("kv cache: %w", err)
		}
		return t, nil
	}
	var err error
	act := m.prec.ActDType() // the cache and the step's activations
	for l := 0; l < c.NLayer; l++ {
		k, err := alloc(act, maxB, c.KVHeadCount(), maxS, c.HeadSize())
		if err != nil {
			return nil, err
		}
		v, err := alloc(act, maxB, c.KVHeadCount(), maxS, c.HeadSize())
		if err != nil {
			return nil, err
		}
		kv.k, kv.v = append(kv.k, k), append(kv.v, v)
	}
	C := c.NEmbd
	for _, f := range []struct {
		dst  **gpu.Tensor
		dt   gpu.DType
		cols int
	}{
		{&kv.ids, gpu.Int32, 4}, {&kv.sampled, gpu.Int32, 1},
		{&kv.x, act, C}, {&kv.ln, act, C}, {&kv.att, act, C},
		{&kv.proj, act, C}, {&kv.hid, act, C},
		{&kv.qkv, act, c.QKVWidth()}, {&kv.fc, act, decodeHidden(c)}, {&kv.logits, act, c.VocabSize},
	} {
		if *f.dst, err = alloc(f.dt, maxB*f.cols); err != nil {
			return nil, err
		}
	}
	if kv.gen, err = alloc(gpu.Int32, 1+maxB*(3+maxS)); err != nil {
		return nil, err
	}
	if c.IsLlama() {
		if kv.act, err = alloc(act, maxB*c.MLPWidth()); err != nil {
			return nil, err
		}
	}
	return kv, nil
}

// MaxBatch is the most sequences the cache holds.
func (kv *KVCache) MaxBatch() int { return kv.maxB }

// MaxSeq is the most tokens (prompt and generated) a sequence can hold.
func (kv *KVCache) MaxSeq() int { return kv.maxS }

// lengths returns each sequence's cached length in the current batch.
func (kv *KVCache) lengths() []int { return append([]int(nil), kv.lens...) }

// setBatch shapes the cache's views for B sequences.
func (kv *KVCache) setBatch(B int) {
	kv.nb = B
	kv.lens = kv.lens[:0]
	for range B {
		kv.lens = append(kv.lens, 0)
	}
	c := kv.m.Cfg
	C, KVH, hs, W := c.NEmbd, c.KVHeadCount(), c.HeadSize(), c.QKVWidth()
	d := &kv.cur
	d.k, d.v = d.k[:0], d.v[:0]
	for l := range kv.k {
		d.k = append(d.k, kv.k[l].MustView(0, B, KVH, kv.maxS, hs))
		d.v = append(d.v, kv.v[l].MustView(0, B, KVH, kv.maxS, hs))
	}
	d.ids = kv.ids.MustView(0, 4*B)
	d.tokens = kv.ids.MustView(0, B, 1)
	d.positions = kv.ids.MustView(B, B, 1)
	d.start = kv.ids.MustView(2*B, B)
	d.lens = kv.ids.MustView(3*B, B)
	d.sampled = kv.sampled.MustView(0, B)
	d.x = kv.x.MustView(0, B, C)
	d.x3 = kv.x.MustView(0, B, 1, C)
	d.ln = kv.ln.MustView(0, B, C)
	d.att = kv.att.MustView(0, B, C)
	d.proj = kv.proj.MustView(0, B, C)
	d.hid = kv.hid.MustView(0, B, C)
	d.qkv = kv.qkv.MustView(0, B, W)
	d.qkv3 = kv.qkv.MustView(0, B, 1, W)
	d.fc = kv.fc.MustView(0, B, decodeHidden(c))
	d.logits = kv.logits.MustView(0, B, c.VocabSize)
	if kv.act != nil {
		d.act = kv.act.MustView(0, B, c.MLPWidth())
	}
}

// NextLogits is the [B,V] next-token logits of the last Prefill or
// DecodeStep (row b for sequence b), or nil before either ran.
func (m *Model) NextLogits() *gpu.Tensor { return m.next }

// Prefill starts a new batch in kv: it runs the model over the prompts
// (right-padded to the longest, in one forward pass), writes every layer's
// keys and values into the cache, and leaves in NextLogits the logits that
// follow each prompt's last token. Each prompt needs 1..min(MaxSeq of the
// model, MaxSeq of the cache) ids in the vocabulary; there are at most
// MaxBatch of the cache, which the model runs MaxBatch of its own at a
// time. Prefill runs in the model's own
// activation buffers, so it replaces what the last Forward left there
// (LogProbs, hidden, ...) and no Backward can follow it.
func (m *Model) Prefill(kv *KVCache, prompts [][]int32) error {
	if err := m.checkCache(kv); err != nil {
		return err
	}
	B := len(prompts)
	if B == 0 || B > kv.maxB {
		return fmt.Errorf("prefill: %d prompts, want 1..%d", B, kv.maxB)
	}
	maxLen := min(m.maxT, kv.maxS)
	for i, p := range prompts {
		if len(p) == 0 || len(p) > maxLen {
			return fmt.Errorf("prefill: prompt %d has %d tokens, want 1..%d", i, len(p), maxLen)
		}
		if err := m.checkIDs(p); err != nil {
			return fmt.Errorf("prefill: prompt %d: %w", i, err)
		}
	}
	kv.setBatch(B)
	for lo := 0; lo < B; lo += m.maxB {
		if err := m.prefillRows(kv, prompts[lo:min(B, lo+m.maxB)], lo); err != nil {
			return fmt.Errorf("prefill: %w", err)
		}
	}
	if err := m.b.Err(); err != nil {
		return fmt.Errorf("prefill: %w", err)
	}
	for i, p := range prompts {
		kv.lens[i] = len(p)
	}
	return nil
}

// prefillRows is Prefill's forward pass for the prompts of rows lo.. of
// the batch (at most the model's MaxBatch): their keys and values into
// those rows of the cache, their next-token logits into those rows of
// NextLogits.
func (m *Model) prefillRows(kv *KVCache, prompts [][]int32, lo int) error {
	n, T := len(prompts), 0
	for _, p := range prompts {
		T = max(T, len(p))
	}
	b, c := m.b, m.Cfg
	a := m.views(n, T)
	a.train = false // what Backward needs is not kept
	tokens := make([]int32, n*T)
	valid := make([]int32, n)
	for i, p := range prompts {
		copy(tokens[i*T:], p)
		valid[i] = int32(len(p))
	}
	if err := b.UploadInt32(a.tokens, tokens); err != nil {
		return fmt.Errorf("upload tokens: %w", err)
	}
	if err := b.UploadInt32(a.validLen, valid); err != nil {
		return fmt.Errorf("upload lengths: %w", err)
	}
	m.body(a, a.validLen, 0, 0)
	C, KVH, hs, S, V := c.NEmbd, c.KVHeadCount(), c.HeadSize(), kv.maxS, c.VocabSize
	for l := range a.layers {
		kc := kv.k[l].MustView(lo*KVH*S*hs, n, KVH, S, hs)
		vc := kv.v[l].MustView(lo*KVH*S*hs, n, KVH, S, hs)
		b.KVCacheWrite(kc, vc, a.layers[l].qkv3, nil, c.NHead, KVH)
	}
	// Logits at each prompt's last token only.
	for i := range valid {
		valid[i]--
	}
	last := kv.ids.MustView(2*kv.nb+lo, n) // these rows of the step's write starts, free until decoding
	if err := b.UploadInt32(last, valid); err != nil {
		return fmt.Errorf("upload indices: %w", err)
	}
	hid := kv.hid.MustView(lo*C, n, C)
	b.GatherRows(hid, a.lnf.MustReshape(n, T, C), last)
	b.MatMul(kv.logits.MustView(lo*V, n, V), hid, m.w.LMHead, false, true, 1, 0)
	m.next = kv.cur.logits
	return nil
}

// DecodeStep appends one token per sequence of the current batch (tokens
// has one id per sequence of the last Prefill), each at its sequence's own
// next position, and leaves the logits that follow it in NextLogits. A
// negative id marks an inactive sequence (finished, say): its cache and
// length are left alone and its row of the logits is meaningless. An
// active sequence must have room in the cache.
func (m *Model) DecodeStep(kv *KVCache, tokens []int32) error {
	if err := m.checkCache(kv); err != nil {
		return err
	}
	B := kv.nb
	if B == 0 {
		return fmt.Errorf("decode step: no batch (run Prefill first)")
	}
	if len(tokens) != B {
		return fmt.Errorf("decode step: %d tokens for %d sequences", len(tokens), B)
	}
	h := kv.host[:4*B]
	for i, t := range tokens {
		if t < 0 {
			h[i], h[B+i], h[2*B+i], h[3*B+i] = 0, 0, -1, 0
			continue
		}
		if int(t) >= m.Cfg.VocabSize {
			return fmt.Errorf("decode step: token %d of sequence %d outside the vocabulary of %d", t, i, m.Cfg.VocabSize)
		}
		pos := kv.lens[i]
		if pos >= kv.maxS {
			return fmt.Errorf("decode step: sequence %d already holds %d tokens, the cache's limit", i, pos)
		}
		h[i], h[B+i], h[2*B+i], h[3*B+i] = t, int32(pos), int32(pos), int32(pos+1)
	}
	b := m.b
	if err := b.UploadInt32(kv.cur.ids, h); err != nil {
		return fmt.Errorf("decode step: upload: %w", err)
	}
	if err := m.decodeNetwork(kv); err != nil {
		return fmt.Errorf("decode step: %w", err)
	}
	if err := b.Err(); err != nil {
		return fmt.Errorf("decode step: %w", err)
	}
	for i, t := range tokens {
		if t >= 0 {
			kv.lens[i]++
		}
	}
	return nil
}

// decodeNetwork runs the network of a decoding step on the input already in
// the cache's ids (on the device) and leaves the logits in NextLogits. On a
// backend with graphs the step's ops (about 200 launches for GPT-2 124M)
// are recorded once per batch size and replayed as one launch: the first
// step of a batch size runs directly (so that the ops' scratch reaches its
// size before it is recorded), the second is captured, every later one
// replays. The step reads its tokens and positions from the cache's ids,
// which is what lets one recording serve every token.
func (m *Model) decodeNetwork(kv *KVCache) error {
	gb, ok := m.b.(gpu.Graphs)
	if !ok || kv.noGraph || kv.warmB != kv.nb {
		kv.warmB = kv.nb
		m.decodeOps(&kv.cur)
		return nil
	}
	if kv.graph == nil || kv.graphB != kv.nb {
		if kv.graph != nil {
			if err := kv.graph.Close(); err != nil {
				return fmt.Errorf("decode graph: %w", err)
			}
			kv.graph = nil
		}
		if err := gb.BeginCapture(); err != nil {
			if m.b.Err() != nil {
				return fmt.Errorf("decode graph: %w", err)
			}
			kv.noGraph = true // refused, not failed: decode without graphs
			m.decodeOps(&kv.cur)
			return nil
		}
		m.decodeOps(&kv.cur)
		g, err := gb.EndCapture()
		if err != nil {
			return fmt.Errorf("decode graph: %w", err)
		}
		kv.graph, kv.graphB = g, kv.nb
	}
	m.next = kv.cur.logits
	return kv.graph.Launch()
}

// decodeOps queues the ops of a decoding step's network.
func (m *Model) decodeOps(d *decodeViews) {
	if m.Cfg.IsLlama() {
		m.llamaDecode(d)
	} else {
		m.gpt2Decode(d)
	}
	m.next = d.logits
}

// checkCache reports a cache that cannot serve m.
func (m *Model) checkCache(kv *KVCache) error {
	if kv == nil || kv.m != m {
		return fmt.Errorf("kv cache: the cache was not made by this model's NewKVCache")
	}
	return nil
}

// checkIDs reports an id outside the vocabulary.
func (m *Model) checkIDs(ids []int32) error {
	for j, t := range ids {
		if t < 0 || int(t) >= m.Cfg.VocabSize {
			return fmt.Errorf("token %d at %d outside the vocabulary of %d", t, j, m.Cfg.VocabSize)
		}
	}
	return nil
}

// gpt2Decode is DecodeStep's network for GPT-2: the step's tokens in d
// through every block, appending to the cache, to the logits.
func (m *Model) gpt2Decode(d *decodeViews) {
	b, c, p := m.b, m.Cfg, m.w
	b.EmbeddingForward(d.x3, d.tokens, d.positions, p.WTE, p.WPE)
	for l := range p.Blocks {
		w := &p.Blocks[l]
		b.LayerNormForward(d.ln, nil, nil, d.x, w.LN1W, w.LN1B)
		b.MatMul(d.qkv, d.ln, w.AttnW, false, false, 1, 0)
		b.AddBias(d.qkv, w.AttnB)
		b.KVCacheWrite(d.k[l], d.v[l], d.qkv3, d.start, c.NHead, c.NHead)
		b.AttentionDecode(d.att, d.qkv, d.k[l], d.v[l], d.lens, c.NHead, c.NHead)
		b.MatMul(d.proj, d.att, w.AttnProjW, false, false, 1, 0)
		b.AddBias(d.proj, w.AttnPrB)
		b.Add(d.x, d.x, d.proj)
		b.LayerNormForward(d.ln, nil, nil, d.x, w.LN2W, w.LN2B)
		b.MatMul(d.fc, d.ln, w.FCW, false, false, 1, 0)
		b.AddBias(d.fc, w.FCB)
		b.GeluForward(d.fc, d.fc)
		b.MatMul(d.proj, d.fc, w.FCProjW, false, false, 1, 0)
		b.AddBias(d.proj, w.FCProjB)
		b.Add(d.x, d.x, d.proj)
	}
	b.LayerNormForward(d.ln, nil, nil, d.x, p.LNFW, p.LNFB)
	b.MatMul(d.logits, d.ln, p.LMHead, false, true, 1, 0)
}

// kvCacheBytes is the device memory NewKVCache(B, S) takes: the keys and
// values of every layer and a decoding step's buffers.
func kvCacheBytes(c Config, prec Precision, B, S int) int64 {
	act := int64(prec.ActDType().Size())
	kv := 2 * int64(c.NLayer) * int64(B) * int64(c.KVHeadCount()) * int64(S) * int64(c.HeadSize()) * act
	width := 5*c.NEmbd + c.QKVWidth() + decodeHidden(c) + c.VocabSize
	if c.IsLlama() {
		width += c.MLPWidth() // SwiGLU's output
	}
	step := int64(B) * int64(width) * act
	ints := 4 * (int64(B)*(4+1+3+int64(S)) + 1)
	return kv + step + ints
}

// DecodeBatch is how many of want sequences of up to S tokens to decode
// together: want itself when its KV cache fits in half the device memory
// the backend reports free (a gpu.MemoryReporter), else the most whole
// multiples of MaxBatch that fit, at least MaxBatch; MaxBatch on a backend
// that reports nothing.
func (m *Model) DecodeBatch(want, S int) int {
	r, ok := m.b.(gpu.MemoryReporter)
	if !ok || want <= m.maxB {
		return min(want, m.maxB)
	}
	free, err := r.FreeMemory()
	if err != nil {
		return m.maxB
	}
	budget := free / 2
	if kvCacheBytes(m.Cfg, m.prec, want, S) <= budget {
		return want
	}
	per := kvCacheBytes(m.Cfg, m.prec, m.maxB, S)
	return m.maxB * max(1, int(budget/max(per, 1)))
}
