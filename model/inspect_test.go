package model

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorgonia.org/tensor"

	"github.com/instructgo/instructgo/model/safetensors"
)

// refStats is the float64 reference for Stats: a plain loop over the
// values, independent of DenseStats and of gorgonia.
func refStats(values []float32) Stats {
	s := noValues()
	var finite []float64
	for _, v := range values {
		x := float64(v)
		switch {
		case x != x:
			s.NaN++
		case x > math.MaxFloat64:
			s.PosInf++
		case x < -math.MaxFloat64:
			s.NegInf++
		default:
			if x == 0 {
				s.Zeros++
			}
			finite = append(finite, x)
		}
	}
	if len(finite) == 0 {
		return s
	}
	var sum, sq float64
	s.Min, s.Max = finite[0], finite[0]
	for _, x := range finite {
		sum += x
		sq += x * x
		s.Min, s.Max = math.Min(s.Min, x), math.Max(s.Max, x)
	}
	n := float64(len(finite))
	s.Mean, s.Norm = sum/n, math.Sqrt(sq)
	var dev float64
	for _, x := range finite {
		dev += (x - s.Mean) * (x - s.Mean)
	}
	s.Std = math.Sqrt(dev / n)
	return s
}

// checkStats compares got with want: counts, min and max exactly, the
// rest to 1e-9 of their scale (the mean's scale is the root mean square,
// since a mean near zero is a difference of large sums). float32
// accumulation misses this by orders of magnitude on the large tensors.
func checkStats(t *testing.T, name string, got, want Stats) {
	t.Helper()
	if got.NaN != want.NaN || got.PosInf != want.PosInf || got.NegInf != want.NegInf || got.Zeros != want.Zeros {
		t.Errorf("%s: counts nan %d +inf %d -inf %d zeros %d, want %d %d %d %d", name,
			got.NaN, got.PosInf, got.NegInf, got.Zeros, want.NaN, want.PosInf, want.NegInf, want.Zeros)
	}
	same := func(a, b float64) bool { return a == b || (math.IsNaN(a) && math.IsNaN(b)) }
	if !same(got.Min, want.Min) || !same(got.Max, want.Max) {
		t.Errorf("%s: min %v max %v, want %v %v", name, got.Min, got.Max, want.Min, want.Max)
	}
	rms := math.Hypot(want.Mean, want.Std) // = norm/√n
	for _, q := range []struct {
		what             string
		got, want, scale float64
	}{
		{"norm", got.Norm, want.Norm, want.Norm},
		{"mean", got.Mean, want.Mean, rms},
		{"std", got.Std, want.Std, rms},
	} {
		if math.IsNaN(q.want) {
			if !math.IsNaN(q.got) {
				t.Errorf("%s: %s %v, want NaN", name, q.what, q.got)
			}
			continue
		}
		if !(math.Abs(q.got-q.want) <= 1e-9*q.scale) {
			t.Errorf("%s: %s %.17g, want %.17g (error %.3g of scale %.3g)", name, q.what, q.got, q.want, math.Abs(q.got-q.want), q.scale)
		}
	}
}

// rawTensor is a tensor of any dtype, for files the writer cannot make.
type rawTensor struct {
	name, dtype string
	shape       []int
	data        []byte
}

// writeRaw writes a safetensors file holding tensors in the given order.
func writeRaw(t *testing.T, path string, tensors []rawTensor) {
	t.Helper()
	header := map[string]any{}
	var data []byte
	for _, r := range tensors {
		header[r.name] = map[string]any{"dtype": r.dtype, "shape": r.shape, "data_offsets": []int{len(data), len(data) + len(r.data)}}
		data = append(data, r.data...)
	}
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, uint64(len(h)))
	buf.Write(h)
	buf.Write(data)
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func f32Bytes(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func u16Bytes(v []uint16) []byte {
	b := make([]byte, 2*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint16(b[2*i:], x)
	}
	return b
}

// randomWithSpecials draws n normal values of the given mean and spread and
// overwrites a few, at random places, with NaN, ±Inf and ±0.
func randomWithSpecials(rng *rand.Rand, n int, mean, spread float64, nan, posInf, negInf, zeros int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(mean + spread*rng.NormFloat64())
	}
	perm := rng.Perm(n)
	put := func(k int, x float32) {
		for ; k > 0; k-- {
			v[perm[0]] = x
			perm = perm[1:]
		}
	}
	put(nan, float32(math.NaN()))
	put(posInf, float32(math.Inf(1)))
	put(negInf, float32(math.Inf(-1)))
	put(zeros-zeros/2, 0)
	put(zeros/2, float32(math.Copysign(0, -1)))
	return v
}

func TestInspectCheckpointStatsMatchFloat64Reference(t *testing.T) {
	rng := rand.New(rand.NewPCG(19, 7))
	w := randomWithSpecials(rng, 3*7*50, 0.25, 0.5, 3, 2, 1, 5)
	big := randomWithSpecials(rng, 1100*1000, 3, 0.01, 2, 1, 1, 3) // two chunks; the mean dwarfs the spread
	// A chunk of NaN before the finite values.
	nanChunk := randomWithSpecials(rng, statsChunk+1000, -5, 2, 0, 0, 0, 0)
	for i := range statsChunk {
		nanChunk[i] = float32(math.NaN())
	}
	allNaN := []float32{float32(math.NaN()), float32(math.NaN()), float32(math.NaN()), float32(math.NaN())}
	ones := make([]float32, 64)
	for i := range ones {
		ones[i] = 1
	}
	// bf16 and f16 values as stored, and the float32 they stand for.
	var bf16 []uint16
	var bf16Want []float32
	for i := range 300 {
		x := float32(rng.NormFloat64() * 4)
		switch i {
		case 17:
			x = float32(math.NaN())
		case 18:
			x = float32(math.Inf(1))
		case 19:
			x = float32(math.Inf(-1))
		case 20, 21:
			x = 0
		}
		bits := uint16(math.Float32bits(x) >> 16) // truncation: still a random value
		bf16 = append(bf16, bits)
		bf16Want = append(bf16Want, math.Float32frombits(uint32(bits)<<16))
	}
	f16 := []uint16{0x3c00, 0xc000, 0x3555, 0x0001, 0x7c00, 0xfc00, 0x7e00, 0x0000, 0x8000, 0x5640}
	f16Want := []float32{1, -2, 0.333251953125, 1.0 / (1 << 24), float32(math.Inf(1)), float32(math.Inf(-1)),
		float32(math.NaN()), 0, 0, 100}

	dir := t.TempDir()
	path := filepath.Join(dir, "x.safetensors")
	writeRaw(t, path, []rawTensor{
		{"w", safetensors.F32, []int{3, 7, 50}, f32Bytes(w)},
		{"big", safetensors.F32, []int{1100, 1000}, f32Bytes(big)},
		{"nan_chunk", safetensors.F32, []int{statsChunk + 1000}, f32Bytes(nanChunk)},
		{"all_nan", safetensors.F32, []int{4}, f32Bytes(allNaN)},
		{"ones", safetensors.F32, []int{8, 8}, f32Bytes(ones)},
		{"scalar", safetensors.F32, []int{}, f32Bytes([]float32{-2.5})},
		{"bf16", safetensors.BF16, []int{300}, u16Bytes(bf16)},
		{"f16", safetensors.F16, []int{2, 5}, u16Bytes(f16)},
		{"empty", safetensors.F32, []int{2, 0}, nil},
		{"ids", safetensors.I32, []int{3}, make([]byte, 12)},
	})
	in, err := InspectCheckpoint(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]struct {
		values []float32
		dtype  string
		shape  []int
		bytes  int64
	}{
		"w":         {w, "F32", []int{3, 7, 50}, 4 * 1050},
		"big":       {big, "F32", []int{1100, 1000}, 4 * 1100 * 1000},
		"nan_chunk": {nanChunk, "F32", []int{statsChunk + 1000}, 4 * (statsChunk + 1000)},
		"all_nan":   {allNaN, "F32", []int{4}, 16},
		"ones":      {ones, "F32", []int{8, 8}, 256},
		"scalar":    {[]float32{-2.5}, "F32", []int{}, 4},
		"bf16":      {bf16Want, "BF16", []int{300}, 600},
		"f16":       {f16Want, "F16", []int{2, 5}, 20},
		"empty":     {nil, "F32", []int{2, 0}, 0},
	}
	if len(in.Files) != 1 || in.Files[0] != path || in.ModelType != "" {
		t.Errorf("files %v, model type %q; want [%s] and none", in.Files, in.ModelType, path)
	}
	var names []string
	for _, ts := range in.Tensors {
		names = append(names, ts.Name)
		if ts.File != "x.safetensors" {
			t.Errorf("%s: file %q", ts.Name, ts.File)
		}
		if ts.Name == "ids" {
			if ts.Measured || ts.DType != "I32" || ts.Elements != 3 || ts.Bytes != 12 {
				t.Errorf("ids: %+v, want an unmeasured I32 of 3 elements, 12 bytes", ts)
			}
			continue
		}
		w := want[ts.Name]
		if !ts.Measured || ts.DType != w.dtype || fmt.Sprint(ts.Shape) != fmt.Sprint(w.shape) ||
			ts.Elements != int64(len(w.values)) || ts.Bytes != w.bytes {
			t.Errorf("%s: measured %v dtype %s shape %v elements %d bytes %d; want true %s %v %d %d", ts.Name,
				ts.Measured, ts.DType, ts.Shape, ts.Elements, ts.Bytes, w.dtype, w.shape, len(w.values), w.bytes)
		}
		checkStats(t, ts.Name, ts.Stats, refStats(w.values))
	}
	if got := strings.Join(names, " "); got != "all_nan bf16 big empty f16 ids nan_chunk ones scalar w" {
		t.Errorf("tensors %s, want them all in name order", got)
	}

	// The cases the reference alone would not pin down.
	byName := map[string]TensorStats{}
	for _, ts := range in.Tensors {
		byName[ts.Name] = ts
	}
	if s := byName["w"].Stats; s.NaN != 3 || s.PosInf != 2 || s.NegInf != 1 || s.Zeros != 5 || s.NonFinite() != 6 {
		t.Errorf("w: counts %+v, want the injected 3 NaN, 2 +Inf, 1 -Inf, 5 zeros", s)
	}
	if s := byName["ones"].Stats; s.Std != 0 || s.Mean != 1 || s.Norm != 8 {
		t.Errorf("ones: mean %v std %v norm %v, want exactly 1, 0, 8", s.Mean, s.Std, s.Norm)
	}
	if s := byName["scalar"].Stats; s.Norm != 2.5 || s.Mean != -2.5 || s.Std != 0 || s.Min != -2.5 || s.Max != -2.5 {
		t.Errorf("scalar: %+v", s)
	}
	if s := byName["f16"].Stats; s.Min != -2 || s.Max != 100 || s.Zeros != 2 || s.NaN != 1 {
		t.Errorf("f16: %+v, want min -2, max 100, 2 zeros, 1 NaN", s)
	}
	if s := byName["empty"].Stats; s.NonFinite() != 0 || s.Zeros != 0 || !math.IsNaN(s.Norm) {
		t.Errorf("empty: %+v, want no counts and NaN summaries", s)
	}
}

func TestInspectCheckpointKeepsOnlyMatchingTensors(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(1, 2))
	var tensors []safetensors.Tensor
	for _, name := range []string{"a.weight", "a.bias", "b.weight"} {
		tensors = append(tensors, safetensors.Tensor{Name: name, Shape: []int{5}, Data: randomWithSpecials(rng, 5, 0, 1, 0, 0, 0, 0)})
	}
	path := filepath.Join(dir, "optimizer.safetensors")
	if err := safetensors.Write(path, tensors, nil); err != nil {
		t.Fatal(err)
	}
	in, err := InspectCheckpoint(path, func(name string) bool { return strings.HasSuffix(name, ".weight") })
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Tensors) != 2 || in.Tensors[0].Name != "a.weight" || in.Tensors[1].Name != "b.weight" {
		t.Fatalf("kept %+v, want a.weight and b.weight", in.Tensors)
	}
	checkStats(t, "b.weight", in.Tensors[1].Stats, refStats(tensors[2].Data))
}

func TestDenseStatsOfAViewAndBadInput(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	v := randomWithSpecials(rng, 6*9, -1, 2, 1, 1, 0, 2)
	d := tensor.New(tensor.WithShape(6, 9), tensor.WithBacking(v))
	if err := d.T(); err != nil {
		t.Fatal(err)
	}
	got, err := DenseStats(d)
	if err != nil {
		t.Fatal(err)
	}
	checkStats(t, "transposed", got, refStats(v))
	if _, err := DenseStats(nil); err == nil {
		t.Error("DenseStats(nil): no error")
	}
	f64 := tensor.New(tensor.WithShape(2), tensor.WithBacking([]float64{1, 2}))
	if _, err := DenseStats(f64); err == nil || !strings.Contains(err.Error(), "float32") {
		t.Errorf("DenseStats(float64 Dense): err = %v", err)
	}
}

func TestInspectCheckpointOfASavedModel(t *testing.T) {
	cfg := testConfig()
	host := randomParams(cfg, rand.New(rand.NewPCG(5, 6)))
	dir := t.TempDir()
	if err := SaveHost(dir, cfg, host); err != nil {
		t.Fatal(err)
	}
	in, err := InspectCheckpoint(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if in.ModelType != "gpt2" || fmt.Sprint(in.Architectures) != "[GPT2LMHeadModel]" {
		t.Errorf("model type %q, architectures %v", in.ModelType, in.Architectures)
	}
	if len(in.Tensors) != len(cfg.layout()) {
		t.Fatalf("%d tensors, want the layout's %d", len(in.Tensors), len(cfg.layout()))
	}
	// Each tensor's values, found in host through the layout.
	values := map[string][]float32{}
	off := 0
	for _, s := range cfg.layout() {
		values[cfg.fileName(s.name)] = host[off : off+s.size()]
		off += s.size()
	}
	var params int64
	for _, ts := range in.Tensors {
		v, ok := values[ts.Name]
		if !ok {
			t.Fatalf("unexpected tensor %q", ts.Name)
		}
		checkStats(t, ts.Name, ts.Stats, refStats(v))
		params += ts.Elements
	}
	if params != int64(len(host)) {
		t.Errorf("%d elements in all, want %d", params, len(host))
	}
}

// writeShards writes a sharded checkpoint in dir: two shards, their index
// (weight map as given, or the true one when nil) and a config.json.
func writeShards(t *testing.T, dir string, weightMap map[string]string) map[string][]float32 {
	t.Helper()
	rng := rand.New(rand.NewPCG(8, 9))
	values := map[string][]float32{}
	shards := map[string][]safetensors.Tensor{
		"model-00001-of-00002.safetensors": {{Name: "embed.weight", Shape: []int{4, 3}}, {Name: "norm.weight", Shape: []int{3}}},
		"model-00002-of-00002.safetensors": {{Name: "head.weight", Shape: []int{2, 3}}},
	}
	trueMap := map[string]string{}
	for file, ts := range shards {
		for i := range ts {
			n := 1
			for _, d := range ts[i].Shape {
				n *= d
			}
			ts[i].Data = randomWithSpecials(rng, n, 0, 1, 0, 0, 0, 0)
			values[ts[i].Name] = ts[i].Data
			trueMap[ts[i].Name] = file
		}
		if err := safetensors.Write(filepath.Join(dir, file), ts, nil); err != nil {
			t.Fatal(err)
		}
	}
	if weightMap == nil {
		weightMap = trueMap
	}
	index, _ := json.Marshal(map[string]any{"metadata": map[string]any{"total_size": 84}, "weight_map": weightMap})
	if err := os.WriteFile(filepath.Join(dir, WeightsIndexFile), index, 0o644); err != nil {
		t.Fatal(err)
	}
	config := `{"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 3}`
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return values
}

func TestInspectCheckpointReadsShards(t *testing.T) {
	dir := t.TempDir()
	values := writeShards(t, dir, nil)
	for _, path := range []string{dir, filepath.Join(dir, WeightsIndexFile)} {
		in, err := InspectCheckpoint(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, ts := range in.Tensors {
			got = append(got, ts.File+":"+ts.Name)
			checkStats(t, ts.Name, ts.Stats, refStats(values[ts.Name]))
		}
		want := "model-00001-of-00002.safetensors:embed.weight model-00001-of-00002.safetensors:norm.weight model-00002-of-00002.safetensors:head.weight"
		if strings.Join(got, " ") != want || len(in.Files) != 2 {
			t.Errorf("%s: tensors %v from %v, want %s", path, got, in.Files, want)
		}
		if path == dir && (in.ModelType != "llama" || fmt.Sprint(in.Architectures) != "[LlamaForCausalLM]") {
			t.Errorf("model type %q, architectures %v", in.ModelType, in.Architectures)
		}
	}

	// model.safetensors, when there is one, wins over the index.
	single := []safetensors.Tensor{{Name: "only", Shape: []int{2}, Data: []float32{3, -4}}}
	if err := safetensors.Write(filepath.Join(dir, WeightsFile), single, nil); err != nil {
		t.Fatal(err)
	}
	in, err := InspectCheckpoint(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(in.Tensors) != 1 || in.Tensors[0].Name != "only" || in.Tensors[0].Norm != 5 {
		t.Errorf("with model.safetensors beside the index: %+v", in.Tensors)
	}
}

func TestInspectCheckpointRejectsInconsistentShards(t *testing.T) {
	one, two := "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"
	for _, c := range []struct {
		name      string
		weightMap map[string]string
		want      string
	}{
		{"missing tensor", map[string]string{"embed.weight": one, "norm.weight": one, "head.weight": two, "extra.weight": two},
			`tensor "extra.weight" is not in ` + two},
		{"unlisted tensor", map[string]string{"embed.weight": one, "head.weight": two},
			`tensor "norm.weight" of ` + one + " is not listed"},
		{"wrong shard", map[string]string{"embed.weight": one, "norm.weight": two, "head.weight": two},
			`tensor "norm.weight" of ` + one + " is not listed"},
		{"path outside", map[string]string{"embed.weight": "../" + one}, "is not a file name"},
		{"empty map", map[string]string{}, "empty"},
	} {
		dir := t.TempDir()
		writeShards(t, dir, c.weightMap)
		_, err := InspectCheckpoint(dir, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.HasPrefix(err.Error(), "inspect checkpoint: ") {
			t.Errorf("%s: err = %v, want one mentioning %q", c.name, err, c.want)
		}
	}
}

func TestInspectCheckpointErrors(t *testing.T) {
	dir := t.TempDir()
	noWeights := filepath.Join(dir, "noweights")
	os.Mkdir(noWeights, 0o755)
	os.WriteFile(filepath.Join(noWeights, ConfigFile), []byte(`{"model_type": "gpt2"}`), 0o644)

	corrupt := filepath.Join(dir, "corrupt")
	os.Mkdir(corrupt, 0o755)
	good := filepath.Join(dir, "good.safetensors")
	if err := safetensors.Write(good, []safetensors.Tensor{{Name: "x", Shape: []int{100}, Data: make([]float32, 100)}}, nil); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(good)
	os.WriteFile(filepath.Join(corrupt, WeightsFile), data[:len(data)-10], 0o644)

	badConfig := filepath.Join(dir, "badconfig")
	os.Mkdir(badConfig, 0o755)
	os.WriteFile(filepath.Join(badConfig, ConfigFile), []byte(`{"model_type": 7}`), 0o644)
	os.WriteFile(filepath.Join(badConfig, WeightsFile), data, 0o644)

	// A config.json that is a link to an endless device, or larger than the
	// limit (a sparse file: no disk used), is refused before it is read.
	devZero := filepath.Join(dir, "devzero")
	os.Mkdir(devZero, 0o755)
	os.WriteFile(filepath.Join(devZero, WeightsFile), data, 0o644)
	if err := os.Symlink("/dev/zero", filepath.Join(devZero, ConfigFile)); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge")
	os.Mkdir(huge, 0o755)
	os.WriteFile(filepath.Join(huge, WeightsFile), data, 0o644)
	f, err := os.Create(filepath.Join(huge, ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	f.Truncate(MaxJSONFileSize + 1)
	f.Close()

	for _, c := range []struct{ path, want string }{
		{filepath.Join(dir, "missing"), "no such file"},
		{noWeights, "has neither model.safetensors nor model.safetensors.index.json"},
		{corrupt, "run past the 390-byte data buffer"},
		{badConfig, "config.json"},
		{devZero, "not a regular file"},
		{huge, "more than the limit"},
		{dir + "/missing.index.json", "no such file"},
	} {
		_, err := InspectCheckpoint(c.path, nil)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: err = %v, want one line mentioning %q", c.path, err, c.want)
		}
	}
	// ReadConfig reads config.json under the same bound.
	for _, d := range []string{devZero, huge} {
		if _, err := ReadConfig(d); err == nil {
			t.Errorf("ReadConfig(%s): no error", d)
		}
	}
}
