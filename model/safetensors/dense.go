package safetensors

import (
	"fmt"

	"gorgonia.org/tensor"
)

// Dense reads the named tensor, converted to float32, as a *tensor.Dense
// of its shape. gorgonia.org/tensor cannot represent a tensor with zero
// elements, so such a tensor is an error here; read it with Float32.
func (f *File) Dense(name string) (d *tensor.Dense, err error) {
	data, shape, err := f.Float32(name)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, f.errorf("tensor %q: shape %v has no elements, which a tensor.Dense cannot hold", name, shape)
	}
	// tensor.New panics on inconsistent input; shape and data agree here,
	// but keep any surprise inside this package as an error.
	defer func() {
		if r := recover(); r != nil {
			d, err = nil, f.errorf("tensor %q: build tensor.Dense of shape %v: %v", name, shape, r)
		}
	}()
	return tensor.New(tensor.WithShape(shape...), tensor.WithBacking(data)), nil
}

// denseOf makes a Tensor for Write or Encode from a float32 *tensor.Dense.
// The Tensor shares d's backing data when d is contiguous and in row-major
// order, and holds a copy otherwise (for example a transposed or strided
// view).
func denseOf(name string, d *tensor.Dense) (t Tensor, err error) {
	if d == nil {
		return Tensor{}, fmt.Errorf("safetensors: tensor %q: nil tensor.Dense", name)
	}
	defer func() {
		if r := recover(); r != nil {
			t, err = Tensor{}, fmt.Errorf("safetensors: tensor %q: read tensor.Dense: %v", name, r)
		}
	}()
	if d.Dtype() != tensor.Float32 {
		return Tensor{}, fmt.Errorf("safetensors: tensor %q: tensor.Dense has dtype %v, want float32", name, d.Dtype())
	}
	if d.RequiresIterator() || !d.DataOrder().IsRowMajor() {
		d = d.Materialize().(*tensor.Dense)
	}
	shape := []int(d.Shape().Clone())
	var data []float32
	switch v := d.Data().(type) {
	case float32: // a scalar
		data = []float32{v}
	case []float32:
		data = v
	default:
		return Tensor{}, fmt.Errorf("safetensors: tensor %q: tensor.Dense holds %T, want float32", name, v)
	}
	numel, err := numElements(shape)
	if err != nil {
		return Tensor{}, fmt.Errorf("safetensors: tensor %q: %w", name, err)
	}
	if int64(len(data)) < numel {
		return Tensor{}, fmt.Errorf("safetensors: tensor %q: tensor.Dense of shape %v holds only %d values", name, shape, len(data))
	}
	return Tensor{Name: name, Shape: shape, Data: data[:numel]}, nil
}
