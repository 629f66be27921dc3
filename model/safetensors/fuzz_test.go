package safetensors

import (
	"bytes"
	"testing"
)

// FuzzParse checks that Parse never panics and that whatever it accepts is
// consistent: every tensor lies inside the data buffer, no two overlap, and
// float tensors convert.
func FuzzParse(f *testing.F) {
	for seed := range uint64(3) {
		var buf bytes.Buffer
		if err := Encode(&buf, sampleTensors(seed)[:2+seed], map[string]string{"format": "pt"}); err != nil {
			f.Fatal(err)
		}
		f.Add(buf.Bytes())
	}
	entry := `"w":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}`
	f.Add(build(`{`+entry+`}`, le16(0x3c00, 0xc000)))
	f.Add(build(`{`+entry+`,"b":{"dtype":"BF16","shape":[1,1],"data_offsets":[4,6]}}  `, le16(1, 2, 3)))
	f.Add(build(`{"x":{"dtype":"F64","shape":[],"data_offsets":[0,8]},"i":{"dtype":"I32","shape":[0],"data_offsets":[8,8]}}`, f32bytes(1, 2)))
	f.Add(build(`{`+entry+`,"v":{"dtype":"F16","shape":[1],"data_offsets":[2,4]}}`, le16(1, 2)))
	f.Add(build(`{"__metadata__":{"a":"b"},"__metadata__":{}}`, nil))
	f.Add(build(`{"w":{"dtype":"F32","shape":[-1],"data_offsets":[4,0]}}`, nil))
	f.Add(build(`{"w":`, nil))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})

	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return
		}
		dataLen := int64(len(b)) - file.dataStart
		if dataLen < 0 {
			t.Fatalf("data starts at %d, past the %d-byte file", file.dataStart, len(b))
		}
		infos := file.Tensors()
		for i, in := range infos {
			size, ok := dtypeSize(in.DType)
			if !ok {
				t.Fatalf("accepted unknown dtype %q", in.DType)
			}
			if in.Begin < 0 || in.Begin > in.End || in.End > dataLen {
				t.Fatalf("tensor %q [%d, %d] outside the %d-byte data buffer", in.Name, in.Begin, in.End, dataLen)
			}
			if int64(in.NumElements())*int64(size) != in.End-in.Begin {
				t.Fatalf("tensor %q: shape %v of %s does not match [%d, %d]", in.Name, in.Shape, in.DType, in.Begin, in.End)
			}
			for _, other := range infos[i+1:] {
				if in.Begin < other.End && other.Begin < in.End {
					t.Fatalf("tensors %q [%d, %d] and %q [%d, %d] overlap", in.Name, in.Begin, in.End, other.Name, other.Begin, other.End)
				}
			}
			data, shape, err := file.Float32(in.Name)
			if IsFloat(in.DType) {
				if err != nil {
					t.Fatalf("Float32(%q): %v", in.Name, err)
				}
				if len(data) != in.NumElements() || len(shape) != len(in.Shape) {
					t.Fatalf("Float32(%q): %d values of shape %v for info %+v", in.Name, len(data), shape, in)
				}
			} else if err == nil {
				t.Fatalf("Float32(%q) of dtype %s succeeded", in.Name, in.DType)
			}
		}
	})
}
