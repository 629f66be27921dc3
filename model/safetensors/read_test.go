package safetensors

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// build assembles a file from a raw header and data buffer.
func build(header string, data []byte) []byte {
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(header)))
	out = append(out, header...)
	return append(out, data...)
}

func parseBytes(b []byte) (*File, error) {
	return Parse(bytes.NewReader(b), int64(len(b)))
}

func le16(vs ...uint16) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint16(b, v)
	}
	return b
}

func TestDecodeHalfAndDouble(t *testing.T) {
	inf := float32(math.Inf(1))
	f64 := func(vs ...float64) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		return b
	}
	cases := []struct {
		dtype string
		data  []byte
		want  []float32
	}{
		{F16, le16(0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x3555, 0x7c00, 0xfc00, 0x8000),
			[]float32{1, -2, 65504, 0x1p-24, 1023 * 0x1p-24, 0x1p-14, 0.333251953125, inf, -inf, float32(math.Copysign(0, -1))}},
		{BF16, le16(0x3f80, 0xc0a0, 0x3eab, 0x7f80, 0x0001),
			[]float32{1, -5, 0.333984375, inf, math.Float32frombits(0x00010000)}},
		{F64, f64(0.1, -2.5, 1e300, 3e-50),
			[]float32{0.1, -2.5, inf, 0}},
	}
	for _, c := range cases {
		size, _ := dtypeSize(c.dtype)
		n := len(c.data) / size
		hdr := `{"x":{"dtype":"` + c.dtype + `","shape":[` + strconv.Itoa(n) + `],"data_offsets":[0,` + strconv.Itoa(len(c.data)) + `]}}`
		f, err := parseBytes(build(hdr, c.data))
		if err != nil {
			t.Fatalf("%s: %v", c.dtype, err)
		}
		got, shape, err := f.Float32("x")
		if err != nil {
			t.Fatalf("%s: %v", c.dtype, err)
		}
		if !slices.Equal(shape, []int{n}) {
			t.Errorf("%s: shape %v, want [%d]", c.dtype, shape, n)
		}
		for i := range got {
			// Compare bits so that -0 and +0 differ.
			if math.Float32bits(got[i]) != math.Float32bits(c.want[i]) {
				t.Errorf("%s[%d] = %v (%#x), want %v (%#x)", c.dtype, i, got[i], math.Float32bits(got[i]), c.want[i], math.Float32bits(c.want[i]))
			}
		}
	}
	// NaN stays NaN.
	f, err := parseBytes(build(`{"n":{"dtype":"F16","shape":[],"data_offsets":[0,2]}}`, le16(0x7e00)))
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := f.Float32("n"); len(got) != 1 || !math.IsNaN(float64(got[0])) {
		t.Errorf("F16 NaN decoded as %v", got)
	}
}

// TestF16Exhaustive checks every finite binary16 value against an
// independent float64 computation.
func TestF16Exhaustive(t *testing.T) {
	for h := range 1 << 16 {
		exp := (h >> 10) & 0x1f
		if exp == 0x1f {
			continue
		}
		mant := float64(h & 0x3ff)
		var want float64
		if exp == 0 {
			want = mant * math.Pow(2, -24)
		} else {
			want = (1 + mant/1024) * math.Pow(2, float64(exp-15))
		}
		if h&0x8000 != 0 {
			want = -want
		}
		if got := f16ToF32(uint16(h)); float64(got) != want || math.Signbit(float64(got)) != (h&0x8000 != 0) {
			t.Fatalf("f16ToF32(%#04x) = %v, want %v", h, got, want)
		}
	}
}

func TestMetadataAndNonFloat(t *testing.T) {
	data := append(binary.LittleEndian.AppendUint64(nil, 7), 1, 0)
	hdr := `{"__metadata__":{"format":"pt","k":"v"},` +
		`"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},` +
		`"mask":{"dtype":"BOOL","shape":[2,1],"data_offsets":[8,10]}}   `
	f, err := parseBytes(build(hdr, data))
	if err != nil {
		t.Fatal(err)
	}
	want := []Info{
		{Name: "ids", DType: I64, Shape: []int{1}, Begin: 0, End: 8},
		{Name: "mask", DType: BOOL, Shape: []int{2, 1}, Begin: 8, End: 10},
	}
	got := f.Tensors()
	if len(got) != len(want) {
		t.Fatalf("Tensors() = %v, want %v", got, want)
	}
	for i := range want {
		if got[i].Name != want[i].Name || got[i].DType != want[i].DType || !slices.Equal(got[i].Shape, want[i].Shape) ||
			got[i].Begin != want[i].Begin || got[i].End != want[i].End {
			t.Errorf("Tensors()[%d] = %+v, want %+v", i, got[i], want[i])
		}
	}
	if md := f.Metadata(); len(md) != 2 || md["format"] != "pt" || md["k"] != "v" {
		t.Errorf("Metadata() = %v", md)
	}
	if _, _, err := f.Float32("ids"); err == nil || !strings.Contains(err.Error(), `tensor "ids"`) {
		t.Errorf("Float32 of I64: err = %v, want an error naming the tensor", err)
	}
	if _, _, err := f.Float32("nope"); err == nil {
		t.Error("Float32 of a missing tensor: no error")
	}
	if _, ok := f.Info("mask"); !ok {
		t.Error("Info(mask) not found")
	}
	// Callers cannot change the File through returned values.
	got[0].Shape[0] = 99
	f.Metadata()["k"] = "changed"
	if in, _ := f.Info("ids"); in.Shape[0] != 1 || f.Metadata()["k"] != "v" {
		t.Error("File changed through a returned value")
	}
}

func TestReadFloat32Length(t *testing.T) {
	f, err := parseBytes(build(`{"w":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]}}`, le16(0x3f80, 0x4000)))
	if err != nil {
		t.Fatal(err)
	}
	if err := f.ReadFloat32("w", make([]float32, 3)); err == nil {
		t.Error("ReadFloat32 into a destination of the wrong length: no error")
	}
	dst := make([]float32, 2)
	if err := f.ReadFloat32("w", dst); err != nil || dst[0] != 1 || dst[1] != 2 {
		t.Errorf("ReadFloat32 = %v, %v; want [1 2]", dst, err)
	}
}

// TestMalformed checks that each kind of malformed file is rejected with
// an error that says what is wrong (and names the tensor when one is at
// fault), never a panic.
func TestMalformed(t *testing.T) {
	f32 := func(n int) []byte { return make([]byte, 4*n) }
	entry := func(name, dtype, shape, offs string) string {
		return `"` + name + `":{"dtype":"` + dtype + `","shape":[` + shape + `],"data_offsets":[` + offs + `]}`
	}
	cases := []struct {
		name string
		file []byte
		want string // substring of the error
	}{
		{"empty file", nil, "too short"},
		{"7 bytes", make([]byte, 7), "too short"},
		{"header length over the limit", binary.LittleEndian.AppendUint64(nil, 200<<20), "exceeds the limit"},
		{"header length past end", append(binary.LittleEndian.AppendUint64(nil, 1000), `{}`...), "truncated"},
		{"header length 2^64-1", binary.LittleEndian.AppendUint64(nil, math.MaxUint64), "exceeds the limit"},
		{"empty header", build(``, nil), "does not start with '{'"},
		{"not an object", build(`[]`, nil), "does not start with '{'"},
		{"leading space", build(` {}`, nil), "does not start with '{'"},
		{"bad JSON", build(`{"a":`, nil), `tensor "a": unexpected end of header`},
		{"bad JSON 2", build(`{"a" {}}`, nil), `invalid character`},
		{"missing comma", build(`{`+entry("a", "F32", "1", "0,4")+entry("b", "F32", "1", "4,8")+`}`, f32(2)), "header"},
		{"garbage after object", build(`{} x`, nil), "after the top-level object"},
		{"second object", build(`{}{}`, nil), "after the top-level object"},
		{"invalid UTF-8", build("{\"\xff\":1}", nil), "UTF-8"},
		{"tensor not an object", build(`{"a":5}`, nil), `tensor "a"`},
		{"unknown dtype", build(`{`+entry("w", "F17", "1", "0,4")+`}`, f32(1)), `tensor "w": unknown dtype "F17"`},
		{"lowercase dtype", build(`{`+entry("w", "f32", "1", "0,4")+`}`, f32(1)), `tensor "w": unknown dtype`},
		{"dtype not a string", build(`{"w":{"dtype":4,"shape":[],"data_offsets":[0,4]}}`, f32(1)), `tensor "w": dtype`},
		{"shape/size mismatch", build(`{`+entry("w", "F32", "2,3", "0,20")+`}`, f32(5)), `tensor "w": data_offsets [0, 20] span 20 bytes, but shape [2 3] of F32 needs 24`},
		{"offsets out of range", build(`{`+entry("w", "F32", "2", "0,8")+`}`, f32(1)), `tensor "w": data_offsets [0, 8] run past the 4-byte data buffer`},
		{"truncated data", build(`{`+entry("w", "F32", "1000", "0,4000")+`}`, f32(10)), `tensor "w": data_offsets [0, 4000] run past`},
		{"overlapping tensors", build(`{`+entry("a", "F32", "2", "0,8")+`,`+entry("b", "F32", "2", "4,12")+`}`, f32(3)), `overlap tensor "a"`},
		{"same range twice", build(`{`+entry("a", "F32", "1", "0,4")+`,`+entry("b", "F32", "1", "0,4")+`}`, f32(1)), `tensor "b": data_offsets [0, 4] overlap tensor "a"`},
		{"gap", build(`{`+entry("a", "F32", "1", "0,4")+`,`+entry("b", "F32", "1", "8,12")+`}`, f32(3)), `tensor "b": data_offsets [8, 12] leave a gap`},
		{"trailing data", build(`{`+entry("a", "F32", "1", "0,4")+`}`, f32(2)), "cover only 4"},
		{"duplicate names", build(`{`+entry("a", "F32", "1", "0,4")+`,`+entry("a", "F32", "1", "4,8")+`}`, f32(2)), `tensor "a": appears twice`},
		{"duplicate names via escape", build(`{`+entry("a", "F32", "1", "0,4")+`,`+entry(`\u0061`, "F32", "1", "4,8")+`}`, f32(2)), `tensor "a": appears twice`},
		{"duplicate metadata", build(`{"__metadata__":{},"__metadata__":{}}`, nil), `duplicate key "__metadata__"`},
		{"duplicate metadata key", build(`{"__metadata__":{"k":"1","k":"2"}}`, nil), `duplicate key "k"`},
		{"metadata value not a string", build(`{"__metadata__":{"k":1}}`, nil), `key "k"`},
		{"metadata not an object", build(`{"__metadata__":"x"}`, nil), "__metadata__"},
		{"duplicate field", build(`{"w":{"dtype":"F32","dtype":"F16","shape":[],"data_offsets":[0,4]}}`, f32(1)), `tensor "w": duplicate field "dtype"`},
		{"unknown field", build(`{"w":{"dtype":"F32","shape":[],"data_offsets":[0,4],"x":1}}`, f32(1)), `tensor "w": unknown field "x"`},
		{"missing shape", build(`{"w":{"dtype":"F32","data_offsets":[0,4]}}`, f32(1)), `tensor "w": missing field "shape"`},
		{"missing offsets", build(`{"w":{"dtype":"F32","shape":[]}}`, nil), `tensor "w": missing field "data_offsets"`},
		{"three offsets", build(`{`+entry("w", "F32", "1", "0,4,8")+`}`, f32(1)), `tensor "w": data_offsets has 3 values`},
		{"negative dims", build(`{`+entry("w", "F32", "-1,-4", "0,16")+`}`, f32(4)), `tensor "w": negative dimension -1`},
		{"fractional dim", build(`{`+entry("w", "F32", "1.5", "0,4")+`}`, f32(1)), `tensor "w": shape: element 1.5 is not a 64-bit integer`},
		{"exponent dim", build(`{`+entry("w", "F32", "1e0", "0,4")+`}`, f32(1)), `tensor "w": shape`},
		{"huge dim", build(`{`+entry("w", "F32", "99999999999999999999", "0,4")+`}`, f32(1)), `tensor "w": shape`},
		{"shape overflow", build(`{`+entry("w", "F32", "4294967296,4294967296", "0,4")+`}`, f32(1)), `tensor "w": shape [4294967296 4294967296] has too many elements`},
		{"bytes overflow", build(`{`+entry("w", "F64", "2305843009213693952", "0,8")+`}`, f32(2)), `tensor "w": shape [2305843009213693952] of F64 is too large`},
		{"shape not array", build(`{"w":{"dtype":"F32","shape":3,"data_offsets":[0,4]}}`, f32(1)), `tensor "w": shape`},
		{"string dim", build(`{`+entry("w", "F32", `"1"`, "0,4")+`}`, f32(1)), `tensor "w": shape: element 1 is not a number`},
		{"begin after end", build(`{`+entry("w", "F32", "0", "8,4")+`}`, f32(2)), `tensor "w": data_offsets [8, 4] begin after they end`},
		{"negative offset", build(`{`+entry("w", "F32", "1", "-4,0")+`}`, f32(1)), `tensor "w": negative data_offsets`},
	}
	for _, c := range cases {
		f, err := parseBytes(c.file)
		if err == nil {
			t.Errorf("%s: accepted %+v", c.name, f.Tensors())
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %q does not contain %q", c.name, err, c.want)
		}
		if !strings.HasPrefix(err.Error(), "safetensors: ") {
			t.Errorf("%s: error %q lacks the package prefix", c.name, err)
		}
	}
}

func TestAcceptsPaddingAndEmptyTensors(t *testing.T) {
	hdr := "{\"a\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}," +
		"\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}," +
		"\"c\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}} \t\n  "
	f, err := parseBytes(build(hdr, f32bytes(1.5)))
	if err != nil {
		t.Fatal(err)
	}
	if got, shape, err := f.Float32("a"); err != nil || len(got) != 0 || !slices.Equal(shape, []int{0, 3}) {
		t.Errorf("Float32(a) = %v %v %v", got, shape, err)
	}
	if got, shape, err := f.Float32("b"); err != nil || !slices.Equal(got, []float32{1.5}) || len(shape) != 0 {
		t.Errorf("Float32(b) = %v %v %v", got, shape, err)
	}
	// An empty header object is a valid file with no tensors.
	if f, err := parseBytes(build(`{}`, nil)); err != nil || len(f.Tensors()) != 0 {
		t.Errorf("empty file: %v", err)
	}
}

func f32bytes(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(filepath.Join(dir, "missing.safetensors")); err == nil {
		t.Error("Open of a missing file: no error")
	}
	// A file cut short after it was written.
	path := filepath.Join(dir, "cut.safetensors")
	full := build(`{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, f32bytes(1, 2, 3, 4))
	if err := os.WriteFile(path, full[:len(full)-3], 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), `tensor "w"`) {
		t.Errorf("Open of a truncated file: err = %v, want one naming the path and the tensor", err)
	}
}
