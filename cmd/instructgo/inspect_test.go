package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/instructgo/instructgo/model"
	"github.com/instructgo/instructgo/model/safetensors"
)

// inspectLine is the part of an inspect --json line the tests check.
type inspectLine struct {
	File     string   `json:"file"`
	Name     string   `json:"name"`
	DType    string   `json:"dtype"`
	Shape    []int    `json:"shape"`
	Elements int64    `json:"elements"`
	Norm     *float64 `json:"norm"`
	Mean     *float64 `json:"mean"`
	Min      *float64 `json:"min"`
	Max      *float64 `json:"max"`
	NaN      *int64   `json:"nan"`
	PosInf   *int64   `json:"pos_inf"`
	Zeros    *int64   `json:"zeros"`
}

func parseInspectJSON(t *testing.T, out string) []inspectLine {
	t.Helper()
	var lines []inspectLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var r inspectLine
		if err := json.Unmarshal([]byte(l), &r); err != nil {
			t.Fatalf("inspect --json line is not JSON: %v\n%s", err, l)
		}
		lines = append(lines, r)
	}
	return lines
}

func TestInspectSavedModel(t *testing.T) {
	dir := t.TempDir()
	cfg := model.Config{VocabSize: 258, MaxSeqLen: 16, NLayer: 1, NHead: 2, NEmbd: 8, Tokenizer: "byte"}
	if err := model.SaveHost(dir, cfg, model.InitGPT2(cfg, 3)); err != nil {
		t.Fatal(err)
	}
	f, err := safetensors.Open(filepath.Join(dir, model.WeightsFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()

	out, stderr, code := runCLI(t, "inspect", dir)
	if code != 0 || stderr != "" {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	rows := strings.Split(strings.TrimSpace(out), "\n")
	if !strings.HasPrefix(rows[0], filepath.Join(dir, model.WeightsFile)+" (gpt2, GPT2LMHeadModel)") ||
		!strings.HasPrefix(rows[1], "NAME ") || len(rows) != len(f.Tensors())+3 {
		t.Fatalf("inspect output:\n%s", out)
	}
	var total int64
	for i, info := range f.Tensors() {
		fields := strings.Fields(rows[2+i])
		if len(fields) != 13 || fields[0] != info.Name || fields[1] != "F32" || fields[3] != fmt.Sprint(info.NumElements()) {
			t.Errorf("row %q, want 13 columns for %s", rows[2+i], info.Name)
		}
		total += int64(info.NumElements())
	}
	wantTotal := fmt.Sprintf("total: %d tensors, %d elements, ", len(f.Tensors()), total)
	if last := rows[len(rows)-1]; !strings.HasPrefix(last, wantTotal) || !strings.HasSuffix(last, ", 0 with NaN or Inf values") {
		t.Errorf("total line %q, want it to start %q", last, wantTotal)
	}

	out, stderr, code = runCLI(t, "inspect", "--json", "--match", `ln_f|c_fc\.weight`, dir)
	if code != 0 {
		t.Fatalf("exit code %d, stderr %q", code, stderr)
	}
	lines := parseInspectJSON(t, out)
	var names []string
	for _, r := range lines {
		names = append(names, r.Name)
		values, shape, err := f.Float32(r.Name)
		if err != nil {
			t.Fatal(err)
		}
		// An independent float64 reference (the values are all finite).
		var sq, sum float64
		var zeros int64
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, v := range values {
			x := float64(v)
			sq += x * x
			sum += x
			lo, hi = math.Min(lo, x), math.Max(hi, x)
			if x == 0 {
				zeros++
			}
		}
		norm, mean := math.Sqrt(sq), sum/float64(len(values))
		if r.Norm == nil || r.Mean == nil || r.Min == nil || r.Max == nil || r.Zeros == nil || r.NaN == nil {
			t.Fatalf("%s: null statistics in %s", r.Name, out)
		}
		if math.Abs(*r.Norm-norm) > 1e-9*norm || math.Abs(*r.Mean-mean) > 1e-9*norm/math.Sqrt(float64(len(values))) ||
			*r.Min != lo || *r.Max != hi || *r.Zeros != zeros || *r.NaN != 0 {
			t.Errorf("%s: norm %v mean %v min %v max %v zeros %v; want %v %v %v %v %v",
				r.Name, *r.Norm, *r.Mean, *r.Min, *r.Max, *r.Zeros, norm, mean, lo, hi, zeros)
		}
		if r.File != model.WeightsFile || r.DType != "F32" || fmt.Sprint(r.Shape) != fmt.Sprint(shape) || r.Elements != int64(len(values)) {
			t.Errorf("%s: file %s dtype %s shape %v elements %d", r.Name, r.File, r.DType, r.Shape, r.Elements)
		}
	}
	if got := strings.Join(names, " "); got != "transformer.h.0.mlp.c_fc.weight transformer.ln_f.bias transformer.ln_f.weight" {
		t.Errorf("--match kept %s", got)
	}
	// GPT-2's init: LayerNorm biases are zero and gains one.
	if z := lines[1].Zeros; z == nil || *z != 8 {
		t.Errorf("ln_f.bias zeros = %v, want 8", z)
	}
}

func TestInspectNonFinite(t *testing.T) {
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(4, 5))
	a := make([]float32, 40)
	for i := range a {
		a[i] = float32(rng.NormFloat64())
	}
	a[3], a[9], a[20] = float32(math.NaN()), float32(math.Inf(1)), 0
	nan := float32(math.NaN())
	path := filepath.Join(dir, "optimizer.safetensors")
	tensors := []safetensors.Tensor{
		{Name: "exp_avg", Shape: []int{40}, Data: a},
		{Name: "exp_avg_sq", Shape: []int{3}, Data: []float32{nan, nan, nan}},
		{Name: "fine", Shape: []int{2}, Data: []float32{0.5, -1}},
	}
	if err := safetensors.Write(path, tensors, nil); err != nil {
		t.Fatal(err)
	}

	for _, fail := range []bool{false, true} {
		args := []string{"--log-format", "json", "inspect", path}
		if fail {
			args = []string{"--log-format", "json", "inspect", "--fail-nonfinite", path}
		}
		out, stderr, code := runCLI(t, args...)
		want := 0
		if fail {
			want = 1
		}
		if code != want {
			t.Errorf("fail-nonfinite %v: exit code %d, want %d (stderr %q)", fail, code, want, stderr)
		}
		if !strings.Contains(out, "total: 3 tensors, 45 elements, 180 B, 2 with NaN or Inf values") {
			t.Errorf("output lacks the total:\n%s", out)
		}
		// exp_avg_sq has no finite value: its summary columns are "-".
		for _, row := range strings.Split(out, "\n") {
			if f := strings.Fields(row); len(f) == 13 && f[0] == "exp_avg_sq" {
				if got := strings.Join(f[4:], " "); got != "- - - - - 3 0 0 0" {
					t.Errorf("exp_avg_sq columns %q", got)
				}
			}
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		var log struct{ Level, Message string }
		if len(lines) != 1 || json.Unmarshal([]byte(lines[0]), &log) != nil || log.Level != "warn" ||
			!strings.Contains(log.Message, "2 of 3 tensors have NaN or Inf values (first: exp_avg)") {
			t.Errorf("stderr %q, want one warning line", stderr)
		}
	}

	out, _, code := runCLI(t, "inspect", "--json", path)
	if code != 0 {
		t.Fatalf("exit code %d", code)
	}
	lines := parseInspectJSON(t, out)
	if len(lines) != 3 {
		t.Fatalf("%d JSON lines, want 3:\n%s", len(lines), out)
	}
	if r := lines[0]; *r.NaN != 1 || *r.PosInf != 1 || *r.Zeros != 1 || r.Norm == nil || math.IsNaN(*r.Norm) {
		t.Errorf("exp_avg: %s", out)
	}
	if r := lines[1]; r.Norm != nil || r.Mean != nil || r.Min != nil || r.Max != nil || *r.NaN != 3 {
		t.Errorf("exp_avg_sq: want null summaries and 3 NaN:\n%s", out)
	}
	if !strings.Contains(out, `"name":"exp_avg_sq","dtype":"F32","shape":[3],"elements":3,"bytes":12,"measured":true,"norm":null,"mean":null,"std":null,"min":null,"max":null,"nan":3,"pos_inf":0,"neg_inf":0,"zeros":0}`) {
		t.Errorf("exp_avg_sq line:\n%s", out)
	}
}

func TestInspectErrors(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.Mkdir(empty, 0o755)
	corrupt := filepath.Join(dir, "corrupt.safetensors")
	os.WriteFile(corrupt, []byte("\x10\x00\x00\x00\x00\x00\x00\x00{\"x\": 1}        "), 0o644)
	good := filepath.Join(dir, "good.safetensors")
	if err := safetensors.Write(good, []safetensors.Tensor{{Name: "w", Shape: []int{2}, Data: []float32{1, 2}}}, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"inspect", filepath.Join(dir, "missing")}, 1, "inspect checkpoint: stat " + filepath.Join(dir, "missing") + ": no such file or directory"},
		{[]string{"inspect", empty}, 1, "has neither model.safetensors nor model.safetensors.index.json"},
		{[]string{"inspect", corrupt}, 1, `tensor "x"`},
		{[]string{"inspect", "--match", "nomatch", good}, 1, `no tensor of ` + good + ` matches --match "nomatch"`},
		{[]string{"inspect"}, 2, "inspect takes one checkpoint directory or safetensors file, got 0 arguments"},
		{[]string{"inspect", good, "--json"}, 2, "got 2 arguments; options go before the path"},
		{[]string{"inspect", "--match", "(", good}, 2, `invalid --match "("`},
	} {
		out, stderr, code := runCLI(t, c.args...)
		if code != c.code || out != "" || strings.Count(stderr, "\n") != 1 ||
			!strings.HasPrefix(stderr, "instructgo: ") || !strings.Contains(stderr, c.want) {
			t.Errorf("%v: exit code %d, stdout %q, stderr %q; want code %d and one line with %q", c.args, code, out, stderr, c.code, c.want)
		}
	}
}
