package gpu

import (
	"fmt"
	"strings"
)

// DType is the element type of a Tensor.
type DType uint8

const (
	// Float32 is IEEE-754 single precision: master weights, gradients of
	// parameters, optimizer state, statistics and losses always; weights
	// and activations in the fp32 precision modes.
	Float32 DType = iota
	// Int32 holds token ids, positions and per-sequence lengths.
	Int32
	// BF16 is bfloat16 storage (float32's upper 16 bits): the activations
	// and the weight copy the ops read in the bf16 precision mode. Values
	// are rounded to it with BF16Bits and computed on in float32.
	BF16
)

func (d DType) String() string {
	switch d {
	case Float32:
		return "float32"
	case Int32:
		return "int32"
	case BF16:
		return "bf16"
	}
	return fmt.Sprintf("dtype(%d)", uint8(d))
}

// Size is the width of one element in bytes.
func (d DType) Size() int {
	if d == BF16 {
		return 2
	}
	return 4
}

// IsFloat reports whether d holds real numbers (Float32 or BF16).
func (d DType) IsFloat() bool { return d == Float32 || d == BF16 }

// Storage is memory owned by one backend: a host slice on cpu, a device
// allocation on cuda. Tensors are views into a Storage.
type Storage interface {
	// Elems is the capacity of the storage in elements of its dtype.
	Elems() int
	// DType is the element type the storage was allocated with.
	DType() DType
}

// Tensor is a dense row-major view of Len() elements starting at Offset()
// of a backend's Storage. Many tensors may view one storage: a model keeps all
// its parameters in one allocation and every weight is a view into it.
type Tensor struct {
	shape   []int
	offset  int
	n       int
	storage Storage
}

// NewTensor wraps storage as a tensor of the given shape starting at offset.
// Backends use it; model code gets tensors from Backend.Alloc and View.
func NewTensor(s Storage, offset int, shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset+n > s.Elems() {
		return nil, fmt.Errorf("tensor %v at offset %d overruns storage of %d elements", shape, offset, s.Elems())
	}
	return &Tensor{shape: append([]int(nil), shape...), offset: offset, n: n, storage: s}, nil
}

func numel(shape []int) (int, error) {
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension in shape %v", shape)
		}
		n *= d
	}
	return n, nil
}

// Shape returns the dimensions. The slice must not be modified.
func (t *Tensor) Shape() []int { return t.shape }

// Dim returns dimension i; negative i counts from the end.
func (t *Tensor) Dim(i int) int {
	if i < 0 {
		i += len(t.shape)
	}
	return t.shape[i]
}

// Rank is the number of dimensions.
func (t *Tensor) Rank() int { return len(t.shape) }

// Len is the number of elements.
func (t *Tensor) Len() int { return t.n }

// Offset is the position of the first element in the storage.
func (t *Tensor) Offset() int { return t.offset }

// Storage is the backing memory.
func (t *Tensor) Storage() Storage { return t.storage }

// DType is the element type.
func (t *Tensor) DType() DType { return t.storage.DType() }

// View returns a tensor of the given shape over the elements starting at
// offset (relative to t) of t's storage. The view must lie within t.
func (t *Tensor) View(offset int, shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	if offset < 0 || offset+n > t.n {
		return nil, fmt.Errorf("view %v at offset %d does not fit in tensor %v", shape, offset, t.shape)
	}
	return &Tensor{shape: append([]int(nil), shape...), offset: t.offset + offset, n: n, storage: t.storage}, nil
}

// Reshape returns a view of all of t with another shape of the same size.
func (t *Tensor) Reshape(shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	if n != t.n {
		return nil, fmt.Errorf("reshape %v to %v: %d elements vs %d", t.shape, shape, t.n, n)
	}
	return t.View(0, shape...)
}

// MustView is View for shapes the caller has already validated (model code
// deriving views from its own config). It panics on a mismatch, which is a
// bug in the caller, never a consequence of user input.
func (t *Tensor) MustView(offset int, shape ...int) *Tensor {
	v, err := t.View(offset, shape...)
	if err != nil {
		panic(err)
	}
	return v
}

// MustReshape is Reshape for shapes the caller has already validated.
func (t *Tensor) MustReshape(shape ...int) *Tensor {
	v, err := t.Reshape(shape...)
	if err != nil {
		panic(err)
	}
	return v
}

func (t *Tensor) String() string {
	dims := make([]string, len(t.shape))
	for i, d := range t.shape {
		dims[i] = fmt.Sprint(d)
	}
	return fmt.Sprintf("%s[%s]", t.DType(), strings.Join(dims, ","))
}

// SameShape reports whether a and b have identical shapes.
func SameShape(a, b *Tensor) bool {
	if len(a.shape) != len(b.shape) {
		return false
	}
	for i := range a.shape {
		if a.shape[i] != b.shape[i] {
			return false
		}
	}
	return true
}
