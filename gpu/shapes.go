package gpu

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"
)

// Argument validation shared by the backends: the dtype, shape, length and
// aliasing rules the Backend contract states, as one Checker method per op
// (and per allocation and transfer), so that every backend rejects the same
// calls with the same messages. A backend checks its ops' arguments with
// these before running anything, records the returned error (the op then
// does nothing), and runs the op on the dimensions returned. Limits of one
// backend's own (the cuda kernels' 32-bit sizes) stay with that backend.
//
// Some rules depend on the contents of an Int32 operand (a token id inside
// the vocabulary, a valid length inside [0,T]): the op's method returns
// them as IndexChecks instead of reading the data. A backend whose data is
// in host memory runs them at once (IndexCheck.Host); one whose data is on a
// device runs them there before the op and reports the failure later (the
// cuda backend, at the next Sync or Download).

// Checker validates op arguments for one backend.
type Checker struct {
	// Backend names the backend in "x is not a cuda tensor".
	Backend string
	// Owns reports whether a storage belongs to the backend; nil accepts
	// every storage.
	Owns func(Storage) bool
	// BF16Ops reports whether the backend runs an op (by its name in
	// messages, e.g. "layernorm forward") with a bf16 activation dtype;
	// nil: every op. It lets a backend gain bf16 op by op.
	BF16Ops func(op string) bool
}

// IndexCheck is a rule on the contents of an Int32 tensor: every element v
// at flat index i must satisfy Lo ≤ v < Hi. Err builds the error for the
// first element (the lowest index) that does not.
type IndexCheck struct {
	T      *Tensor
	Lo, Hi int64
	Err    func(i int, v int32) error
}

// Host runs the check on the tensor's contents, read into host memory.
func (c IndexCheck) Host(vals []int32) error {
	for i, v := range vals {
		if int64(v) < c.Lo || int64(v) >= c.Hi {
			return c.Err(i, v)
		}
	}
	return nil
}

// HostAll runs every check; read returns the contents of a check's tensor.
func HostAll(checks []IndexCheck, read func(*Tensor) []int32) error {
	for _, c := range checks {
		if err := c.Host(read(c.T)); err != nil {
			return err
		}
	}
	return nil
}

// noLower is the Lo of a check that only bounds values from above.
const noLower = math.MinInt32

// argName returns the i-th space-separated word of names, for messages.
func argName(names string, i int) string {
	if f := strings.Fields(names); i < len(f) {
		return f[i]
	}
	return "tensor"
}

// valid reports whether t is non-nil, belongs to the backend and has dtype d.
func (k Checker) valid(t *Tensor, d DType) bool {
	return t != nil && (k.Owns == nil || k.Owns(t.Storage())) && t.DType() == d
}

// Tensor checks that t is non-nil, belongs to the backend and has dtype d.
func (k Checker) Tensor(op, name string, t *Tensor, d DType) error {
	switch {
	case k.valid(t, d):
		return nil
	case t == nil:
		return fmt.Errorf("%s: %s is nil", op, name)
	case k.Owns != nil && !k.Owns(t.Storage()):
		return fmt.Errorf("%s: %s is not a %s tensor", op, name, k.Backend)
	}
	return fmt.Errorf("%s: %s is %v, want %v", op, name, t.DType(), d)
}

// typed checks several tensors of dtype d; names lists them space-separated
// and is split only for the message of a failure (ops call this on every
// launch).
func (k Checker) typed(op, names string, d DType, ts []*Tensor) error {
	for i, t := range ts {
		if !k.valid(t, d) {
			return k.Tensor(op, argName(names, i), t, d)
		}
	}
	return nil
}

// F32 checks several float32 tensors; names lists them space-separated.
func (k Checker) F32(op, names string, ts ...*Tensor) error { return k.typed(op, names, Float32, ts) }

// Act checks the activation-class tensors of one call (the contract's
// activations, their gradients and the weights the ops read): all float32
// or all bf16. It returns that dtype, the call's activation dtype.
func (k Checker) Act(op, names string, ts ...*Tensor) (DType, error) {
	if len(ts) == 0 || ts[0] == nil {
		return 0, k.Tensor(op, argName(names, 0), nil, Float32)
	}
	d := ts[0].DType()
	if !d.IsFloat() {
		d = Float32 // the message names float32, the default
	}
	if err := k.typed(op, names, d, ts); err != nil {
		return d, err
	}
	if d == BF16 && k.BF16Ops != nil && !k.BF16Ops(op) {
		return d, fmt.Errorf("%s: bf16 activations are not supported by the %s backend yet", op, k.Backend)
	}
	return d, nil
}

// float checks one tensor of either float dtype and returns its dtype.
func (k Checker) float(op, name string, t *Tensor) (DType, error) {
	if t != nil && t.DType() == BF16 {
		return BF16, k.Tensor(op, name, t, BF16)
	}
	return Float32, k.Tensor(op, name, t, Float32)
}

// I32 checks several Int32 tensors.
func (k Checker) I32(op, names string, ts ...*Tensor) error { return k.typed(op, names, Int32, ts) }

// ---- allocation and host transfers ----

// maxAllocElems bounds the elements of one tensor (2⁴⁰, 4 TiB of float32):
// far beyond any memory, and small enough that sizes in bytes stay exact.
const maxAllocElems = 1 << 40

// Alloc checks Backend.Alloc's dtype and shape and returns the element
// count.
func (k Checker) Alloc(dtype DType, shape []int) (int, error) {
	if dtype != Float32 && dtype != Int32 && dtype != BF16 {
		return 0, fmt.Errorf("%s alloc: unsupported dtype %v", k.Backend, dtype)
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("%s alloc: negative dimension in %v", k.Backend, shape)
		}
		hi, lo := bits.Mul64(uint64(n), uint64(d))
		if hi != 0 || lo > maxAllocElems {
			return 0, fmt.Errorf("%s alloc: shape %v is too large", k.Backend, shape)
		}
		n = int(lo)
	}
	return n, nil
}

// Upload checks Backend.Upload (d Float32: t is float32 or bf16) and
// UploadInt32 (d Int32) of n host values into t.
func (k Checker) Upload(t *Tensor, d DType, n int) error {
	if err := k.transfer("upload", t, d); err != nil || n == t.Len() {
		return err
	}
	return fmt.Errorf("upload: %d values into %v", n, t)
}

// Download checks Backend.Download (d Float32: t is float32 or bf16) and
// DownloadInt32 of t into n host values.
func (k Checker) Download(t *Tensor, d DType, n int) error {
	if err := k.transfer("download", t, d); err != nil || n == t.Len() {
		return err
	}
	return fmt.Errorf("download: %v into %d values", t, n)
}

// transfer checks the tensor of a host transfer of float32 values (into
// either float dtype) or int32 values.
func (k Checker) transfer(op string, t *Tensor, d DType) error {
	if d == Float32 {
		_, err := k.float(op, "tensor", t)
		return err
	}
	return k.Tensor(op, "tensor", t, d)
}

// CheckLen reports an error unless every tensor has n elements.
func CheckLen(op string, n int, names string, ts ...*Tensor) error {
	for i, t := range ts {
		if t.Len() != n {
			return fmt.Errorf("%s: %s is %v (%d elements), want %d elements", op, argName(names, i), t, t.Len(), n)
		}
	}
	return nil
}

// Overlap reports whether a and b view intersecting element ranges of one
// storage. Empty and nil tensors overlap nothing.
func Overlap(a, b *Tensor) bool {
	if a == nil || b == nil || a.Len() == 0 || b.Len() == 0 || a.Storage() != b.Storage() {
		return false
	}
	return a.Offset() < b.Offset()+b.Len() && b.Offset() < a.Offset()+a.Len()
}

// SameElems reports whether a and b view exactly the same elements.
func SameElems(a, b *Tensor) bool {
	return a.Storage() == b.Storage() && a.Offset() == b.Offset() && a.Len() == b.Len()
}

// CheckDisjoint reports an error when out overlaps any of the other tensors
// (nil ones are skipped): the contract's "an output may not overlap an
// input".
func CheckDisjoint(op, outName string, out *Tensor, names string, ts ...*Tensor) error {
	for i, t := range ts {
		if Overlap(out, t) {
			return fmt.Errorf("%s: %s %v overlaps %s %v", op, outName, out, argName(names, i), t)
		}
	}
	return nil
}

// CheckInPlace reports an error when out overlaps in without being exactly
// the same elements: ops documented with "out may alias inp" allow only that.
func CheckInPlace(op, outName string, out *Tensor, inName string, in *Tensor) error {
	if Overlap(out, in) && !SameElems(out, in) {
		return fmt.Errorf("%s: %s %v partly overlaps %s %v", op, outName, out, inName, in)
	}
	return nil
}

// HasShape reports whether t has exactly the given dimensions.
func HasShape(t *Tensor, dims ...int) bool {
	return slices.Equal(t.Shape(), dims)
}

// RowsOf returns the row count of t read as [N,C]: an error when t has rank
// 0 or its last dimension is not c.
func RowsOf(op, name string, t *Tensor, c int) (int, error) {
	if t.Rank() == 0 || t.Dim(-1) != c {
		return 0, fmt.Errorf("%s: %s is %v, want last dimension %d", op, name, t, c)
	}
	if c == 0 {
		return 0, nil
	}
	return t.Len() / c, nil
}

// first returns the first non-nil error.
func first(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// ---- elementwise ops and reductions ----

// Fill checks Backend.Fill: t of either float dtype.
func (k Checker) Fill(t *Tensor) error {
	_, err := k.float("fill", "t", t)
	return err
}

// Scale checks Backend.Scale.
func (k Checker) Scale(t *Tensor) error { return k.F32("scale", "t", t) }

// Copy checks Backend.Copy: dst and src of one float dtype.
func (k Checker) Copy(dst, src *Tensor) error {
	const op = "copy"
	if _, err := k.Act(op, "dst src", dst, src); err != nil {
		return err
	}
	return first(CheckLen(op, src.Len(), "dst", dst), CheckDisjoint(op, "dst", dst, "src", src))
}

// Convert checks Backend.Convert: dst and src of either float dtype, one
// length.
func (k Checker) Convert(dst, src *Tensor) error {
	const op = "convert"
	if _, err := k.float(op, "dst", dst); err != nil {
		return err
	}
	if _, err := k.float(op, "src", src); err != nil {
		return err
	}
	return first(CheckLen(op, src.Len(), "dst", dst), CheckDisjoint(op, "dst", dst, "src", src))
}

// Axpy checks Backend.Axpy.
func (k Checker) Axpy(y, x *Tensor) error {
	const op = "axpy"
	if err := k.F32(op, "y x", y, x); err != nil {
		return err
	}
	return first(CheckLen(op, y.Len(), "x", x), CheckDisjoint(op, "y", y, "x", x))
}

// Add checks Backend.Add: out may be exactly a or b.
func (k Checker) Add(out, a, b *Tensor) error {
	const op = "add"
	if _, err := k.Act(op, "out a b", out, a, b); err != nil {
		return err
	}
	return first(CheckLen(op, out.Len(), "a b", a, b),
		CheckInPlace(op, "out", out, "a", a), CheckInPlace(op, "out", out, "b", b))
}

// Lerp checks Backend.Lerp.
func (k Checker) Lerp(avg, x *Tensor) error {
	const op = "lerp"
	if err := k.F32(op, "avg x", avg, x); err != nil {
		return err
	}
	return first(CheckLen(op, avg.Len(), "x", x), CheckDisjoint(op, "avg", avg, "x", x))
}

// SumSquares checks Backend.SumSquares.
func (k Checker) SumSquares(out, x *Tensor) error {
	const op = "sum squares"
	if err := k.F32(op, "out x", out, x); err != nil {
		return err
	}
	return first(CheckLen(op, 1, "out", out), CheckDisjoint(op, "out", out, "x", x))
}

// Dot checks Backend.Dot.
func (k Checker) Dot(out, x, y *Tensor) error {
	const op = "dot"
	if err := k.F32(op, "out x y", out, x, y); err != nil {
		return err
	}
	return first(CheckLen(op, 1, "out", out), CheckLen(op, x.Len(), "y", y),
		CheckDisjoint(op, "out", out, "x y", x, y))
}

// AddBias checks Backend.AddBias and returns out's rows N and width C.
func (k Checker) AddBias(out, bias *Tensor) (n, c int, err error) {
	const op = "add bias"
	if _, err := k.Act(op, "out bias", out, bias); err != nil {
		return 0, 0, err
	}
	if err := CheckDisjoint(op, "out", out, "bias", bias); err != nil {
		return 0, 0, err
	}
	c = bias.Len()
	n, err = RowsOf(op, "out", out, c)
	return n, c, err
}

// BiasBackward checks Backend.BiasBackward and returns dout's rows N and
// width C.
func (k Checker) BiasBackward(dbias, dout *Tensor) (n, c int, err error) {
	const op = "bias backward"
	if _, err := k.Act(op, "dout", dout); err != nil {
		return 0, 0, err
	}
	if err := first(k.F32(op, "dbias", dbias), CheckDisjoint(op, "dbias", dbias, "dout", dout)); err != nil {
		return 0, 0, err
	}
	c = dbias.Len()
	n, err = RowsOf(op, "dout", dout, c)
	return n, c, err
}

// ---- embeddings ----

// EmbedDims are the dimensions of an embedding call: B·T tokens of width C,
// V rows of wte and MaxT of wpe (0 for a nil table).
type EmbedDims struct {
	B, T, C, V, MaxT int
}

// embed validates the tensors of an embedding op. x is out or dout: [B,T,C],
// or any shape of that many elements whose last dimension is C; tables
// gives the tables' dtype from x's (forward: x's own, the weights the op
// reads; backward: float32, parameter gradients). One of wte and wpe may
// be nil (backward skips that gradient), not both.
func (k Checker) embed(op string, x, tokens, positions, wte, wpe *Tensor, tables func(DType) DType) (d EmbedDims, checks []IndexCheck, err error) {
	act, err := k.Act(op, "activations", x)
	if err != nil {
		return d, nil, err
	}
	if err := k.I32(op, "tokens", tokens); err != nil {
		return d, nil, err
	}
	if positions != nil {
		if err := k.I32(op, "positions", positions); err != nil {
			return d, nil, err
		}
	}
	if tokens.Rank() != 2 {
		return d, nil, fmt.Errorf("%s: tokens is %v, want [B,T]", op, tokens)
	}
	d.B, d.T = tokens.Dim(0), tokens.Dim(1)
	if positions != nil && !SameShape(positions, tokens) {
		return d, nil, fmt.Errorf("%s: positions is %v, want the shape of tokens %v", op, positions, tokens)
	}
	d.C = -1
	for _, w := range []struct {
		name string
		t    *Tensor
	}{{"wte", wte}, {"wpe", wpe}} {
		if w.t == nil {
			continue
		}
		if err := k.Tensor(op, w.name, w.t, tables(act)); err != nil {
			return d, nil, err
		}
		if w.t.Rank() != 2 || (d.C >= 0 && w.t.Dim(1) != d.C) {
			return d, nil, fmt.Errorf("%s: %s is %v, want a [rows,C] table as wide as the other", op, w.name, w.t)
		}
		d.C = w.t.Dim(1)
	}
	if d.C < 0 {
		return d, nil, fmt.Errorf("%s: wte and wpe are both nil", op)
	}
	if wte != nil {
		d.V = wte.Dim(0)
	}
	if wpe != nil {
		d.MaxT = wpe.Dim(0)
	}
	if x.Rank() == 0 || x.Dim(-1) != d.C || x.Len() != d.B*d.T*d.C ||
		(x.Rank() == 3 && (x.Dim(0) != d.B || x.Dim(1) != d.T)) {
		return d, nil, fmt.Errorf("%s: activations are %v, want [%d,%d,%d]", op, x, d.B, d.T, d.C)
	}
	if wte != nil {
		v := d.V
		checks = append(checks, IndexCheck{T: tokens, Lo: 0, Hi: int64(v), Err: func(i int, id int32) error {
			return fmt.Errorf("%s: token id %d at position %d outside the vocabulary [0,%d)", op, id, i, v)
		}})
	}
	if wpe != nil {
		maxT := d.MaxT
		if positions == nil {
			if d.T > maxT {
				return d, nil, fmt.Errorf("%s: sequence length %d exceeds the %d positions of wpe", op, d.T, maxT)
			}
		} else {
			checks = append(checks, IndexCheck{T: positions, Lo: 0, Hi: int64(maxT), Err: func(i int, p int32) error {
				return fmt.Errorf("%s: position %d at index %d outside [0,%d)", op, p, i, maxT)
			}})
		}
	}
	return d, checks, nil
}

// EmbeddingForward checks Backend.EmbeddingForward. The returned checks
// bound the token ids and positions.
func (k Checker) EmbeddingForward(out, tokens, positions, wte, wpe *Tensor) (EmbedDims, []IndexCheck, error) {
	const op = "embedding forward"
	if wte == nil || wpe == nil {
		return EmbedDims{}, nil, fmt.Errorf("%s: wte and wpe are required", op)
	}
	d, checks, err := k.embed(op, out, tokens, positions, wte, wpe, func(act DType) DType { return act })
	if err == nil {
		err = CheckDisjoint(op, "out", out, "wte wpe", wte, wpe)
	}
	return d, checks, err
}

// EmbeddingBackward checks Backend.EmbeddingBackward. Both gradients nil is
// no error (and nothing to do: skip reports it).
func (k Checker) EmbeddingBackward(dwte, dwpe, dout, tokens, positions *Tensor) (d EmbedDims, checks []IndexCheck, skip bool, err error) {
	const op = "embedding backward"
	if dwte == nil && dwpe == nil {
		return d, nil, true, nil
	}
	d, checks, err = k.embed(op, dout, tokens, positions, dwte, dwpe, func(DType) DType { return Float32 })
	if err == nil {
		err = first(CheckDisjoint(op, "dwte", dwte, "dwpe dout", dwpe, dout),
			CheckDisjoint(op, "dwpe", dwpe, "dout", dout))
	}
	return d, checks, false, err
}

// ---- layer norm, GELU, dropout ----

// LayerNormForward checks Backend.LayerNormForward (mean and rstd may be
// nil) and returns the rows N and width C.
func (k Checker) LayerNormForward(out, mean, rstd, inp, weight, bias *Tensor) (n, c int, err error) {
	const op = "layernorm forward"
	if _, err := k.Act(op, "out inp weight bias", out, inp, weight, bias); err != nil {
		return 0, 0, err
	}
	if err := k.lnStats(op, mean, rstd); err != nil {
		return 0, 0, err
	}
	c = weight.Len()
	if n, err = RowsOf(op, "inp", inp, c); err != nil {
		return 0, 0, err
	}
	if err := first(CheckLen(op, c, "bias", bias), CheckLen(op, inp.Len(), "out", out),
		k.lnStatsLen(op, n, mean, rstd)); err != nil {
		return 0, 0, err
	}
	return n, c, first(
		CheckDisjoint(op, "out", out, "inp weight bias mean rstd", inp, weight, bias, mean, rstd),
		CheckDisjoint(op, "mean", mean, "inp weight bias rstd", inp, weight, bias, rstd),
		CheckDisjoint(op, "rstd", rstd, "inp weight bias", inp, weight, bias))
}

// AddLayerNormForward checks Backend.AddLayerNormForward (mean and rstd
// may be nil) and returns the rows N and width C: LayerNormForward's rules
// with resOut as its input, a and b of resOut's length, and no output
// overlapping an input or another output.
func (k Checker) AddLayerNormForward(resOut, lnOut, mean, rstd, a, b, weight, bias *Tensor) (n, c int, err error) {
	const op = "add layernorm forward"
	if _, err := k.Act(op, "resOut lnOut a b weight bias", resOut, lnOut, a, b, weight, bias); err != nil {
		return 0, 0, err
	}
	if err := k.lnStats(op, mean, rstd); err != nil {
		return 0, 0, err
	}
	c = weight.Len()
	if n, err = RowsOf(op, "resOut", resOut, c); err != nil {
		return 0, 0, err
	}
	if err := first(CheckLen(op, c, "bias", bias), CheckLen(op, resOut.Len(), "lnOut a b", lnOut, a, b),
		k.lnStatsLen(op, n, mean, rstd)); err != nil {
		return 0, 0, err
	}
	return n, c, first(
		CheckDisjoint(op, "resOut", resOut, "lnOut mean rstd a b weight bias", lnOut, mean, rstd, a, b, weight, bias),
		CheckDisjoint(op, "lnOut", lnOut, "mean rstd a b weight bias", mean, rstd, a, b, weight, bias),
		CheckDisjoint(op, "mean", mean, "rstd a b weight bias", rstd, a, b, weight, bias),
		CheckDisjoint(op, "rstd", rstd, "a b weight bias", a, b, weight, bias))
}

// lnStats checks a layernorm's optional float32 statistics.
func (k Checker) lnStats(op string, mean, rstd *Tensor) error {
	if mean != nil {
		if err := k.F32(op, "mean", mean); err != nil {
			return err
		}
	}
	if rstd != nil {
		return k.F32(op, "rstd", rstd)
	}
	return nil
}

// lnStatsLen checks that the optional statistics hold n rows.
func (k Checker) lnStatsLen(op string, n int, mean, rstd *Tensor) error {
	if mean != nil {
		if err := CheckLen(op, n, "mean", mean); err != nil {
			return err
		}
	}
	if rstd != nil {
		return CheckLen(op, n, "rstd", rstd)
	}
	return nil
}

// LayerNormBackward checks Backend.LayerNormBackward (every tensor
// required) and returns the rows N and width C.
func (k Checker) LayerNormBackward(dinp, dweight, dbias, dout, inp, weight, mean, rstd *Tensor) (n, c int, err error) {
	const op = "layernorm backward"
	if _, err := k.Act(op, "dinp dout inp weight", dinp, dout, inp, weight); err != nil {
		return 0, 0, err
	}
	if err := k.F32(op, "dweight dbias mean rstd", dweight, dbias, mean, rstd); err != nil {
		return 0, 0, err
	}
	c = weight.Len()
	if n, err = RowsOf(op, "inp", inp, c); err != nil {
		return 0, 0, err
	}
	if err := first(CheckLen(op, c, "dweight dbias", dweight, dbias),
		CheckLen(op, inp.Len(), "dinp dout", dinp, dout), CheckLen(op, n, "mean rstd", mean, rstd)); err != nil {
		return 0, 0, err
	}
	const ins = "dout inp weight mean rstd"
	return n, c, first(
		CheckDisjoint(op, "dinp", dinp, ins+" dweight dbias", dout, inp, weight, mean, rstd, dweight, dbias),
		CheckDisjoint(op, "dweight", dweight, ins+" dbias", dout, inp, weight, mean, rstd, dbias),
		CheckDisjoint(op, "dbias", dbias, ins, dout, inp, weight, mean, rstd))
}

// GeluForward checks Backend.GeluForward: out may be exactly inp.
func (k Checker) GeluForward(out, inp *Tensor) error {
	const op = "gelu forward"
	if _, err := k.Act(op, "out inp", out, inp); err != nil {
		return err
	}
	return first(CheckLen(op, inp.Len(), "out", out), CheckInPlace(op, "out", out, "inp", inp))
}

// GeluBackward checks Backend.GeluBackward: dinp may be exactly dout.
func (k Checker) GeluBackward(dinp, inp, dout *Tensor) error {
	const op = "gelu backward"
	if _, err := k.Act(op, "dinp inp dout", dinp, inp, dout); err != nil {
		return err
	}
	return first(CheckLen(op, inp.Len(), "dinp dout", dinp, dout),
		CheckDisjoint(op, "dinp", dinp, "inp", inp), CheckInPlace(op, "dinp", dinp, "dout", dout))
}

// checkDropoutP reports an error unless 0 ≤ p < 1.
func checkDropoutP(op string, p float32) error {
	if !(p >= 0 && p < 1) {
		return fmt.Errorf("%s: probability %v outside [0,1)", op, p)
	}
	return nil
}

// Dropout checks Backend.Dropout: out may be exactly inp.
func (k Checker) Dropout(out, inp *Tensor, p float32) error {
	const op = "dropout"
	if _, err := k.Act(op, "out inp", out, inp); err != nil {
		return err
	}
	return first(CheckLen(op, inp.Len(), "out", out), CheckInPlace(op, "out", out, "inp", inp), checkDropoutP(op, p))
}

// DropoutBackward checks Backend.DropoutBackward: dinp may be exactly dout.
func (k Checker) DropoutBackward(dinp, dout *Tensor, p float32) error {
	const op = "dropout backward"
	if _, err := k.Act(op, "dinp dout", dinp, dout); err != nil {
		return err
	}
	return first(CheckLen(op, dout.Len(), "dinp", dinp), CheckInPlace(op, "dinp", dinp, "dout", dout), checkDropoutP(op, p))
}

// ---- attention ----

// AttnDims are the dimensions of an attention call: B sequences of T
// positions, C = H·HS output channels in H query heads of HS, KVH key/value
// heads (KVH divides H), and the activation dtype.
type AttnDims struct {
	B, T, C, H, KVH, HS int
	Act                 DType
}

// QKVWidth is the row width of the packed qkv: (H+2·KVH)·HS.
func (d AttnDims) QKVWidth() int { return (d.H + 2*d.KVH) * d.HS }

// qkvHeadSize checks the head counts of a packed qkv whose rows have w
// elements (H query heads, then KVH key heads, then KVH value heads, with
// KVH dividing H) and returns the head size.
func qkvHeadSize(op, name string, qkv *Tensor, w, nHead, kvHeads int) (int, error) {
	if nHead <= 0 || kvHeads <= 0 || nHead%kvHeads != 0 {
		return 0, fmt.Errorf("%s: %d query heads cannot share %d key/value heads (want 0 < KVH dividing H)", op, nHead, kvHeads)
	}
	if g := nHead + 2*kvHeads; w == 0 || w%g != 0 {
		return 0, fmt.Errorf("%s: %s is %v, want rows of (H+2·KVH)·hs = %d·hs elements, hs > 0", op, name, qkv, g)
	}
	return w / (nHead + 2*kvHeads), nil
}

// checkOperand reports an error unless t is a tensor of dtype dt and
// exactly dims.
func (k Checker) checkOperand(op, name string, t *Tensor, dt DType, dims ...int) error {
	if err := k.Tensor(op, name, t, dt); err != nil {
		return err
	}
	if !HasShape(t, dims...) {
		// A copy for the message, so that dims itself need not escape:
		// every call would otherwise allocate it.
		return fmt.Errorf("%s: %s is %v, want %v", op, name, t, slices.Clone(dims))
	}
	return nil
}

// attn validates qkv [B,T,(H+2·KVH)·hs], the head counts and validLen
// (nil or Int32 [B]).
func (k Checker) attn(op string, qkv, validLen *Tensor, nHead, kvHeads int) (d AttnDims, checks []IndexCheck, err error) {
	if d.Act, err = k.Act(op, "qkv", qkv); err != nil {
		return d, nil, err
	}
	if qkv.Rank() != 3 {
		return d, nil, fmt.Errorf("%s: qkv is %v, want [B,T,(H+2·KVH)·hs]", op, qkv)
	}
	if d.HS, err = qkvHeadSize(op, "qkv", qkv, qkv.Dim(2), nHead, kvHeads); err != nil {
		return d, nil, err
	}
	d.B, d.T, d.H, d.KVH = qkv.Dim(0), qkv.Dim(1), nHead, kvHeads
	d.C = d.H * d.HS
	if validLen != nil {
		if err := k.Tensor(op, "validLen", validLen, Int32); err != nil {
			return d, nil, err
		}
		if !HasShape(validLen, d.B) {
			return d, nil, fmt.Errorf("%s: validLen is %v, want [%d]", op, validLen, d.B)
		}
		t := d.T
		checks = append(checks, IndexCheck{T: validLen, Lo: 0, Hi: int64(t) + 1, Err: func(i int, l int32) error {
			return fmt.Errorf("%s: validLen[%d] = %d outside [0,%d]", op, i, l, t)
		}})
	}
	return d, checks, nil
}

// AttentionForward checks Backend.AttentionForward. The checks bound the
// valid lengths. out and lse may not overlap qkv or each other (the
// contract's rule for outputs).
func (k Checker) AttentionForward(out, lse, qkv, validLen *Tensor, nHead, kvHeads int) (AttnDims, []IndexCheck, error) {
	const op = "attention forward"
	d, checks, err := k.attn(op, qkv, validLen, nHead, kvHeads)
	if err != nil {
		return d, nil, err
	}
	return d, checks, first(
		k.checkOperand(op, "out", out, d.Act, d.B, d.T, d.C),
		k.checkOperand(op, "lse", lse, Float32, d.B, d.H, d.T),
		CheckDisjoint(op, "out", out, "qkv lse", qkv, lse),
		CheckDisjoint(op, "lse", lse, "qkv", qkv))
}

// AttentionBackward checks Backend.AttentionBackward; dqkv may not overlap
// any input.
func (k Checker) AttentionBackward(dqkv, dout, qkv, out, lse, validLen *Tensor, nHead, kvHeads int) (AttnDims, []IndexCheck, error) {
	const op = "attention backward"
	d, checks, err := k.attn(op, qkv, validLen, nHead, kvHeads)
	if err != nil {
		return d, nil, err
	}
	return d, checks, first(
		k.checkOperand(op, "dqkv", dqkv, d.Act, d.B, d.T, d.QKVWidth()),
		k.checkOperand(op, "dout", dout, d.Act, d.B, d.T, d.C),
		k.checkOperand(op, "out", out, d.Act, d.B, d.T, d.C),
		k.checkOperand(op, "lse", lse, Float32, d.B, d.H, d.T),
		CheckDisjoint(op, "dqkv", dqkv, "dout qkv out lse", dout, qkv, out, lse))
}

// DecodeDims are the dimensions of a KV-cache call: B sequences, T new
// positions (1 for AttentionDecode), C = H·HS output channels in H query
// heads of HS, KVH key/value heads, caches of S positions, and the
// activation dtype.
type DecodeDims struct {
	B, T, C, H, KVH, HS, S int
	Act                    DType
}

// QKVWidth is the row width of the packed qkv: (H+2·KVH)·HS.
func (d DecodeDims) QKVWidth() int { return (d.H + 2*d.KVH) * d.HS }

// cacheDims validates a pair of caches [B,KVH,S,hs] of dtype act for the
// B, KVH and HS of d and returns S.
func (k Checker) cacheDims(op string, kc, vc *Tensor, act DType, d DecodeDims) (s int, err error) {
	if err := k.Tensor(op, "kc", kc, act); err != nil {
		return 0, err
	}
	if kc.Rank() != 4 {
		return 0, fmt.Errorf("%s: kc is %v, want [%d,%d,S,%d]", op, kc, d.B, d.KVH, d.HS)
	}
	s = kc.Dim(2)
	if err := first(k.checkOperand(op, "kc", kc, act, d.B, d.KVH, s, d.HS),
		k.checkOperand(op, "vc", vc, act, d.B, d.KVH, s, d.HS)); err != nil {
		return 0, err
	}
	if Overlap(kc, vc) {
		return 0, fmt.Errorf("%s: kc and vc overlap", op)
	}
	return s, nil
}

// KVCacheWrite checks Backend.KVCacheWrite. With start given, the check
// rejects a sequence whose positions start[b]..start[b]+T−1 pass the cache
// end (a negative start is an inactive sequence, not an error). kc and vc
// may not overlap qkv or each other.
func (k Checker) KVCacheWrite(kc, vc, qkv, start *Tensor, nHead, kvHeads int) (d DecodeDims, checks []IndexCheck, err error) {
	const op = "kv-cache write"
	if d.Act, err = k.Act(op, "qkv", qkv); err != nil {
		return d, nil, err
	}
	if qkv.Rank() != 3 {
		return d, nil, fmt.Errorf("%s: qkv is %v, want [B,T,(H+2·KVH)·hs]", op, qkv)
	}
	if d.HS, err = qkvHeadSize(op, "qkv", qkv, qkv.Dim(2), nHead, kvHeads); err != nil {
		return d, nil, err
	}
	d.B, d.T, d.H, d.KVH = qkv.Dim(0), qkv.Dim(1), nHead, kvHeads
	d.C = d.H * d.HS
	if d.S, err = k.cacheDims(op, kc, vc, d.Act, d); err != nil {
		return d, nil, err
	}
	if start != nil {
		if err := k.Tensor(op, "start", start, Int32); err != nil {
			return d, nil, err
		}
		if !HasShape(start, d.B) {
			return d, nil, fmt.Errorf("%s: start is %v, want [%d]", op, start, d.B)
		}
		// Starts up to S−T fit; with T > S only inactive (negative) ones do.
		t, s := d.T, d.S
		checks = append(checks, IndexCheck{T: start, Lo: noLower, Hi: max(int64(s)-int64(t)+1, 0), Err: func(i int, st int32) error {
			return fmt.Errorf("%s: sequence %d: positions %d..%d outside the cache of %d", op, i, st, int64(st)+int64(t)-1, s)
		}})
	} else if d.T > d.S {
		return d, nil, fmt.Errorf("%s: %d positions outside the cache of %d", op, d.T, d.S)
	}
	return d, checks, first(CheckDisjoint(op, "kc", kc, "qkv", qkv), CheckDisjoint(op, "vc", vc, "qkv", qkv))
}

// AttentionDecode checks Backend.AttentionDecode (T is 1). The check bounds
// lens to [0,S]. out may not overlap qkv, kc or vc.
func (k Checker) AttentionDecode(out, qkv, kc, vc, lens *Tensor, nHead, kvHeads int) (d DecodeDims, checks []IndexCheck, err error) {
	const op = "attention decode"
	if d.Act, err = k.Act(op, "qkv", qkv); err != nil {
		return d, nil, err
	}
	if qkv.Rank() != 2 {
		return d, nil, fmt.Errorf("%s: qkv is %v, want [B,(H+2·KVH)·hs]", op, qkv)
	}
	if d.HS, err = qkvHeadSize(op, "qkv", qkv, qkv.Dim(1), nHead, kvHeads); err != nil {
		return d, nil, err
	}
	d.B, d.T, d.H, d.KVH = qkv.Dim(0), 1, nHead, kvHeads
	d.C = d.H * d.HS
	if d.S, err = k.cacheDims(op, kc, vc, d.Act, d); err != nil {
		return d, nil, err
	}
	if err := k.checkOperand(op, "out", out, d.Act, d.B, d.C); err != nil {
		return d, nil, err
	}
	if err := k.Tensor(op, "lens", lens, Int32); err != nil {
		return d, nil, err
	}
	if !HasShape(lens, d.B) {
		return d, nil, fmt.Errorf("%s: lens is %v, want [%d]", op, lens, d.B)
	}
	s := d.S
	checks = append(checks, IndexCheck{T: lens, Lo: 0, Hi: int64(s) + 1, Err: func(i int, l int32) error {
		return fmt.Errorf("%s: lens[%d] = %d outside [0,%d]", op, i, l, s)
	}})
	return d, checks, CheckDisjoint(op, "out", out, "qkv kc vc", qkv, kc, vc)
}

// ---- log-softmax ----

// checkRows reports an error unless t has dtype dt and exactly the leading
// shape rows of the logits.
func (k Checker) checkRows(op, name string, t *Tensor, dt DType, rows []int) error {
	if err := k.Tensor(op, name, t, dt); err != nil {
		return err
	}
	if !slices.Equal(t.Shape(), rows) {
		return fmt.Errorf("%s: %s is %v, want %v", op, name, t, rows)
	}
	return nil
}

// lsm validates logits [..., V] and targets [...] and returns V, the row
// count, the leading shape and the check bounding targets above by V.
func (k Checker) lsm(op string, logits, targets *Tensor) (v, n int, rows []int, checks []IndexCheck, err error) {
	if _, err := k.Act(op, "logits", logits); err != nil {
		return 0, 0, nil, nil, err
	}
	if logits.Rank() < 2 || logits.Dim(-1) == 0 {
		return 0, 0, nil, nil, fmt.Errorf("%s: logits is %v, want [N,V] with V > 0", op, logits)
	}
	v = logits.Dim(-1)
	n = logits.Len() / v
	rows = logits.Shape()[:logits.Rank()-1]
	if err := k.checkRows(op, "targets", targets, Int32, rows); err != nil {
		return 0, 0, nil, nil, err
	}
	vocab := v // a copy for the closure: capturing v would move it to the heap
	checks = []IndexCheck{{T: targets, Lo: noLower, Hi: int64(v), Err: func(i int, t int32) error {
		return fmt.Errorf("%s: targets[%d] = %d outside the vocabulary of %d", op, i, t, vocab)
	}}}
	return v, n, rows, checks, nil
}

// LogSoftmaxForward checks Backend.LogSoftmaxForward (entropy may be nil)
// and returns the rows N and vocabulary V. The outputs may not overlap the
// logits or each other.
func (k Checker) LogSoftmaxForward(logp, entropy, lse, logits, targets *Tensor) (n, v int, checks []IndexCheck, err error) {
	const op = "log-softmax forward"
	v, n, rows, checks, err := k.lsm(op, logits, targets)
	if err != nil {
		return 0, 0, nil, err
	}
	if err := first(k.checkRows(op, "logp", logp, Float32, rows), k.checkRows(op, "lse", lse, Float32, rows)); err != nil {
		return 0, 0, nil, err
	}
	if entropy != nil {
		if err := k.checkRows(op, "entropy", entropy, Float32, rows); err != nil {
			return 0, 0, nil, err
		}
	}
	return n, v, checks, first(
		CheckDisjoint(op, "logp", logp, "logits lse entropy", logits, lse, entropy),
		CheckDisjoint(op, "lse", lse, "logits entropy", logits, entropy),
		CheckDisjoint(op, "entropy", entropy, "logits", logits))
}

// LogSoftmaxBackward checks Backend.LogSoftmaxBackward (entropy and
// dentropy may be nil; dentropy needs entropy). The logits (overwritten)
// may not overlap the per-row inputs.
func (k Checker) LogSoftmaxBackward(logits, lse, entropy, targets, dlogp, dentropy *Tensor) (n, v int, checks []IndexCheck, err error) {
	const op = "log-softmax backward"
	v, n, rows, checks, err := k.lsm(op, logits, targets)
	if err != nil {
		return 0, 0, nil, err
	}
	if err := first(k.checkRows(op, "lse", lse, Float32, rows), k.checkRows(op, "dlogp", dlogp, Float32, rows)); err != nil {
		return 0, 0, nil, err
	}
	if entropy != nil {
		if err := k.checkRows(op, "entropy", entropy, Float32, rows); err != nil {
			return 0, 0, nil, err
		}
	}
	if dentropy != nil {
		if err := k.checkRows(op, "dentropy", dentropy, Float32, rows); err != nil {
			return 0, 0, nil, err
		}
		if entropy == nil {
			return 0, 0, nil, fmt.Errorf("%s: dentropy needs the entropy saved by the forward pass", op)
		}
	}
	return n, v, checks, CheckDisjoint(op, "logits", logits, "lse entropy dlogp dentropy", lse, entropy, dlogp, dentropy)
}

// CrossEntropy checks Backend.CrossEntropy and returns the rows N and
// vocabulary V. entropy is optional (nil). logp, entropy, lse and dlogp
// may not overlap the logits (written in place) or each other.
func (k Checker) CrossEntropy(logp, entropy, lse, logits, targets, dlogp *Tensor) (n, v int, checks []IndexCheck, err error) {
	const op = "cross-entropy"
	v, n, rows, checks, err := k.lsm(op, logits, targets)
	if err != nil {
		return 0, 0, nil, err
	}
	if err := first(k.checkRows(op, "logp", logp, Float32, rows), k.checkRows(op, "lse", lse, Float32, rows),
		k.checkRows(op, "dlogp", dlogp, Float32, rows)); err != nil {
		return 0, 0, nil, err
	}
	if entropy != nil {
		if err := k.checkRows(op, "entropy", entropy, Float32, rows); err != nil {
			return 0, 0, nil, err
		}
	}
	return n, v, checks, first(
		CheckDisjoint(op, "logits", logits, "logp entropy lse dlogp", logp, entropy, lse, dlogp),
		CheckDisjoint(op, "logp", logp, "entropy lse dlogp", entropy, lse, dlogp),
		CheckDisjoint(op, "entropy", entropy, "lse dlogp", lse, dlogp),
		CheckDisjoint(op, "lse", lse, "dlogp", dlogp))
}

// ---- row gather and scatter ----

// gather validates rows [B,C] and seq [B,T,C] (activation class) and idx
// Int32 [B].
func (k Checker) gather(op, rowsName, seqName string, rows, seq, idx *Tensor) (b, t, c int, checks []IndexCheck, err error) {
	if _, err := k.Act(op, rowsName+" "+seqName, rows, seq); err != nil {
		return 0, 0, 0, nil, err
	}
	if err := k.Tensor(op, "idx", idx, Int32); err != nil {
		return 0, 0, 0, nil, err
	}
	if seq.Rank() != 3 {
		return 0, 0, 0, nil, fmt.Errorf("%s: %s is %v, want [B,T,C]", op, seqName, seq)
	}
	b, t, c = seq.Dim(0), seq.Dim(1), seq.Dim(2)
	if !HasShape(rows, b, c) {
		return 0, 0, 0, nil, fmt.Errorf("%s: %s is %v, want [%d,%d]", op, rowsName, rows, b, c)
	}
	if !HasShape(idx, b) {
		return 0, 0, 0, nil, fmt.Errorf("%s: idx is %v, want [%d]", op, idx, b)
	}
	tt := t // a copy for the closure, as in lsm
	checks = []IndexCheck{{T: idx, Lo: 0, Hi: int64(t), Err: func(i int, v int32) error {
		return fmt.Errorf("%s: idx[%d] = %d outside [0,%d)", op, i, v, tt)
	}}}
	return b, t, c, checks, CheckDisjoint(op, rowsName, rows, seqName, seq)
}

// GatherRows checks Backend.GatherRows and returns B, T, C; out may not
// overlap inp.
func (k Checker) GatherRows(out, inp, idx *Tensor) (b, t, c int, checks []IndexCheck, err error) {
	return k.gather("gather rows", "out", "inp", out, inp, idx)
}

// ScatterAddRows checks Backend.ScatterAddRows and returns B, T, C.
func (k Checker) ScatterAddRows(dinp, dout, idx *Tensor) (b, t, c int, checks []IndexCheck, err error) {
	return k.gather("scatter-add rows", "dout", "dinp", dout, dinp, idx)
}

// ---- sampling and the optimizer ----

// Sample checks Backend.Sample and returns the rows N and vocabulary V.
func (k Checker) Sample(tokens, logits *Tensor, s Sampling) (n, v int, err error) {
	const op = "sample"
	if _, err := k.Act(op, "logits", logits); err != nil {
		return 0, 0, err
	}
	if err := k.Tensor(op, "tokens", tokens, Int32); err != nil {
		return 0, 0, err
	}
	if logits.Rank() != 2 || logits.Dim(1) == 0 {
		return 0, 0, fmt.Errorf("%s: logits is %v, want [N,V] with V > 0", op, logits)
	}
	n, v = logits.Dim(0), logits.Dim(1)
	if tokens.Rank() != 1 || tokens.Dim(0) != n {
		return 0, 0, fmt.Errorf("%s: tokens is %v, want [%d]", op, tokens, n)
	}
	if err := s.Validate(); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", op, err)
	}
	return n, v, nil
}

// SampleRowError is the error of Sample for a row of logits without a
// finite maximum.
func SampleRowError(row int) error {
	return fmt.Errorf("sample: row %d of the logits has no finite maximum (NaN, +Inf, or every logit −Inf)", row)
}

// AdamW checks Backend.AdamW (lowp and normSq may be nil) and returns the
// length.
func (k Checker) AdamW(params, lowp, grads, m, v, normSq *Tensor, h AdamW) (n int, err error) {
	const op = "adamw"
	if err := k.F32(op, "params grads m v", params, grads, m, v); err != nil {
		return 0, err
	}
	if err := CheckLen(op, params.Len(), "grads m v", grads, m, v); err != nil {
		return 0, err
	}
	if lowp != nil {
		if err := first(k.Tensor(op, "lowp", lowp, BF16), CheckLen(op, params.Len(), "lowp", lowp),
			CheckDisjoint(op, "lowp", lowp, "params grads m v normSq", params, grads, m, v, normSq)); err != nil {
			return 0, err
		}
	}
	if normSq != nil {
		if err := first(k.F32(op, "normSq", normSq), CheckLen(op, 1, "normSq", normSq)); err != nil {
			return 0, err
		}
	}
	if err := first(
		CheckDisjoint(op, "params", params, "grads m v normSq", grads, m, v, normSq),
		CheckDisjoint(op, "m", m, "grads v normSq", grads, v, normSq),
		CheckDisjoint(op, "v", v, "grads normSq", grads, normSq)); err != nil {
		return 0, err
	}
	if h.Step < 1 {
		return 0, fmt.Errorf("%s: step %d, want ≥ 1 (1-based)", op, h.Step)
	}
	if !(h.Beta1 >= 0 && h.Beta1 < 1 && h.Beta2 >= 0 && h.Beta2 < 1) {
		return 0, fmt.Errorf("%s: betas (%v, %v) outside [0,1)", op, h.Beta1, h.Beta2)
	}
	return params.Len(), nil
}
