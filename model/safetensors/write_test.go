package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/gpu"
	"gorgonia.org/tensor"
)

// randomTensor fills a tensor of the given shape with nonzero values.
func randomTensor(rng *rand.Rand, name string, shape ...int) Tensor {
	n := 1
	for _, d := range shape {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(rng.NormFloat64()) + 3 // nonzero: zeros would hide bugs
		if data[i] == 0 {
			data[i] = 1
		}
	}
	return Tensor{Name: name, Shape: shape, Data: data}
}

func sampleTensors(seed uint64) []Tensor {
	rng := rand.New(rand.NewPCG(seed, 1))
	return []Tensor{
		randomTensor(rng, "h.0.attn.c_attn.weight", 8, 24),
		randomTensor(rng, "wte.weight", 17, 8),
		randomTensor(rng, "scalar"),
		randomTensor(rng, "empty", 0, 5),
		randomTensor(rng, "h.0.ln_1.bias", 8),
		randomTensor(rng, "cube", 2, 3, 4),
		randomTensor(rng, "ünïcode <&> \"quoted\"", 3),
	}
}

func TestWriteRoundTrip(t *testing.T) {
	tensors := sampleTensors(42)
	meta := map[string]string{"format": "pt", "step": "1200", "note": "<&>"}
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := Write(path, tensors, meta); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	infos := f.Tensors()
	if len(infos) != len(tensors) {
		t.Fatalf("file has %d tensors, want %d", len(infos), len(tensors))
	}
	if !slices.IsSortedFunc(infos, func(a, b Info) int { return strings.Compare(a.Name, b.Name) }) {
		t.Error("Tensors() not sorted by name")
	}
	// Data is stored in name order.
	for i := 1; i < len(infos); i++ {
		if infos[i].Begin != infos[i-1].End {
			t.Errorf("tensor %q begins at %d, previous ends at %d", infos[i].Name, infos[i].Begin, infos[i-1].End)
		}
	}
	for _, want := range tensors {
		got, shape, err := f.Float32(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(shape, want.Shape) && !(len(shape) == 0 && len(want.Shape) == 0) {
			t.Errorf("%q: shape %v, want %v", want.Name, shape, want.Shape)
		}
		if !slices.Equal(got, want.Data) {
			t.Errorf("%q: data differs", want.Name)
		}
		in, _ := f.Info(want.Name)
		if in.DType != F32 {
			t.Errorf("%q: dtype %s, want F32", want.Name, in.DType)
		}
	}
	if md := f.Metadata(); len(md) != len(meta) || md["step"] != "1200" || md["note"] != "<&>" {
		t.Errorf("Metadata() = %v, want %v", md, meta)
	}

	// The header is padded to a multiple of 8 bytes, as the reference
	// writer does.
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := binary.LittleEndian.Uint64(raw); n%8 != 0 {
		t.Errorf("header length %d is not a multiple of 8", n)
	}
	if err := f.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestEncodeExact pins the byte layout against a file written by hand in
// the reference format.
func TestEncodeExact(t *testing.T) {
	var buf bytes.Buffer
	err := Encode(&buf, []Tensor{
		{Name: "b", Shape: []int{2}, Data: []float32{1.5, -2}},
		{Name: "a", Shape: []int{}, Data: []float32{0.25}},
	}, map[string]string{"format": "pt"})
	if err != nil {
		t.Fatal(err)
	}
	hdr := `{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}`
	for len(hdr)%8 != 0 {
		hdr += " "
	}
	want := build(hdr, f32bytes(0.25, 1.5, -2))
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("Encode wrote\n%q\nwant\n%q", buf.Bytes(), want)
	}
}

func TestWriteRejectsBadInput(t *testing.T) {
	ok := Tensor{Name: "ok", Shape: []int{2}, Data: []float32{1, 2}}
	cases := []struct {
		name    string
		tensors []Tensor
		meta    map[string]string
		want    string
	}{
		{"data longer than shape", []Tensor{ok, {Name: "w", Shape: []int{2, 2}, Data: make([]float32, 5)}}, nil, `tensor "w": shape [2 2] has 4 elements but Data holds 5`},
		{"data shorter than shape", []Tensor{{Name: "w", Shape: []int{3}, Data: []float32{1}}}, nil, `tensor "w"`},
		{"scalar without data", []Tensor{{Name: "s"}}, nil, `tensor "s"`},
		{"duplicate name", []Tensor{ok, ok}, nil, `tensor "ok": name appears twice`},
		{"empty name", []Tensor{{Shape: []int{1}, Data: []float32{1}}}, nil, "empty name"},
		{"reserved name", []Tensor{{Name: "__metadata__", Shape: []int{1}, Data: []float32{1}}}, nil, "reserved"},
		{"negative dim", []Tensor{{Name: "n", Shape: []int{-1, -2}, Data: []float32{1, 2}}}, nil, `tensor "n": negative dimension`},
		{"invalid UTF-8 name", []Tensor{{Name: "\xff", Shape: []int{1}, Data: []float32{1}}}, nil, "UTF-8"},
		{"invalid UTF-8 metadata", []Tensor{ok}, map[string]string{"k": "\xff"}, "UTF-8"},
	}
	for _, c := range cases {
		var buf bytes.Buffer
		err := Encode(&buf, c.tensors, c.meta)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one containing %q", c.name, err, c.want)
		}
		if buf.Len() != 0 {
			t.Errorf("%s: %d bytes written before the error", c.name, buf.Len())
		}
	}
}

func TestWriteIsAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "model.safetensors")
	good := sampleTensors(1)
	if err := Write(path, good, nil); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}

	bad := append(slices.Clone(good), Tensor{Name: "zzz", Shape: []int{3}, Data: []float32{1, 2}})
	err = Write(path, bad, nil)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `tensor "zzz"`) {
		t.Errorf("Write of a bad tensor: err = %v, want one naming the path and the tensor", err)
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Error("failed Write changed the existing file")
	}

	// A failure after the temporary file exists (rename onto a
	// non-empty directory) leaves no temporary file behind.
	target := filepath.Join(dir, "occupied")
	if err := os.MkdirAll(filepath.Join(target, "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := Write(target, good, nil); err == nil {
		t.Error("Write onto a directory: no error")
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"model.safetensors", "occupied"}) {
		t.Errorf("directory holds %v, want only model.safetensors and occupied", names)
	}

	// Overwriting with good content replaces the file.
	if err := Write(path, good[:1], nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n := len(f.Tensors()); n != 1 {
		t.Errorf("after overwrite the file has %d tensors, want 1", n)
	}

	if err := Write(filepath.Join(dir, "no", "such", "dir", "m.safetensors"), good, nil); err == nil {
		t.Error("Write into a missing directory: no error")
	}
}

func TestDense(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	mat := randomTensor(rng, "m", 3, 4)
	d := tensor.New(tensor.WithShape(3, 4), tensor.WithBacking(slices.Clone(mat.Data)))

	// A transposed view must be written in its own (transposed) row-major order.
	tr := tensor.New(tensor.WithShape(3, 4), tensor.WithBacking(slices.Clone(mat.Data)))
	if err := tr.T(); err != nil {
		t.Fatal(err)
	}
	scalar := tensor.New(tensor.FromScalar(float32(2.5)))

	var tensors []Tensor
	for _, c := range []struct {
		name string
		d    *tensor.Dense
	}{{"m", d}, {"mt", tr}, {"s", scalar}} {
		tt, err := denseOf(c.name, c.d)
		if err != nil {
			t.Fatalf("denseOf(%s): %v", c.name, err)
		}
		tensors = append(tensors, tt)
	}
	var buf bytes.Buffer
	if err := Encode(&buf, tensors, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}

	got, err := f.Dense("m")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Shape().Eq(tensor.Shape{3, 4}) || !slices.Equal(got.Data().([]float32), mat.Data) {
		t.Errorf("Dense(m) = %v", got)
	}
	gotT, err := f.Dense("mt")
	if err != nil {
		t.Fatal(err)
	}
	if !gotT.Shape().Eq(tensor.Shape{4, 3}) {
		t.Fatalf("Dense(mt) shape %v, want (4, 3)", gotT.Shape())
	}
	for i := range 4 {
		for j := range 3 {
			v, err := gotT.At(i, j)
			if err != nil {
				t.Fatal(err)
			}
			if want := mat.Data[j*4+i]; v.(float32) != want {
				t.Fatalf("Dense(mt)[%d,%d] = %v, want %v", i, j, v, want)
			}
		}
	}
	gotS, err := f.Dense("s")
	if err != nil {
		t.Fatal(err)
	}
	if !gotS.IsScalar() || gotS.Data().(float32) != 2.5 {
		t.Errorf("Dense(s) = %v, want scalar 2.5", gotS)
	}

	if _, err := denseOf("x", nil); err == nil {
		t.Error("denseOf(nil): no error")
	}
	if _, err := denseOf("x", tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{1, 2}))); err == nil ||
		!strings.Contains(err.Error(), "float32") {
		t.Errorf("denseOf(float64): err = %v", err)
	}

	// Zero-element tensors have no tensor.Dense form.
	buf.Reset()
	if err := Encode(&buf, []Tensor{{Name: "e", Shape: []int{0, 2}}}, nil); err != nil {
		t.Fatal(err)
	}
	f, err = Parse(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Dense("e"); err == nil || !strings.Contains(err.Error(), `tensor "e"`) {
		t.Errorf("Dense of an empty tensor: err = %v", err)
	}
}

func TestNumElements(t *testing.T) {
	// A sanity check for the helper the reader and writer share.
	if n, err := numElements([]int{math.MaxInt32, 0, math.MaxInt32, math.MaxInt32}); err != nil || n != 0 {
		t.Errorf("numElements with a zero dim = %d, %v", n, err)
	}
	if _, err := numElements([]int{math.MaxInt32, math.MaxInt32, math.MaxInt32}); err == nil {
		t.Error("numElements overflow not reported")
	}
}

// TestChunkedRead reads a tensor larger than one read chunk.
func TestChunkedRead(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	big := randomTensor(rng, "big", 3, readChunk/4/3+1000) // a little over one chunk of F32
	small := randomTensor(rng, "small", 5)
	var buf bytes.Buffer
	if err := Encode(&buf, []Tensor{small, big}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Parse(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []Tensor{big, small} {
		got, _, err := f.Float32(want.Name)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want.Data) {
			t.Errorf("%s: data differs after a chunked read", want.Name)
		}
	}
}

// TestWriteBF16: a BF16 tensor is stored as 2-byte words rounded to nearest
// even, which the reader widens back exactly; F32 tensors beside it are
// untouched.
func TestWriteBF16(t *testing.T) {
	rng := rand.New(rand.NewPCG(8, 1))
	vals := make([]float32, 37)
	for i := range vals {
		vals[i] = float32(rng.NormFloat64() * 10)
	}
	path := filepath.Join(t.TempDir(), "bf.safetensors")
	err := Write(path, []Tensor{{Name: "b", Shape: []int{37}, Data: vals, DType: BF16}, {Name: "f", Shape: []int{37}, Data: vals}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, c := range []struct {
		name, dtype string
		round       func(float32) float32
	}{{"b", BF16, gpu.RoundBF16}, {"f", F32, func(x float32) float32 { return x }}} {
		info, _ := f.Info(c.name)
		if info.DType != c.dtype {
			t.Fatalf("%s stored as %s, want %s", c.name, info.DType, c.dtype)
		}
		got := make([]float32, 37)
		if err := f.ReadFloat32(c.name, got); err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i] != c.round(vals[i]) {
				t.Fatalf("%s[%d] = %g, want %g", c.name, i, got[i], c.round(vals[i]))
			}
		}
	}
	if err := Write(path, []Tensor{{Name: "x", Shape: []int{1}, Data: []float32{1}, DType: "F16"}}, nil); err == nil {
		t.Error("an F16 tensor was written")
	}
}
