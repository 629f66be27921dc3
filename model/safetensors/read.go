package safetensors

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strconv"
	"unicode/utf8"
)

// MaxHeaderSize bounds the JSON header a reader accepts (and a writer
// produces): 100 MiB, far above the few hundred KiB of real checkpoints.
const MaxHeaderSize = 100 << 20

// metadataKey is the header key that holds the free-form string metadata.
const metadataKey = "__metadata__"

// readChunk is the most bytes converted per read, so reading a tensor
// never holds a second full-size copy of it.
const readChunk = 1 << 20

// Info describes one tensor of a file.
type Info struct {
	Name  string
	DType string // one of the dtype constants, e.g. F32
	Shape []int  // empty for a scalar
	// Begin and End delimit the tensor's bytes in the data buffer that
	// follows the header (End exclusive).
	Begin, End int64
}

// NumElements is the product of the shape (1 for a scalar).
func (in Info) NumElements() int {
	n := 1
	for _, d := range in.Shape {
		n *= d
	}
	return n
}

func (in Info) clone() Info {
	in.Shape = slices.Clone(in.Shape)
	return in
}

// File is a validated safetensors file whose tensor data is read on
// demand. Its methods other than Close are safe for concurrent use.
type File struct {
	src       string // path for messages; empty when parsed from a reader
	r         io.ReaderAt
	closer    io.Closer
	dataStart int64
	tensors   []Info // sorted by name
	index     map[string]int
	metadata  map[string]string
}

// Open opens and validates the safetensors file at path. Tensor data stays
// on disk until asked for; Close releases the file.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	sf, err := parse(path, f, st.Size())
	if err != nil {
		f.Close()
		return nil, err
	}
	sf.closer = f
	return sf, nil
}

// Parse validates the safetensors content of r, which is size bytes long.
// The returned File reads tensor data from r, which must stay usable for
// as long as the File is; Close does not close r.
func Parse(r io.ReaderAt, size int64) (*File, error) {
	return parse("", r, size)
}

// Close releases the file opened by Open. It is a no-op for a File from
// Parse.
func (f *File) Close() error {
	if f.closer == nil {
		return nil
	}
	err := f.closer.Close()
	f.closer = nil
	if err != nil {
		return f.errorf("close: %w", err)
	}
	return nil
}

// Tensors describes every tensor of the file, sorted by name.
func (f *File) Tensors() []Info {
	out := make([]Info, len(f.tensors))
	for i, in := range f.tensors {
		out[i] = in.clone()
	}
	return out
}

// Info describes the named tensor; ok is false if the file has none.
func (f *File) Info(name string) (info Info, ok bool) {
	i, ok := f.index[name]
	if !ok {
		return Info{}, false
	}
	return f.tensors[i].clone(), true
}

// Metadata returns a copy of the header's "__metadata__" map (empty, not
// nil, when the file has none).
func (f *File) Metadata() map[string]string {
	return maps.Clone(f.metadata)
}

// Float32 reads the named tensor converted to float32 (from F32, F16, BF16
// or F64), with its shape.
func (f *File) Float32(name string) ([]float32, []int, error) {
	in, ok := f.Info(name)
	if !ok {
		return nil, nil, f.errorf("no tensor %q", name)
	}
	data := make([]float32, in.NumElements())
	if err := f.ReadFloat32(name, data); err != nil {
		return nil, nil, err
	}
	return data, in.Shape, nil
}

// ReadFloat32 reads the named tensor, converted to float32, into dst, which
// must hold exactly its number of elements. It lets a caller load straight
// into a view of a larger parameter buffer.
func (f *File) ReadFloat32(name string, dst []float32) error {
	i, ok := f.index[name]
	if !ok {
		return f.errorf("no tensor %q", name)
	}
	in := f.tensors[i]
	if !IsFloat(in.DType) {
		return f.errorf("tensor %q: dtype %s is not a floating-point type", name, in.DType)
	}
	if n := in.NumElements(); len(dst) != n {
		return f.errorf("tensor %q: destination holds %d elements, tensor shape %v has %d", name, len(dst), in.Shape, n)
	}
	size := int(dtypeSizes[in.DType])
	perChunk := readChunk / size
	buf := make([]byte, min(len(dst), perChunk)*size)
	off := f.dataStart + in.Begin
	for done := 0; done < len(dst); {
		n := min(len(dst)-done, perChunk)
		b := buf[:n*size]
		if err := readFullAt(f.r, b, off); err != nil {
			return f.errorf("tensor %q: read data: %w", name, err)
		}
		decodeFloat32(in.DType, dst[done:done+n], b)
		done += n
		off += int64(len(b))
	}
	return nil
}

func (f *File) errorf(format string, args ...any) error {
	return errorf(f.src, format, args...)
}

// errorf formats an error prefixed with "safetensors" and the source path
// when there is one.
func errorf(src, format string, args ...any) error {
	prefix := "safetensors: "
	if src != "" {
		prefix = "safetensors " + src + ": "
	}
	return fmt.Errorf(prefix+format, args...)
}

// readFullAt fills b from r at off, treating a short read as
// io.ErrUnexpectedEOF.
func readFullAt(r io.ReaderAt, b []byte, off int64) error {
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func parse(src string, r io.ReaderAt, size int64) (*File, error) {
	if size < 8 {
		return nil, errorf(src, "file is %d bytes, too short for the 8-byte header length", size)
	}
	var lenBuf [8]byte
	if err := readFullAt(r, lenBuf[:], 0); err != nil {
		return nil, errorf(src, "read header length: %w", err)
	}
	n := binary.LittleEndian.Uint64(lenBuf[:])
	if n > MaxHeaderSize {
		return nil, errorf(src, "header length %d exceeds the limit of %d bytes", n, MaxHeaderSize)
	}
	if n > uint64(size-8) {
		return nil, errorf(src, "header length %d exceeds the %d bytes that follow it (truncated file?)", n, size-8)
	}
	header := make([]byte, n)
	if err := readFullAt(r, header, 8); err != nil {
		return nil, errorf(src, "read header: %w", err)
	}
	tensors, metadata, err := parseHeader(header)
	if err != nil {
		return nil, errorf(src, "%w", err)
	}
	dataStart := 8 + int64(n)
	if err := validate(tensors, size-dataStart); err != nil {
		return nil, errorf(src, "%w", err)
	}
	slices.SortFunc(tensors, func(a, b Info) int { return cmp.Compare(a.Name, b.Name) })
	index := make(map[string]int, len(tensors))
	for i, in := range tensors {
		index[in.Name] = i
	}
	if metadata == nil {
		metadata = map[string]string{}
	}
	return &File{src: src, r: r, dataStart: dataStart, tensors: tensors, index: index, metadata: metadata}, nil
}

// validate checks each tensor's dtype, shape and offsets against a data
// buffer of dataLen bytes, and that the tensors tile the buffer exactly:
// sorted by offset, each begins where the previous ended and the last ends
// at the buffer's end (the reference implementation's rule).
func validate(tensors []Info, dataLen int64) error {
	for _, in := range tensors {
		size, ok := dtypeSizes[in.DType]
		if !ok {
			return fmt.Errorf("tensor %q: unknown dtype %q", in.Name, in.DType)
		}
		numel, err := numElements(in.Shape)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", in.Name, err)
		}
		if numel > math.MaxInt64/size {
			return fmt.Errorf("tensor %q: shape %v of %s is too large", in.Name, in.Shape, in.DType)
		}
		if in.Begin < 0 || in.End < 0 {
			return fmt.Errorf("tensor %q: negative data_offsets [%d, %d]", in.Name, in.Begin, in.End)
		}
		if in.Begin > in.End {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] begin after they end", in.Name, in.Begin, in.End)
		}
		if in.End > dataLen {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] run past the %d-byte data buffer", in.Name, in.Begin, in.End, dataLen)
		}
		if want := numel * size; in.End-in.Begin != want {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] span %d bytes, but shape %v of %s needs %d",
				in.Name, in.Begin, in.End, in.End-in.Begin, in.Shape, in.DType, want)
		}
	}

	byOffset := slices.Clone(tensors)
	slices.SortFunc(byOffset, func(a, b Info) int {
		return cmp.Or(cmp.Compare(a.Begin, b.Begin), cmp.Compare(a.End, b.End), cmp.Compare(a.Name, b.Name))
	})
	var cursor int64
	prev := ""
	for _, in := range byOffset {
		switch {
		case in.Begin < cursor:
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] overlap tensor %q, which ends at %d", in.Name, in.Begin, in.End, prev, cursor)
		case in.Begin > cursor:
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] leave a gap of %d bytes after offset %d", in.Name, in.Begin, in.End, in.Begin-cursor, cursor)
		}
		if in.End > in.Begin {
			cursor, prev = in.End, in.Name
		}
	}
	if cursor != dataLen {
		return fmt.Errorf("data buffer is %d bytes but its tensors cover only %d", dataLen, cursor)
	}
	return nil
}

// numElements is the product of shape, rejecting negative dimensions and
// overflow. A zero dimension makes it 0 whatever the others are.
func numElements(shape []int) (int64, error) {
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in shape %v", d, shape)
		}
		if d == 0 {
			return 0, nil
		}
	}
	n := int64(1)
	for _, d := range shape {
		if int64(d) > math.MaxInt64/n {
			return 0, fmt.Errorf("shape %v has too many elements", shape)
		}
		n *= int64(d)
	}
	return n, nil
}

// parseHeader decodes the JSON header token by token, so that duplicate
// keys and unknown fields are errors rather than silently resolved.
func parseHeader(header []byte) ([]Info, map[string]string, error) {
	if !utf8.Valid(header) {
		return nil, nil, errors.New("header is not valid UTF-8")
	}
	if len(header) == 0 || header[0] != '{' {
		return nil, nil, errors.New("header does not start with '{' (not a safetensors file?)")
	}
	dec := json.NewDecoder(bytes.NewReader(header))
	dec.UseNumber()
	if err := expectDelim(dec, '{'); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	var (
		tensors  []Info
		metadata map[string]string
		seen     = map[string]bool{}
	)
	for dec.More() {
		key, err := readKey(dec)
		if err != nil {
			return nil, nil, fmt.Errorf("header: %w", err)
		}
		if seen[key] {
			if key == metadataKey {
				return nil, nil, fmt.Errorf("header: duplicate key %q", key)
			}
			return nil, nil, fmt.Errorf("tensor %q: appears twice in the header", key)
		}
		seen[key] = true
		if key == metadataKey {
			if metadata, err = parseMetadata(dec); err != nil {
				return nil, nil, fmt.Errorf("header: %s: %w", metadataKey, err)
			}
			continue
		}
		in, err := parseTensorInfo(dec)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", key, err)
		}
		in.Name = key
		tensors = append(tensors, in)
	}
	if err := expectDelim(dec, '}'); err != nil {
		return nil, nil, fmt.Errorf("header: %w", err)
	}
	// Only whitespace (the padding) may follow the object.
	if tok, err := dec.Token(); err != io.EOF {
		if err != nil {
			return nil, nil, fmt.Errorf("header: after the top-level object: %w", err)
		}
		return nil, nil, fmt.Errorf("header: unexpected %v after the top-level object", tok)
	}
	return tensors, metadata, nil
}

func parseMetadata(dec *json.Decoder) (map[string]string, error) {
	if err := expectDelim(dec, '{'); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for dec.More() {
		key, err := readKey(dec)
		if err != nil {
			return nil, err
		}
		if _, dup := m[key]; dup {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		tok, err := token(dec)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", key, err)
		}
		v, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("key %q: value %v is not a string", key, tok)
		}
		m[key] = v
	}
	return m, expectDelim(dec, '}')
}

// parseTensorInfo reads {"dtype": ..., "shape": [...], "data_offsets": [b, e]}.
// Name is left for the caller to set.
func parseTensorInfo(dec *json.Decoder) (Info, error) {
	var in Info
	if err := expectDelim(dec, '{'); err != nil {
		return in, err
	}
	seen := map[string]bool{}
	for dec.More() {
		key, err := readKey(dec)
		if err != nil {
			return in, err
		}
		if seen[key] {
			return in, fmt.Errorf("duplicate field %q", key)
		}
		seen[key] = true
		switch key {
		case "dtype":
			tok, err := token(dec)
			if err != nil {
				return in, fmt.Errorf("dtype: %w", err)
			}
			s, ok := tok.(string)
			if !ok {
				return in, fmt.Errorf("dtype %v is not a string", tok)
			}
			in.DType = s
		case "shape":
			dims, err := readInts(dec)
			if err != nil {
				return in, fmt.Errorf("shape: %w", err)
			}
			in.Shape = make([]int, len(dims))
			for i, d := range dims {
				if int64(int(d)) != d {
					return in, fmt.Errorf("shape: dimension %d does not fit in an int", d)
				}
				in.Shape[i] = int(d)
			}
		case "data_offsets":
			offs, err := readInts(dec)
			if err != nil {
				return in, fmt.Errorf("data_offsets: %w", err)
			}
			if len(offs) != 2 {
				return in, fmt.Errorf("data_offsets has %d values, want 2", len(offs))
			}
			in.Begin, in.End = offs[0], offs[1]
		default:
			return in, fmt.Errorf("unknown field %q", key)
		}
	}
	if err := expectDelim(dec, '}'); err != nil {
		return in, err
	}
	for _, field := range []string{"dtype", "shape", "data_offsets"} {
		if !seen[field] {
			return in, fmt.Errorf("missing field %q", field)
		}
	}
	if in.Shape == nil {
		in.Shape = []int{}
	}
	return in, nil
}

// readInts reads a JSON array of integers.
func readInts(dec *json.Decoder) ([]int64, error) {
	if err := expectDelim(dec, '['); err != nil {
		return nil, err
	}
	var out []int64
	for dec.More() {
		tok, err := token(dec)
		if err != nil {
			return nil, err
		}
		num, ok := tok.(json.Number)
		if !ok {
			return nil, fmt.Errorf("element %v is not a number", tok)
		}
		v, err := strconv.ParseInt(string(num), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("element %s is not a 64-bit integer", num)
		}
		out = append(out, v)
	}
	return out, expectDelim(dec, ']')
}

// token is dec.Token with the end of input reported as an error.
func token(dec *json.Decoder) (json.Token, error) {
	tok, err := dec.Token()
	if err == io.EOF {
		err = errors.New("unexpected end of header")
	}
	return tok, err
}

func readKey(dec *json.Decoder) (string, error) {
	tok, err := token(dec)
	if err != nil {
		return "", err
	}
	key, ok := tok.(string)
	if !ok {
		return "", fmt.Errorf("unexpected %v where a key belongs", tok)
	}
	return key, nil
}

func expectDelim(dec *json.Decoder, want json.Delim) error {
	tok, err := token(dec)
	if err != nil {
		return err
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("found %v, want %q", tok, want)
	}
	return nil
}
