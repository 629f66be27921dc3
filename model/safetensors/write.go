package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/instructgo/instructgo/gpu"
	"github.com/instructgo/instructgo/internal/atomicfile"
)

// Tensor is a named tensor to write. Data is row-major and holds exactly
// the product of Shape elements (one for a scalar, Shape empty). DType is
// how the file stores it: F32 ("" too), or BF16 (each value rounded to
// nearest even, gpu.BF16Bits).
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
	DType string
}

// storedDType is t's dtype in the file and its element size.
func (t *Tensor) storedDType() (string, int, error) {
	switch t.DType {
	case "", F32:
		return F32, 4, nil
	case BF16:
		return BF16, 2, nil
	}
	return "", 0, fmt.Errorf("tensor %q: cannot write dtype %q (F32 or BF16)", t.Name, t.DType)
}

// Write stores tensors, with metadata (may be nil), in a
// safetensors file at path, replacing any file there atomically: the
// content goes to a temporary file in the same directory, which is synced
// and renamed over path, and then the directory is synced. Everything is
// validated before anything is written; on any error the temporary file is
// removed and an existing file at path is left as it was.
func Write(path string, tensors []Tensor, metadata map[string]string) error {
	header, order, err := prepare(tensors, metadata)
	if err != nil {
		return errorf(path, "%w", err)
	}
	err = atomicfile.Write(path, func(w io.Writer) error {
		return writeTo(w, header, tensors, order)
	})
	if err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// Encode writes tensors and metadata (may be nil) to w in the format Write
// uses. Everything is validated before anything is written.
func Encode(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	header, order, err := prepare(tensors, metadata)
	if err != nil {
		return errorf("", "%w", err)
	}
	if err := writeTo(w, header, tensors, order); err != nil {
		return errorf("", "%w", err)
	}
	return nil
}

// prepare validates tensors and metadata and builds the padded header,
// returning it with the tensors' indices in storage (name) order.
func prepare(tensors []Tensor, metadata map[string]string) ([]byte, []int, error) {
	order := make([]int, len(tensors))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(tensors[a].Name, tensors[b].Name) })

	for k, v := range metadata {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			return nil, nil, fmt.Errorf("%s key %q: key or value is not valid UTF-8", metadataKey, k)
		}
	}
	for i, idx := range order {
		t := &tensors[idx]
		switch {
		case t.Name == "":
			return nil, nil, errors.New("tensor with an empty name")
		case t.Name == metadataKey:
			return nil, nil, fmt.Errorf("tensor %q: name is reserved for metadata", t.Name)
		case !utf8.ValidString(t.Name):
			return nil, nil, fmt.Errorf("tensor %q: name is not valid UTF-8", t.Name)
		case i > 0 && tensors[order[i-1]].Name == t.Name:
			return nil, nil, fmt.Errorf("tensor %q: name appears twice", t.Name)
		}
		numel, err := numElements(t.Shape)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if numel != int64(len(t.Data)) {
			return nil, nil, fmt.Errorf("tensor %q: shape %v has %d elements but Data holds %d", t.Name, t.Shape, numel, len(t.Data))
		}
		if _, _, err := t.storedDType(); err != nil {
			return nil, nil, err
		}
	}

	var h bytes.Buffer
	h.WriteByte('{')
	if len(metadata) > 0 {
		writeJSONString(&h, metadataKey)
		h.WriteByte(':')
		// encoding/json writes map keys sorted.
		b, err := json.Marshal(metadata)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", metadataKey, err)
		}
		h.Write(b)
	}
	var offset int64
	for i, idx := range order {
		t := &tensors[idx]
		if i > 0 || len(metadata) > 0 {
			h.WriteByte(',')
		}
		dtype, size, _ := t.storedDType()
		end := offset + int64(size)*int64(len(t.Data))
		writeJSONString(&h, t.Name)
		fmt.Fprintf(&h, `:{"dtype":%q,"shape":[`, dtype)
		for j, d := range t.Shape {
			if j > 0 {
				h.WriteByte(',')
			}
			h.WriteString(strconv.Itoa(d))
		}
		fmt.Fprintf(&h, `],"data_offsets":[%d,%d]}`, offset, end)
		offset = end
	}
	h.WriteByte('}')
	for h.Len()%8 != 0 {
		h.WriteByte(' ')
	}
	if h.Len() > MaxHeaderSize {
		return nil, nil, fmt.Errorf("header of %d bytes exceeds the limit of %d", h.Len(), MaxHeaderSize)
	}
	return h.Bytes(), order, nil
}

// writeJSONString writes s as a JSON string without HTML escaping.
func writeJSONString(buf *bytes.Buffer, s string) {
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	enc.Encode(s)               // cannot fail for a string
	buf.Truncate(buf.Len() - 1) // drop the newline Encode appends
}

func writeTo(w io.Writer, header []byte, tensors []Tensor, order []int) error {
	buf := make([]byte, 8, max(readChunk, 8+len(header)))
	binary.LittleEndian.PutUint64(buf, uint64(len(header)))
	buf = append(buf, header...)
	for _, idx := range order {
		dtype, _, _ := tensors[idx].storedDType()
		for _, v := range tensors[idx].Data {
			if len(buf)+4 > cap(buf) {
				if _, err := w.Write(buf); err != nil {
					return err
				}
				buf = buf[:0]
			}
			if dtype == BF16 {
				buf = binary.LittleEndian.AppendUint16(buf, gpu.BF16Bits(v))
			} else {
				buf = binary.LittleEndian.AppendUint32(buf, math.Float32bits(v))
			}
		}
	}
	_, err := w.Write(buf)
	return err
}
