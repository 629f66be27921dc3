package gpu

import "fmt"

// The stop codes of Backend.DecodeAdvance's state.
const (
	// DecodeActive: the sequence is still generating.
	DecodeActive = -1
	// DecodeStopMaxNew: it generated the most tokens allowed.
	DecodeStopMaxNew = 0
	// DecodeStopEOS: it sampled the end-of-sequence token.
	DecodeStopEOS = 1
	// DecodeStopContext: prompt and completion fill the context.
	DecodeStopContext = 2
)

// DecodeAdvanceDims are the sizes of a DecodeAdvance: B sequences of at
// most M generated tokens.
type DecodeAdvanceDims struct{ B, M int }

// DecodeAdvance checks Backend.DecodeAdvance: ids Int32 [4,B], state
// Int32 [3,B], out Int32 [B,M], live Int32 [1], sampled Int32 [B], ctx > 0;
// the outputs may overlap neither each other nor sampled.
func (k Checker) DecodeAdvance(ids, state, out, live, sampled *Tensor, ctx int) (d DecodeAdvanceDims, err error) {
	const op = "decode advance"
	if err := k.Tensor(op, "sampled", sampled, Int32); err != nil {
		return d, err
	}
	if sampled.Rank() != 1 {
		return d, fmt.Errorf("%s: sampled is %v, want [B]", op, sampled)
	}
	d.B = sampled.Dim(0)
	if err := k.Tensor(op, "out", out, Int32); err != nil {
		return d, err
	}
	if out.Rank() != 2 || out.Dim(0) != d.B || out.Dim(1) < 1 {
		return d, fmt.Errorf("%s: out is %v, want [%d,M] with M ≥ 1", op, out, d.B)
	}
	d.M = out.Dim(1)
	if err := first(k.checkOperand(op, "ids", ids, Int32, 4, d.B),
		k.checkOperand(op, "state", state, Int32, 3, d.B),
		k.checkOperand(op, "live", live, Int32, 1)); err != nil {
		return d, err
	}
	if ctx < 1 {
		return d, fmt.Errorf("%s: context %d, want at least 1", op, ctx)
	}
	return d, first(CheckDisjoint(op, "ids", ids, "state out live sampled", state, out, live, sampled),
		CheckDisjoint(op, "state", state, "out live sampled", out, live, sampled),
		CheckDisjoint(op, "out", out, "live sampled", live, sampled),
		CheckDisjoint(op, "live", live, "sampled", sampled))
}

// DecodeStateError is the error of a DecodeAdvance whose state holds an
// active sequence i with a generated count outside [0, M).
func DecodeStateError(i int) error {
	return fmt.Errorf("decode advance: sequence %d is active with its generated count outside the output", i)
}
