package model

import (
	"slices"

	"github.com/instructgo/instructgo/gpu"
)

// The backward pass runs the transformer blocks from last to first, and a
// block's parameter gradients are final once its backward has run: a
// data-parallel trainer can start summing them over the ranks while the
// pass goes on (Model.OnGradsReady). The buffer's layout puts the decayed
// tensors first, so a block's gradients are two ranges of it (its matrices
// and its gains and biases); the embeddings, the final norm and the head
// (tied to the embeddings, or read before the blocks) are final only at the
// end of the pass.

// GradRange is the elements [Lo, Hi) of the flat gradient buffer
// (Grads.All).
type GradRange struct{ Lo, Hi int }

// GradRanges lists the ranges of the gradient buffer in the order in which
// one Backward reports them final to OnGradsReady: each block's, last
// block first, then the rest. They cover the buffer once.
func (m *Model) GradRanges() []GradRange {
	var out []GradRange
	for _, rs := range m.gradOrder() {
		out = append(out, rs...)
	}
	return out
}

// gradsReady reports to OnGradsReady the ranges of block l, or the rest of
// the buffer for l = -1 (nothing without a hook).
func (m *Model) gradsReady(l int) {
	if m.OnGradsReady == nil {
		return
	}
	order := m.gradOrder()
	i := len(order) - 1 // the rest comes last
	if l >= 0 {
		i = len(order) - 2 - l
	}
	for _, r := range order[i] {
		m.OnGradsReady(r.Lo, r.Hi)
	}
}

// gradOrder is GradRanges grouped by what completes them: block L-1 .. 0,
// then the rest; computed once from the gradient tensors' offsets.
func (m *Model) gradOrder() [][]GradRange {
	if m.gradGroups != nil || m.Grads == nil {
		return m.gradGroups
	}
	g := m.Grads
	var blocks [][]*gpu.Tensor
	for _, b := range g.Blocks {
		blocks = append(blocks, []*gpu.Tensor{b.LN1W, b.LN1B, b.AttnW, b.AttnB, b.AttnProjW, b.AttnPrB, b.LN2W, b.LN2B, b.FCW, b.FCB, b.FCProjW, b.FCProjB})
	}
	for _, b := range g.Layers {
		blocks = append(blocks, []*gpu.Tensor{b.AttnNorm, b.QKVW, b.QKVB, b.OW, b.MLPNorm, b.GateUpW, b.DownW})
	}
	var inBlocks []GradRange
	for l := len(blocks) - 1; l >= 0; l-- {
		rs := tensorRanges(g.All, blocks[l])
		m.gradGroups = append(m.gradGroups, rs)
		inBlocks = append(inBlocks, rs...)
	}
	slices.SortFunc(inBlocks, func(a, b GradRange) int { return a.Lo - b.Lo })
	var rest []GradRange
	at := 0
	for _, r := range append(inBlocks, GradRange{g.All.Len(), g.All.Len()}) {
		if r.Lo > at {
			rest = append(rest, GradRange{at, r.Lo})
		}
		at = r.Hi
	}
	m.gradGroups = append(m.gradGroups, rest)
	return m.gradGroups
}

// tensorRanges is the element ranges of all that the tensors (views of
// it; nil ones skipped) cover, adjacent ones joined, in buffer order.
func tensorRanges(all *gpu.Tensor, ts []*gpu.Tensor) []GradRange {
	var rs []GradRange
	for _, t := range ts {
		if t != nil {
			lo := t.Offset() - all.Offset()
			rs = append(rs, GradRange{lo, lo + t.Len()})
		}
	}
	slices.SortFunc(rs, func(a, b GradRange) int { return a.Lo - b.Lo })
	var out []GradRange
	for _, r := range rs {
		if n := len(out); n > 0 && out[n-1].Hi == r.Lo {
			out[n-1].Hi = r.Hi
		} else {
			out = append(out, r)
		}
	}
	return out
}
