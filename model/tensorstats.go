package model

import (
	"fmt"
	"math"

	"gorgonia.org/tensor"
)

// Stats summarises the values of one tensor. Norm (L2), Mean, Std (the
// population standard deviation), Min and Max are over the finite elements
// only, so that one NaN does not hide the size of the rest; they are NaN
// when the tensor has no finite element. NaN, PosInf and NegInf count the
// non-finite elements and Zeros the elements equal to zero (either sign).
type Stats struct {
	Norm, Mean, Std, Min, Max  float64
	NaN, PosInf, NegInf, Zeros int64
}

// NonFinite is the number of NaN and infinite elements.
func (s Stats) NonFinite() int64 { return s.NaN + s.PosInf + s.NegInf }

// noValues is the Stats of a tensor without finite elements before its
// non-finite elements are counted.
func noValues() Stats {
	nan := math.NaN()
	return Stats{Norm: nan, Mean: nan, Std: nan, Min: nan, Max: nan}
}

// statsChunk is how many values DenseStats widens to float64 at a time, so
// that it needs 8 MiB beside the tensor rather than twice its size.
const statsChunk = 1 << 20

// DenseStats computes the Stats of a float32 *tensor.Dense.
//
// The reductions are gorgonia's, run on the finite values widened to
// float64, a chunk at a time: its float32 Sum adds in float32 and its
// float32 Norm goes through a float32 dot product, which on a tensor of
// tens of millions of elements loses the third significant digit; its Max
// and Min compare with '>' and '<', so a NaN would make them depend on
// where it sits.
func DenseStats(d *tensor.Dense) (s Stats, err error) {
	if d == nil {
		return Stats{}, fmt.Errorf("tensor stats: nil tensor.Dense")
	}
	if d.Dtype() != tensor.Float32 {
		return Stats{}, fmt.Errorf("tensor stats: tensor.Dense has dtype %v, want float32", d.Dtype())
	}
	// gorgonia panics on some inconsistent input; keep that an error.
	defer func() {
		if r := recover(); r != nil {
			s, err = Stats{}, fmt.Errorf("tensor stats: %v", r)
		}
	}()
	if d.RequiresIterator() || !d.DataOrder().IsRowMajor() {
		d = d.Materialize().(*tensor.Dense)
	}
	values := d.Float32s()
	buf := make([]float64, 0, min(len(values), statsChunk))

	// First pass: the counts, and the sum, range and sum of squares of the
	// finite values.
	s = noValues()
	var n int64
	var sum, squares float64
	for start := 0; start < len(values); start += statsChunk {
		buf = finite(buf[:0], values[start:min(start+statsChunk, len(values))], &s)
		if len(buf) == 0 {
			continue
		}
		f := tensor.New(tensor.WithShape(len(buf)), tensor.WithBacking(buf))
		part, err := scalar(f.Sum())
		if err != nil {
			return Stats{}, fmt.Errorf("tensor stats: sum: %w", err)
		}
		hi, err := scalar(f.Max())
		if err != nil {
			return Stats{}, fmt.Errorf("tensor stats: max: %w", err)
		}
		lo, err := scalar(f.Min())
		if err != nil {
			return Stats{}, fmt.Errorf("tensor stats: min: %w", err)
		}
		sq, err := innerSelf(f)
		if err != nil {
			return Stats{}, fmt.Errorf("tensor stats: sum of squares: %w", err)
		}
		if n == 0 {
			s.Max, s.Min = hi, lo
		}
		s.Max, s.Min = max(s.Max, hi), min(s.Min, lo)
		sum += part
		squares += sq
		n += int64(len(buf))
	}
	if n == 0 {
		return s, nil
	}
	s.Norm = math.Sqrt(squares)
	s.Mean = sum / float64(n)

	// Second pass: the standard deviation from the squared deviations from
	// the mean (no cancellation when the mean dwarfs the spread).
	var dev float64
	for start := 0; start < len(values); start += statsChunk {
		buf = finite(buf[:0], values[start:min(start+statsChunk, len(values))], nil)
		if len(buf) == 0 {
			continue
		}
		f := tensor.New(tensor.WithShape(len(buf)), tensor.WithBacking(buf))
		if _, err := tensor.Sub(f, s.Mean, tensor.UseUnsafe()); err != nil {
			return Stats{}, fmt.Errorf("tensor stats: deviations: %w", err)
		}
		sq, err := innerSelf(f)
		if err != nil {
			return Stats{}, fmt.Errorf("tensor stats: squared deviations: %w", err)
		}
		dev += sq
	}
	s.Std = math.Sqrt(dev / float64(n))
	return s, nil
}

// finite appends the finite values of src, widened to float64, to dst.
// When s is not nil it counts NaN, infinities and zeros there: gorgonia has
// no test or count for them, so this is a plain loop.
func finite(dst []float64, src []float32, s *Stats) []float64 {
	for _, v := range src {
		x := float64(v)
		switch {
		case math.IsNaN(x):
			if s != nil {
				s.NaN++
			}
		case math.IsInf(x, 1):
			if s != nil {
				s.PosInf++
			}
		case math.IsInf(x, -1):
			if s != nil {
				s.NegInf++
			}
		default:
			if x == 0 && s != nil {
				s.Zeros++
			}
			dst = append(dst, x)
		}
	}
	return dst
}

// scalar is the float64 value of a full reduction's result.
func scalar(d *tensor.Dense, err error) (float64, error) {
	if err != nil {
		return 0, err
	}
	v, ok := d.ScalarValue().(float64)
	if !ok {
		return 0, fmt.Errorf("result %v is not a float64 scalar", d)
	}
	return v, nil
}

// innerSelf is the sum of squares of a float64 vector.
func innerSelf(f *tensor.Dense) (float64, error) {
	r, err := f.Inner(f)
	if err != nil {
		return 0, err
	}
	v, ok := r.(float64)
	if !ok {
		return 0, fmt.Errorf("inner product %v is not a float64", r)
	}
	return v, nil
}
